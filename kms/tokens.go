package kms

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Token lifecycle, as Vault's token auth method has it: ttl,
// explicit_max_ttl, period, num_uses, renewable, parent and orphan
// tokens, accessors; renew, revoke (with descendants), lookup. A
// revocation is committed to the store (synced, in one batch with the
// descendants) and written to the audit log, one event per token, before
// it takes effect.

// Token TTL limits: Vault's defaults (the system default and maximum
// lease TTL, 768h).
const (
	defaultTokenTTL = 768 * time.Hour
	maxTokenTTL     = 768 * time.Hour
)

// defaultPolicyRules is Vault's "default" policy, as far as kmsd has its
// paths: a token can look itself up, renew and revoke itself. Every token
// gets it unless created with no_default_policy.
const defaultPolicyRules = `path "auth/token/lookup-self" { capabilities = ["read"] }
path "auth/token/renew-self" { capabilities = ["update"] }
path "auth/token/revoke-self" { capabilities = ["update"] }
path "sys/capabilities-self" { capabilities = ["update"] }
`

// builtinDefault serves as "default" until an operator writes one.
var builtinDefault = defaultPolicy()

// policyLocked returns a policy by name; s.mu is held.
func (s *Service) policyLocked(name string) *aclPolicy {
	if p := s.policies[name]; p != nil {
		return p
	}
	if name == "default" {
		return builtinDefault
	}
	return nil
}

func defaultPolicy() *aclPolicy {
	p := &aclPolicy{Name: "default", Rules: defaultPolicyRules}
	if err := p.compile(); err != nil {
		panic(err)
	}
	return p
}

// expired reports whether t has expired at now.
func (t *token) expired(now time.Time) bool {
	return !t.Expire.IsZero() && !now.Before(t.Expire)
}

// validLocked reports whether t and the tokens above it are unexpired. A
// parent that is gone (revoked by generate-root, which leaves its
// children) does not invalidate the child; revoke removes descendants
// explicitly. s.mu is held.
func (s *Service) validLocked(t *token, now time.Time) bool {
	for depth := 0; t != nil && depth < 1000; depth++ {
		if t.expired(now) {
			return false
		}
		h, ok := s.accessors[t.Parent]
		if t.Parent == "" || !ok {
			return true
		}
		t = s.tokens[h]
	}
	return true
}

// lookupToken returns a valid token by its value, or nil.
func (s *Service) lookupToken(tok string) *token {
	_, t := s.lookupTokenHash(tok)
	return t
}

func (s *Service) lookupTokenHash(tok string) ([32]byte, *token) {
	if tok == "" {
		return [32]byte{}, nil
	}
	h := tokenHash(tok)
	s.mu.RLock()
	defer s.mu.RUnlock()
	t := s.tokens[h]
	if t == nil || t.NumUses < 0 || !s.validLocked(t, s.cfg.Now()) {
		return h, nil
	}
	return h, t
}

// useToken spends one use of a token with num_uses, durably, before the
// request is performed. The last use marks the token exhausted (NumUses
// -1: no request authenticates with it any more, across restarts too)
// and reports last, so that the caller revokes it once the request has
// run. A token revoked or exhausted since it was authenticated is
// refused.
func (s *Service) useToken(h [32]byte) (last bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[h]
	if t == nil || t.NumUses < 0 || !s.validLocked(t, s.cfg.Now()) {
		return false, forbidden()
	}
	if t.NumUses == 0 {
		return false, nil
	}
	u := *t
	u.NumUses--
	if u.NumUses == 0 {
		u.NumUses = -1
	}
	if err := s.persist(kindToken, h[:], "", &u); err != nil {
		return false, err
	}
	s.putToken(h, &u)
	return u.NumUses < 0, nil
}

// revokeExhausted revokes a token whose last use has just been made.
func (s *Service) revokeExhausted(h [32]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens[h] == nil {
		return
	}
	if err := s.revokeLocked(h, true, "num_uses exhausted"); err != nil {
		// (On shared storage a conflict leaves it to the next revocation
		// too; the token is exhausted everywhere already.)
		// It is marked exhausted, so it authenticates nothing; its
		// record stays until a later revocation succeeds.
		s.log.Error("revoking an exhausted token failed", "err", err)
	}
}

