package unseal

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	vault "github.com/hashicorp/vault/api"

	"github.com/sharedenclave/sharedenclave/custody"
	"github.com/sharedenclave/sharedenclave/custody/custodytest"
)

type deployment struct {
	dk     *custody.DataKey
	rec    *custody.Recovery
	shares []string // decrypted share texts
}

func newDeployment(t testing.TB, k, n int) *deployment {
	t.Helper()
	dk, rec, shares := custodytest.Deployment(t, k, n)
	return &deployment{dk: dk, rec: rec, shares: shares}
}

// serve runs a Handler over TLS and returns Vault's own client for it.
func serve(t *testing.T, d *deployment, open func(*custody.DataKey) error) (*Handler, *vault.Client) {
	t.Helper()
	h, err := New(Config{Recovery: d.rec, Open: open, Service: "kmsd", Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	cfg := vault.DefaultConfig()
	cfg.Address = srv.URL
	cfg.MaxRetries = 0
	cfg.HttpClient = srv.Client()
	c, err := vault.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return h, c
}

func TestUnsealWithVaultClient(t *testing.T) {
	d := newDeployment(t, 3, 5)
	var opened *custody.DataKey
	h, c := serve(t, d, func(dk *custody.DataKey) error { opened = dk; return nil })
	st, err := c.Sys().SealStatus()
	if err != nil {
		t.Fatal(err)
	}
	if !st.Sealed || st.T != 3 || st.N != 5 || st.Progress != 0 || st.Type != "shamir" || !st.Initialized {
		t.Fatalf("seal-status %+v", st)
	}
	for i, want := range []int{1, 2} {
		st, err := c.Sys().Unseal(d.shares[i+1])
		if err != nil || !st.Sealed || st.Progress != want {
			t.Fatalf("share %d: %+v %v", i+1, st, err)
		}
	}
	// The same share again counts once, as in Vault.
	if st, err := c.Sys().Unseal(d.shares[2]); err != nil || st.Progress != 2 {
		t.Fatalf("repeated share: %+v %v", st, err)
	}
	select {
	case <-h.Unsealed():
		t.Fatal("unsealed with 2 of 3 shares")
	default:
	}
	st, err = c.Sys().Unseal(d.shares[4])
	if err != nil || st.Sealed || st.Progress != 0 {
		t.Fatalf("third share: %+v %v", st, err)
	}
	<-h.Unsealed()
	if opened == nil || !opened.Equal(d.dk) {
		t.Fatal("Open was not given the data key")
	}
	if st, _ := c.Sys().SealStatus(); st.Sealed {
		t.Fatal("still sealed after unseal")
	}
}

func TestResetAndRefusals(t *testing.T) {
	d := newDeployment(t, 2, 3)
	other := newDeployment(t, 2, 3)
	calls := 0
	_, c := serve(t, d, func(*custody.DataKey) error { calls++; return nil })

	if st, err := c.Sys().Unseal(d.shares[0]); err != nil || st.Progress != 1 {
		t.Fatal(st, err)
	}
	if st, err := c.Sys().UnsealWithOptions(&vault.UnsealOpts{Reset: true}); err != nil || st.Progress != 0 || !st.Sealed {
		t.Fatal("reset", st, err)
	}
	// Another deployment's share, garbage, nothing: refused, not counted.
	for _, bad := range []string{other.shares[0], "not a share", d.shares[0] + " x"} {
		_, err := c.Sys().Unseal(bad)
		if err == nil {
			t.Fatalf("%.40q accepted", bad)
		}
		if f := strings.Fields(bad); len(f) >= 6 && strings.Contains(err.Error(), f[5]) {
			t.Fatalf("the error echoes the key: %v", err)
		}
	}
	if st, _ := c.Sys().SealStatus(); st.Progress != 0 {
		t.Fatalf("refused shares counted: %+v", st)
	}
	// A forged share (right deployment, wrong value) is found out at the
	// threshold: discarded, progress 0, Open never called.
	forgedText := forge(t, d.shares[1])
	c.Sys().Unseal(d.shares[0])
	if _, err := c.Sys().Unseal(forgedText); err == nil {
		t.Fatal("forged share opened the data key")
	}
	if st, _ := c.Sys().SealStatus(); st.Progress != 0 || !st.Sealed || calls != 0 {
		t.Fatalf("after a forged share: %+v, Open called %d times", st, calls)
	}
	// A second, different share under the same number is refused.
	c.Sys().Unseal(d.shares[1])
	if _, err := c.Sys().Unseal(forgedText); err == nil {
		t.Fatal("a different share #2 accepted")
	}
	if st, err := c.Sys().Unseal(d.shares[2]); err != nil || st.Sealed || calls != 1 {
		t.Fatalf("genuine shares: %+v %v (Open called %d times)", st, err, calls)
	}
}

// forge returns share with another value: well formed, right deployment.
func forge(t *testing.T, share string) string {
	f := strings.Fields(share)
	y := make([]byte, 32)
	rand.Read(y)
	f[5] = base64.RawURLEncoding.EncodeToString(y)
	s := strings.Join(f, " ") + "\n"
	if _, err := custody.ParseShare([]byte(s)); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestOpenFailureKeepsSealed(t *testing.T) {
	d := newDeployment(t, 2, 2)
	fail := true
	h, c := serve(t, d, func(*custody.DataKey) error {
		if fail {
			return errors.New("store refused")
		}
		return nil
	})
	c.Sys().Unseal(d.shares[0])
	if _, err := c.Sys().Unseal(d.shares[1]); err == nil {
		t.Fatal("Open failed but unseal succeeded")
	}
	if st, _ := c.Sys().SealStatus(); !st.Sealed || st.Progress != 0 {
		t.Fatalf("%+v", st)
	}
	fail = false
	c.Sys().Unseal(d.shares[1])
	if st, err := c.Sys().Unseal(d.shares[0]); err != nil || st.Sealed {
		t.Fatal(st, err)
	}
	<-h.Unsealed()
}

func TestSealedAnswersOtherPaths503(t *testing.T) {
	d := newDeployment(t, 2, 2)
	h, _ := New(Config{Recovery: d.rec, Open: func(*custody.DataKey) error { return nil }, Service: "kmsd"})
	rr := httptest.NewRecorder()
	h.ServeHTTP(rr, httptest.NewRequest("POST", "/v1/transit/encrypt/x", strings.NewReader("{}")))
	if rr.Code != http.StatusServiceUnavailable || !strings.Contains(rr.Body.String(), "sealed") {
		t.Fatalf("%d %s", rr.Code, rr.Body)
	}
}

func TestConcurrentUnseal(t *testing.T) {
	d := newDeployment(t, 3, 5)
	var mu sync.Mutex
	calls := 0
	h, c := serve(t, d, func(*custody.DataKey) error { mu.Lock(); calls++; mu.Unlock(); return nil })
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() { defer wg.Done(); c.Sys().Unseal(d.shares[i]) }()
	}
	wg.Wait()
	<-h.Unsealed()
	if calls != 1 {
		t.Fatalf("Open called %d times", calls)
	}
}

// FuzzUnsealBody: whatever the body, the handler answers, never panics,
// and never opens without k genuine shares.
func FuzzUnsealBody(f *testing.F) {
	d := newDeployment(f, 2, 3)
	f.Add([]byte(`{"key":"` + strings.TrimSpace(d.shares[0]) + `"}`))
	f.Add([]byte(`{"reset":true}`))
	f.Add([]byte(`{"key":""}`))
	f.Add([]byte(`{"migrate":true,"key":"x"}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		h, err := New(Config{Recovery: d.rec, Open: func(*custody.DataKey) error {
			t.Fatal("opened by fuzzed input")
			return nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			rr := httptest.NewRecorder()
			h.ServeHTTP(rr, httptest.NewRequest("PUT", "/v1/sys/unseal", bytes.NewReader(body)))
			if rr.Code != 200 && rr.Code != 400 {
				t.Fatalf("status %d", rr.Code)
			}
		}
	})
}
