/* se_test: the C side of cshared's tests. Each mode checks one promise of
 * sharedenclave.h through the public API only, prints what it saw, and
 * exits 0 only if every check passed. Usage: se_test MODE SIM_DIR ARGS... */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sharedenclave.h"

static int failures;

#define CHECK(cond, ...)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      failures++;                                                               \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                     \
      fprintf(stderr, __VA_ARGS__);                                             \
      fprintf(stderr, " (last error: %s)\n", se_last_error());                  \
    }                                                                           \
  } while (0)

#define MUST(call)                                                              \
  do {                                                                          \
    int rc_ = (call);                                                           \
    if (rc_ != SE_OK) {                                                         \
      fprintf(stderr, "FAIL %s:%d: %s = %d %s: %s\n", __FILE__, __LINE__, #call, \
              rc_, se_strerror(rc_), se_last_error());                          \
      exit(1);                                                                  \
    }                                                                           \
  } while (0)

static se_env open_env(const char *sim_dir) {
  se_env_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  o.simulation = 1;
  o.sim_dir = sim_dir;
  o.timeout_ms = 20000;
  se_env env = 0;
  MUST(se_env_new(&o, &env));
  return env;
}

static se_relay dial(se_env env, const char *host, const char *port, const char *id) {
  se_relay r = 0;
  MUST(se_relay_dial(env, host, port, NULL, &r));
  if (id) MUST(se_relay_register(r, id));
  return r;
}

/* env_refusals: options the header says are refused. */
static void env_refusals(const char *sim) {
  se_env_options o;
  se_env e = 77;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o - 1;
  o.simulation = 1;
  o.sim_dir = sim;
  CHECK(se_env_new(&o, &e) == SE_EINVAL && e == 0, "wrong struct_size");
  o.struct_size = sizeof o;
  o.simulation = 2;
  CHECK(se_env_new(&o, &e) == SE_EINVAL, "simulation = 2");
  o.simulation = 0;
  CHECK(se_env_new(&o, &e) == SE_EBACKEND && strstr(se_last_error(), "without simulation"), "sim_dir without simulation");
  o.sim_dir = NULL;
  o.sim_isvprodid = 3;
  CHECK(se_env_new(&o, &e) == SE_EINVAL, "sim_isvprodid under SGX");
  o.sim_isvprodid = 0;
  CHECK(se_env_new(&o, &e) == SE_EBACKEND && strstr(se_last_error(), "--simulation"), "SGX without /dev/attestation");
  o.simulation = 1;
  CHECK(se_env_new(&o, &e) == SE_EBACKEND, "simulation without sim_dir");
  o.sim_dir = sim;
  o.pccs_url = "https://pccs.example/";
  CHECK(se_env_new(&o, &e) == SE_EBACKEND, "PCCS in simulation");
  CHECK(se_env_new(NULL, &e) == SE_EINVAL && se_env_new(&o, NULL) == SE_EINVAL, "NULL");
}

