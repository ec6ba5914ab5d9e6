package explorer

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/sgxquote"
)

//go:embed web
var webFS embed.FS

// Config configures the explorer. The zero value is usable.
type Config struct {
	// MaxRequestBytes bounds an analysis request (the upload, the policy
	// and every other field together), checked before reading; default
	// DefaultMaxRequest.
	MaxRequestBytes int64
	// FetchTimeout bounds each connection the explorer makes for the user
	// (a live server, a PCCS, a metrics page); default 10 s.
	FetchTimeout time.Duration
	// AnyHost accepts requests whatever their Host header. Without it only
	// loopback hosts (127.0.0.0/8, ::1, localhost) are served, so that a
	// web page elsewhere cannot reach the explorer through DNS rebinding.
	// Set it only when the explorer listens on a non-loopback address.
	AnyHost bool
	// Now is the default verification time; nil means time.Now.
	Now func() time.Time
	// Logger receives request errors (never quotes or policies); nil
	// discards.
	Logger *slog.Logger
}

// DefaultMaxRequest is the default bound on an analysis request: a quote
// in hex (2 × sgxquote.MaxSize), with room for the multipart framing, a
// policy file and the form fields.
const DefaultMaxRequest = 2*sgxquote.MaxSize + 64<<10

// Server is the explorer's HTTP handler.
type Server struct {
	cfg  Config
	http *http.Client
	mux  *http.ServeMux
}

// New returns an explorer.
func New(cfg Config) (*Server, error) {
	if cfg.MaxRequestBytes < 0 || cfg.FetchTimeout < 0 {
		return nil, errors.New("explorer: negative limit")
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequest
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, http: &http.Client{Timeout: cfg.FetchTimeout}, mux: http.NewServeMux()}
	static, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, err
	}
	files := http.FileServerFS(static)
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", files))
	s.mux.HandleFunc("GET /{$}", s.page(static, "index.html"))
	s.mux.HandleFunc("GET /status", s.page(static, "status.html"))
	s.mux.HandleFunc("POST /api/analyze", s.analyze)
	s.mux.HandleFunc("GET /api/status", s.status)
	return s, nil
}

// CSP is the Content-Security-Policy of every response: scripts, styles
// and connections from the explorer itself only, nothing inline, no
// frames, no forms posting elsewhere.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'none'; frame-ancestors 'none'; base-uri 'none'"

// APIHeader must be on every /api/ request. A page of another origin
// cannot add it without a CORS preflight, which the explorer never
// answers: so no other site can make the explorer read files or fetch
// URLs on its behalf.
const APIHeader = "X-Shared-Enclave-Explorer"

// ServeHTTP applies the security headers and checks, then routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.cfg.Logger.Error("explorer: handler panic", "path", r.URL.Path, "panic", fmt.Sprint(v))
			writeErr(w, http.StatusInternalServerError, "", "internal error: the explorer could not handle this request (see its log)")
		}
	}()
	if !s.cfg.AnyHost && !loopbackHost(r.Host) {
		writeErr(w, http.StatusForbidden, "", fmt.Sprintf("host %q is not a loopback address: open the explorer at http://127.0.0.1:PORT/", r.Host))
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		if r.Header.Get(APIHeader) != "1" {
			writeErr(w, http.StatusForbidden, "", "API requests need the "+APIHeader+" header (the explorer's own page sends it)")
			return
		}
		if o := r.Header.Get("Origin"); o != "" && o != "http://"+r.Host && o != "https://"+r.Host {
			writeErr(w, http.StatusForbidden, "", "cross-origin request refused")
			return
		}
	}
	s.mux.ServeHTTP(w, r)
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *Server) page(static fs.FS, name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(static, name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(b)
	}
}

// apiError is the body of every failed API call.
type apiError struct {
	Error string `json:"error"`
	// Field names the parameter at fault, when there is one.
	Field string `json:"field,omitempty"`
}