// descendants lists h and every token below it; s.mu is held.
func (s *Service) descendants(h [32]byte) [][32]byte {
	out := [][32]byte{h}
	for i := 0; i < len(out); i++ {
		acc := s.tokens[out[i]].Accessor
		for ch, ct := range s.tokens {
			if ct.Parent == acc && !slices.Contains(out, ch) {
				out = append(out, ch)
			}
		}
	}
	return out
}

// revokeLocked revokes h and, if tree, its descendants (else they become
// orphans): audited, then committed in one synced batch, then removed.
// s.mu is held.
func (s *Service) revokeLocked(h [32]byte, tree bool, why string) error {
	victims := [][32]byte{h}
	var orphans [][32]byte
	if tree {
		victims = s.descendants(h)
	} else {
		for ch, ct := range s.tokens {
			if ct.Parent == s.tokens[h].Accessor {
				orphans = append(orphans, ch)
			}
		}
	}
	now := s.cfg.Now().UTC().Format(time.RFC3339Nano)
	for _, v := range victims {
		if err := s.audit(auditLine{Type: "event", Time: now, RequestID: s.requestID(), Accessor: s.tokens[v].Accessor,
			Method: "INTERNAL", Path: "auth/token/revoked", Error: why}); err != nil {
			return fmt.Errorf("kms: audit log write failed, so the token was not revoked: %w", err)
		}
	}
	changed := map[[32]byte]*token{}
	for _, o := range orphans {
		u := *s.tokens[o]
		u.Parent = ""
		changed[o] = &u
	}
	// Orphans first, then the victims from the last descendant up to h:
	// storage that cannot commit them at once (shared storage) stops part
	// way with every token it has not reached still whole, and h last.
	var ops []op
	for o, u := range changed {
		ub, _ := json.Marshal(u)
		ops = append(ops, op{kind: kindToken, key: o[:], value: ub})
	}
	for i := len(victims) - 1; i >= 0; i-- {
		ops = append(ops, op{kind: kindToken, key: victims[i][:]})
	}
	if err := s.write(ops); err != nil {
		if errors.Is(err, ErrConflict) {
			return err
		}
		return fmt.Errorf("kms: revoking a token: %w", err)
	}
	for _, v := range victims {
		s.dropToken(v)
	}
	for o, u := range changed {
		s.putToken(o, u)
	}
	s.log.Info("token revoked", "count", len(victims), "why", why)
	return nil
}

// Token endpoints' fields.
var (
	fieldsTokenCreate = fields{
		known: []string{"policies", "meta", "no_parent", "no_default_policy", "renewable", "ttl", "type", "explicit_max_ttl",
			"display_name", "num_uses", "period"},
		unsupported: []string{"id", "role_name", "lease", "entity_alias"},
	}
	fieldsTokenRef      = fields{known: []string{"token"}}
	fieldsAccessorRef   = fields{known: []string{"accessor"}}
	fieldsRenew         = fields{known: []string{"token", "increment"}}
	fieldsRenewSelf     = fields{known: []string{"increment"}}
	fieldsRenewAccessor = fields{known: []string{"accessor", "increment"}}
)

