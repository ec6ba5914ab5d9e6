package kms

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// maxBatch bounds batch_input.
const maxBatch = 10000

func (s *Service) transit(req *request, seg []string) (response, error) {
	op := seg[0]
	rest := seg[1:]
	switch {
	case op == "keys" && len(rest) == 0 && req.method == "LIST":
		return response{data: map[string]any{"keys": s.KeyNames()}}, nil
	case op == "keys" && len(rest) == 1:
		switch req.method {
		case "POST", "PUT":
			if !req.mayCreate {
				// Authorized for update only: the key exists (or was
				// deleted since); nothing is created.
				if err := fieldsCreateKey.check(req.body); err != nil {
					return response{}, err
				}
				return s.readKey(rest[0])
			}
			return s.createKey(req, rest[0])
		case "GET":
			return s.readKeyQuery(req, rest[0])
		case "DELETE":
			return s.deleteKey(rest[0])
		}
	case op == "keys" && len(rest) == 2 && rest[1] == "config" && (req.method == "POST" || req.method == "PUT"):
		return s.configKey(req, rest[0])
	case op == "keys" && len(rest) == 2 && rest[1] == "rotate" && (req.method == "POST" || req.method == "PUT"):
		return s.rotateKey(req, rest[0])
	case op == "backup" || op == "restore" || op == "export" && len(rest) >= 1 && rest[0] != "public-key":
		// Vault's key export and backup: kmsd has neither, by design.
		return response{}, notFound(fmt.Sprintf("transit/%s is not served: key material never leaves the enclave (no export, no backup; docs/KMS-API.md)", op))
	case op == "wrapping_key" && len(rest) == 0:
		return s.wrappingKeyAPI(req)
	case op == "keys" && len(rest) == 2 && rest[1] == "import" && (req.method == "POST" || req.method == "PUT"):
		return s.importKey(req, rest[0])
	case op == "keys" && len(rest) == 2 && rest[1] == "import_version" && (req.method == "POST" || req.method == "PUT"):
		return s.importVersion(req, rest[0])
	case op == "keys" && len(rest) == 2 && rest[1] == "config" && req.method == "GET":
		return s.readKeyQuery(req, rest[0])
	case op == "keys" && len(rest) == 2 && rest[1] == "csr" && (req.method == "POST" || req.method == "PUT"):
		return s.keyCSR(req, rest[0])
	case op == "keys" && len(rest) == 2 && rest[1] == "trim" && (req.method == "POST" || req.method == "PUT"):
		return s.trimKey(req, rest[0])
	case op == "hash" && len(rest) <= 1 && (req.method == "POST" || req.method == "PUT"):
		return s.hash(req, rest)
	case op == "cache-config":
		return s.cacheConfig(req)
	case op == "export" && len(rest) >= 2 && len(rest) <= 3 && rest[0] == "public-key" && req.method == "GET":
		return s.exportPublic(rest[1:])
	case op == "random" && len(rest) <= 2 && (req.method == "POST" || req.method == "PUT"):
		return s.random(req, rest)
	case op == "keys" && len(rest) <= 1, op == "keys" && len(rest) == 2 && (rest[1] == "config" || rest[1] == "rotate" || rest[1] == "trim" || rest[1] == "import" || rest[1] == "import_version" || rest[1] == "csr"),
		op == "hash" && len(rest) <= 1,
		op == "export" && len(rest) >= 2 && len(rest) <= 3 && rest[0] == "public-key", op == "random" && len(rest) <= 2:
		// A path kmsd serves, with a method it does not (Vault: 405).
		return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported operation"}
	}
	switch op {
	case "encrypt", "decrypt", "rewrap", "datakey", "sign", "verify", "hmac", "release":
	default:
		return response{}, notFound("unsupported path")
	}
	if req.method != "POST" && req.method != "PUT" {
		return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported operation"}
	}
	switch {
	case op == "encrypt" && len(rest) == 1:
		return s.encrypt(req, rest[0])
	case op == "decrypt" && len(rest) == 1:
		return s.decrypt(req, rest[0])
	case op == "rewrap" && len(rest) == 1:
		return s.rewrap(req, rest[0])
	case op == "datakey" && len(rest) == 2:
		return s.datakey(req, rest[0], rest[1])
	case op == "sign" && (len(rest) == 1 || len(rest) == 2):
		return s.signOrVerify(req, rest, false)
	case op == "verify" && (len(rest) == 1 || len(rest) == 2):
		return s.signOrVerify(req, rest, true)
	case op == "hmac" && (len(rest) == 1 || len(rest) == 2):
		return s.hmacOp(req, rest)
	case op == "release" && len(rest) == 1:
		return s.release(req, rest[0])
	}
	return response{}, notFound("unsupported path")
}