/* relay-pair: two C clients relay a message; argument and error paths. */
static int relay_pair(const char *sim, const char *host, const char *port) {
  env_refusals(sim);
  se_env env = open_env(sim);
  se_relay a = dial(env, host, port, "alice"), b = dial(env, host, port, "bob");

  se_identity id;
  MUST(se_relay_peer(a, &id));
  CHECK(id.simulated == 1 && id.debug == 0 && id.tcb_status[0] != 0, "relay identity: simulated %d debug %d", id.simulated, id.debug);

  const char msg[] = "hello bob";
  uint64_t mid = 99;
  MUST(se_relay_send(a, "bob", msg, strlen(msg), &mid));
  CHECK(mid != 0 && mid != 99, "message id %llu, want a fresh non-zero one", (unsigned long long)mid);
  MUST(se_relay_send(a, "bob", NULL, 0, NULL)); /* empty message */

  se_message *m = NULL;
  MUST(se_relay_recv(b, 5000, &m));
  CHECK(m && m->from_len == 5 && strcmp(m->from, "alice") == 0, "from %s", m ? m->from : "(null)");
  CHECK(m && m->data_len == strlen(msg) && memcmp(m->data, msg, m->data_len) == 0 && m->data[m->data_len] == 0, "data");
  CHECK(m && m->id != 0 && m->flags == 0, "id %llu flags %u", m ? (unsigned long long)m->id : 0ULL, m ? m->flags : 0);
  uint64_t did = m ? m->id : 0;
  /* Negative controls for the memory checker test: it must catch these. */
  const char *fault = getenv("SE_TEST_FAULT");
  if (fault && strcmp(fault, "overflow") == 0) {
    volatile uint8_t past = m->data[m->data_len + 1]; /* one past the terminating NUL */
    (void)past;
  }
  if (!fault || strcmp(fault, "leak") != 0) se_message_free(m);
  m = NULL;
  MUST(se_relay_ack(b, did));
  CHECK(se_relay_ack(b, did) == SE_NO_DATA, "second ack of %llu", (unsigned long long)did);
  MUST(se_relay_poll(b, &m)); /* sent before: poll finds it */
  CHECK(m && m->data_len == 0 && m->id != 0 && m->id != did, "empty message");
  if (m) MUST(se_relay_ack(b, m->id));
  se_message_free(m);
  m = (se_message *)1;
  CHECK(se_relay_poll(b, &m) == SE_NO_DATA && m == NULL, "poll of an empty mailbox");
  m = (se_message *)1;
  CHECK(se_relay_recv(b, 120, &m) == SE_NO_DATA && m == NULL, "recv timeout");

  /* Refusals, each leaving the connection usable. */
  CHECK(se_relay_send(a, "nobody", "x", 1, NULL) == SE_ENACK && strstr(se_last_error(), "recipient not found"), "unknown recipient");
  char longid[300];
  memset(longid, 'x', sizeof longid - 1);
  longid[sizeof longid - 1] = 0;
  CHECK(se_relay_register(a, longid) == SE_EINVAL, "299-byte id");
  CHECK(se_relay_send(a, longid, "x", 1, NULL) == SE_EINVAL, "299-byte recipient");
  CHECK(se_relay_send(a, "", "x", 1, NULL) == SE_EINVAL, "empty recipient");
  CHECK(se_relay_send(a, "bo\xff", "x", 1, NULL) == SE_EINVAL, "non-UTF-8 recipient");
  CHECK(se_relay_send(a, "bob", NULL, 1, NULL) == SE_EINVAL, "NULL data with a length");
  CHECK(se_relay_send(a, "bob", "x", SE_MAX_PAYLOAD + 1, NULL) == SE_EINVAL, "over SE_MAX_PAYLOAD");
  CHECK(se_relay_register(a, "bob") == SE_ENACK, "id held by another live session");
  CHECK(se_relay_ack(a, 1) == SE_NO_DATA, "ack of an id never delivered");
  CHECK(se_relay_ack(a, 0) == SE_EINVAL, "ack of id 0");
  CHECK(se_relay_send_id(a, "bob", "x", 1, 0) == SE_EINVAL, "send_id with id 0");
  CHECK(se_relay_send_id(a, "nobody", "x", 1, 7) == SE_ENACK, "send_id to an unknown recipient");
  CHECK(se_relay_poll(a, NULL) == SE_EINVAL, "poll NULL out");
  CHECK(se_relay_dial(env, host, port, "/nonexistent/policy.toml", &b) == SE_EPOLICY && b == 0, "missing policy file");
  CHECK(se_relay_dial(env, host, "http", NULL, &b) == SE_EINVAL, "a service name as port");
  CHECK(se_relay_dial(env, host, "65536", NULL, &b) == SE_EINVAL, "port 65536");

  /* A message of SE_MAX_PAYLOAD bytes goes through. */
  uint8_t *big = malloc(SE_MAX_PAYLOAD);
  for (size_t i = 0; i < SE_MAX_PAYLOAD; i++) big[i] = (uint8_t)(i * 7);
  b = dial(env, host, port, NULL); /* bob's id is free only after close; use a new id */
  MUST(se_relay_register(b, "bob2"));
  MUST(se_relay_send(a, "bob2", big, SE_MAX_PAYLOAD, &mid));
  CHECK(mid != 0, "a big message to a short id carries a message id");
  MUST(se_relay_recv(b, 5000, &m));
  CHECK(m->data_len == SE_MAX_PAYLOAD && memcmp(m->data, big, SE_MAX_PAYLOAD) == 0, "big message");
  MUST(se_relay_ack(b, m->id));
  se_message_free(m);
  free(big);

  MUST(se_relay_close(a));
  MUST(se_relay_close(b));
  CHECK(se_relay_close(a) == SE_EBADHANDLE, "double close");
  CHECK(se_relay_send(a, "bob", "x", 1, NULL) == SE_EBADHANDLE, "use after close");
  CHECK(se_relay_register((se_relay)env, "x") == SE_EBADHANDLE, "an env handle used as a relay");
  MUST(se_env_close(env));
  CHECK(se_env_close(env) == SE_EBADHANDLE, "env double close");
  se_message_free(NULL);
  printf("relay-pair: %d failures\n", failures);
  return failures != 0;
}

