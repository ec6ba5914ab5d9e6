package jsplace

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var placement = &jetstream.APIError{Code: 400, ErrorCode: noSuitablePeers, Description: "no suitable peers for placement"}

func TestRetryWaitsOutPlacement(t *testing.T) {
	calls := 0
	err := Retry(context.Background(), func() error {
		if calls++; calls < 3 {
			return fmt.Errorf("creating: %w", placement)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("err %v after %d calls, want nil after 3", err, calls)
	}
}

func TestRetryStopsOnOtherErrors(t *testing.T) {
	other := &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamNameInUse}
	calls := 0
	err := Retry(context.Background(), func() error { calls++; return other })
	if !errors.Is(err, other) || calls != 1 {
		t.Fatalf("err %v after %d calls, want the error after 1", err, calls)
	}
}

func TestRetryGivesUpWithTheContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 600*time.Millisecond)
	defer cancel()
	calls := 0
	err := Retry(ctx, func() error { calls++; return nats.ErrNoResponders })
	if !errors.Is(err, nats.ErrNoResponders) || calls < 2 {
		t.Fatalf("err %v after %d calls, want the last error after several", err, calls)
	}
}
