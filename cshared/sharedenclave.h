/*
 * sharedenclave.h — libsharedenclave, the C interface to Shared Enclave.
 *
 * The library is the Go code of this repository (packages atls, client,
 * attest/backend, attest/policyfile) built with -buildmode=c-shared or
 * c-archive. It does not re-implement anything: the TLS handshake, the
 * post-handshake mutual attestation and its binding to the TLS session
 * (docs/PROTOCOL.md, section 2) and the relay protocol are the Go
 * code that relayd, example-client and the Go client library run.
 *
 * Build, link and run: see the README section "C library".
 *
 * ---------------------------------------------------------------------
 * Handles
 *   Every object (environment, relay connection, TLS session) is a 64-bit
 *   integer handle, never a pointer. 0 is never a valid handle. Handles are
 *   not reused: a handle used after it was closed returns SE_EBADHANDLE.
 *
 * Ownership
 *   - Strings and buffers passed IN are read during the call only and
 *     never kept; the caller keeps ownership.
 *   - se_message structures are allocated by the library and must be
 *     released with se_message_free (never free()).
 *   - The string from se_last_error() and se_strerror() is owned by the
 *     library; do not free it.
 *   - File descriptors passed to se_tls_client_new / se_tls_server_new
 *     stay the caller's: the library reads and writes them while the
 *     session is open, never changes their flags and never closes them.
 *     Close the fd after se_tls_close.
 *
 * Errors
 *   Every function returns an int: SE_OK (0), a non-negative status
 *   (SE_NO_DATA, SE_WANT_READ, SE_WANT_WRITE) where documented, or a
 *   negative SE_E* code. After a negative code, se_last_error() gives a
 *   message (UTF-8, NUL-terminated) for the calling thread.
 *   Security fails closed: an attestation that cannot be completed is an
 *   error, never a fallback.
 *
 * Thread safety
 *   All functions may be called from any thread, concurrently.
 *   - Different handles are independent.
 *   - Calls on one relay handle are serialized by the library (one
 *     request/answer at a time), so one handle can be shared by threads.
 *   - On one TLS session, one thread may read while another writes;
 *     concurrent reads (or concurrent writes) are serialized.
 *   - A *_close waits for calls in progress on that handle to return (a
 *     blocking se_tls_read on a blocking fd waits for data: shut the socket
 *     down with shutdown(2) first to wake it). Calls made after it return
 *     SE_EBADHANDLE.
 *   - se_last_error() is per thread.
 *
 * Process
 *   Loading the library starts the Go runtime (a few threads). It installs
 *   handlers for the synchronous signals and SIGPIPE, keeps the handlers
 *   that were there, and forwards to them the signals raised in C code (Go's
 *   os/signal documentation, "Non-Go programs that call Go code"). Writes on
 *   a TLS session use MSG_NOSIGNAL; a peer that went away is SE_EIO, not a
 *   SIGPIPE. After fork(), only exec: the child cannot use the library.
 *
 * Limits: ids are 1..255 bytes of UTF-8 (NUL-terminated here); payloads
 * and TLS writes are bounded by the sizes below; every length is checked
 * and a too-long one is refused with SE_EINVAL before anything is sent.
 */
#ifndef SHAREDENCLAVE_H
#define SHAREDENCLAVE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SE_VERSION_MAJOR 0
#define SE_VERSION_MINOR 1

/* ---- status and error codes ---- */
#define SE_OK 0
#define SE_NO_DATA 1    /* poll: the mailbox is empty; recv: timed out */
#define SE_WANT_READ 2  /* non-blocking fd: wait until it is readable, call again */
#define SE_WANT_WRITE 3 /* non-blocking fd: wait until it is writable, call again */