/* exchange: a C client registers ID, sends MSG to PEER, then waits for one
 * message and prints it as "got FROM: DATA". */
static int exchange(const char *sim, const char *host, const char *port, const char *id, const char *peer, const char *msg) {
  se_env env = open_env(sim);
  se_relay r = dial(env, host, port, id);
  printf("registered %s\n", id);
  fflush(stdout);
  uint64_t mid = 0;
  MUST(se_relay_send(r, peer, msg, strlen(msg), &mid));
  printf("sent id %016llx\n", (unsigned long long)mid);
  se_message *m = NULL;
  int rc = se_relay_recv(r, 15000, &m);
  CHECK(rc == SE_OK, "recv: %d", rc);
  if (rc == SE_OK) {
    printf("got %s: %.*s\n", m->from, (int)m->data_len, (const char *)m->data);
    printf("id %s flags %u\n", m->id != 0 ? "set" : "0", m->flags);
    printf("ack: %d\n", se_relay_ack(r, m->id));
  }
  se_message_free(m);
  se_relay_close(r);
  se_env_close(env);
  return failures != 0;
}

/* dial_as dials and registers id, retrying while the relay still holds it
 * for a connection just closed (it notices the close asynchronously). */
static se_relay dial_as(se_env env, const char *host, const char *port, const char *id) {
  se_relay r = dial(env, host, port, NULL);
  int rc = SE_ENACK;
  for (int i = 0; i < 250 && (rc = se_relay_register(r, id)) == SE_ENACK; i++) usleep(20 * 1000);
  MUST(rc);
  return r;
}

/* redeliver: at-least-once delivery and sends stored once (the relay's
 * delivery extension). A receiver that does not acknowledge gets the
 * message again, flagged, after reconnecting; after its ack, not again.
 * A sender's retries with one message id (same connection, and a new one)
 * are stored once. */
static int redeliver(const char *sim, const char *host, const char *port) {
  se_env env = open_env(sim);
  se_relay tx = dial(env, host, port, "rd-tx"), rx = dial(env, host, port, "rd-rx");
  uint64_t mid = 0;
  MUST(se_relay_send(tx, "rd-rx", "once", 4, &mid));
  CHECK(mid != 0, "message id 0");
  se_message *m = NULL;
  MUST(se_relay_recv(rx, 5000, &m));
  uint64_t did = m->id;
  CHECK(did != 0 && m->flags == 0 && m->data_len == 4 && memcmp(m->data, "once", 4) == 0, "first delivery: id %llu flags %u", (unsigned long long)did, m->flags);
  se_message_free(m);
  m = (se_message *)1;
  CHECK(se_relay_poll(rx, &m) == SE_NO_DATA && m == NULL, "a held message was handed out twice on one connection");

  /* Reconnect without acknowledging: the message comes again, flagged. */
  MUST(se_relay_close(rx));
  rx = dial_as(env, host, port, "rd-rx");
  m = NULL;
  MUST(se_relay_recv(rx, 5000, &m));
  CHECK(m->id == did && (m->flags & SE_MSG_REDELIVERED) && m->data_len == 4 && memcmp(m->data, "once", 4) == 0,
        "after reconnecting: id %llu (want %llu) flags %u", (unsigned long long)m->id, (unsigned long long)did, m->flags);
  printf("redelivered: id %s, flags %u\n", m->id == did ? "same" : "different", m->flags);
  MUST(se_relay_ack(rx, m->id));
  se_message_free(m);

  /* Acknowledged: not again, on this connection or the next. */
  m = (se_message *)1;
  CHECK(se_relay_recv(rx, 200, &m) == SE_NO_DATA && m == NULL, "acknowledged message delivered again");
  MUST(se_relay_close(rx));
  rx = dial_as(env, host, port, "rd-rx");
  CHECK(se_relay_recv(rx, 300, &m) == SE_NO_DATA, "acknowledged message delivered after reconnecting");

  /* Retries with one message id are stored once: the first send's id
   * again, then a caller-chosen id three times across two connections. */
  MUST(se_relay_send_id(tx, "rd-rx", "once", 4, mid));
  const uint64_t chosen = 0x5345000000000001ULL;
  MUST(se_relay_send_id(tx, "rd-rx", "retried", 7, chosen));
  MUST(se_relay_send_id(tx, "rd-rx", "retried", 7, chosen));
  MUST(se_relay_close(tx));
  tx = dial_as(env, host, port, "rd-tx");
  MUST(se_relay_send_id(tx, "rd-rx", "retried", 7, chosen));
  int n = 0;
  while (se_relay_recv(rx, 500, &m) == SE_OK) {
    CHECK(m->data_len == 7 && memcmp(m->data, "retried", 7) == 0 && m->flags == 0, "unexpected message %.*s", (int)m->data_len, (const char *)m->data);
    MUST(se_relay_ack(rx, m->id));
    se_message_free(m);
    n++;
  }
  CHECK(n == 1, "a message sent 3 times with one id arrived %d times", n);
  printf("retried send delivered %d time(s)\n", n);
  se_relay_close(tx);
  se_relay_close(rx);
  se_env_close(env);
  printf("redeliver: %d failures\n", failures);
  return failures != 0;
}