// tokenAPI serves auth/token/*.
func (s *Service) tokenAPI(req *request, op string) (response, error) {
	post := req.method == "POST" || req.method == "PUT"
	switch {
	case (op == "create" || op == "create-orphan") && post:
		return s.tokenCreate(req, op == "create-orphan")
	case op == "lookup-self" && (req.method == "GET" || post):
		if err := fieldsNone.check(req.body); err != nil {
			return response{}, err
		}
		return s.tokenLookup(req.tokHash, req.tokRaw)
	case op == "lookup" && post:
		tok, err := s.tokenField(req, fieldsTokenRef)
		if err != nil {
			return response{}, err
		}
		return s.tokenLookup(tokenHash(tok), tok)
	case op == "lookup-accessor" && post:
		h, err := s.accessorField(req, fieldsAccessorRef)
		if err != nil {
			return response{}, err
		}
		return s.tokenLookup(h, "")
	case op == "accessors" && req.method == "LIST":
		s.mu.RLock()
		keys := make([]string, 0, len(s.accessors))
		now := s.cfg.Now()
		for acc, h := range s.accessors {
			if s.validLocked(s.tokens[h], now) {
				keys = append(keys, acc)
			}
		}
		s.mu.RUnlock()
		sort.Strings(keys)
		return response{data: map[string]any{"keys": keys}}, nil
	case op == "renew-self" && post:
		if err := fieldsRenewSelf.check(req.body); err != nil {
			return response{}, err
		}
		return s.tokenRenew(req, req.tokHash, req.tokRaw)
	case op == "renew" && post:
		tok, err := s.tokenField(req, fieldsRenew)
		if err != nil {
			return response{}, err
		}
		return s.tokenRenew(req, tokenHash(tok), tok)
	case op == "renew-accessor" && post:
		h, err := s.accessorField(req, fieldsRenewAccessor)
		if err != nil {
			return response{}, err
		}
		return s.tokenRenew(req, h, "")
	case op == "revoke-self" && post:
		if err := fieldsNone.check(req.body); err != nil {
			return response{}, err
		}
		return s.tokenRevoke(req.tokHash, true, "revoke-self")
	case op == "revoke" && post:
		tok, err := s.tokenField(req, fieldsTokenRef)
		if err != nil {
			return response{}, err
		}
		return s.tokenRevoke(tokenHash(tok), true, "revoke")
	case op == "revoke-orphan" && post:
		tok, err := s.tokenField(req, fieldsTokenRef)
		if err != nil {
			return response{}, err
		}
		if !slices.Contains(req.tok.Policies, "root") {
			return response{}, &Error{Status: http.StatusForbidden, Msg: "permission denied: revoke-orphan needs a root token"}
		}
		return s.tokenRevoke(tokenHash(tok), false, "revoke-orphan")
	case op == "revoke-accessor" && post:
		h, err := s.accessorField(req, fieldsAccessorRef)
		if err != nil {
			return response{}, err
		}
		return s.tokenRevoke(h, true, "revoke-accessor")
	}
	switch op {
	case "create", "create-orphan", "lookup", "lookup-self", "lookup-accessor", "accessors", "renew", "renew-self", "renew-accessor",
		"revoke", "revoke-self", "revoke-orphan", "revoke-accessor":
		return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported operation"}
	}
	return response{}, notFound("unsupported path")
}

// tokenField reads the "token" field (required).
func (s *Service) tokenField(req *request, f fields) (string, error) {
	if err := f.check(req.body); err != nil {
		return "", err
	}
	tok, err := req.str("token")
	if err != nil {
		return "", err
	}
	if tok == "" {
		return "", badRequest("missing field \"token\"")
	}
	return tok, nil
}

// accessorField reads the "accessor" field (required) and finds its
// token; an unknown accessor is 400, as in Vault.
func (s *Service) accessorField(req *request, f fields) ([32]byte, error) {
	if err := f.check(req.body); err != nil {
		return [32]byte{}, err
	}
	acc, err := req.str("accessor")
	if err != nil {
		return [32]byte{}, err
	}
	if acc == "" {
		return [32]byte{}, badRequest("missing field \"accessor\"")
	}
	s.mu.RLock()
	h, ok := s.accessors[acc]
	s.mu.RUnlock()
	if !ok {
		return [32]byte{}, badRequest("invalid accessor")
	}
	return h, nil
}

// ttlField reads a duration field and refuses one over the maximum.
func ttlField(req *request, name string) (time.Duration, error) {
	d, _, err := parseDuration(req.body[name], name)
	if err != nil {
		return 0, err
	}
	if d > maxTokenTTL {
		return 0, badRequest(fmt.Sprintf("field %q: %s is over the maximum token TTL of %s", name, d, maxTokenTTL))
	}
	return d, nil
}

