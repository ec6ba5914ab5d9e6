/*
 * example_client — the seed's demonstrator, in C, on libsharedenclave.
 *
 *   example_client [--simulation --sim-dir DIR] [--policy FILE] <server_ip> <server_port> [client_id]
 *
 * Connects to a Shared Enclave relay, attests (and checks the relay's
 * attestation against the policy), registers client_id (default
 * "default_client_id"), then reads commands on standard input:
 *
 *   send ID MESSAGE   send MESSAGE to client ID
 *   poll              fetch the oldest message waiting for this client
 *   quit              close the connection and exit
 *
 * It prints what the Go example-client prints, so either can be used.
 * Exit status: 0 on quit or end of input, 1 on a connection or attestation
 * failure, 2 on a usage error.
 *
 * Build (see the README, "C library"):
 *   cc -o example_client example_client.c $(pkg-config --cflags --libs sharedenclave)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sharedenclave.h"

#define DEFAULT_CLIENT_ID "default_client_id"
#define LINE_MAX_BYTES (2u << 20) /* as the Go client: 2 MiB per command line */

static void usage(FILE *f) {
  fputs("Usage: example_client [--simulation --sim-dir DIR] [--policy FILE] [--pccs URL] <server_ip> <server_port> [client_id]\n"
        "\n"
        "Connects to a Shared Enclave relay, attests, registers client_id (default\n"
        "\"" DEFAULT_CLIENT_ID "\"), then reads commands on standard input:\n"
        "  send ID MESSAGE   send MESSAGE to client ID\n"
        "  poll              fetch the oldest message waiting for this client\n"
        "  quit              close the connection and exit\n",
        f);
}

/* report prints a refusal; it returns 0 if the connection is unusable. */
static int report(int rc) {
  if (rc == SE_ENACK) {
    printf("refused: %s\n", se_last_error());
    return 1;
  }
  if (rc == SE_ESERVER) {
    printf("server error: %s\n", se_last_error());
    return 1;
  }
  if (rc == SE_EINVAL) {
    printf("invalid: %s\n", se_last_error());
    return 1;
  }
  printf("connection failed: %s\n", se_last_error());
  return 0;
}

static char *trim(char *s) {
  while (*s == ' ' || *s == '\t') s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) s[--n] = 0;
  return s;
}

static int repl(se_relay r) {
  char *line = malloc(LINE_MAX_BYTES);
  if (line == NULL) return 1;
  int status = 0;
  while (fgets(line, LINE_MAX_BYTES, stdin) != NULL) {
    char *cmd = trim(line), *rest = strchr(cmd, ' ');
    if (rest) *rest++ = 0;
    if (*cmd == 0) continue;
    if (strcmp(cmd, "quit") == 0 || strcmp(cmd, "exit") == 0) break;
    if (strcmp(cmd, "poll") == 0) {
      se_message *m = NULL;
      int rc = se_relay_poll(r, &m);
      if (rc == SE_NO_DATA) {
        printf("no data available\n");
      } else if (rc == SE_OK) {
        printf("from %s: %.*s\n", m->from, (int)m->data_len, (const char *)m->data);
        /* Printed is used: acknowledge it, or the relay delivers it again
         * (id 0: a seed-protocol relay removed it when it was polled). */
        rc = m->id != 0 ? se_relay_ack(r, m->id) : SE_OK;
        se_message_free(m);
        if (rc < 0 && !report(rc)) {
          status = 1;
          break;
        }
      } else if (!report(rc)) {
        status = 1;
        break;
      }
    } else if (strcmp(cmd, "send") == 0) {
      char *to = rest ? trim(rest) : NULL, *msg = to ? strchr(to, ' ') : NULL;
      if (msg == NULL || *to == 0) {
        printf("usage: send ID MESSAGE\n");
        continue;
      }
      *msg++ = 0;
      int rc = se_relay_send(r, to, msg, strlen(msg), NULL);
      if (rc == SE_OK) {
        printf("sent to %s\n", to);
      } else if (!report(rc)) {
        status = 1;
        break;
      }
    } else {
      printf("unknown command \"%s\" (send ID MESSAGE | poll | quit)\n", cmd);
    }
    fflush(stdout);
  }
  free(line);
  return status;
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  se_env_options o;
  memset(&o, 0, sizeof o);
  o.struct_size = sizeof o;
  const char *policy = NULL, *pos[3];
  int npos = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stderr);
      return 0;
    } else if (strcmp(a, "--simulation") == 0) {
      o.simulation = 1;
    } else if ((strcmp(a, "--sim-dir") == 0 || strcmp(a, "--policy") == 0 || strcmp(a, "--pccs") == 0) && i + 1 < argc) {
      const char *v = argv[++i];
      if (strcmp(a, "--sim-dir") == 0) o.sim_dir = v;
      else if (strcmp(a, "--policy") == 0) policy = v;
      else o.pccs_url = v;
    } else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "example_client: unknown or incomplete flag %s\n", a);
      usage(stderr);
      return 2;
    } else if (npos < 3) {
      pos[npos++] = a;
    } else {
      npos = 4;
      break;
    }
  }
  if (npos < 2 || npos > 3) {
    fprintf(stderr, "example_client: want <server_ip> <server_port> [client_id]\n");
    usage(stderr);
    return 2;
  }
  const char *id = npos == 3 ? pos[2] : DEFAULT_CLIENT_ID;
  if (o.simulation && o.sim_dir == NULL) o.sim_dir = ".sim";
  o.sim_isvprodid = o.simulation ? 2 : 0; /* as the Go example-client */
  o.sim_isvsvn = o.simulation ? 1 : 0;

  se_env env = 0;
  int rc = se_env_new(&o, &env);
  if (rc != SE_OK) {
    fprintf(stderr, "example_client: %s\n", se_last_error());
    return 1;
  }
  if (o.simulation) fprintf(stderr, "example_client: SIMULATION MODE: attestation uses a simulated platform, not a real enclave\n");
  se_relay r = 0;
  rc = se_relay_dial(env, pos[0], pos[1], policy, &r);
  if (rc != SE_OK) {
    fprintf(stderr, "example_client: connecting to %s:%s: %s\n", pos[0], pos[1], se_last_error());
    se_env_close(env);
    return rc == SE_EPOLICY && policy == NULL ? 2 : 1;
  }
  se_identity peer;
  se_relay_peer(r, &peer);
  printf("connected to %s:%s: relay enclave MRENCLAVE ", pos[0], pos[1]);
  for (int i = 0; i < 32; i++) printf("%02x", peer.mrenclave[i]);
  printf(", TCB %s\n", peer.tcb_status);
  rc = se_relay_register(r, id);
  if (rc != SE_OK) {
    fprintf(stderr, "example_client: registering \"%s\": %s\n", id, se_last_error());
    se_relay_close(r);
    se_env_close(env);
    return 1;
  }
  printf("registered as %s\n", id);
  int status = repl(r);
  se_relay_close(r);
  se_env_close(env);
  return status;
}
