package pluginhost

// The backoff's arithmetic, which needs no server; the retries themselves are tested against
// the real host in client_test.go.

import (
	"context"
	"net/http"
	"testing"
	"time"
)

func TestBackoffDoublesUpToItsCapWithJitterAndHonoursRetryAfter(t *testing.T) {
	policy := RetryPolicy{InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}.withDefaults()
	j := newJitter()
	ctx := context.Background()
	for attempt, full := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for i := 0; i < 100; i++ {
			wait, ok := policy.delay(ctx, j, attempt, 0)
			if !ok || wait > full || wait < full/2 {
				t.Fatalf("attempt %d: waited %v, want between %v and %v", attempt, wait, full/2, full)
			}
		}
	}
	if wait, ok := policy.delay(ctx, j, 1, 3*time.Second); !ok || wait != 3*time.Second {
		t.Fatalf("a Retry-After of 3 s above the backoff: waited %v", wait)
	}
	if _, ok := policy.delay(ctx, j, 1, time.Minute); ok {
		t.Fatal("a Retry-After over MaxRetryAfter (30 s by default) must end the retries")
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, ok := policy.delay(short, j, 1, time.Second); ok {
		t.Fatal("a wait past the context's deadline must end the retries")
	}
}

func TestRetryAfterIsSecondsOrAnHTTPDate(t *testing.T) {
	now := time.Date(2026, 12, 4, 2, 0, 0, 0, time.UTC)
	for value, want := range map[string]time.Duration{
		"":    0,
		"1":   time.Second,
		"120": 2 * time.Minute,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
		"soon": 0,
		"-5":   0,
	} {
		if got := parseRetryAfter(value, now); got != want {
			t.Errorf("Retry-After %q: got %v, want %v", value, got, want)
		}
	}
}

func TestZeroFieldsTakeTheDefaults(t *testing.T) {
	if got := (RetryPolicy{}).withDefaults(); got.MaxAttempts != 4 || got.InitialBackoff != 100*time.Millisecond ||
		got.MaxBackoff != 5*time.Second || got.MaxRetryAfter != 30*time.Second {
		t.Fatalf("defaults: %+v", got)
	}
	if NoRetry.withDefaults().MaxAttempts != 1 {
		t.Fatal("NoRetry makes one attempt")
	}
}