// tokenCreate is POST auth/token/create and create-orphan. A token can
// only hand out policies it has itself (or any, for root), so no token
// can mint a stronger one.
func (s *Service) tokenCreate(req *request, orphanEndpoint bool) (response, error) {
	if err := fieldsTokenCreate.check(req.body); err != nil {
		return response{}, err
	}
	var policies []string
	if raw, ok := req.body["policies"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &policies); err != nil {
			var one string
			if json.Unmarshal(raw, &one) != nil {
				return response{}, badRequest("field \"policies\" must be a list of names")
			}
			policies = strings.Split(one, ",")
		}
	}
	meta := map[string]string{}
	if raw, ok := req.body["meta"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &meta); err != nil {
			return response{}, badRequest("field \"meta\" must be an object of strings")
		}
	}
	noParent, _, err := req.boolean("no_parent")
	if err != nil {
		return response{}, err
	}
	noDefault, _, err := req.boolean("no_default_policy")
	if err != nil {
		return response{}, err
	}
	renewable, hasRenewable, err := req.boolean("renewable")
	if err != nil {
		return response{}, err
	}
	if !hasRenewable {
		renewable = true
	}
	typ, err := req.str("type")
	if err != nil {
		return response{}, err
	}
	if typ != "" && typ != "service" && typ != "default" {
		return response{}, badRequest(fmt.Sprintf("field \"type\": only service tokens are supported by kmsd, not %q", typ))
	}
	ttl, err := ttlField(req, "ttl")
	if err != nil {
		return response{}, err
	}
	maxTTL, err := ttlField(req, "explicit_max_ttl")
	if err != nil {
		return response{}, err
	}
	period, err := ttlField(req, "period")
	if err != nil {
		return response{}, err
	}
	uses, _, err := req.integer("num_uses")
	if err != nil {
		return response{}, err
	}
	if uses < 0 {
		return response{}, badRequest("field \"num_uses\" must not be negative")
	}
	display, err := req.str("display_name")
	if err != nil {
		return response{}, err
	}

	parent := req.tok
	isRoot := slices.Contains(parent.Policies, "root")
	if noParent && !isRoot {
		return response{}, &Error{Status: http.StatusForbidden, Msg: "permission denied: field \"no_parent\" needs a root token (or use auth/token/create-orphan)"}
	}
	// Policies: those asked for, or the parent's; "default" is added
	// unless no_default_policy.
	if len(policies) == 0 {
		policies = slices.DeleteFunc(slices.Clone(parent.Policies), func(p string) bool { return p == "default" })
	}
	if !noDefault && !slices.Contains(policies, "root") && !slices.Contains(policies, "default") {
		policies = append(policies, "default")
	}
	if len(policies) == 0 {
		return response{}, badRequest("field \"policies\": the token would have no policy")
	}
	sort.Strings(policies)
	policies = slices.Compact(policies)

	now := s.cfg.Now().UTC()
	t := token{Renewable: renewable, ExplicitMaxTTL: maxTTL, Period: period, NumUses: uses, Meta: meta,
		DisplayName: "token"}
	if display != "" {
		t.DisplayName = "token-" + display
	}
	if !noParent && !orphanEndpoint {
		t.Parent = parent.Accessor
	}
	switch {
	case period > 0:
		t.TTL = period
	case ttl > 0:
		t.TTL = ttl
	case slices.Contains(policies, "root"):
		t.TTL = 0 // a root token without a ttl does not expire
	default:
		t.TTL = defaultTokenTTL
	}
	if maxTTL > 0 && (t.TTL == 0 || t.TTL > maxTTL) {
		t.TTL = maxTTL
	}
	if t.TTL > 0 {
		t.Expire = now.Add(t.TTL)
	}
	if len(meta) == 0 {
		t.Meta = nil
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range policies {
		if p == "root" && !isRoot {
			return response{}, forbidden()
		}
		if p != "root" && s.policyLocked(p) == nil {
			return response{}, badRequest(fmt.Sprintf("policy %q does not exist", p))
		}
		if !isRoot && p != "default" && !slices.Contains(parent.Policies, p) {
			return response{}, badRequest(fmt.Sprintf("a token may only grant policies it has itself; it lacks %q", p))
		}
	}
	tok, h, nt, err := s.newToken(policies)
	if err != nil {
		return response{}, err
	}
	t.Accessor, t.Policies, t.Created, t.Recoverable = nt.Accessor, nt.Policies, now, nt.Recoverable
	if err := s.persist(kindToken, h[:], "", &t); err != nil {
		return response{}, err
	}
	s.putToken(h, &t)
	return response{auth: authBlock(tok, &t, now)}, nil
}

// authBlock is Vault's "auth" object for a token whose expiry was set at
// now: lease_duration is the TTL granted (3600 for "1h", not the 3599 s
// and some left by the time the answer is written).
func authBlock(tok string, t *token, now time.Time) map[string]any {
	var meta any
	if len(t.Meta) > 0 {
		meta = t.Meta
	}
	return map[string]any{
		"client_token": tok, "accessor": t.Accessor, "policies": t.Policies, "token_policies": t.Policies,
		"identity_policies": nil, "metadata": meta, "lease_duration": int64(t.remaining(now) / time.Second),
		"renewable": t.Renewable && t.TTL > 0, "entity_id": "", "token_type": "service", "orphan": t.Parent == "",
		"mfa_requirement": nil, "num_uses": max(0, t.NumUses),
	}
}