#define SE_EINVAL (-1)       /* bad argument: NULL, length out of range, invalid id, bad options */
#define SE_EBADHANDLE (-2)   /* unknown or closed handle, or a handle of another kind */
#define SE_EPOLICY (-3)      /* policy file missing (required under SGX), unreadable or invalid */
#define SE_EBACKEND (-4)     /* attestation backend unusable: no /dev/attestation, bad sim dir, quoting failed */
#define SE_EATTEST (-5)      /* the peer's quote is not genuine, not accepted by the policy, or not bound to this session */
#define SE_EREFUSED (-6)     /* the peer refused OUR attestation (its reason is in se_last_error) */
#define SE_ENACK (-7)        /* the relay refused the request (REGISTER/SEND/POLL NACK); the connection stays usable */
#define SE_ESERVER (-8)      /* the relay sent an ERROR frame; the connection stays usable */
#define SE_EIO (-9)          /* network or TLS failure, or a timeout; the handle is no longer usable */
#define SE_ECLOSED (-10)     /* the peer closed the connection (TLS close_notify or EOF) */
#define SE_EUNSUPPORTED (-11)/* not available with the relay protocol this library speaks (see se_relay_ack) */
#define SE_ENOMEM (-12)      /* allocation failed */
#define SE_EINTERNAL (-13)   /* a bug: please report it with se_last_error() */

/* Maximum sizes (bytes). */
#define SE_MAX_ID 255                 /* client ids */
/* Relay message data: what always fits in the relay's default frame limit
 * (1 MiB) beside a 255-byte recipient and its u16 length. A relay configured
 * with a lower limit answers a larger frame with SE_ESERVER or SE_EIO. */
#define SE_MAX_PAYLOAD ((1u << 20) - 2u - 255u)
#define SE_MAX_TLS_WRITE (1u << 20)   /* one se_tls_write */

/* A message for the calling thread about the last failed call, or "" if
 * none failed on this thread. Owned by the library; valid until the next
 * failing call on this thread. Never NULL. */
const char *se_last_error(void);

/* A static description of a code. Never NULL. */
const char *se_strerror(int code);

/* ---- environment: how this enclave attests and verifies ---- */

typedef uint64_t se_env;

typedef struct se_env_options {
  /* sizeof(se_env_options): lets the struct grow compatibly. Required. */
  uint32_t struct_size;
  /* 1: the simulated SGX platform in sim_dir (NOT a real enclave: the host
   * can read everything). 0: real SGX under Gramine. Never implied. */
  int32_t simulation;
  /* Simulation: directory made by `enclavectl sim init` (or relayd
   * --simulation). Required with simulation, refused without. */
  const char *sim_dir;
  /* SGX: PCCS or Intel PCS v4 base URL (NULL: Intel PCS), or a collateral
   * directory (NULL: none). At most one. Refused in simulation. */
  const char *pccs_url;
  const char *collateral_dir;
  /* Bounds dialing, the handshake with the attestation, and each relay
   * request, in milliseconds. 0: 15000. */
  uint32_t timeout_ms;
  /* Simulation only: ISVPRODID and ISVSVN this program attests with (its
   * MRENCLAVE is the SHA-256 of the running executable). */
  uint16_t sim_isvprodid;
  uint16_t sim_isvsvn;
} se_env_options;

/* Opens the attestation backend described by opts (which is not kept).
 * On SE_OK, *out is a new environment; release it with se_env_close.
 * Errors: SE_EINVAL (NULL, wrong struct_size, conflicting options),
 * SE_EBACKEND. */
int se_env_new(const se_env_options *opts, se_env *out);

/* Releases the environment. Connections and sessions opened with it stay
 * usable until they are closed. Errors: SE_EBADHANDLE. */
int se_env_close(se_env env);

/* ---- attested identity ---- */

typedef struct se_identity {
  uint8_t mrenclave[32];
  uint8_t mrsigner[32];
  uint16_t isv_prod_id;
  uint16_t isv_svn;
  int32_t debug;          /* 1: the enclave has the DEBUG attribute */
  int32_t simulated;      /* 1: the quote chained to a simulated root */
  char tcb_status[40];    /* e.g. "UpToDate", NUL-terminated (truncated if ever longer) */
} se_identity;

