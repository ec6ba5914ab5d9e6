package kms

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Handler returns the KMS HTTP API (see docs/KMS-API.md).
func (s *Service) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

// request is one API call as the handlers see it.
type request struct {
	method string // GET POST PUT DELETE LIST
	path   string // without the leading /v1/
	body   map[string]json.RawMessage
	tok    *token
	// tokHash and tokRaw are the caller's token (for the self
	// endpoints); tokRaw never leaves the request.
	tokHash [32]byte
	tokRaw  string
	// mayCreate: the token was authorized to create the key the
	// request names (Vault's "create" capability on a missing key).
	mayCreate bool
	// batch is batch_input as the plain-shape scanner read it (nil:
	// not scanned; items parses it with encoding/json).
	batch *scannedBatch
	// rawBody is the body as read (from bodyPool); body's values are
	// slices of it.
	rawBody []byte
	w       http.ResponseWriter
	r       *http.Request
}

type response struct {
	status int
	data   any // Vault's "data"
	// batch, when set, is data's batch_results (data is then
	// {"batch_results": batch}), written by appendBatchEnvelope.
	batch []itemResult
	auth  any // Vault's "auth"
	raw   any // a body that is not Vault's envelope (seed endpoints)
	// stream, when set, writes a binary body (a snapshot) after the
	// status line; an error part way cuts the body short.
	stream func(io.Writer) error
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	reqID := s.requestID()
	method := r.Method
	if method == http.MethodGet && r.URL.Query().Get("list") == "true" || method == "LIST" {
		method = "LIST"
	}
	path := r.URL.Path

	if s.auditFailed() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"errors": []string{"audit log unavailable: requests are refused until it is repaired (fix --audit-log, then restart kmsd)"}})
		return
	}
	// On shared storage, first catch up with every change the other
	// replicas committed before this request arrived (a revoked token,
	// a rotated key).
	if err := s.barrier(r.Context()); err != nil {
		writeJSON(w, statusOf(err), map[string]any{"errors": []string{publicMessage(err)}})
		return
	}
	// Authentication, authorization and reading the body change nothing;
	// the request's audit entry names who asked for what, and only once
	// it is written does perform run (Vault's rule: a request that cannot
	// be audited is not performed).
	req := &request{method: method, path: strings.TrimPrefix(path, "/v1/"), w: w, r: r}
	defer req.free()
	perform, err := s.route(req, path)
	line := auditLine{Type: "request", Time: start.UTC().Format(time.RFC3339Nano), RequestID: reqID, Remote: r.RemoteAddr,
		Method: method, Path: path}
	if req.tok != nil {
		line.Accessor = req.tok.Accessor
	}
	if aerr := s.audit(line); aerr != nil {
		s.log.Error("audit log write failed; the request was not performed and later requests are refused", "err", aerr)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"errors": []string{"audit log write failed: the request was not performed; fix --audit-log and restart kmsd"}})
		return
	}
	var resp response
	lastUse := false
	if err == nil && req.tok != nil {
		// A token with num_uses spends one now that the request is
		// audited; its last use revokes it once the request has run.
		err = s.retry(r.Context(), func() (err error) {
			lastUse, err = s.useToken(req.tokHash)
			return err
		})
	}
	if err == nil {
		// A write that loses a compare-and-set to another replica changes
		// nothing; the request runs again on the state that won.
		err = s.retry(r.Context(), func() (err error) {
			resp, err = perform()
			return err
		})
	}
	if lastUse {
		s.revokeExhausted(req.tokHash)
	}
	status := http.StatusOK
	if err != nil {
		status = statusOf(err)
	} else if resp.status != 0 {
		status = resp.status
	}
	line.Type, line.Status = "response", status
	if err != nil {
		line.Error = publicMessage(err)
	}
	if s.cfg.Metrics != nil {
		s.cfg.Metrics.Request(operation(path), status, s.cfg.Now().Sub(start))
	}
	if aerr := s.audit(line); aerr != nil {
		// The effect happened and its request entry is in the log; the
		// answer is withheld and the service stops serving.
		s.log.Error("audit log write failed after a request was performed; refusing requests", "err", aerr)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"errors": []string{"audit log write failed; fix --audit-log and restart kmsd"}})
		return
	}
	w.Header().Set("X-Request-Id", reqID)
	if err != nil {
		writeJSON(w, status, map[string]any{"errors": []string{publicMessage(err)}})
		return
	}
	switch {
	case resp.stream != nil:
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		if err := resp.stream(w); err != nil {
			// The status is sent: the client sees an archive without
			// its last file, which it refuses.
			s.log.Error("snapshot failed part way; the client got an incomplete archive", "err", err)
			panic(http.ErrAbortHandler)
		}
	case resp.raw != nil:
		writeJSON(w, status, resp.raw)
	case status == http.StatusNoContent:
		w.WriteHeader(status)
	case resp.batch != nil:
		// Only this encoder writes a result's sealed record.
		body := appendBatchEnvelope(nil, reqID, mountType(req.path), resp.batch)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(status)
		w.Write(body)
		envelopePool.put(body)
		resultPool.put(resp.batch)
	default:
		writeJSON(w, status, envelope{RequestID: reqID, Data: resp.data, Auth: resp.auth, MountType: mountType(req.path)})
	}
}