/* drain: register ID (once its previous connection is gone), poll until
 * the mailbox is empty, acknowledging, and print how many came. */
static int drain(const char *sim, const char *host, const char *port, const char *id) {
  se_env env = open_env(sim);
  se_relay r = dial_as(env, host, port, id);
  se_message *m = NULL;
  int n = 0;
  while (se_relay_poll(r, &m) == SE_OK) {
    printf("left: %s: %.*s\n", m->from, (int)m->data_len, (const char *)m->data);
    se_relay_ack(r, m->id);
    se_message_free(m);
    n++;
  }
  printf("drained %d\n", n);
  se_relay_close(r);
  se_env_close(env);
  return 0;
}

/* seed: against a relay without the delivery extension (at most once):
 * ids are 0, ack and send_id are SE_EUNSUPPORTED, recv polls. */
static int seed(const char *sim, const char *host, const char *port) {
  se_env env = open_env(sim);
  se_relay tx = dial(env, host, port, "sd-tx"), rx = dial(env, host, port, "sd-rx");
  uint64_t mid = 99;
  MUST(se_relay_send(tx, "sd-rx", "seed", 4, &mid));
  CHECK(mid == 0, "message id %llu from a relay without message ids", (unsigned long long)mid);
  CHECK(se_relay_send_id(tx, "sd-rx", "x", 1, 5) == SE_EUNSUPPORTED, "send_id");
  se_message *m = NULL;
  MUST(se_relay_recv(rx, 5000, &m));
  CHECK(m->id == 0 && m->flags == 0 && m->data_len == 4 && memcmp(m->data, "seed", 4) == 0, "id %llu flags %u", (unsigned long long)m->id, m->flags);
  se_message_free(m);
  CHECK(se_relay_ack(rx, 1) == SE_EUNSUPPORTED, "ack");
  MUST(se_relay_close(rx));
  rx = dial_as(env, host, port, "sd-rx");
  CHECK(se_relay_poll(rx, &m) == SE_NO_DATA, "polled message delivered again");
  se_relay_close(tx);
  se_relay_close(rx);
  se_env_close(env);
  printf("seed: %d failures\n", failures);
  return failures != 0;
}

/* bad-relay: dialing a relay whose quote is not genuine for this platform,
 * or not accepted by POLICY, must fail with SE_EATTEST and no handle. */
static int bad_relay(const char *sim, const char *host, const char *port, const char *policy) {
  se_env env = open_env(sim);
  se_relay r = 12345;
  int rc = se_relay_dial(env, host, port, policy, &r);
  printf("dial: %d %s: %s\n", rc, se_strerror(rc), se_last_error());
  CHECK(rc == SE_EATTEST && r == 0, "untrusted relay accepted or wrong code %d", rc);
  se_env_close(env);
  return failures != 0;
}

