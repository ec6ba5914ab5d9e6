// Package unseal serves the recovery endpoint of a sealed service: a
// relayd or kmsd whose data key does not open on this machine or build
// (another CPU, another MRENCLAVE) and that waits for its operators'
// recovery shares. It speaks the shape of HashiCorp Vault's seal API, so
// Vault's clients and `vault status` work unchanged:
//
//	GET  /v1/sys/seal-status   {"type":"shamir","initialized":true,"sealed":true,"t":K,"n":N,"progress":P,…}
//	PUT  /v1/sys/unseal        {"key":"<decrypted share>"} or {"reset":true}; answers as seal-status
//	GET  /v1/sys/attestation   the RA-TLS certificate and its quote, as kmsd serves it
//
// Every other path answers 503 "sealed". Serve it only over TLS with an
// RA-TLS certificate, so that an operator verifies the enclave's quote
// before she submits her share (enclavectl custody unseal does).
//
// # Submitting shares
//
// Shares are kept in enclave memory until Threshold of them are in; then
// [custody.Recovery.Recover] combines them and, if they open the data key,
// Config.Open is called with it (it re-seals the key and opens the store).
// A share that names another deployment, or is malformed, is refused at
// once and not counted. A second, different share with the same number is
// refused. Shares that are well formed but do not open the data key (forged,
// or too few because one is wrong) are found out only when Threshold are
// in: the attempt is then discarded, progress goes back to 0, and nothing
// was written. {"reset":true} discards the shares given so far.
package unseal

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/sharedenclave/sharedenclave/custody"
)

// Config configures a Handler.
type Config struct {
	// Recovery is the data dir's recovery record.
	Recovery *custody.Recovery
	// Open is called once, with the recovered data key; it must check that
	// the key opens the store before writing anything. If it fails, the
	// shares are discarded and the service stays sealed.
	Open func(*custody.DataKey) error
	// Service names the service in messages ("kmsd", "relayd").
	Service string
	// Version is reported as Vault reports its version.
	Version string
	// Attestation, when set, is served at /v1/sys/attestation.
	Attestation *Attestation
	Logger      *slog.Logger
}

// Attestation is the RA-TLS certificate (DER) the service presents and
// the quote it carries.
type Attestation struct {
	Certificate []byte
	Quote       []byte
	Simulated   bool
}

// Handler is the sealed service's HTTP handler. It is safe for
// concurrent use.
type Handler struct {
	cfg  Config
	log  *slog.Logger
	mu   sync.Mutex
	got  []*custody.Share
	open bool
	done chan struct{}
}

// New checks cfg and returns a sealed Handler.
func New(cfg Config) (*Handler, error) {
	if cfg.Recovery == nil {
		return nil, errors.New("unseal: no recovery record")
	}
	if err := cfg.Recovery.Check(); err != nil {
		return nil, err
	}
	if cfg.Open == nil {
		return nil, errors.New("unseal: no Open function")
	}
	if cfg.Service == "" {
		cfg.Service = "the service"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, log: cfg.Logger, done: make(chan struct{})}, nil
}

// Unsealed is closed once the data key was recovered and Config.Open
// succeeded.
func (h *Handler) Unsealed() <-chan struct{} { return h.done }

// Status is the seal-status answer, in Vault's field names.
type Status struct {
	Type         string `json:"type"`
	Initialized  bool   `json:"initialized"`
	Sealed       bool   `json:"sealed"`
	T            int    `json:"t"`
	N            int    `json:"n"`
	Progress     int    `json:"progress"`
	Nonce        string `json:"nonce"`
	Version      string `json:"version"`
	BuildDate    string `json:"build_date"`
	Migration    bool   `json:"migration"`
	RecoverySeal bool   `json:"recovery_seal"`
	StorageType  string `json:"storage_type"`
	// Deployment is the recovery record's deployment id (not a Vault
	// field): the one every share must name.
	Deployment string `json:"deployment"`
}

// Status returns the current state.
func (h *Handler) Status() Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.statusLocked()
}

func (h *Handler) statusLocked() Status {
	r := h.cfg.Recovery
	return Status{Type: "shamir", Initialized: true, Sealed: !h.open, T: r.Threshold, N: r.Shares, Progress: len(h.got),
		Version: h.cfg.Version, StorageType: "pebble", Deployment: r.Deployment}
}