// envelope is Vault's response body.
type envelope struct {
	RequestID     string `json:"request_id"`
	LeaseID       string `json:"lease_id"`
	Renewable     bool   `json:"renewable"`
	LeaseDuration int    `json:"lease_duration"`
	Data          any    `json:"data"`
	WrapInfo      any    `json:"wrap_info"`
	Warnings      any    `json:"warnings"`
	Auth          any    `json:"auth"`
	MountType     string `json:"mount_type"`
}

// mountType is the envelope's mount_type: the type of the mount serving
// path, as Vault reports it.
func mountType(path string) string {
	switch {
	case strings.HasPrefix(path, "transit/"):
		return "transit"
	case strings.HasPrefix(path, "auth/token/"):
		return "token"
	case strings.HasPrefix(path, "sys/"):
		return "system"
	}
	return ""
}

// publicMessage is what a client is told about err: API errors verbatim,
// anything else as a generic message (details go to the server log only).
func publicMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return "internal error"
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (s *Service) requestID() string {
	b := make([]byte, 16)
	io.ReadFull(s.cfg.Rand, b)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// free gives req's body and scanned items back to their pools, at the
// end of the request (nothing of the request outlives it: every value
// kept is parsed into memory of its own).
func (req *request) free() {
	if req.rawBody != nil {
		bodyPool.put(req.rawBody)
	}
	if req.batch != nil {
		itemPool.put(req.batch.items)
	}
	req.rawBody, req.body, req.batch = nil, nil, nil
}

// readBody decodes a JSON object body within the size limit.
func (s *Service) readBody(req *request) error {
	if req.method == "GET" || req.method == "LIST" || req.method == "DELETE" {
		return nil
	}
	body, err := readAllSized(http.MaxBytesReader(req.w, req.r.Body, s.cfg.MaxBody), req.r.ContentLength, s.cfg.MaxBody)
	req.rawBody = body
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return &Error{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body over the %d-byte limit", s.cfg.MaxBody)}
		}
		return badRequest("could not read the request body")
	}
	if len(bytes.TrimSpace(body)) == 0 {
		req.body = map[string]json.RawMessage{}
		return nil
	}
	if fields, batch, ok := scanBody(body); ok {
		req.body, req.batch = fields, batch
		return nil
	}
	// Unmarshal (unlike a Decoder) also refuses anything after the object.
	if err := json.Unmarshal(body, &req.body); err != nil {
		return badRequest("failed to parse JSON input: the body must be one JSON object")
	}
	if req.body == nil {
		req.body = map[string]json.RawMessage{}
	}
	return nil
}

