package lab

import (
	"context"
	"fmt"
	"time"
)

// Poll calls cond every interval until it reports true, returns an error,
// or ctx ends; it returns how long that took. The error of a timeout wraps
// ctx's and the last error cond returned.
func Poll(ctx context.Context, interval time.Duration, cond func(context.Context) (bool, error)) (time.Duration, error) {
	start := time.Now()
	var last error
	for {
		ok, err := cond(ctx)
		if ok && err == nil {
			return time.Since(start), nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return time.Since(start), fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
			}
			return time.Since(start), ctx.Err()
		case <-time.After(interval):
		}
	}
}
