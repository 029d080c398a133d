package backoff

import (
	"testing"
	"time"
)

func TestDoublingToTheLimit(t *testing.T) {
	d := Doubling{First: time.Second, Limit: 10 * time.Minute}
	for n, want := range map[int]time.Duration{
		-1: time.Second, 0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		10: 512 * time.Second, 11: 10 * time.Minute, 1000: 10 * time.Minute,
	} {
		if got := d.After(n); got != want {
			t.Errorf("After(%d) = %s, want %s", n, got, want)
		}
	}
	if got := (Doubling{First: 3 * time.Second, Limit: 5 * time.Second}).After(2); got != 5*time.Second {
		t.Errorf("a limit that is not a doubling of the first: %s", got)
	}
}
