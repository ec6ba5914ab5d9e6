package kms

import (
	"errors"
	"strings"
	"testing"

	"github.com/sharedenclave/sharedenclave/store"
)

// openKMS opens the store in dir and a Service on it, without
// bootstrapping; close with st.Close.
func openKMS(t *testing.T, dir string, logs *syncBuf) (*Service, *store.Store) {
	t.Helper()
	return openKMSOn(t, dir, logs, true)
}

// openKMSOn opens the service as if on the simulated platform, or not.
func openKMSOn(t *testing.T, dir string, logs *syncBuf, simulated bool) (*Service, *store.Store) {
	t.Helper()
	st, err := store.Open(store.Options{Dir: dir, Root: testRoot(t), Purpose: "kms"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: st, Audit: &syncBuf{}, Attestation: &AttestationInfo{Simulated: simulated}}
	if logs != nil {
		cfg.Logger = slogTo(logs)
	}
	svc, err := New(cfg)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return svc, st
}

func storedTokens(t *testing.T, st *store.Store) int {
	n := 0
	st.Scan(kindToken, nil, func(_, _ []byte, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		n++
		return nil
	})
	return n
}

func isRoot(svc *Service, tok string) bool {
	t := svc.lookupToken(tok)
	return t != nil && svc.allowed(t.Policies, "transit/keys/x", capUpdate)
}

// TestBootstrapAllOrNothing: the root token is committed only after it
// was delivered; a failed delivery commits nothing, so the next start
// bootstraps again instead of coming up with a root nobody holds.
func TestBootstrapAllOrNothing(t *testing.T) {
	dir := t.TempDir()
	svc, st := openKMS(t, dir, nil)
	created, err := svc.Bootstrap(func(tok, rec string) error {
		if storedTokens(t, st) != 0 {
			t.Error("a token was committed before its delivery finished")
		}
		return errors.New("open root.token: file exists")
	})
	if err == nil || created || !strings.Contains(err.Error(), "nothing was committed") {
		t.Fatalf("Bootstrap with a failing delivery: %v %v", created, err)
	}
	if storedTokens(t, st) != 0 || len(svc.tokens) != 0 {
		t.Fatal("a failed delivery left a root token behind")
	}
	st.Close()

	// Second start: still no root, so it bootstraps (and delivers) again.
	svc, st = openKMS(t, dir, nil)
	var tok, rec string
	created, err = svc.Bootstrap(func(t1, r1 string) error { tok, rec = t1, r1; return nil })
	if err != nil || !created || tok == "" || rec == "" || tok == rec {
		t.Fatalf("second start: %v %v %q %q", created, err, tok, rec)
	}
	st.Close()

	// Third start: the delivered token is the root, and nothing is delivered again.
	svc, st = openKMS(t, dir, nil)
	defer st.Close()
	if created, err := svc.Bootstrap(func(string, string) error { t.Error("delivered twice"); return nil }); err != nil || created {
		t.Fatalf("third start: %v %v", created, err)
	}
	if !isRoot(svc, tok) {
		t.Fatal("the delivered token is not the root token")
	}
}

// TestGenerateRoot replaces a lost root token with the recovery key, once.
func TestGenerateRoot(t *testing.T) {
	dir := t.TempDir()
	svc, st := openKMS(t, dir, nil)
	var oldRoot, rec string
	if _, err := svc.Bootstrap(func(t1, r1 string) error { oldRoot, rec = t1, r1; return nil }); err != nil {
		t.Fatal(err)
	}
	svc.mu.Lock()
	childRoot, _ := svc.createToken([]string{"root"}) // as auth/token/create makes them
	app, _ := svc.createToken([]string{"app"})
	svc.mu.Unlock()
	st.Close()

	svc, st = openKMS(t, dir, nil)
	fail := func(string, string) error { t.Error("delivered despite a refused recovery"); return nil }
	if err := svc.GenerateRoot(func() (string, error) { return "ser.wrong", nil }, fail); !errors.Is(err, ErrBadRecoveryKey) {
		t.Fatalf("wrong recovery key: %v", err)
	}
	if !isRoot(svc, oldRoot) {
		t.Fatal("a refused generate-root changed the root token")
	}
	var newRoot, newRec string
	if err := svc.GenerateRoot(func() (string, error) { return rec, nil }, func(t1, r1 string) error { newRoot, newRec = t1, r1; return nil }); err != nil {
		t.Fatal(err)
	}
	if newRoot == "" || newRec == "" || newRec == rec || newRoot == oldRoot {
		t.Fatal("generate-root did not hand over a new token and recovery key")
	}
	st.Close()

	svc, st = openKMS(t, dir, nil)
	defer st.Close()
	if !isRoot(svc, newRoot) || svc.lookupToken(oldRoot) != nil || svc.lookupToken(childRoot) != nil {
		t.Fatal("after generate-root: the new root must work and every old root token be revoked")
	}
	if svc.lookupToken(app) == nil {
		t.Error("generate-root revoked a token without the root policy")
	}
	if err := svc.GenerateRoot(func() (string, error) { return rec, nil }, fail); !errors.Is(err, ErrBadRecoveryKey) {
		t.Fatalf("a used recovery key worked again: %v", err)
	}
}

// TestGenerateRootLegacyStoreRefusedUnderSGX: without the simulated
// platform, nothing proves the caller of generate-root on a store without
// a recovery key is the operator and not the host: refused, nothing
// delivered, nothing changed.
func TestGenerateRootLegacyStoreRefusedUnderSGX(t *testing.T) {
	dir := t.TempDir()
	svc, st := openKMSOn(t, dir, nil, false)
	svc.mu.Lock()
	_, err := svc.createToken([]string{"root"}) // what the old Bootstrap did
	svc.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	svc, st = openKMSOn(t, dir, nil, false)
	defer st.Close()
	err = svc.GenerateRoot(func() (string, error) { return "", nil }, func(string, string) error { t.Error("delivered"); return nil })
	if err == nil || !strings.Contains(err.Error(), "older than recovery keys") {
		t.Fatalf("keyless generate-root on an SGX store: %v", err)
	}
	if n := storedTokens(t, st); n != 1 {
		t.Errorf("%d tokens stored after a refused generate-root, want the 1 there was", n)
	}
}

// TestGenerateRootLegacyStore: a simulated store from before recovery
// keys, whose root token nobody received (the lockout), is
// recoverable.
func TestGenerateRootLegacyStore(t *testing.T) {
	dir := t.TempDir()
	svc, st := openKMS(t, dir, nil)
	svc.mu.Lock()
	lost, err := svc.createToken([]string{"root"}) // what the old Bootstrap did
	svc.policies["app"] = &aclPolicy{Name: "app"}
	child, _ := svc.createToken([]string{"app"})
	svc.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	logs := &syncBuf{}
	svc, st = openKMS(t, dir, logs)
	if created, err := svc.Bootstrap(func(string, string) error { return errors.New("not called") }); err != nil || created {
		t.Fatalf("restart of a legacy store: %v %v", created, err)
	}
	if !strings.Contains(logs.String(), "--generate-root") {
		t.Error("no hint that a legacy store can be recovered")
	}
	var root, rec string
	err = svc.GenerateRoot(func() (string, error) {
		t.Error("asked for a recovery key a legacy store does not have")
		return "", nil
	},
		func(t1, r1 string) error { root, rec = t1, r1; return nil })
	if err != nil || rec == "" || !isRoot(svc, root) || svc.lookupToken(lost) != nil {
		t.Fatalf("legacy generate-root: %v", err)
	}
	if svc.lookupToken(child) == nil {
		t.Fatal("migration revoked a token without the root policy")
	}
	st.Close()
	// From now on the store has a recovery key, and it is required.
	svc, st = openKMS(t, dir, nil)
	if err := svc.GenerateRoot(func() (string, error) { return "", errors.New("no key") }, nil); err == nil {
		t.Fatal("generate-root without the recovery key after migration")
	}
	// Deleting the recovery record and the new root token leaves only the
	// old child token: it was marked at migration, so the store does not
	// pass for one from before recovery keys again.
	h := tokenHash(root)
	if err := st.Delete(kindToken, h[:], store.Sync); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(kindRecovery, []byte(recoveryKeyName), store.Sync); err != nil {
		t.Fatal(err)
	}
	st.Close()
	svc, st = openKMS(t, dir, nil)
	defer st.Close()
	if svc.lookupToken(child) == nil {
		t.Fatal("the child token did not survive")
	}
	if err := svc.GenerateRoot(func() (string, error) { return "", nil }, func(string, string) error { t.Error("delivered"); return nil }); !errors.Is(err, ErrRecordsMissing) {
		t.Fatalf("generate-root after the host deleted the recovery record and the root token: %v", err)
	}
}

// TestLostRecordsRefused: deleting token or recovery records (the host
// can) neither lets a new root be bootstrapped over existing keys nor
// turns the store into a legacy one that needs no recovery key.
func TestLostRecordsRefused(t *testing.T) {
	deleteAll := func(t *testing.T, st *store.Store, kind string) {
		var keys [][]byte
		st.Scan(kind, nil, func(k, _ []byte, _ error) error { keys = append(keys, append([]byte(nil), k...)); return nil })
		for _, k := range keys {
			if err := st.Delete(kind, k, store.Sync); err != nil {
				t.Fatal(err)
			}
		}
	}
	setup := func(t *testing.T) string {
		dir := t.TempDir()
		k := startKMS(t, dir, nil)
		mustWrite(t, k.vaultClient(t, k.root), "transit/keys/precious", nil)
		k.stop()
		return dir
	}
	nope := func(string, string) error {
		t.Error("delivered a root token for a store that lost records")
		return nil
	}
	anyKey := func() (string, error) { return "ser.guess", nil }

	t.Run("tokens and recovery deleted", func(t *testing.T) {
		dir := setup(t)
		_, st := openKMS(t, dir, nil)
		deleteAll(t, st, kindToken)
		deleteAll(t, st, kindRecovery)
		st.Close()
		svc, st := openKMS(t, dir, nil)
		defer st.Close()
		if _, err := svc.Bootstrap(nope); !errors.Is(err, ErrRecordsMissing) {
			t.Errorf("Bootstrap over existing keys: %v", err)
		}
		if err := svc.GenerateRoot(anyKey, nope); !errors.Is(err, ErrRecordsMissing) {
			t.Errorf("GenerateRoot: %v", err)
		}
	})
	t.Run("recovery deleted", func(t *testing.T) {
		dir := setup(t)
		_, st := openKMS(t, dir, nil)
		deleteAll(t, st, kindRecovery)
		st.Close()
		svc, st := openKMS(t, dir, nil)
		defer st.Close()
		if err := svc.GenerateRoot(anyKey, nope); !errors.Is(err, ErrRecordsMissing) {
			t.Errorf("GenerateRoot after the recovery record was deleted: %v", err)
		}
	})
}

// TestBootstrapMemoryOnly: without a store there is no recovery key.
func TestBootstrapMemoryOnly(t *testing.T) {
	svc, err := New(Config{Audit: &syncBuf{}})
	if err != nil {
		t.Fatal(err)
	}
	var tok, rec string
	if created, err := svc.Bootstrap(func(t1, r1 string) error { tok, rec = t1, r1; return nil }); err != nil || !created || tok == "" || rec != "" {
		t.Fatalf("%v %v %q %q", created, err, tok, rec)
	}
	if err := svc.GenerateRoot(nil, nil); err == nil {
		t.Fatal("generate-root on a memory-only service")
	}
}
