package kms

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/sharedenclave/sharedenclave/store"
)

// memStorage is a Storage in memory with compare-and-set and no batches
// (the shape of shared storage), whose writes can be made to fail.
type memStorage struct {
	mu   sync.Mutex
	vals map[string][]byte
	revs map[string]uint64
	next uint64
	// failAfter, when > 0, fails every write after that many more.
	failAfter int
}

var errInjected = errors.New("injected storage failure")

func newMemStorage() *memStorage {
	return &memStorage{vals: map[string][]byte{}, revs: map[string]uint64{}}
}

func (m *memStorage) Blind(name string) []byte { return []byte("blind:" + name) }

func (m *memStorage) Get(kind string, key []byte) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.vals[recKey(kind, key)]
	if !ok {
		return nil, 0, store.ErrNotFound
	}
	return v, m.revs[recKey(kind, key)], nil
}

func (m *memStorage) write(kind string, key, value []byte, rev uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failAfter > 0 {
		if m.failAfter == 1 {
			return 0, errInjected
		}
		m.failAfter--
	}
	rk := recKey(kind, key)
	if m.revs[rk] != rev {
		return 0, ErrConflict
	}
	m.next++
	m.revs[rk] = m.next
	if value == nil {
		delete(m.vals, rk)
	} else {
		m.vals[rk] = value
	}
	return m.next, nil
}

func (m *memStorage) Put(kind string, key, value []byte, rev uint64) (uint64, error) {
	return m.write(kind, key, value, rev)
}

func (m *memStorage) Delete(kind string, key []byte, rev uint64) (uint64, error) {
	return m.write(kind, key, nil, rev)
}

func (m *memStorage) Scan(kind string, fn func(key, value []byte, rev uint64, err error) error) error {
	m.mu.Lock()
	var keys []string
	for rk := range m.vals {
		if strings.HasPrefix(rk, kind+"\x00") {
			keys = append(keys, rk)
		}
	}
	m.mu.Unlock()
	for _, rk := range keys {
		v, rev, err := m.Get(kind, []byte(strings.TrimPrefix(rk, kind+"\x00")))
		if err := fn([]byte(strings.TrimPrefix(rk, kind+"\x00")), v, rev, err); err != nil {
			return err
		}
	}
	return nil
}

// TestRevocationPartWayOnStorageWithoutBatches: storage that commits a
// revocation one record at a time fails after the child's deletion. The
// child is refused at once (it is gone from storage and from the copy),
// the parent stays valid and the request says it failed; a retry
// finishes the job. A service started afresh on the same storage agrees.
func TestRevocationPartWayOnStorageWithoutBatches(t *testing.T) {
	m := newMemStorage()
	svc, err := New(Config{Storage: m, Audit: &syncBuf{}})
	if err != nil {
		t.Fatal(err)
	}
	var root string
	if _, err := svc.Bootstrap(func(tok, _ string) error { root = tok; return nil }); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(svc.Handler())
	defer srv.Close()
	k := &testKMS{svc: svc, srv: srv, root: root}
	c := k.vaultClient(t, root)
	parent, err := c.Auth().Token().Create(nil)
	if err != nil {
		t.Fatal(err)
	}
	child, err := k.vaultClient(t, parent.Auth.ClientToken).Auth().Token().Create(nil)
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.failAfter = 2 // the child's deletion succeeds, the parent's fails
	m.mu.Unlock()
	if err := c.Auth().Token().RevokeTree(parent.Auth.ClientToken); err == nil {
		t.Fatal("a revocation that failed part way answered success")
	}
	if _, err := k.vaultClient(t, child.Auth.ClientToken).Auth().Token().LookupSelf(); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("the child, deleted from storage, still works: %v", err)
	}
	if _, err := k.vaultClient(t, parent.Auth.ClientToken).Auth().Token().LookupSelf(); err != nil {
		t.Fatalf("the parent, not yet revoked, is refused: %v", err)
	}
	fresh, err := New(Config{Storage: m, Audit: &syncBuf{}})
	if err != nil {
		t.Fatal(err)
	}
	if fresh.lookupToken(child.Auth.ClientToken) != nil || fresh.lookupToken(parent.Auth.ClientToken) == nil {
		t.Fatal("a service loading the storage sees another state")
	}
	m.mu.Lock()
	m.failAfter = 0
	m.mu.Unlock()
	if err := c.Auth().Token().RevokeTree(parent.Auth.ClientToken); err != nil {
		t.Fatal(err)
	}
	if _, err := k.vaultClient(t, parent.Auth.ClientToken).Auth().Token().LookupSelf(); err == nil {
		t.Fatal("the parent works after its revocation")
	}
}

// TestConflictingWriteRetried: a record changed behind the service's
// back (as another replica would) makes the next write lose its
// compare-and-set; without shared storage's watch the retries cannot
// catch up, and the request answers 503 having changed nothing.
func TestConflictingWriteRetried(t *testing.T) {
	m := newMemStorage()
	svc, err := New(Config{Storage: m, Audit: &syncBuf{}})
	if err != nil {
		t.Fatal(err)
	}
	var root string
	if _, err := svc.Bootstrap(func(tok, _ string) error { root = tok; return nil }); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(svc.Handler())
	defer srv.Close()
	k := &testKMS{svc: svc, srv: srv, root: root}
	mustWrite(t, k.vaultClient(t, root), "transit/keys/k", nil)
	v, rev, err := m.Get(kindKey, m.Blind("k"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Put(kindKey, m.Blind("k"), v, rev); err != nil { // another "replica" rewrites it
		t.Fatal(err)
	}
	st, _ := k.raw(t, "POST", "/v1/transit/keys/k/rotate", root, "")
	if st != http.StatusServiceUnavailable {
		t.Fatalf("rotate against a record changed elsewhere: %d", st)
	}
	if d := mustRead(t, k, "transit/keys/k"); fmt.Sprint(d["latest_version"]) != "1" {
		t.Fatalf("a failed rotation changed the key: %v", d["latest_version"])
	}
}

func mustRead(t *testing.T, k *testKMS, path string) map[string]any {
	t.Helper()
	s, err := k.vaultClient(t, k.root).Logical().Read(path)
	if err != nil {
		t.Fatal(err)
	}
	return s.Data
}
