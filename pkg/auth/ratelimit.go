package auth

import (
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// RateLimit is how many requests a caller may make: Rate a second on
// average, Burst at once. A Rate of 0 or less limits nothing.
type RateLimit struct {
	Rate  float64
	Burst int
}

// String says the limit in words safe to give the caller.
func (r RateLimit) String() string {
	return fmt.Sprintf("at most %g requests a second per caller (bursts of %d)", r.Rate, r.Burst)
}

// MaxCallers bounds the callers a Limiter keeps at once (a few MiB);
// beyond it the bucket of some caller is forgotten (that caller starts again
// with a full bucket), so memory stays bounded whatever the number of
// callers.
const MaxCallers = 100_000

// Limiter is a token bucket (golang.org/x/time/rate) per caller: tenant and
// subject of the principal. The buckets of idle callers are dropped: a
// caller idle for the time its bucket takes to fill is where a new bucket
// starts, so dropping it changes nothing for the caller.
type Limiter struct {
	limit RateLimit
	now   func() time.Time
	// full is how long an empty bucket takes to fill.
	full time.Duration
	// most is how many callers' buckets are kept at once (MaxCallers).
	most int

	mu      sync.Mutex
	callers map[string]*caller
	// sweepAt is the number of callers at which idle ones are next dropped.
	sweepAt int
}

type caller struct {
	bucket *rate.Limiter
	seen   time.Time
}

// NewLimiter returns a limiter of l per caller, on the clock now (time.Now
// when nil). A Rate of 0 or less returns nil: a nil *Limiter admits every
// call.
func NewLimiter(l RateLimit, now func() time.Time) *Limiter {
	if l.Rate <= 0 {
		return nil
	}
	l.Burst = max(l.Burst, 1)
	if now == nil {
		now = time.Now
	}
	full := time.Duration(float64(l.Burst) / l.Rate * float64(time.Second))
	return &Limiter{limit: l, now: now, full: max(full, time.Second), most: MaxCallers, callers: map[string]*caller{}, sweepAt: 1024}
}

// Limit returns the limit (zero for a nil limiter).
func (l *Limiter) Limit() RateLimit {
	if l == nil {
		return RateLimit{}
	}
	return l.limit
}

// Allow takes one request of p's bucket. When the bucket is empty it
// takes nothing and returns false with how long until a request would be
// admitted.
func (l *Limiter) Allow(p Principal) (time.Duration, bool) {
	if l == nil {
		return 0, true
	}
	key := p.Tenant + "\x00" + p.Subject
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.callers[key]
	if !ok {
		l.makeRoom(now)
		c = &caller{bucket: rate.NewLimiter(rate.Limit(l.limit.Rate), l.limit.Burst)}
		l.callers[key] = c
	}
	c.seen = now
	r := c.bucket.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return d, false
	}
	return 0, true
}

// Callers returns how many callers' buckets the limiter keeps.
func (l *Limiter) Callers() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.callers)
}

// makeRoom drops idle callers once their number doubled since the last
// sweep (amortised: each caller is looked at a bounded number of times),
// and some caller when MaxCallers are all active.
func (l *Limiter) makeRoom(now time.Time) {
	if len(l.callers) >= l.sweepAt {
		for k, c := range l.callers {
			if now.Sub(c.seen) >= l.full {
				delete(l.callers, k)
			}
		}
		l.sweepAt = min(max(1024, 2*len(l.callers)), l.most)
	}
	for k := range l.callers {
		if len(l.callers) < l.most {
			break
		}
		delete(l.callers, k)
	}
}

// Admit takes one request of p's bucket, or returns ResourceExhausted with
// the time to wait in a RetryInfo detail.
func (l *Limiter) Admit(p Principal) error {
	wait, ok := l.Allow(p)
	if ok {
		return nil
	}
	st := status.New(codes.ResourceExhausted, fmt.Sprintf("rate limit: %s; retry in %s", l.Limit(), wait.Round(time.Millisecond)))
	if withRetry, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(wait)}); err == nil {
		st = withRetry
	}
	return st.Err()
}
