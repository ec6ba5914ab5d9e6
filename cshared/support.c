//go:build cgo && sharedenclave_c

// The parts of libsharedenclave written in C: the per-thread error message
// and the static code descriptions. A Go function exported through cgo runs
// on the thread of its C caller, so se_set_error, called from Go, writes
// the calling thread's buffer.

#include <stdlib.h>
#include <string.h>

#include "sharedenclave.h"

#define SE_ERR_CAP 1024

static __thread char se_err[SE_ERR_CAP];

// se_set_error copies msg (len bytes, not NUL-terminated) into this
// thread's buffer, truncated to SE_ERR_CAP-1 bytes on a UTF-8 boundary.
void se_set_error(const char *msg, size_t len) {
  if (len > SE_ERR_CAP - 1) {
    len = SE_ERR_CAP - 1;
    while (len > 0 && ((unsigned char)msg[len] & 0xC0) == 0x80) {
      len--; // do not cut a UTF-8 sequence
    }
  }
  memcpy(se_err, msg, len);
  se_err[len] = '\0';
}

const char *se_last_error(void) { return se_err; }

const char *se_strerror(int code) {
  switch (code) {
  case SE_OK: return "ok";
  case SE_NO_DATA: return "no data";
  case SE_WANT_READ: return "wait until the descriptor is readable";
  case SE_WANT_WRITE: return "wait until the descriptor is writable";
  case SE_EINVAL: return "invalid argument";
  case SE_EBADHANDLE: return "unknown or closed handle";
  case SE_EPOLICY: return "policy missing or invalid";
  case SE_EBACKEND: return "attestation backend unusable";
  case SE_EATTEST: return "peer attestation failed";
  case SE_EREFUSED: return "peer refused our attestation";
  case SE_ENACK: return "request refused by the relay";
  case SE_ESERVER: return "relay sent an error";
  case SE_EIO: return "connection failed";
  case SE_ECLOSED: return "connection closed by the peer";
  case SE_EUNSUPPORTED: return "not offered by the relay (seed protocol)";
  case SE_ENOMEM: return "out of memory";
  case SE_EINTERNAL: return "internal error";
  }
  return "unknown code";
}

void se_message_free(se_message *msg) {
  if (msg == NULL) {
    return;
  }
  free(msg->from);
  free(msg->data);
  free(msg);
}