// readAllSized reads r to EOF into a buffer sized once from the declared
// Content-Length (never more than max, which r enforces), instead of
// growing it step by step: a 1000-item batch is hundreds of KiB.
func readAllSized(r io.Reader, declared, max int64) ([]byte, error) {
	if declared <= 0 || declared > max {
		return io.ReadAll(r)
	}
	b := bodyPool.get(int(declared) + 1)
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
		if len(b) == cap(b) {
			// More than declared: let ReadAll (and the limit) finish.
			rest, err := io.ReadAll(r)
			return append(b, rest...), err
		}
	}
}

// Field accessors: Vault accepts numbers and booleans also as strings.

func (req *request) str(name string) (string, error) {
	raw, ok := req.body[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	if v, ok := plainString(raw); ok {
		return v, nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", badRequest(fmt.Sprintf("field %q must be a string", name))
	}
	return v, nil
}

func (req *request) integer(name string) (int, bool, error) {
	return parseInt(req.body[name], name)
}

// parseInt is the one parser for an integer field, in a request body or a
// batch item: a JSON number or a string holding one, in decimal, as
// Vault's parseutil.ParseInt reads them ("7", 7). Anything else is
// refused: "1abc", "1.5", 1.5, "0x10", " 1", true. An absent field, null
// and "" are "not given" (Vault reads "" as 0, which every caller here
// treats as its default).
func parseInt(raw json.RawMessage, name string) (int, bool, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	bad := badRequest(fmt.Sprintf("field %q must be an integer (a JSON number or a string of decimal digits)", name))
	digits := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &digits); err != nil {
			return 0, false, bad
		}
		if digits == "" {
			return 0, false, nil
		}
	}
	n, err := strconv.ParseInt(digits, 10, 0)
	if err != nil {
		return 0, false, bad
	}
	return int(n), true, nil
}

