package schedule

import (
	"testing"
	"time"
)

func TestQueue(t *testing.T) {
	q := NewQueue()
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	q.Schedule("c", t0.Add(3*time.Second))
	q.Schedule("a", t0.Add(time.Second))
	q.Schedule("b", t0.Add(2*time.Second))
	q.Schedule("c", t0.Add(-time.Second)) // moved to the front
	q.Unschedule("b")
	q.Unschedule("nobody")
	if q.Len() != 2 {
		t.Fatalf("len %d", q.Len())
	}
	if name, wait := q.PopDue(t0.Add(-2 * time.Second)); name != "" || wait != time.Second {
		t.Errorf("before anything is due: %q, wait %s", name, wait)
	}
	var got []string
	for {
		name, _ := q.PopDue(t0.Add(10 * time.Second))
		if name == "" {
			break
		}
		got = append(got, name)
	}
	if len(got) != 2 || got[0] != "c" || got[1] != "a" {
		t.Errorf("popped %v, want [c a]", got)
	}
	if _, wait := q.PopDue(t0); wait != idle {
		t.Errorf("an empty queue waits %s", wait)
	}
}