/* threads: one relay handle and se_last_error shared by many threads. */
#define NTHREADS 8
#define PERTHREAD 25
struct targ {
  se_relay shared;
  int n;
};
static void *worker(void *p) {
  struct targ *a = p;
  char buf[64];
  for (int i = 0; i < PERTHREAD; i++) {
    int len = snprintf(buf, sizeof buf, "t%d-%d", a->n, i);
    int rc = se_relay_send(a->shared, "sink", buf, (size_t)len, NULL);
    CHECK(rc == SE_OK, "thread %d send %d: %d", a->n, i, rc);
    /* A per-thread error: the message must name this thread's bad handle. */
    se_relay bogus = 1000000 + (se_relay)a->n;
    CHECK(se_relay_register(bogus, "x") == SE_EBADHANDLE, "bogus handle");
    snprintf(buf, sizeof buf, "%llu ", (unsigned long long)bogus);
    CHECK(strstr(se_last_error(), buf) != NULL, "thread %d sees another thread's error: %s", a->n, se_last_error());
  }
  return NULL;
}
static int threads(const char *sim, const char *host, const char *port) {
  se_env env = open_env(sim);
  se_relay shared = dial(env, host, port, "shared"), sink = dial(env, host, port, "sink");
  pthread_t t[NTHREADS];
  struct targ a[NTHREADS];
  for (int i = 0; i < NTHREADS; i++) {
    a[i].shared = shared;
    a[i].n = i;
    pthread_create(&t[i], NULL, worker, &a[i]);
  }
  for (int i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
  int seen[NTHREADS] = {0}, total = 0;
  se_message *m;
  while (se_relay_poll(sink, &m) == SE_OK) {
    int tn, i;
    if (sscanf((const char *)m->data, "t%d-%d", &tn, &i) == 2 && tn >= 0 && tn < NTHREADS) {
      CHECK(i == seen[tn], "thread %d: message %d after %d (order within a thread lost)", tn, i, seen[tn]);
      seen[tn] = i + 1;
    }
    total++;
    CHECK(se_relay_ack(sink, m->id) == SE_OK, "ack");
    se_message_free(m);
  }
  CHECK(total == NTHREADS * PERTHREAD, "sink got %d messages, want %d", total, NTHREADS * PERTHREAD);
  se_relay_close(shared);
  se_relay_close(sink);
  se_env_close(env);
  printf("threads: %d messages, %d failures\n", total, failures);
  return failures != 0;
}

static void print_identity(const char *who, se_identity *id) {
  printf("%s mrenclave ", who);
  for (int i = 0; i < 32; i++) printf("%02x", id->mrenclave[i]);
  printf(" isvprodid %u simulated %d tcb %s\n", id->isv_prod_id, id->simulated, id->tcb_status);
}

static void set_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

/* Non-blocking helpers driven by wants_read / wants_write. */
static int want_writes;
static int nb_write_all(se_tls s, int fd, const uint8_t *p, size_t len) {
  size_t off = 0;
  while (off < len) {
    size_t chunk = len - off, n = 0;
    if (chunk > 16384) chunk = 16384;
    int rc = se_tls_write(s, p + off, chunk, &n);
    if (rc == SE_OK) {
      off += n;
      continue;
    }
    if (rc != SE_WANT_WRITE) return rc;
    CHECK(se_tls_wants_write(s) == 1, "WANT_WRITE without wants_write");
    __atomic_add_fetch(&want_writes, 1, __ATOMIC_RELEASE);
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    poll(&pf, 1, 5000);
  }
  while (se_tls_wants_write(s) == 1) {
    if (se_tls_flush(s) == SE_OK) break;
    struct pollfd pf = {.fd = fd, .events = POLLOUT};
    poll(&pf, 1, 5000);
  }
  return SE_OK;
}
static int nb_read_all(se_tls s, int fd, uint8_t *p, size_t len, int *wanted) {
  size_t off = 0;
  while (off < len) {
    size_t n = 0;
    int rc = se_tls_read(s, p + off, len - off, &n);
    if (rc == SE_OK) {
      off += n;
      continue;
    }
    if (rc != SE_WANT_READ) return rc;
    CHECK(se_tls_wants_read(s) == 1, "WANT_READ without wants_read");
    (*wanted)++;
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    poll(&pf, 1, 5000);
  }
  return SE_OK;
}

/* tls-server: listen on loopback, print the port, accept one client and
 * run a server session with POLICY ("-": the simulated default). On
 * success, switch the socket to non-blocking and echo one line. */
static int tls_server(const char *sim, const char *policy) {
  se_env env = open_env(sim);
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t sl = sizeof sa;
  if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 1) || getsockname(ls, (struct sockaddr *)&sa, &sl)) {
    perror("listen");
    return 1;
  }
  printf("PORT %d\n", ntohs(sa.sin_port));
  fflush(stdout);
  int fd = accept(ls, NULL, NULL);
  se_tls s = 0;
  int rc = se_tls_server_new(env, fd, strcmp(policy, "-") == 0 ? NULL : policy, &s);
  printf("server_new: %d %s\n", rc, rc ? se_last_error() : "");
  if (rc == SE_OK) {
    se_identity id;
    MUST(se_tls_peer(s, &id));
    print_identity("client", &id);
    set_nonblock(fd);
    uint8_t line[256];
    size_t got = 0;
    int wanted = 0;
    for (;;) { /* read until a newline */
      size_t n = 0;
      rc = se_tls_read(s, line + got, sizeof line - got - 1, &n);
      if (rc == SE_WANT_READ) {
        wanted++;
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        poll(&pf, 1, 5000);
        continue;
      }
      if (rc != SE_OK) break;
      got += n;
      if (memchr(line, '\n', got) || got == sizeof line - 1) break;
    }
    CHECK(rc == SE_OK, "read: %d", rc);
    line[got] = 0;
    printf("read %s", (char *)line);
    char reply[300];
    int rl = snprintf(reply, sizeof reply, "echo: %s", (char *)line);
    MUST(nb_write_all(s, fd, (uint8_t *)reply, (size_t)rl));
    MUST(se_tls_close(s));
    CHECK(se_tls_read(s, line, 1, &got) == SE_EBADHANDLE, "read after close");
  }
  close(fd);
  close(ls);
  se_env_close(env);
  return failures != 0;
}

