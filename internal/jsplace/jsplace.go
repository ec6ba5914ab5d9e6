// Package jsplace retries the creation of a replicated JetStream asset
// (a stream, a key-value bucket) while the cluster cannot place it yet:
// right after the servers start, or while a peer is being re-admitted,
// the meta leader answers "no suitable peers for placement" (10005), or
// no server answers at all. relayd and kmsd both create their assets at
// start, against clusters that may have started a moment before.
package jsplace

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Retry calls f until it succeeds, fails for another reason, or ctx is
// done (then it returns f's last error), waiting 250 ms between calls.
func Retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if err == nil || !Transient(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// noSuitablePeers is the JetStream API's error code for "no suitable
// peers for placement" (nats.go names no constant for it).
const noSuitablePeers jetstream.ErrorCode = 10005

// Transient reports whether err is one Retry waits out.
func Transient(err error) bool {
	var ae *jetstream.APIError
	return errors.As(err, &ae) && ae.ErrorCode == noSuitablePeers || errors.Is(err, nats.ErrNoResponders)
}