// remaining is the time left before the token expires (0: never).
func (t *token) remaining(now time.Time) time.Duration {
	if t.Expire.IsZero() {
		return 0
	}
	return max(0, t.Expire.Sub(now).Truncate(time.Second))
}

// tokenLookup answers lookup, lookup-self and lookup-accessor (id is
// empty for the last: the accessor does not reveal the token).
func (s *Service) tokenLookup(h [32]byte, raw string) (response, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	now := s.cfg.Now()
	t := s.tokens[h]
	if t == nil || !s.validLocked(t, now) {
		return response{}, badRequest("bad token")
	}
	var expire any
	if !t.Expire.IsZero() {
		expire = t.Expire.Format(time.RFC3339Nano)
	}
	var meta any
	if len(t.Meta) > 0 {
		meta = t.Meta
	}
	data := map[string]any{
		"id": raw, "accessor": t.Accessor, "policies": t.Policies, "creation_time": t.Created.Unix(),
		"creation_ttl": int64(t.TTL / time.Second), "ttl": int64(t.remaining(now) / time.Second), "expire_time": expire,
		"explicit_max_ttl": int64(t.ExplicitMaxTTL / time.Second), "issue_time": t.Created.Format(time.RFC3339Nano),
		"display_name": t.DisplayName, "meta": meta, "num_uses": max(0, t.NumUses), "orphan": t.Parent == "",
		"path": "auth/token/create", "renewable": t.Renewable && t.TTL > 0, "type": "service", "entity_id": "",
	}
	if t.Period > 0 {
		data["period"] = int64(t.Period / time.Second)
	}
	if !t.LastRenewal.IsZero() {
		data["last_renewal_time"] = t.LastRenewal.Unix()
		data["last_renewal"] = t.LastRenewal.Format(time.RFC3339Nano)
	}
	if t.Parent == "" && len(t.Policies) == 1 && t.Policies[0] == "root" && t.Expire.IsZero() {
		data["path"] = "auth/token/root"
	}
	return response{data: data}, nil
}

var errNotRenewable = errors.New("kms: token not renewable")

// tokenRenew extends a renewable token: to its period (periodic tokens,
// which ignore increment, as in Vault), else to increment or its
// original TTL, never past creation + explicit_max_ttl nor the maximum
// TTL.
func (s *Service) tokenRenew(req *request, h [32]byte, raw string) (response, error) {
	inc, err := ttlField(req, "increment")
	if err != nil {
		return response{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now().UTC()
	t := s.tokens[h]
	if t == nil || !s.validLocked(t, now) {
		return response{}, badRequest("bad token")
	}
	if !t.Renewable || t.TTL == 0 {
		return response{}, badRequest(fmt.Sprintf("%v: this token was created with renewable=false or has no TTL", errNotRenewable))
	}
	u := *t
	d := t.TTL
	switch {
	case t.Period > 0:
		d = t.Period
	case inc > 0:
		d = inc
	}
	u.Expire = now.Add(d)
	if hard := t.Created.Add(maxTokenTTL); t.Period == 0 && u.Expire.After(hard) {
		u.Expire = hard
	}
	if t.ExplicitMaxTTL > 0 {
		if hard := t.Created.Add(t.ExplicitMaxTTL); u.Expire.After(hard) {
			u.Expire = hard
		}
	}
	u.LastRenewal = now
	if err := s.persist(kindToken, h[:], "", &u); err != nil {
		return response{}, err
	}
	s.putToken(h, &u)
	return response{auth: authBlock(raw, &u, now)}, nil
}

// tokenRevoke revokes a token (and its descendants, or orphans them).
// An unknown or expired token is not an error, as in Vault.
func (s *Service) tokenRevoke(h [32]byte, tree bool, why string) (response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tokens[h] == nil {
		return response{status: http.StatusNoContent}, nil
	}
	if err := s.revokeLocked(h, tree, why); err != nil {
		return response{}, err
	}
	return response{status: http.StatusNoContent}, nil
}
