package pecreds

import (
	"sync"
	"testing"
)

// Side calls all run: on the kept goroutines, on new ones when those are busy, and after stop.
func TestSideCallsAllRun(t *testing.T) {
	c := newSideCalls()
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < 3*sideCallWorkers; i++ { // more than the workers, all held busy
		wg.Add(1)
		c.Go(func() { defer wg.Done(); <-release })
	}
	close(release)
	wg.Wait()
	c.stop()
	c.stop() // twice is harmless
	ran := make(chan struct{})
	c.Go(func() { close(ran) })
	<-ran
}
