// Package backoff is the plugin's one backoff: a wait that doubles after each consecutive
// failure, from a first wait up to a limit. Token refreshes, webhook deliveries and the client's
// polling each name their own bounds.
package backoff

import "time"

// Doubling waits First after the first failure, twice that after the second, and so on, never
// more than Limit.
type Doubling struct {
	First, Limit time.Duration
}

// After is the wait after the n-th consecutive failure (n ≥ 1; less counts as 1).
func (d Doubling) After(n int) time.Duration {
	wait := d.First
	for i := 1; i < n && wait < d.Limit; i++ {
		wait *= 2
	}
	return min(wait, d.Limit)
}