/* ---- relay client ---- */

typedef uint64_t se_relay;

/* A received message. Allocated by the library; release with
 * se_message_free. `from` is NUL-terminated (from_len excludes the NUL);
 * `data` is data_len bytes (a NUL follows them, not counted, so text can
 * be printed; the data may itself contain NULs). */
typedef struct se_message {
  char *from;
  size_t from_len;
  uint8_t *data;
  size_t data_len;
  /* Message id from the relay. Always 0 today: the relay protocol this
   * library speaks (docs/PROTOCOL.md) has no message ids. Reserved for the
   * delivery extension (ids and acknowledgements); when it lands, a
   * non-zero id is what se_relay_ack takes. */
  uint64_t id;
  uint32_t flags; /* 0; reserved for the delivery extension */
} se_message;

/* Frees a message from se_relay_poll / se_relay_recv. NULL is a no-op. */
void se_message_free(se_message *msg);

/* Connects to a relay at host:port (numeric or DNS host, decimal port),
 * runs TLS and the mutual attestation: this enclave's quote is sent bound
 * to the session, and the relay's quote must be genuine, accepted by the
 * [peers] table of policy_file, and bound to the certificate of this very
 * handshake. policy_file NULL: the simulated platform's default policy
 * (its signer), or SE_EPOLICY under SGX, where it is required.
 * On SE_OK, *out is the connection. Errors: SE_EINVAL, SE_EBADHANDLE (env),
 * SE_EPOLICY, SE_EBACKEND, SE_EATTEST, SE_EREFUSED, SE_EIO. */
int se_relay_dial(se_env env, const char *host, const char *port, const char *policy_file, se_relay *out);

/* The relay's verified identity. Errors: SE_EINVAL, SE_EBADHANDLE. */
int se_relay_peer(se_relay r, se_identity *out);

/* Registers id (1..255 bytes of UTF-8) for this connection.
 * Errors: SE_EINVAL (nothing sent), SE_ENACK, SE_ESERVER, SE_EIO, SE_EBADHANDLE. */
int se_relay_register(se_relay r, const char *id);

/* Sends data_len bytes (0..SE_MAX_PAYLOAD; data may be NULL when data_len
 * is 0) to recipient and returns once the relay acknowledged it (SEND_ACK).
 * msg_id may be NULL; if not, *msg_id receives the relay's id for the
 * message: always 0 today (no ids in the protocol; see se_message.id).
 * Errors: SE_EINVAL (nothing sent), SE_ENACK (e.g. unknown recipient,
 * mailbox full), SE_ESERVER, SE_EIO, SE_EBADHANDLE. */
int se_relay_send(se_relay r, const char *recipient, const void *data, size_t data_len, uint64_t *msg_id);

/* Fetches the oldest message waiting for this client, without waiting.
 * SE_OK: *out is a message to free with se_message_free. SE_NO_DATA: the
 * mailbox is empty, *out is NULL. Errors: SE_EINVAL, SE_ENACK (e.g. not
 * registered), SE_ESERVER, SE_EIO, SE_EBADHANDLE. */
int se_relay_poll(se_relay r, se_message **out);

/* Like se_relay_poll, but waits up to timeout_ms milliseconds for a
 * message (0: poll once). Today it polls the relay, at most every 50 ms
 * (the protocol has no push); the handle is busy meanwhile, so other
 * threads' calls on it wait. SE_NO_DATA: none arrived in time. */
int se_relay_recv(se_relay r, uint32_t timeout_ms, se_message **out);

/* Acknowledges a message by id. Today: always SE_EUNSUPPORTED — with the
 * current protocol the relay removes a message when it is polled, so there
 * is nothing to acknowledge. Kept in the ABI for the delivery extension. */
int se_relay_ack(se_relay r, uint64_t msg_id);

