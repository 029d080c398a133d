package cache

import (
	"fmt"
	"testing"
)

func TestWholeKnowsAbsencesOnceFilled(t *testing.T) {
	var w Whole[string]
	_, known, ticket := w.Lookup("a")
	if known {
		t.Fatal("known before filled")
	}
	a := "A"
	w.Put("a", ptr("written meanwhile")) // a write during the fill's read: the fill is stale
	w.FillIf(map[string]*string{"a": &a}, ticket)
	if _, known, _ := w.Lookup("a"); known {
		t.Fatal("a stale fill was kept")
	}
	_, _, ticket = w.Lookup("a")
	w.FillIf(map[string]*string{"a": &a}, ticket)
	if v, known, _ := w.Lookup("a"); !known || *v != "A" {
		t.Errorf("a: %v %v", v, known)
	}
	if v, known, _ := w.Lookup("nope"); !known || v != nil {
		t.Errorf("an absence once filled: %v %v", v, known)
	}
	w.Put("b", ptr("B"))
	w.Put("a", nil)
	var seen []string
	w.Each(func(n string, v *string) { seen = append(seen, n+"="+*v) })
	if fmt.Sprint(seen) != "[b=B]" {
		t.Errorf("entries %v", seen)
	}
	w.Forget("b")
	if _, known, _ := w.Lookup("b"); known || w.Loaded() || w.Each(func(string, *string) {}) {
		t.Error("forgotten, the set must be read again")
	}
}

// Filled past its bound, a Bounded cache keeps the most recently used and never an absence.
func TestBoundedEvictsTheLeastRecentlyUsed(t *testing.T) {
	b := NewBounded[int](3, 1<<20, func(*int) int { return 1 })
	for i := 0; i < 5; i++ {
		v := i
		b.Put(fmt.Sprint(i), &v)
		if i == 2 {
			b.Lookup("0") // 0 is used: 1 leaves first
		}
	}
	if b.Len() != 3 {
		t.Fatalf("holds %d", b.Len())
	}
	for name, want := range map[string]bool{"0": true, "1": false, "2": false, "3": true, "4": true} {
		if _, ok, _ := b.Lookup(name); ok != want {
			t.Errorf("%s held: %v, want %v", name, ok, want)
		}
	}
	b.Put("3", nil)
	if _, ok, _ := b.Lookup("3"); ok || b.Len() != 2 {
		t.Error("a deleted entry is held")
	}
	b.Forget("4")
	if _, ok, _ := b.Lookup("4"); ok {
		t.Error("a forgotten entry is held")
	}
	// A read that raced with a write is not kept; one that did not is.
	_, _, ticket := b.Lookup("5")
	b.Put("5", ptrInt(55))
	b.Offer("5", ptrInt(5), ticket)
	if v, _, _ := b.Lookup("5"); *v != 55 {
		t.Errorf("a stale read overwrote a write: %d", *v)
	}
	_, _, ticket = b.Lookup("6")
	b.Offer("6", ptrInt(6), ticket)
	b.Offer("7", nil, ticket)
	if v, ok, _ := b.Lookup("6"); !ok || *v != 6 || b.Len() != 3 {
		t.Errorf("a read was not kept, or an absence was: %v %d", v, b.Len())
	}
}

// A Bounded cache evicts by bytes as well as by count: one large entry pushes out the least
// recently used, one larger than the whole budget is not held, and the count follows every change.
func TestBoundedEvictsBySize(t *testing.T) {
	b := NewBounded[int](100, 100, func(v *int) int { return *v })
	b.Put("a", ptrInt(40))
	b.Put("b", ptrInt(40))
	b.Lookup("a")
	b.Put("c", ptrInt(40)) // 120 > 100: b, the least recently used, leaves
	if _, ok, _ := b.Lookup("b"); ok || b.Bytes() != 80 || b.Len() != 2 {
		t.Fatalf("after c: b held %v, %d bytes, %d entries", ok, b.Bytes(), b.Len())
	}
	b.Put("a", ptrInt(10)) // replaced: its old size is given back
	if b.Bytes() != 50 {
		t.Errorf("after a is replaced: %d bytes", b.Bytes())
	}
	b.Put("huge", ptrInt(150))
	if _, ok, _ := b.Lookup("huge"); ok || b.Bytes() != 50 {
		t.Errorf("an entry past the whole budget is held (%v), %d bytes", ok, b.Bytes())
	}
	_, _, ticket := b.Lookup("d")
	b.Offer("d", ptrInt(60), ticket) // 110: c, the least recently used, leaves
	if _, ok, _ := b.Lookup("c"); ok || b.Bytes() != 70 {
		t.Errorf("after d: c held %v, %d bytes", ok, b.Bytes())
	}
	b.Forget("d")
	b.Put("a", nil)
	if b.Bytes() != 0 || b.Len() != 0 {
		t.Errorf("emptied: %d bytes, %d entries", b.Bytes(), b.Len())
	}
}

func ptrInt(i int) *int { return &i }

func ptr(s string) *string { return &s }