// key returns a snapshot of a key: keys are copied on write, so the
// pointer stays valid and unchanged for the caller. A key whose
// auto_rotate_period has passed since its latest version is rotated
// first.
func (s *Service) key(name string) (*Key, error) {
	s.mu.RLock()
	k := s.keys[name]
	s.mu.RUnlock()
	if k == nil {
		return nil, keyNotFound(name)
	}
	if k.rotationDue(s.cfg.Now()) {
		return s.autoRotate(k)
	}
	return k, nil
}

// rotationDue reports whether the key's auto_rotate_period has passed
// since its latest version was made.
func (k *Key) rotationDue(now time.Time) bool {
	if k.AutoRotatePeriod <= 0 {
		return false
	}
	latest := k.Versions[k.LatestVersion]
	return latest != nil && !now.Before(latest.Created.Add(k.AutoRotatePeriod))
}

// autoRotate adds a version to a key whose rotation is due, unless a
// concurrent call already did. If the new version cannot be stored the
// operation fails (it does not go on with the overdue version).
func (s *Service) autoRotate(k0 *Key) (*Key, error) {
	v, err := newVersion(k0.Type, s.cfg.Rand, k0.hmacBytes(), s.cfg.Now())
	if err != nil {
		return nil, err
	}
	rotated := false
	k, err := s.update(k0.Name, func(k *Key) error {
		if k.rotationDue(s.cfg.Now()) {
			k.LatestVersion++
			k.Versions[k.LatestVersion] = v
			rotated = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rotated {
		s.log.Info("key rotated (auto_rotate_period)", "name", k.Name, "version", k.LatestVersion)
	}
	return k, nil
}

// hmacBytes is the size of a new version's HMAC key: that of the latest
// version for hmac keys.
func (k *Key) hmacBytes() int {
	if k.Type == HMAC {
		if v := k.Versions[k.LatestVersion]; v != nil {
			return len(v.Secret)
		}
	}
	return 32
}

// minAutoRotate is Vault's lower bound for auto_rotate_period.
const minAutoRotate = time.Hour

func autoRotatePeriod(req *request) (time.Duration, bool, error) {
	d, ok, err := parseDuration(req.body["auto_rotate_period"], "auto_rotate_period")
	if err != nil || !ok {
		return 0, false, err
	}
	if d != 0 && d < minAutoRotate {
		return 0, false, badRequest(`field "auto_rotate_period" must be 0 to disable or at least an hour`)
	}
	return d, true, nil
}

// refuseExport refuses exportable and allow_plaintext_backup set to
// true: key material never leaves the enclave (docs/KMS-API.md).
func refuseExport(req *request) error {
	for _, f := range []string{"exportable", "allow_plaintext_backup"} {
		if b, _, err := req.boolean(f); err != nil {
			return err
		} else if b {
			return badRequest(fmt.Sprintf("field %q: kmsd never lets key material leave the enclave, so keys cannot be made exportable or backed up in plaintext (docs/KMS-API.md)", f))
		}
	}
	return nil
}

// update applies fn to a copy of the key and stores it (synced) before
// making it visible; nothing is half-written on error.
func (s *Service) update(name string, fn func(k *Key) error) (*Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.keys[name]
	if old == nil {
		return nil, keyNotFound(name)
	}
	k := *old
	k.Versions = make(map[int]*version, len(old.Versions))
	for n, v := range old.Versions {
		k.Versions[n] = v
	}
	if err := fn(&k); err != nil {
		return nil, err
	}
	if err := s.saveKey(&k); err != nil {
		return nil, err
	}
	s.keys[name] = &k
	return &k, nil
}

func (s *Service) createKey(req *request, name string) (response, error) {
	if err := fieldsCreateKey.check(req.body); err != nil {
		return response{}, err
	}
	k, created, err := s.newKey(req, name)
	if err != nil {
		return response{}, err
	}
	if !created {
		// Vault answers an existing key with success and changes nothing.
		return s.readKey(k.Name)
	}
	return s.keyBody(k), nil
}

// newKey creates the key name with the parameters of req (create key,
// and encrypt to a missing key), or returns the existing one unchanged.
func (s *Service) newKey(req *request, name string) (*Key, bool, error) {
	if err := validName(name); err != nil {
		return nil, false, err
	}
	typ, err := req.str("type")
	if err != nil {
		return nil, false, err
	}
	if typ == "" {
		typ = string(AES256GCM96)
	}
	t := KeyType(typ)
	if !t.Valid() {
		return nil, false, badRequest(fmt.Sprintf("unknown key type %q", typ))
	}
	derived, _, err := req.boolean("derived")
	if err != nil {
		return nil, false, err
	}
	if derived && !t.derivable() {
		return nil, false, badRequest("key derivation is only supported for symmetric keys and ed25519")
	}
	convergent, _, err := req.boolean("convergent_encryption")
	if err != nil {
		return nil, false, err
	}
	if convergent && !derived {
		return nil, false, badRequest("convergent_encryption requires derivation to be enabled: set derived=true")
	}
	if convergent && !t.symmetric() {
		return nil, false, badRequest("convergent_encryption applies only to symmetric (encryption) keys")
	}
	if err := refuseExport(req); err != nil {
		return nil, false, err
	}
	period, _, err := autoRotatePeriod(req)
	if err != nil {
		return nil, false, err
	}
	size, hasSize, err := req.integer("key_size")
	if err != nil {
		return nil, false, err
	}
	hmacBytes := 32
	if hasSize {
		if t != HMAC || size < 32 || size > 512 {
			return nil, false, badRequest("key_size is only for hmac keys, 32 to 512 bytes")
		}
		hmacBytes = size
	}
	s.mu.RLock()
	existing := s.keys[name]
	s.mu.RUnlock()
	if existing != nil {
		return existing, false, nil
	}
	v, err := newVersion(t, s.cfg.Rand, hmacBytes, s.cfg.Now())
	if err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k := s.keys[name]; k != nil {
		return k, false, nil
	}
	k := &Key{Name: name, Type: t, Derived: derived, Convergent: convergent, AutoRotatePeriod: period, MinDecryptionVersion: 1,
		LatestVersion: 1, Versions: map[int]*version{1: v}}
	if err := s.saveKey(k); err != nil {
		return nil, false, err
	}
	s.keys[name] = k
	s.log.Info("key created", "name", name, "type", string(t))
	return k, true, nil
}

func (s *Service) readKey(name string) (response, error) {
	return s.readKeyContext(name, nil)
}

// readKeyQuery is GET transit/keys/:name: its one query parameter is
// context (base64), which shows a derived ed25519 key's public keys for
// that context, as in Vault. Any other parameter is refused.
func (s *Service) readKeyQuery(req *request, name string) (response, error) {
	var context []byte
	for q, vals := range req.r.URL.Query() {
		switch {
		case q == "context" && len(vals) == 1:
			var err error
			if context, err = decodeB64(vals[0], "context"); err != nil {
				return response{}, err
			}
		case q == "context":
			return response{}, badRequest(`query parameter "context" given more than once`)
		default:
			return response{}, badRequest(fmt.Sprintf("unknown query parameter %q", q))
		}
	}
	return s.readKeyContext(name, context)
}

func (s *Service) readKeyContext(name string, context []byte) (response, error) {
	k, err := s.key(name)
	if isKeyNotFound(err) {
		return response{}, notFound("") // Vault: 404 with no message
	}
	if err != nil {
		return response{}, err
	}
	if len(context) != 0 && !(k.Derived && k.Type == Ed25519) {
		return response{}, badRequest(`field "context" on a key read applies only to derived ed25519 keys (it shows their public key for that context)`)
	}
	return s.keyBodyContext(k, context), nil
}

// curveName is what Vault shows as an asymmetric version's "name".
func curveName(t KeyType) string {
	switch t {
	case ECDSAP256:
		return "P-256"
	case ECDSAP384:
		return "P-384"
	case ECDSAP521:
		return "P-521"
	}
	return string(t)
}

// keyBody is a key as Vault's read-key answer shows it. Versions below
// min_decryption_version are not shown (Vault has archived them).
func (s *Service) keyBody(k *Key) response { return s.keyBodyContext(k, nil) }

// keyBodyContext is keyBody; a derived ed25519 key shows the public keys
// derived for context, or "" without one (as Vault: the base key's
// public half is never shown).
func (s *Service) keyBodyContext(k *Key, context []byte) response {
	versions := map[string]any{}
	for n, v := range k.Versions {
		if n < k.MinDecryptionVersion {
			continue
		}
		if k.Type.signing() || k.Type.rsa() {
			pub, err := v.exportPublic(k.Type)
			if k.Derived {
				pub = ""
				if len(context) != 0 {
					var d ed25519.PrivateKey
					if d, err = v.derivedEd25519(context); err == nil {
						pub = base64.StdEncoding.EncodeToString(d.Public().(ed25519.PublicKey))
					}
				}
			}
			if err != nil {
				s.log.Error("a key version's public key cannot be exported", "name", k.Name, "version", n, "err", err)
				continue
			}
			versions[strconv.Itoa(n)] = map[string]any{"creation_time": v.Created.Format(time.RFC3339Nano), "public_key": pub, "name": curveName(k.Type)}
		} else {
			versions[strconv.Itoa(n)] = v.Created.Unix()
		}
	}
	data := map[string]any{
		"name": k.Name, "type": string(k.Type), "derived": k.Derived, "exportable": k.Exportable,
		"allow_plaintext_backup": false, "imported_key": k.Imported,
		"deletion_allowed": k.DeletionAllowed, "latest_version": k.LatestVersion,
		"min_decryption_version": k.MinDecryptionVersion, "min_encryption_version": k.MinEncryptionVersion,
		"min_available_version": k.MinAvailableVersion, "supports_encryption": k.Type.encrypting(), "supports_decryption": k.Type.encrypting(),
		"supports_signing": k.Type.signing(), "supports_derivation": k.Type.derivable(),
		"auto_rotate_period": int64(k.AutoRotatePeriod / time.Second),
		"keys":               versions, "release_policy": k.Release,
	}
	if k.Derived {
		data["kdf"] = "hkdf_sha256"
		data["convergent_encryption"] = k.Convergent
		if k.Convergent {
			data["convergent_encryption_version"] = 3
		}
	}
	if k.Type == HMAC {
		data["key_size"] = k.hmacBytes()
	}
	if k.Imported {
		data["imported_key_allow_rotation"] = k.AllowRotation
	}
	return response{data: data}
}

func (s *Service) deleteKey(name string) (response, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := s.keys[name]
	if k == nil {
		return response{}, keyNotFound(name)
	}
	if !k.DeletionAllowed {
		return response{}, badRequest("deletion is not allowed for this key: set deletion_allowed in its config first")
	}
	if err := s.removeRec(kindKey, s.blind(name)); err != nil {
		return response{}, err
	}
	delete(s.keys, name)
	s.log.Info("key deleted", "name", name)
	return response{status: http.StatusNoContent}, nil
}

func (s *Service) configKey(req *request, name string) (response, error) {
	if err := fieldsConfigKey.check(req.body); err != nil {
		return response{}, err
	}
	if err := refuseExport(req); err != nil {
		return response{}, err
	}
	period, hasPeriod, err := autoRotatePeriod(req)
	if err != nil {
		return response{}, err
	}
	minDec, hasMinDec, err := req.integer("min_decryption_version")
	if err != nil {
		return response{}, err
	}
	minEnc, hasMinEnc, err := req.integer("min_encryption_version")
	if err != nil {
		return response{}, err
	}
	del, hasDel, err := req.boolean("deletion_allowed")
	if err != nil {
		return response{}, err
	}
	var release *ReleasePolicy
	if raw, ok := req.body["release_policy"]; ok && string(raw) != "null" {
		release = new(ReleasePolicy)
		if err := json.Unmarshal(raw, release); err != nil {
			return response{}, badRequest("release_policy: " + err.Error())
		}
		if len(release.MREnclave) == 0 && len(release.MRSigner) == 0 {
			return response{}, badRequest("release_policy must name mrenclave or mrsigner values")
		}
	}
	k, err := s.update(name, func(k *Key) error {
		if hasMinDec {
			if minDec < 1 || minDec > k.LatestVersion {
				return badRequest(fmt.Sprintf("min_decryption_version must be between 1 and the latest version %d", k.LatestVersion))
			}
			if minDec < k.MinAvailableVersion {
				return badRequest(fmt.Sprintf("field \"min_decryption_version\" cannot be below min_available_version %d: older versions were trimmed", k.MinAvailableVersion))
			}
			k.MinDecryptionVersion = minDec
		}
		if hasMinEnc {
			if minEnc < 0 || minEnc > k.LatestVersion {
				return badRequest(fmt.Sprintf("min_encryption_version must be between 0 and the latest version %d", k.LatestVersion))
			}
			k.MinEncryptionVersion = minEnc
		}
		if k.MinEncryptionVersion != 0 && k.MinEncryptionVersion < k.MinDecryptionVersion {
			return badRequest("min_encryption_version must not be below min_decryption_version")
		}
		if hasDel {
			k.DeletionAllowed = del
		}
		if hasPeriod {
			k.AutoRotatePeriod = period
		}
		if release != nil {
			if !k.Type.symmetric() {
				return badRequest("release_policy is only for symmetric keys")
			}
			k.Release = release
		}
		return nil
	})
	if err != nil {
		return response{}, err
	}
	return s.readKey(k.Name)
}

func (s *Service) rotateKey(req *request, name string) (response, error) {
	if err := fieldsRotate.check(req.body); err != nil {
		return response{}, err
	}
	k0, err := s.key(name)
	if err != nil {
		return response{}, err
	}
	if k0.Imported && !k0.AllowRotation {
		return response{}, badRequest("imported key was not created with allow_rotation: import a new version with keys/:name/import_version")
	}
	v, err := newVersion(k0.Type, s.cfg.Rand, k0.hmacBytes(), s.cfg.Now())
	if err != nil {
		return response{}, err
	}
	k, err := s.update(name, func(k *Key) error {
		k.LatestVersion++
		k.Versions[k.LatestVersion] = v
		return nil
	})
	if err != nil {
		return response{}, err
	}
	s.log.Info("key rotated", "name", name, "version", k.LatestVersion)
	return s.keyBody(k), nil
}

func (s *Service) exportPublic(rest []string) (response, error) {
	k, err := s.key(rest[0])
	if err != nil {
		return response{}, err
	}
	if !k.Type.signing() {
		return response{}, badRequest(fmt.Sprintf("key type %s has no public key", k.Type))
	}
	if k.Derived {
		return response{}, badRequest("a derived ed25519 key has one public key per context: read transit/keys/" + k.Name + " with the query parameter context=<base64>")
	}
	keys := map[string]string{}
	for n, v := range k.Versions {
		if len(rest) == 2 && rest[1] != "latest" && rest[1] != strconv.Itoa(n) {
			continue
		}
		if len(rest) == 2 && rest[1] == "latest" && n != k.LatestVersion {
			continue
		}
		pub, err := v.exportPublic(k.Type)
		if err != nil {
			return response{}, err
		}
		keys[strconv.Itoa(n)] = pub
	}
	if len(keys) == 0 {
		return response{}, notFound("no such key version")
	}
	return response{data: map[string]any{"name": k.Name, "type": string(k.Type), "keys": keys}}, nil
}

func (s *Service) random(req *request, rest []string) (response, error) {
	if err := fieldsRandom.check(req.body); err != nil {
		return response{}, err
	}
	// The enclave's own generator is Vault's "platform" source; there is
	// no seal device to draw from.
	if src, err := req.str("source"); err != nil {
		return response{}, err
	} else if src != "" && src != "platform" {
		return response{}, badRequest(fmt.Sprintf("field \"source\": only \"platform\" is supported by kmsd, not %q", src))
	}
	n := 32
	// The path is random[/:source][/:bytes].
	if len(rest) > 0 {
		switch rest[0] {
		case "platform":
			rest = rest[1:]
		case "seal", "all":
			return response{}, badRequest(fmt.Sprintf("source %q: only \"platform\" is supported by kmsd", rest[0]))
		}
	}
	if len(rest) > 1 {
		return response{}, notFound("unsupported path")
	}
	if len(rest) == 1 {
		v, err := strconv.Atoi(rest[0])
		if err != nil {
			return response{}, badRequest("bytes must be a number")
		}
		n = v
	}
	if v, ok, err := req.integer("bytes"); err != nil {
		return response{}, err
	} else if ok {
		n = v
	}
	if n < 1 || n > 1<<16 {
		return response{}, badRequest("bytes must be between 1 and 65536")
	}
	format, err := req.str("format")
	if err != nil {
		return response{}, err
	}
	b, err := randomBytes(s.cfg.Rand, n)
	if err != nil {
		return response{}, err
	}
	switch format {
	case "", "base64":
		return response{data: map[string]any{"random_bytes": base64.StdEncoding.EncodeToString(b)}}, nil
	case "hex":
		return response{data: map[string]any{"random_bytes": hex.EncodeToString(b)}}, nil
	}
	return response{}, badRequest("format must be base64 or hex")
}

var (
	fieldsTrim        = fields{known: []string{"min_available_version"}}
	fieldsHash        = fields{known: []string{"input", "algorithm", "format"}}
	fieldsCacheConfig = fields{known: []string{"size"}}
)

// trimKey deletes the key material of versions below
// min_available_version, which must not be above min_decryption_version
// nor min_encryption_version (Vault's rule); nothing can use them after.
func (s *Service) trimKey(req *request, name string) (response, error) {
	if err := fieldsTrim.check(req.body); err != nil {
		return response{}, err
	}
	n, ok, err := req.integer("min_available_version")
	if err != nil {
		return response{}, err
	}
	if !ok || n < 1 {
		return response{}, badRequest("missing or invalid field \"min_available_version\": give a version of 1 or more")
	}
	k, err := s.update(name, func(k *Key) error {
		switch {
		case n > k.MinDecryptionVersion:
			return badRequest(fmt.Sprintf("field \"min_available_version\" cannot be above min_decryption_version %d", k.MinDecryptionVersion))
		case k.MinEncryptionVersion > 0 && n > k.MinEncryptionVersion:
			return badRequest(fmt.Sprintf("field \"min_available_version\" cannot be above min_encryption_version %d", k.MinEncryptionVersion))
		case n < k.MinAvailableVersion:
			return badRequest(fmt.Sprintf("field \"min_available_version\" cannot go back below %d", k.MinAvailableVersion))
		}
		for v := range k.Versions {
			if v < n {
				delete(k.Versions, v)
			}
		}
		k.MinAvailableVersion = n
		return nil
	})
	if err != nil {
		return response{}, err
	}
	s.log.Info("key trimmed", "name", name, "min_available_version", n)
	return s.keyBody(k), nil
}

// hash is transit/hash[/:algorithm] and sys/tools/hash[/:algorithm]:
// {input, algorithm (sha2-256 default), format (hex default, base64)}.
func (s *Service) hash(req *request, rest []string) (response, error) {
	if err := fieldsHash.check(req.body); err != nil {
		return response{}, err
	}
	alg := ""
	if len(rest) == 1 {
		alg = rest[0]
	}
	if a, err := req.str("algorithm"); err != nil {
		return response{}, err
	} else if a != "" {
		alg = a
	}
	if alg == "" {
		alg = "sha2-256"
	}
	_, newHash, err := hashFor(alg)
	if err != nil {
		return response{}, err
	}
	raw, ok := req.body["input"]
	if !ok || string(raw) == "null" {
		return response{}, badRequest("missing field \"input\"")
	}
	in, err := req.b64("input")
	if err != nil {
		return response{}, err
	}
	format, err := req.str("format")
	if err != nil {
		return response{}, err
	}
	h := newHash()
	h.Write(in)
	sum := h.Sum(nil)
	switch format {
	case "", "hex":
		return response{data: map[string]any{"sum": hex.EncodeToString(sum)}}, nil
	case "base64":
		return response{data: map[string]any{"sum": base64.StdEncoding.EncodeToString(sum)}}, nil
	}
	return response{}, badRequest(fmt.Sprintf("field \"format\": %q is not hex or base64", format))
}

// cacheConfig is transit/cache-config. kmsd keeps every key in enclave
// memory: there is no policy cache to size, so the size reads as 0
// (Vault's "unlimited") and only 0 can be written.
func (s *Service) cacheConfig(req *request) (response, error) {
	switch req.method {
	case "GET":
		return response{data: map[string]any{"size": 0}}, nil
	case "POST", "PUT":
		if err := fieldsCacheConfig.check(req.body); err != nil {
			return response{}, err
		}
		n, _, err := req.integer("size")
		if err != nil {
			return response{}, err
		}
		if n != 0 {
			return response{}, badRequest("field \"size\": kmsd keeps every key in enclave memory, so only 0 (unlimited) is accepted")
		}
		return response{data: map[string]any{"size": 0}}, nil
	}
	return response{}, &Error{Status: http.StatusMethodNotAllowed, Msg: "unsupported operation"}
}