func (req *request) boolean(name string) (bool, bool, error) {
	raw, ok := req.body[name]
	if !ok || string(raw) == "null" {
		return false, false, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err == nil {
		return b, true, nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		if b, err := strconv.ParseBool(str); err == nil {
			return b, true, nil
		}
	}
	return false, false, badRequest(fmt.Sprintf("field %q must be a boolean", name))
}

func (req *request) b64(name string) ([]byte, error) {
	s, err := req.str(name)
	if err != nil || s == "" {
		return nil, err
	}
	return decodeB64(s, name)
}

// capability is what an API call needs, Vault-style.
func capability(method string) string {
	switch method {
	case "GET":
		return capRead
	case "LIST":
		return capList
	case "DELETE":
		return capDelete
	}
	return capUpdate
}

// route authenticates and authorizes req and reads its body, and returns
// the function that performs it. route itself changes nothing, so that
// the request can be audited before its effect.
func (s *Service) route(req *request, urlPath string) (perform func() (response, error), err error) {
	switch {
	case urlPath == "/generate-aes-key" || urlPath == "/generate-rsa-key-pair":
		return s.seedRoute(req, urlPath)
	case !strings.HasPrefix(urlPath, "/v1/"):
		return nil, notFound("no handler for " + urlPath)
	}
	if req.method == "LIST" && len(req.path) > 1 {
		// Vault lists "transit/keys/" and "transit/keys" alike.
		req.path = strings.TrimSuffix(req.path, "/")
	}
	// Unauthenticated endpoints.
	switch req.path {
	case "sys/health":
		return func() (response, error) {
			return response{data: nil, raw: map[string]any{"initialized": true, "sealed": false, "standby": false,
				"server_time_utc": s.cfg.Now().Unix(), "version": "shared-enclave-kms"}}, nil
		}, nil
	case "sys/attestation":
		return s.attestation, nil
	case "sys/seal-status", "sys/leader":
		if req.method != "GET" {
			return nil, &Error{Status: http.StatusMethodNotAllowed, Msg: "method not allowed: use GET"}
		}
		return func() (response, error) { return s.sysStatus(req.path) }, nil
	}
	req.tokHash, req.tok, req.tokRaw = s.authenticate(req.r)
	if req.tok == nil {
		return nil, forbidden()
	}
	need := capability(req.method)
	var ok bool
	if strings.HasPrefix(req.path, "sys/internal/ui/mounts/") || req.path == "sys/internal/ui/mounts" {
		// Any valid token may ask which mount serves a path (Vault's
		// rule for this endpoint).
		ok = true
	} else if name, upsert := upsertKey(req.path); upsert && need == capUpdate {
		// Vault's existence check: writing to a key that does not
		// exist is "create", to one that does is "update".
		s.mu.RLock()
		exists := s.keys[name] != nil
		s.mu.RUnlock()
		if !exists {
			need = capCreate
		}
		ok = s.allowed(req.tok.Policies, req.path, need)
		req.mayCreate = ok && need == capCreate
	} else {
		ok = s.allowed(req.tok.Policies, req.path, need)
		if !ok && need == capList {
			// Vault checks a LIST against the path with a trailing
			// slash; policies written either way are honoured.
			ok = s.allowed(req.tok.Policies, req.path+"/", need)
		}
		if !ok && need == capUpdate {
			ok = s.allowed(req.tok.Policies, req.path, capCreate)
		}
	}
	if !ok {
		return nil, forbidden()
	}
	// Response wrapping (Vault's X-Vault-Wrap-TTL) is not implemented: a
	// request asking for it is refused rather than answered unwrapped,
	// which would hand the secret to whoever was meant to get only a
	// wrapping token.
	if _, asked := req.r.Header[http.CanonicalHeaderKey("X-Vault-Wrap-TTL")]; asked {
		return nil, badRequest(errWrapping + " (X-Vault-Wrap-TTL)")
	}
	if strings.HasPrefix(req.path, "sys/wrapping/") {
		return nil, badRequest(errWrapping + " (" + req.path + ")")
	}
	if req.path == "sys/storage/raft/snapshot" || req.path == "sys/storage/raft/snapshot-force" {
		// Before readBody: a restore's body is an archive, not JSON.
		return s.snapshot(req)
	}
	if err := s.readBody(req); err != nil {
		return nil, err
	}
	seg := strings.Split(req.path, "/")
	if err := req.nameField(seg); err != nil {
		return nil, err
	}
	switch {
	case len(seg) >= 2 && seg[0] == "transit":
		return func() (response, error) { return s.transit(req, seg[1:]) }, nil
	case len(seg) >= 3 && len(seg) <= 5 && seg[0] == "sys" && seg[1] == "tools" && (seg[2] == "hash" || seg[2] == "random"):
		return func() (response, error) {
			if req.method != "POST" && req.method != "PUT" {
				return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported operation"}
			}
			if seg[2] == "hash" {
				if len(seg) > 4 {
					return response{}, notFound("unsupported path")
				}
				return s.hash(req, seg[3:])
			}
			return s.random(req, seg[3:])
		}, nil
	case len(seg) == 3 && seg[0] == "auth" && seg[1] == "token":
		return func() (response, error) { return s.tokenAPI(req, seg[2]) }, nil
	case len(seg) == 4 && seg[0] == "sys" && seg[1] == "policies" && seg[2] == "acl" && seg[3] != "":
		return func() (response, error) { return s.policyAPI(req, seg[3], false) }, nil
	case len(seg) == 3 && seg[0] == "sys" && seg[1] == "policy" && seg[2] != "":
		return func() (response, error) { return s.policyAPI(req, seg[2], true) }, nil
	case req.path == "sys/policies/acl" || req.path == "sys/policies/acl/" || req.path == "sys/policy":
		return func() (response, error) { return s.policyList(req) }, nil
	case req.path == "sys/mounts" || strings.HasPrefix(req.path, "sys/internal/ui/mounts"):
		return func() (response, error) { return s.mounts(req) }, nil
	case req.path == "sys/capabilities-self" || req.path == "sys/capabilities" || req.path == "sys/capabilities-accessor":
		return func() (response, error) { return s.capabilitiesSelf(req) }, nil
	}
	return nil, notFound("unsupported path")
}

// pathName is the :name segment of a path that names a key or a policy,
// the part Vault's path patterns capture as the field "name".
func pathName(seg []string) (string, bool) {
	switch {
	case len(seg) >= 3 && seg[0] == "transit":
		switch seg[1] {
		case "keys", "encrypt", "decrypt", "rewrap", "sign", "verify", "hmac", "release":
			return seg[2], true
		case "datakey", "export":
			if len(seg) >= 4 {
				return seg[3], true
			}
		}
	case len(seg) == 4 && seg[0] == "sys" && seg[1] == "policies" && seg[2] == "acl":
		return seg[3], true
	case len(seg) == 3 && seg[0] == "sys" && seg[1] == "policy":
		return seg[2], true
	}
	return "", false
}

// nameField handles a body field "name" on a path that names a key or a
// policy. Vault reads the path's :name as the field "name", so clients
// that build a request from one object (node-vault's encryptData({name,
// plaintext}), addPolicy({name, rules})) send it in the body too. It is
// accepted when it names what the path names, and then removed; a
// different name is refused (Vault would silently use the path's).
func (req *request) nameField(seg []string) error {
	raw, ok := req.body["name"]
	if !ok {
		return nil
	}
	name, named := pathName(seg)
	if !named {
		return nil // the endpoint's own field check refuses it
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return badRequest(`field "name" must be a string`)
	}
	if v != name {
		return badRequest(fmt.Sprintf("field \"name\" is %q but the path names %q: give one name, or leave the field out", v, name))
	}
	delete(req.body, "name")
	return nil
}

// upsertKey names the key of a path that creates it when missing
// (transit/keys/:name and transit/encrypt/:name).
func upsertKey(path string) (string, bool) {
	seg := strings.Split(path, "/")
	if len(seg) == 3 && seg[0] == "transit" && (seg[1] == "keys" || seg[1] == "encrypt") {
		return seg[2], true
	}
	return "", false
}

// errWrapping is the answer to any use of response wrapping.
const errWrapping = "response wrapping is not supported by kmsd: the request was not performed; ask without -wrap-ttl"

// authenticate returns the token the request carries (X-Vault-Token or
// Authorization: Bearer), or nil.
func (s *Service) authenticate(r *http.Request) ([32]byte, *token, string) {
	tok := r.Header.Get("X-Vault-Token")
	if tok == "" {
		tok, _ = strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	}
	h, t := s.lookupTokenHash(tok)
	if t == nil {
		return h, nil, ""
	}
	return h, t, tok
}

// operation names a request for metrics without any key or policy name:
// "transit/encrypt", "transit/keys", "sys/health", "seed", …
func operation(path string) string {
	switch {
	case path == "/generate-aes-key" || path == "/generate-rsa-key-pair":
		return "seed"
	case !strings.HasPrefix(path, "/v1/"):
		return "other"
	}
	seg := strings.Split(strings.TrimPrefix(path, "/v1/"), "/")
	switch {
	case len(seg) >= 2 && seg[0] == "transit":
		op := "transit/" + seg[1]
		if seg[1] == "keys" && len(seg) == 4 && (seg[3] == "config" || seg[3] == "rotate") {
			op += "/" + seg[3]
		}
		switch seg[1] {
		case "keys", "encrypt", "decrypt", "rewrap", "datakey", "sign", "verify", "hmac", "random", "export", "release":
			return op
		}
		return "transit/other"
	case len(seg) >= 2 && (seg[0] == "sys" || seg[0] == "auth"):
		known := map[string]bool{"sys/health": true, "sys/attestation": true, "sys/policies": true, "auth/token": true,
			"sys/seal-status": true, "sys/leader": true, "sys/mounts": true, "sys/policy": true, "sys/internal": true,
			"sys/capabilities": true, "sys/capabilities-self": true, "sys/capabilities-accessor": true, "sys/storage": true}
		if op := seg[0] + "/" + seg[1]; known[op] {
			return op
		}
	}
	return "other"
}
