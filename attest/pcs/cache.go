package pcs

import (
	"context"
	"sync"
	"time"

	"github.com/sharedenclave/sharedenclave/attest/dcap"
)

// Cache keeps what a Getter returned until the earliest nextUpdate of its
// TCB info and QE identity, or MaxAge, whichever is first. Verification
// still checks every date: the cache only saves fetching.
type Cache struct {
	Getter dcap.Getter
	// Now is the clock for expiry; nil means time.Now.
	Now func() time.Time
	// MaxAge bounds how long an entry is kept, so that a new CRL is
	// picked up; zero means one hour.
	MaxAge time.Duration

	mu      sync.Mutex
	entries map[cacheKey]cacheEntry
}

type cacheKey struct {
	fmspc [6]byte
	ca    dcap.CA
}

type cacheEntry struct {
	c       *dcap.Collateral
	expires time.Time
}

var _ dcap.Getter = (*Cache)(nil)

func (c *Cache) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// GetCollateral returns cached collateral while it is current and fetches
// it otherwise.
func (c *Cache) GetCollateral(ctx context.Context, fmspc [6]byte, ca dcap.CA) (*dcap.Collateral, error) {
	key := cacheKey{fmspc, ca}
	now := c.now()
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && now.Before(e.expires) {
		c.mu.Unlock()
		return e.c, nil
	}
	c.mu.Unlock()

	col, err := c.Getter.GetCollateral(ctx, fmspc, ca)
	if err != nil {
		return nil, err
	}
	maxAge := c.MaxAge
	if maxAge == 0 {
		maxAge = time.Hour
	}
	expires := now.Add(maxAge)
	if ti, err := dcap.ParseTCBInfo(col.TCBInfo); err == nil && ti.NextUpdate.Before(expires) {
		expires = ti.NextUpdate
	}
	if qi, err := dcap.ParseQEIdentity(col.QEIdentity); err == nil && qi.NextUpdate.Before(expires) {
		expires = qi.NextUpdate
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[cacheKey]cacheEntry{}
	}
	c.entries[key] = cacheEntry{col, expires}
	c.mu.Unlock()
	return col, nil
}