/* tls-pair: a C client and a C server session over a socketpair, each in
 * its own thread; after the handshake both sockets are non-blocking and
 * 1 MiB goes each way, driven by wants_read / wants_write. */
#define PAIRBYTES (1 << 20)
struct side {
  se_env env;
  int fd, server, rc, wanted;
  uint8_t *out, *in;
  se_identity peer;
};
static void *run_side(void *p) {
  struct side *s = p;
  se_tls t = 0;
  s->rc = s->server ? se_tls_server_new(s->env, s->fd, NULL, &t) : se_tls_client_new(s->env, s->fd, "relay.example", NULL, &t);
  if (s->rc != SE_OK) {
    fprintf(stderr, "%s new: %s\n", s->server ? "server" : "client", se_last_error());
    return NULL;
  }
  se_tls_peer(t, &s->peer);
  set_nonblock(s->fd);
  /* The client writes first, then reads; the server reads, then writes:
   * a full socket buffer must show up as WANT_WRITE, not as blocking. */
  if (s->server) {
    /* Read only once the client's socket buffer is full (it has seen
     * WANT_WRITE), so that the write path is exercised however fast this
     * reader would otherwise keep up; give up waiting after 20 s. */
    for (int i = 0; i < 20000 && __atomic_load_n(&want_writes, __ATOMIC_ACQUIRE) == 0; i++) usleep(1000);
    s->rc = nb_read_all(t, s->fd, s->in, PAIRBYTES, &s->wanted);
    if (s->rc == SE_OK) s->rc = nb_write_all(t, s->fd, s->out, PAIRBYTES);
  } else {
    s->rc = nb_write_all(t, s->fd, s->out, PAIRBYTES);
    if (s->rc == SE_OK) s->rc = nb_read_all(t, s->fd, s->in, PAIRBYTES, &s->wanted);
  }
  se_tls_close(t);
  return NULL;
}
static int tls_pair(const char *sim) {
  se_env env = open_env(sim);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 1;
  struct side c = {.env = env, .fd = sv[0]}, s = {.env = env, .fd = sv[1], .server = 1};
  c.out = malloc(PAIRBYTES), c.in = malloc(PAIRBYTES), s.out = malloc(PAIRBYTES), s.in = malloc(PAIRBYTES);
  for (int i = 0; i < PAIRBYTES; i++) c.out[i] = (uint8_t)(i * 13 + 1), s.out[i] = (uint8_t)(i * 5 + 3);
  pthread_t tc, ts;
  pthread_create(&tc, NULL, run_side, &c);
  pthread_create(&ts, NULL, run_side, &s);
  pthread_join(tc, NULL);
  pthread_join(ts, NULL);
  CHECK(c.rc == SE_OK && s.rc == SE_OK, "client %d, server %d", c.rc, s.rc);
  CHECK(memcmp(c.out, s.in, PAIRBYTES) == 0 && memcmp(s.out, c.in, PAIRBYTES) == 0, "data differs");
  CHECK(c.peer.simulated == 1 && s.peer.simulated == 1, "peer identities");
  CHECK(memcmp(c.peer.mrenclave, s.peer.mrenclave, 32) == 0, "both sides are this program");
  CHECK(want_writes > 0, "1 MiB into a socketpair never returned SE_WANT_WRITE: the non-blocking write path is untested");
  printf("tls-pair: WANT_READ %d (client) %d (server), WANT_WRITE %d, %d failures\n", c.wanted, s.wanted, want_writes, failures);
  free(c.out), free(c.in), free(s.out), free(s.in);
  close(sv[0]);
  close(sv[1]);
  se_env_close(env);
  return failures != 0;
}

