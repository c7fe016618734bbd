package pluginhost

import (
	"context"
	"math/rand"
	"sync"
	"time"
)

// RetryPolicy says how transient failures are retried (see the package documentation for
// which requests are). A zero field takes the default shown in [DefaultRetryPolicy].
type RetryPolicy struct {
	// MaxAttempts is the most attempts of one request, the first included; 1 turns retries
	// off. Default: 4.
	MaxAttempts int
	// InitialBackoff is the delay before the first retry; each further retry doubles it, and
	// a random part of up to half of it is taken off (jitter), so that clients that failed
	// together do not retry together. Default: 100 ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the doubling. Default: 5 s.
	MaxBackoff time.Duration
	// MaxRetryAfter is the longest Retry-After honoured: a host asking for a longer wait (a
	// quarantined plugin, say) gets no retry, and the error is returned at once. Default: 30 s.
	MaxRetryAfter time.Duration
	// Notify, when set, is called before each retry with the failure and the delay before
	// the next attempt, for logging.
	Notify func(err error, delay time.Duration)
}

// DefaultRetryPolicy is the policy of a [Client] made without [WithRetryPolicy].
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:    4,
	InitialBackoff: 100 * time.Millisecond,
	MaxBackoff:     5 * time.Second,
	MaxRetryAfter:  30 * time.Second,
}

// NoRetry makes one attempt of every request.
var NoRetry = RetryPolicy{MaxAttempts: 1}

// withDefaults fills the zero fields from [DefaultRetryPolicy].
func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = DefaultRetryPolicy.MaxAttempts
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = DefaultRetryPolicy.InitialBackoff
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = DefaultRetryPolicy.MaxBackoff
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = DefaultRetryPolicy.MaxRetryAfter
	}
	return p
}

// jitter is the random source of the backoff, shared by a client's requests.
type jitter struct {
	mu   sync.Mutex
	rand *rand.Rand
}

func newJitter() *jitter {
	return &jitter{rand: rand.New(rand.NewSource(time.Now().UnixNano()))}
}

// below returns a random duration in [0, limit).
func (j *jitter) below(limit time.Duration) time.Duration {
	if limit <= 0 {
		return 0
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return time.Duration(j.rand.Int63n(int64(limit)))
}

// delay is how long to wait after the given failed attempt (1 for the first), or false when
// the failure must not be retried: its Retry-After is over MaxRetryAfter, or the context ends
// before the wait would.
func (p RetryPolicy) delay(ctx context.Context, j *jitter, attempt int, retryAfter time.Duration) (time.Duration, bool) {
	if retryAfter > p.MaxRetryAfter {
		return 0, false
	}
	backoff := p.InitialBackoff
	for i := 1; i < attempt && backoff < p.MaxBackoff; i++ {
		backoff *= 2
	}
	if backoff > p.MaxBackoff {
		backoff = p.MaxBackoff
	}
	wait := backoff - j.below(backoff/2+1)
	if wait < retryAfter {
		wait = retryAfter
	}
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
		return 0, false
	}
	return wait, true
}

// sleep waits for d, or until ctx ends (then it returns ctx's error).
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