func writeErr(w http.ResponseWriter, code int, field, msg string) {
	writeJSON(w, code, apiError{Error: msg, Field: field})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// Form fields of POST /api/analyze (multipart/form-data).
const (
	FieldQuoteFile  = "quote_file"  // a file: quote (binary, hex, base64) or certificate (PEM, DER)
	FieldQuoteText  = "quote_text"  // the same, pasted
	FieldAddress    = "address"     // HOST:PORT of a running server, instead of a quote
	FieldKind       = "kind"        // kmsd or relayd, with address
	FieldSource     = "source"      // dir, pccs, pcs or sim
	FieldLocation   = "location"    // the directory or URL of the source
	FieldRoot       = "root"        // PEM file of another root (not with sim)
	FieldAt         = "at"          // RFC 3339 verification time; empty: now
	FieldPolicyFile = "policy_file" // a policy file
	FieldPolicyText = "policy_text" // the same, pasted
)

var knownFields = map[string]bool{
	FieldQuoteFile: true, FieldQuoteText: true, FieldAddress: true, FieldKind: true, FieldSource: true,
	FieldLocation: true, FieldRoot: true, FieldAt: true, FieldPolicyFile: true, FieldPolicyText: true,
}

func (s *Server) analyze(w http.ResponseWriter, r *http.Request) {
	limit := s.cfg.MaxRequestBytes
	if r.ContentLength > limit {
		writeErr(w, http.StatusRequestEntityTooLarge, FieldQuoteFile, fmt.Sprintf("request of %d bytes is over the %d-byte limit: a quote is at most %d bytes (%d in hex)", r.ContentLength, limit, sgxquote.MaxSize, 2*sgxquote.MaxSize))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	// Everything is held in memory (the whole request is bounded above):
	// no temporary files.
	if err := r.ParseMultipartForm(limit); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErr(w, http.StatusRequestEntityTooLarge, FieldQuoteFile, fmt.Sprintf("request is over the %d-byte limit: a quote is at most %d bytes (%d in hex)", limit, sgxquote.MaxSize, 2*sgxquote.MaxSize))
			return
		}
		writeErr(w, http.StatusBadRequest, "", "not a multipart form: "+err.Error())
		return
	}
	defer r.MultipartForm.RemoveAll()
	for k := range r.MultipartForm.Value {
		if !knownFields[k] {
			writeErr(w, http.StatusBadRequest, k, fmt.Sprintf("unknown field %q", k))
			return
		}
	}
	for k := range r.MultipartForm.File {
		if !knownFields[k] {
			writeErr(w, http.StatusBadRequest, k, fmt.Sprintf("unknown field %q", k))
			return
		}
	}
	req, status, err := s.readRequest(r.Context(), r.MultipartForm)
	if err == nil {
		var res *Result
		if res, err = s.Analyze(r.Context(), req); err == nil {
			writeJSON(w, http.StatusOK, res)
			return
		}
		status = http.StatusBadRequest
	}
	var re *RequestError
	if errors.As(err, &re) {
		writeErr(w, status, re.Field, re.Msg)
		return
	}
	s.cfg.Logger.Warn("explorer: analyze", "err", err)
	writeErr(w, http.StatusBadRequest, "", err.Error())
}

func (s *Server) readRequest(ctx context.Context, f *multipart.Form) (*Request, int, error) {
	val := func(k string) string {
		if v := f.Value[k]; len(v) == 1 {
			return strings.TrimSpace(v[0])
		}
		return ""
	}
	for k, v := range f.Value {
		if len(v) > 1 {
			return nil, http.StatusBadRequest, &RequestError{k, "given more than once"}
		}
	}
	req := &Request{Source: val(FieldSource), Location: val(FieldLocation), Root: val(FieldRoot)}
	if at := val(FieldAt); at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return nil, http.StatusBadRequest, &RequestError{FieldAt, "want an RFC 3339 time such as 2022-12-20T00:50:04Z"}
		}
		req.At = t
	}
	policy, err := fileOrText(f, FieldPolicyFile, FieldPolicyText)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	req.Policy = policy
	input, err := fileOrText(f, FieldQuoteFile, FieldQuoteText)
	if err != nil {
		return nil, http.StatusBadRequest, err
	}
	addr := val(FieldAddress)
	switch {
	case addr != "" && input != nil:
		return nil, http.StatusBadRequest, &RequestError{FieldAddress, "give a quote or a server address, not both"}
	case addr != "":
		ev, live, err := s.fetch(ctx, val(FieldKind), addr, req)
		if err != nil {
			return nil, http.StatusBadGateway, err
		}
		req.Evidence, req.Live = ev, live
	default:
		ev, err := decodeInput(input)
		if err != nil {
			return nil, http.StatusBadRequest, &RequestError{FieldQuoteText, strings.TrimPrefix(err.Error(), "explorer: ")}
		}
		req.Evidence = ev
	}
	return req, http.StatusOK, nil
}

// fileOrText returns the uploaded file or the pasted text of one input,
// refusing both at once.
func fileOrText(f *multipart.Form, file, text string) ([]byte, error) {
	fhs := f.File[file]
	t := ""
	if v := f.Value[text]; len(v) == 1 {
		t = v[0]
	}
	if len(fhs) > 1 {
		return nil, &RequestError{file, "more than one file"}
	}
	if len(fhs) == 1 && fhs[0].Size > 0 {
		if strings.TrimSpace(t) != "" {
			return nil, &RequestError{file, "give a file or pasted text, not both"}
		}
		fh, err := fhs[0].Open()
		if err != nil {
			return nil, &RequestError{file, err.Error()}
		}
		defer fh.Close()
		b, err := io.ReadAll(fh) // bounded by MaxRequestBytes
		if err != nil {
			return nil, &RequestError{file, err.Error()}
		}
		return b, nil
	}
	if strings.TrimSpace(t) == "" {
		return nil, nil
	}
	return []byte(t), nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	addr := r.URL.Query().Get("addr")
	if addr == "" {
		writeErr(w, http.StatusBadRequest, "metrics", "give the metrics address (HOST:PORT of relayd's or kmsd's --metrics listener)")
		return
	}
	st, err := s.Status(r.Context(), addr)
	if err != nil {
		var re *RequestError
		if errors.As(err, &re) {
			writeErr(w, http.StatusBadGateway, re.Field, re.Msg)
			return
		}
		writeErr(w, http.StatusBadGateway, "metrics", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, st)
}