// maxBody bounds an unseal request: a share is under 200 bytes.
const maxBody = 4096

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/sys/seal-status":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			writeErr(w, http.StatusMethodNotAllowed, "use GET")
			return
		}
		writeJSON(w, http.StatusOK, h.Status())
	case "/v1/sys/unseal":
		if r.Method != http.MethodPut && r.Method != http.MethodPost {
			writeErr(w, http.StatusMethodNotAllowed, "use PUT or POST with {\"key\": SHARE} or {\"reset\": true}")
			return
		}
		h.unseal(w, r)
	case "/v1/sys/attestation":
		a := h.cfg.Attestation
		if a == nil || r.Method != http.MethodGet {
			writeErr(w, http.StatusNotFound, "attestation is not served here; verify the RA-TLS certificate of this connection")
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
			"certificate": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: a.Certificate})),
			"quote":       base64.StdEncoding.EncodeToString(a.Quote),
			"simulated":   a.Simulated,
			"binding":     "quote report data = SHA-256(SubjectPublicKeyInfo of the certificate) ‖ 32 zero bytes",
		}})
	default:
		h.mu.Lock()
		open := h.open
		h.mu.Unlock()
		if open {
			writeErr(w, http.StatusServiceUnavailable, h.cfg.Service+" is unsealed and starting; try again in a moment")
			return
		}
		writeErr(w, http.StatusServiceUnavailable, h.cfg.Service+" is sealed: its data key does not open on this machine or build; "+
			"operators unseal it with their recovery shares (enclavectl custody unseal; docs/DEPLOY.md)")
	}
}

func (h *Handler) unseal(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Key     string `json:"key"`
		Reset   bool   `json:"reset"`
		Migrate bool   `json:"migrate"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err == nil && len(body) > maxBody {
		err = errors.New("request too large")
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	clear(body)
	if err != nil {
		writeErr(w, http.StatusBadRequest, "the body must be JSON {\"key\": SHARE} or {\"reset\": true}")
		return
	}
	if req.Migrate {
		writeErr(w, http.StatusBadRequest, "migrate is not supported: there is one seal type (shamir recovery shares)")
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if req.Reset {
		h.discardLocked()
		h.log.Info("unseal: shares discarded (reset)")
		writeJSON(w, http.StatusOK, h.statusLocked())
		return
	}
	if h.open {
		writeJSON(w, http.StatusOK, h.statusLocked())
		return
	}
	if req.Key == "" {
		writeErr(w, http.StatusBadRequest, "missing key: submit {\"key\": SHARE}, the text `enclavectl custody decrypt-share` writes")
		return
	}
	sh, err := custody.ParseShare([]byte(req.Key))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "this is not a recovery share: submit the text `enclavectl custody decrypt-share` writes, one line starting shared-enclave-recovery-share/v1")
		return
	}
	rec := h.cfg.Recovery
	if sh.Deployment != rec.Deployment || sh.Threshold != rec.Threshold || sh.Shares != rec.Shares {
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("this share belongs to deployment %s (%d-of-%d), not to this data dir's %s (%d-of-%d): it was not counted",
			sh.Deployment, sh.Threshold, sh.Shares, rec.Deployment, rec.Threshold, rec.Shares))
		return
	}
	for _, g := range h.got {
		if g.Index() != sh.Index() {
			continue
		}
		if g.Equal(sh) {
			// As Vault does: a key given twice counts once.
			writeJSON(w, http.StatusOK, h.statusLocked())
			return
		}
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("a different share #%d was already submitted: one of them is not genuine; reset ({\"reset\": true}) and submit the shares again", sh.Index()))
		return
	}
	h.got = append(h.got, sh)
	h.log.Info("unseal: share accepted", "share", sh.Index(), "progress", len(h.got), "threshold", rec.Threshold)
	if len(h.got) < rec.Threshold {
		writeJSON(w, http.StatusOK, h.statusLocked())
		return
	}
	dk, err := rec.Recover(h.got)
	h.discardLocked()
	if err != nil {
		h.log.Warn("unseal: the shares given do not open the data key; they were discarded", "deployment", rec.Deployment)
		writeErr(w, http.StatusBadRequest, fmt.Sprintf("the %d shares given do not open the data key (one is forged or damaged): they were discarded and nothing was written; progress is back to 0", rec.Threshold))
		return
	}
	if err := h.cfg.Open(dk); err != nil {
		h.log.Error("unseal: the data key was recovered but the store did not open with it", "err", err)
		writeErr(w, http.StatusInternalServerError, fmt.Sprintf("the shares open the recovery record but the store did not open with its key (%v); shares discarded, still sealed", err))
		return
	}
	h.open = true
	close(h.done)
	h.log.Info("unsealed: data key recovered, re-sealed under this enclave's seal key")
	writeJSON(w, http.StatusOK, h.statusLocked())
}

func (h *Handler) discardLocked() {
	for _, s := range h.got {
		s.Wipe()
	}
	h.got = nil
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// writeErr answers as Vault does: {"errors": [msg]}.
func writeErr(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string][]string{"errors": {msg}})
}