/* tls-duplex: on each side of a socketpair (blocking descriptors) one
 * thread writes 1 MiB while another thread reads 1 MiB on the SAME session,
 * as the header allows. Both directions at once would deadlock if a read
 * held off the session's writes. */
struct duplex {
  se_tls t;
  const uint8_t *out;
  uint8_t *in;
  int rc;
};
static void *duplex_writer(void *p) {
  struct duplex *d = p;
  for (size_t off = 0; off < PAIRBYTES && d->rc == SE_OK;) {
    size_t n = 0;
    d->rc = se_tls_write(d->t, d->out + off, 65536, &n);
    off += n;
  }
  return NULL;
}
static void *duplex_side(void *p) {
  struct side *s = p;
  struct duplex d = {.out = s->out, .in = s->in};
  s->rc = s->server ? se_tls_server_new(s->env, s->fd, NULL, &d.t) : se_tls_client_new(s->env, s->fd, NULL, NULL, &d.t);
  if (s->rc != SE_OK) return NULL;
  pthread_t w;
  pthread_create(&w, NULL, duplex_writer, &d);
  int rc = SE_OK;
  for (size_t off = 0; off < PAIRBYTES && rc == SE_OK;) {
    size_t n = 0;
    rc = se_tls_read(d.t, s->in + off, PAIRBYTES - off, &n);
    off += n;
  }
  pthread_join(w, NULL);
  s->rc = rc != SE_OK ? rc : d.rc;
  se_tls_close(d.t);
  return NULL;
}
static int tls_duplex(const char *sim) {
  se_env env = open_env(sim);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 1;
  struct side c = {.env = env, .fd = sv[0]}, s = {.env = env, .fd = sv[1], .server = 1};
  c.out = malloc(PAIRBYTES), c.in = malloc(PAIRBYTES), s.out = malloc(PAIRBYTES), s.in = malloc(PAIRBYTES);
  for (int i = 0; i < PAIRBYTES; i++) c.out[i] = (uint8_t)(i * 11 + 7), s.out[i] = (uint8_t)(i * 3 + 1);
  pthread_t tc, ts;
  pthread_create(&tc, NULL, duplex_side, &c);
  pthread_create(&ts, NULL, duplex_side, &s);
  pthread_join(tc, NULL);
  pthread_join(ts, NULL);
  CHECK(c.rc == SE_OK && s.rc == SE_OK, "client %d, server %d", c.rc, s.rc);
  CHECK(memcmp(c.out, s.in, PAIRBYTES) == 0 && memcmp(s.out, c.in, PAIRBYTES) == 0, "data differs");
  free(c.out), free(c.in), free(s.out), free(s.in);
  close(sv[0]);
  close(sv[1]);
  se_env_close(env);
  printf("tls-duplex: %d failures\n", failures);
  return failures != 0;
}

