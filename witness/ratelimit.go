package witness

import (
	"sync"
	"time"
)

// RateLimit returns a limiter for [Config.Limit]: each origin may make
// burst requests at once and perSecond more each second on average (a token
// bucket per origin). A log pushing one checkpoint a second, with the
// occasional 409 retry, needs a rate of 2 to 4.
func RateLimit(perSecond float64, burst int) func(origin string) bool {
	l := &limiter{rate: perSecond, burst: float64(burst), now: time.Now, buckets: map[string]*bucket{}}
	return l.allow
}

type limiter struct {
	rate, burst float64
	now         func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func (l *limiter) allow(origin string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b, ok := l.buckets[origin]
	if !ok {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[origin] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