/* Closes the connection (waiting for a call in progress on it).
 * Errors: SE_EBADHANDLE. */
int se_relay_close(se_relay r);

/* ---- attested TLS sessions (the original tls_client_* / tls_server_* shape) ---- */

typedef uint64_t se_tls;

/* Client session over fd, a connected stream socket. Runs the TLS
 * handshake and the mutual attestation to completion before returning
 * (bounded by the environment's timeout, whatever the fd's blocking mode):
 * exactly Peer.Client of package atls — our quote binds SHA-256 of the
 * session's exporter, the server's must be genuine, accepted by
 * policy_file's [peers] (NULL: the simulated default, or SE_EPOLICY under
 * SGX) and bind the certificate of this handshake and the same digest.
 * hostname: sent as TLS SNI only, or NULL. It does not authenticate the
 * server (its quote does); it is refused (SE_EINVAL) if longer than 255
 * bytes. Errors: as se_relay_dial. */
int se_tls_client_new(se_env env, int fd, const char *hostname, const char *policy_file, se_tls *out);

/* Server session over fd, an accepted stream socket. A fresh P-256 key and
 * self-signed certificate are generated inside this process for the
 * session (the key never leaves it); the server's quote binds them.
 * Exactly Peer.Server of package atls: the client's quote must be genuine,
 * accepted by policy_file's [peers] (NULL as above) and bound to this
 * session, else the client gets one ERROR frame with the reason and this
 * returns SE_EATTEST. Runs to completion before returning, like
 * se_tls_client_new. */
int se_tls_server_new(se_env env, int fd, const char *policy_file, se_tls *out);

/* The peer's verified identity. Errors: SE_EINVAL, SE_EBADHANDLE. */
int se_tls_peer(se_tls s, se_identity *out);

/* Reads up to len (1..INT32_MAX) decrypted bytes into buf; *n receives the
 * count (> 0) on SE_OK. On a non-blocking fd, SE_WANT_READ means: wait until
 * the fd is readable, call again (a partial TLS record already read is
 * kept). A read can have TLS messages to answer (TLS 1.3 key updates); if
 * the socket did not take them, se_tls_wants_write turns 1: call
 * se_tls_flush when the fd is writable. SE_ECLOSED: the peer closed.
 * Errors: SE_EINVAL, SE_EIO, SE_EBADHANDLE. */
int se_tls_read(se_tls s, void *buf, size_t len, size_t *n);

/* Writes len (1..SE_MAX_TLS_WRITE) bytes; *n receives len on SE_OK. On a
 * non-blocking fd the encrypted bytes the socket does not take yet are kept
 * by the library: the call still returns SE_OK, and se_tls_wants_write
 * turns 1. While that backlog exists, se_tls_write first tries to drain it
 * and returns SE_WANT_WRITE (nothing consumed, *n = 0) if it cannot; call
 * se_tls_flush or se_tls_write again when the fd is writable.
 * Errors: SE_EINVAL, SE_EIO, SE_EBADHANDLE. */
int se_tls_write(se_tls s, const void *buf, size_t len, size_t *n);

/* Tries to write the backlog: SE_OK (none left), SE_WANT_WRITE, or an error. */
int se_tls_flush(se_tls s);

/* 1 if the last se_tls_read on s returned SE_WANT_READ, else 0;
 * SE_EBADHANDLE. */
int se_tls_wants_read(se_tls s);

/* 1 if encrypted bytes are waiting for the fd to become writable, else 0;
 * SE_EBADHANDLE. */
int se_tls_wants_write(se_tls s);

/* Sends TLS close_notify (after writing the backlog, each bounded by the
 * environment's timeout) and frees the session. The fd stays open: close it
 * yourself. Errors: SE_EBADHANDLE (the session is freed in any other case). */
int se_tls_close(se_tls s);

#ifdef __cplusplus
}
#endif

#endif /* SHAREDENCLAVE_H */
