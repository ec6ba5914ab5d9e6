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
 *     request/answer at a time), so one handle can be shared by threads;
 *     a waiting se_relay_recv makes the others wait (use one handle per
 *     receiving thread, another for senders, if that matters).
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
#define SE_VERSION_MINOR 2 /* 2: the delivery extension (ids, acks, se_relay_send_id) */

/* ---- status and error codes ---- */
#define SE_OK 0
#define SE_NO_DATA 1    /* poll: the mailbox is empty; recv: timed out; ack: id not held */
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
#define SE_EUNSUPPORTED (-11)/* the relay does not offer it: a seed-protocol relay (se_relay_ack, se_relay_send_id) */
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

/* ---- delivery ----
 * se_relay_dial asks the relay for its delivery extension
 * (docs/PROTOCOL.md section 8). What a handle gets depends on the relay:
 *
 * - A relay with the extension (relayd today): delivery is AT LEAST ONCE.
 *   se_relay_poll / se_relay_recv hand out a message with a non-zero
 *   delivery id (se_message.id) and the relay keeps holding it until
 *   se_relay_ack(r, id) on the same handle. A message not acknowledged is
 *   delivered again, with SE_MSG_REDELIVERED in se_message.flags and the
 *   same id, once the relay's ack-wait has passed (30 s by default) or
 *   after the connection ends (close, failure): to the next connection
 *   registered with the same client id. Acknowledge a message once it is
 *   used (processed, stored); if the program may stop between using and
 *   acknowledging it, expect to see it again.
 *   se_relay_send sends with a random non-zero 64-bit message id and
 *   returns it; the relay stores a message once per sender (client id) and
 *   message id within its de-duplication window (2 min by default), so a
 *   send whose outcome is unknown (SE_EIO, SE_ECLOSED: the relay may or may
 *   not have stored it) is retried safely with se_relay_send_id and the
 *   same id, on a new connection registered with the same client id.
 *   se_relay_recv waits inside the relay (FETCH), which answers as soon as
 *   a message arrives: no polling.
 * - A relay of the seed protocol (no extension): delivery is AT MOST ONCE,
 *   as in version 0.1 of this library: a message is removed from the relay
 *   when poll/recv return it, its id is 0 and needs no acknowledgement,
 *   se_relay_ack and se_relay_send_id return SE_EUNSUPPORTED, sends carry
 *   no message id (*msg_id = 0), and se_relay_recv polls the relay every
 *   50 ms.
 * The library does not reconnect by itself: after SE_EIO or SE_ECLOSED,
 * close the handle and dial again (see se_relay_send_id for the retry).
 */

/* se_message.flags: the relay delivered this message before (same id) and
 * it was not acknowledged. */
#define SE_MSG_REDELIVERED 0x1u

/* A received message. Allocated by the library; release with
 * se_message_free. `from` is NUL-terminated (from_len excludes the NUL);
 * `data` is data_len bytes (a NUL follows them, not counted, so text can
 * be printed; the data may itself contain NULs). */
typedef struct se_message {
  char *from;
  size_t from_len;
  uint8_t *data;
  size_t data_len;
  /* The delivery id: non-zero from a relay with the delivery extension,
   * what se_relay_ack takes (the relay holds the message until then); the
   * same message keeps its id when it is delivered again. 0 from a
   * seed-protocol relay: the message is already removed, nothing to ack.
   * It is not the sender's message id (se_relay_send's *msg_id). */
  uint64_t id;
  uint32_t flags; /* SE_MSG_REDELIVERED, or 0; other bits are never set */
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
 * msg_id may be NULL; if not, *msg_id receives the message id this send
 * used: a random non-zero 64-bit id (sent as 8 bytes, big-endian; a Go
 * client.Delivery shows them as its MsgID). It is written before the
 * request goes out, so it is also valid after SE_EIO / SE_ECLOSED, when
 * the outcome is unknown: retry with se_relay_send_id and that id. *msg_id
 * is 0 when the send carried no id: against a seed-protocol relay, after
 * SE_EINVAL, and for the rare message that fits the relay's 1 MiB frame
 * only without the id's 9 bytes (data within 9 bytes of SE_MAX_PAYLOAD
 * with a long recipient).
 * Errors: SE_EINVAL (nothing sent), SE_ENACK (e.g. unknown recipient,
 * mailbox full), SE_ESERVER, SE_EIO, SE_EBADHANDLE. */
int se_relay_send(se_relay r, const char *recipient, const void *data, size_t data_len, uint64_t *msg_id);

/* se_relay_send with a message id the caller chose (non-zero): the relay
 * stores the message once per sender client id and msg_id within its
 * de-duplication window, and answers a repeat with SE_OK as it answered
 * the first. For retrying a send whose outcome is unknown, with the id
 * se_relay_send returned, from this or a new connection registered with
 * the same client id; or for ids derived from the application's own
 * (e.g. a database row). The data must fit one frame with the id:
 * 11 + strlen(recipient) + data_len <= 1 MiB, else SE_EINVAL.
 * Errors: SE_EINVAL (msg_id 0, or as se_relay_send; nothing sent),
 * SE_EUNSUPPORTED (a seed-protocol relay, which has no message ids;
 * nothing sent), SE_ENACK, SE_ESERVER, SE_EIO, SE_EBADHANDLE. */
int se_relay_send_id(se_relay r, const char *recipient, const void *data, size_t data_len, uint64_t msg_id);

/* Fetches the oldest message waiting for this client, without waiting.
 * With the delivery extension that is the oldest one not held (handed out
 * and not yet acknowledged or released): the message returned is held
 * until se_relay_ack (see "delivery" above). SE_OK: *out is a message to
 * free with se_message_free. SE_NO_DATA: nothing waiting, *out is NULL.
 * Errors: SE_EINVAL, SE_ENACK (e.g. not registered), SE_ESERVER, SE_EIO,
 * SE_EBADHANDLE. */
int se_relay_poll(se_relay r, se_message **out);

/* Like se_relay_poll, but waits up to timeout_ms milliseconds for a
 * message (0: poll once). With the delivery extension the wait is in the
 * relay (FETCH, in steps of at most the relay's maximum wait, 30 s by
 * default), which answers as soon as a message arrives; against a
 * seed-protocol relay it polls, at most every 50 ms. Either way the
 * handle is busy meanwhile, so other threads' calls on it wait.
 * SE_NO_DATA: none arrived in time. Errors: as se_relay_poll. */
int se_relay_recv(se_relay r, uint32_t timeout_ms, se_message **out);

/* Acknowledges the message whose se_message.id is msg_id, received on this
 * handle: the relay removes it (with relayd --data-dir, from disk before
 * this returns) and never delivers it again. SE_NO_DATA: this connection
 * does not hold that id — already acknowledged, never delivered to it, or
 * released when the relay's ack-wait passed (it will come again, flagged,
 * and must be acknowledged then). Acknowledge on the handle that received
 * the message: a delivery from a previous connection was released when it
 * ended and comes again on the new one.
 * Errors: SE_EINVAL (msg_id 0), SE_EUNSUPPORTED (a seed-protocol relay:
 * it removed the message when it was polled), SE_ENACK (the relay could
 * not store the removal), SE_ESERVER, SE_EIO, SE_EBADHANDLE. */
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
