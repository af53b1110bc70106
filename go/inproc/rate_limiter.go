package inproc

import (
	"context"
	"math"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter is the guide's code as printed (应用层优化 › 并发优化 › 限流器). Its Close stops
// the ticker, but the goroutine ranging over ticker.C never ends (Stop does not close the
// channel): each closed limiter leaks a goroutine, as written.
type RateLimiter struct {
	tokens chan struct{}
	ticker *time.Ticker
}

func NewRateLimiter(rate int) *RateLimiter {
	rl := &RateLimiter{
		tokens: make(chan struct{}, rate),
		ticker: time.NewTicker(time.Second / time.Duration(rate)),
	}

	// 初始填充令牌
	for i := 0; i < rate; i++ {
		rl.tokens <- struct{}{}
	}

	// 定期添加令牌
	go func() {
		for range rl.ticker.C {
			select {
			case rl.tokens <- struct{}{}:
			default:
				// 令牌桶已满
			}
		}
	}()

	return rl
}

func (rl *RateLimiter) Wait(ctx context.Context) error {
	select {
	case <-rl.tokens:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (rl *RateLimiter) Close() {
	rl.ticker.Stop()
}

// TryAcquire takes a token if one is there, without waiting (for measuring bursts).
func (rl *RateLimiter) TryAcquire() bool {
	select {
	case <-rl.tokens:
		return true
	default:
		return false
	}
}

// Limiter is what the rate experiment asks of a limiter.
type Limiter interface {
	Wait(ctx context.Context) error
	TryAcquire() bool
	Close()
}

// XRate is the fix a Go engineer reaches for: golang.org/x/time/rate, a token bucket computed
// from the clock at each call (no goroutine, nothing to close), burst = rate as the guide's
// bucket holds rate tokens.
type XRate struct{ l *rate.Limiter }

func NewXRate(r int) XRate {
	return XRate{rate.NewLimiter(rate.Limit(r), r)}
}

func (x XRate) Wait(ctx context.Context) error { return x.l.Wait(ctx) }
func (x XRate) TryAcquire() bool               { return x.l.Allow() }
func (x XRate) Close()                         {}

// Unlimited is each design's permit when nothing limits, as the Rust port times it: the guide's
// token cycle (the ticker's send and the client's receive on a buffered channel) and x/time/rate's
// Allow under a limit far above the calling rate.
func Unlimited(name string) func() bool {
	if name == "guide-token-bucket" {
		ch := make(chan struct{}, 1024)
		return func() bool {
			select {
			case ch <- struct{}{}:
			default:
			}
			select {
			case <-ch:
				return true
			default:
				return false
			}
		}
	}
	l := rate.NewLimiter(rate.Limit(math.MaxUint32), math.MaxUint32)
	return l.Allow
}
