package multihost

import (
	"fmt"
	"slices"
	"time"
)

// percentile is the p-th percentile (nearest rank) of samples.
func percentile(samples []time.Duration, p int) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := (p*len(s) + 99) / 100
	return s[max(rank, 1)-1]
}

// summary renders n, p50, p99 and max of samples.
func summary(samples []time.Duration) string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(samples), percentile(samples, 50).Round(time.Millisecond),
		percentile(samples, 99).Round(time.Millisecond), percentile(samples, 100).Round(time.Millisecond))
}