/* relay-gone: dial and register, print "ready", wait for a line on stdin
 * (the test stops the relay meanwhile), then send: every send must fail
 * with SE_EIO or SE_ECLOSED, and the program must survive (no SIGPIPE). */
static int relay_gone(const char *sim, const char *host, const char *port) {
  se_env env = open_env(sim);
  se_relay r = dial(env, host, port, "orphan");
  printf("ready\n");
  char line[16];
  if (!fgets(line, sizeof line, stdin)) return 1;
  for (int i = 0; i < 20; i++) {
    int rc = se_relay_send(r, "orphan", "x", 1, NULL);
    CHECK(rc == SE_EIO || rc == SE_ECLOSED || rc == SE_ESERVER, "send %d to a stopped relay: %d", i, rc);
  }
  se_relay_close(r);
  se_env_close(env);
  printf("survived, %d failures\n", failures);
  return failures != 0;
}

/* peer-gone: after a handshake over a socketpair the server side closes
 * its socket; the client's writes must fail with SE_EIO, not kill the
 * program with SIGPIPE, and its reads report SE_ECLOSED or SE_EIO. */
static void *server_then_close(void *p) {
  struct side *s = p;
  se_tls t = 0;
  s->rc = se_tls_server_new(s->env, s->fd, NULL, &t);
  if (s->rc == SE_OK) se_tls_close(t);
  close(s->fd);
  return NULL;
}
static int peer_gone(const char *sim) {
  se_env env = open_env(sim);
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) return 1;
  struct side srv = {.env = env, .fd = sv[1], .server = 1};
  pthread_t ts;
  pthread_create(&ts, NULL, server_then_close, &srv);
  se_tls t = 0;
  MUST(se_tls_client_new(env, sv[0], NULL, NULL, &t));
  pthread_join(ts, NULL);
  CHECK(srv.rc == SE_OK, "server: %d", srv.rc);
  uint8_t buf[64];
  size_t n = 0;
  int rc = se_tls_read(t, buf, sizeof buf, &n);
  CHECK(rc == SE_ECLOSED, "read after the peer's close_notify: %d", rc);
  int last = SE_OK;
  for (int i = 0; i < 50 && last == SE_OK; i++) last = se_tls_write(t, "data", 4, &n);
  CHECK(last == SE_EIO, "write to a closed peer: %d", last);
  CHECK(se_tls_close(t) == SE_OK, "close");
  close(sv[0]);
  se_env_close(env);
  printf("peer-gone: survived, %d failures\n", failures);
  return failures != 0;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc >= 5 && strcmp(argv[1], "relay-pair") == 0) return relay_pair(argv[2], argv[3], argv[4]);
  if (argc >= 8 && strcmp(argv[1], "exchange") == 0) return exchange(argv[2], argv[3], argv[4], argv[5], argv[6], argv[7]);
  if (argc >= 5 && strcmp(argv[1], "bad-relay") == 0) return bad_relay(argv[2], argv[3], argv[4], argc >= 6 ? argv[5] : NULL);
  if (argc >= 5 && strcmp(argv[1], "threads") == 0) return threads(argv[2], argv[3], argv[4]);
  if (argc >= 4 && strcmp(argv[1], "tls-server") == 0) return tls_server(argv[2], argv[3]);
  if (argc >= 3 && strcmp(argv[1], "tls-pair") == 0) return tls_pair(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "peer-gone") == 0) return peer_gone(argv[2]);
  if (argc >= 3 && strcmp(argv[1], "tls-duplex") == 0) return tls_duplex(argv[2]);
  if (argc >= 5 && strcmp(argv[1], "relay-gone") == 0) return relay_gone(argv[2], argv[3], argv[4]);
  if (argc >= 5 && strcmp(argv[1], "redeliver") == 0) return redeliver(argv[2], argv[3], argv[4]);
  if (argc >= 6 && strcmp(argv[1], "drain") == 0) return drain(argv[2], argv[3], argv[4], argv[5]);
  if (argc >= 5 && strcmp(argv[1], "seed") == 0) return seed(argv[2], argv[3], argv[4]);
  fprintf(stderr, "usage: se_test relay-pair|exchange|bad-relay|threads|tls-server|tls-pair|tls-duplex|peer-gone|relay-gone|redeliver|drain|seed SIM_DIR ...\n");
  return 2;
}
