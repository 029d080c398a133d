package census

import (
	"fmt"
	"reflect"
	"testing"
)

func TestCountsFollowChanges(t *testing.T) {
	c := New()
	c.Set(Process{ID: "a", Definition: "orders", Health: "running", Keep: "persistent"})
	c.Set(Process{ID: "b", Definition: "orders", Health: "running", Keep: "transient"})
	c.Set(Process{ID: "b", Definition: "orders", Health: "broken", Keep: "transient", OpenTask: true})
	c.Set(Process{ID: "c", Definition: "", Health: "failed", Keep: "none"})
	c.Delete("c")
	got := c.Counts()
	want := Counts{Processes: 2, ByHealth: map[string]int{"running": 1, "broken": 1}, ByKeep: map[string]int{"persistent": 1, "transient": 1}, OpenTasks: 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("counts\n got %+v\nwant %+v", got, want)
	}
}

// What the start's read of storage finds never overrides a change heard of meanwhile, and never
// brings back a process ended meanwhile.
func TestSeedLosesToChangesHeardMeanwhile(t *testing.T) {
	c := New()
	c.Set(Process{ID: "a", Definition: "d", Health: "broken", Keep: "persistent", OpenTask: true})
	c.Delete("b")
	c.Seed(Process{ID: "a", Definition: "d", Health: "running", Keep: "persistent"}) // older
	c.Seed(Process{ID: "b", Definition: "d", Health: "running", Keep: "persistent"}) // ended meanwhile
	c.Seed(Process{ID: "c", Definition: "d", Health: "running", Keep: "persistent"})
	if got := c.Counts(); got.Seeded || got.Processes != 2 || got.ByHealth["broken"] != 1 || got.OpenTasks != 1 {
		t.Errorf("while seeding: %+v", got)
	}
	c.Seeded()
	c.Delete("x")
	c.Seed(Process{ID: "x", Definition: "d", Health: "running", Keep: "persistent"}) // a late seed after a delete: never again held back
	if got := c.Counts(); !got.Seeded || got.Processes != 3 {
		t.Errorf("seeded: %+v", got)
	}
}

func TestUsageByDefinitionRuntimeAndGlobal(t *testing.T) {
	c := New()
	for i := 0; i < 150; i++ {
		c.Set(Process{ID: fmt.Sprintf("o%03d", i), Definition: "orders", Health: "running", Keep: "none"})
	}
	c.Set(Process{ID: "r1", Definition: "returns", Health: "running", Keep: "none", Technicals: []string{"idp"}})
	c.Set(Process{ID: "o000", Definition: "orders", Health: "running", Keep: "none", Technicals: []string{"idp"}}) // counted once
	c.Set(Process{ID: "x1", Definition: "other", Health: "running", Keep: "none"})

	if n, ids := c.Usage("idp", []string{"orders"}, false); n != 151 || len(ids) != 100 {
		t.Errorf("by definition and runtime: %d processes, %d ids", n, len(ids))
	}
	if n, ids := c.Usage("idp", nil, false); n != 2 || !reflect.DeepEqual(ids, []string{"o000", "r1"}) {
		t.Errorf("by runtime only: %d %v", n, ids)
	}
	if n, _ := c.Usage("idp", nil, true); n != 152 {
		t.Errorf("global: %d", n)
	}
	c.Set(Process{ID: "r1", Definition: "returns", Health: "running", Keep: "none"}) // its runtime no longer names it
	c.Delete("o000")
	if n, ids := c.Usage("idp", nil, false); n != 0 || len(ids) != 0 {
		t.Errorf("after the changes: %d %v", n, ids)
	}
	if n, _ := c.Usage("idp", []string{"orders"}, false); n != 149 {
		t.Errorf("orders after a delete: %d", n)
	}
}

func TestExistsOnlyWhenSure(t *testing.T) {
	c := New()
	c.Set(Process{ID: "a", Health: "running"})
	if _, known := c.Exists("a"); known {
		t.Error("known before seeded")
	}
	c.Seeded()
	if e, known := c.Exists("a"); !e || !known {
		t.Error("a lives")
	}
	if e, known := c.Exists("b"); e || !known {
		t.Error("b does not")
	}
	c.Unsure("b")
	if _, known := c.Exists("b"); known {
		t.Error("changed underneath: storage must say")
	}
	c.Set(Process{ID: "b", Health: "running"})
	if e, known := c.Exists("b"); !e || !known {
		t.Error("heard of again")
	}
	c.Delete("b")
	if e, known := c.Exists("b"); e || !known {
		t.Error("deleted")
	}
}

func TestOpenTasksByOwner(t *testing.T) {
	c := New()
	c.Set(Process{ID: "a", OpenTask: true, TaskID: "t-a", OwnerEntityID: "ann"})
	if _, known := c.OpenTasks(""); known {
		t.Error("known before seeded")
	}
	c.Seeded()
	c.Set(Process{ID: "b", OpenTask: true, TaskID: "t-b", OwnerEntityID: "bob"})
	c.Set(Process{ID: "c", OpenTask: true, TaskID: "t-c", OwnerEntityID: "ann"})
	if ids, _ := c.OpenTasks("ann"); !reflect.DeepEqual(ids, []string{"t-a", "t-c"}) {
		t.Errorf("ann's: %v", ids)
	}
	c.Set(Process{ID: "a"}) // completed: no task
	c.Delete("b")
	if ids, _ := c.OpenTasks(""); !reflect.DeepEqual(ids, []string{"t-c"}) || c.Counts().OpenTasks != 1 {
		t.Errorf("all: %v, count %d", ids, c.Counts().OpenTasks)
	}
}

// The usage index holds only technical credentials that exist: a runtime layer naming thousands
// that do not costs nothing; one created later is found by a scan, whose stale reads lose to
// changes heard of meanwhile; a deleted one is forgotten.
func TestIndexHoldsOnlyTechnicalsThatExist(t *testing.T) {
	c := New()
	bogus := make([]string, 1000)
	for i := range bogus {
		bogus[i] = fmt.Sprintf("no-such-%d", i)
	}
	c.Set(Process{ID: "early", Definition: "d", Health: "running", Keep: "none", Technicals: append([]string{"idp", "old"}, bogus...)})
	c.RemoveTechnical("old")                // deleted after the start's list was read
	c.SetTechnicals([]string{"idp", "old"}) // told at start: what was held before is pruned
	if n := c.HeldNames(); n != 1 {
		t.Fatalf("after SetTechnicals: %d names held, want 1", n)
	}
	c.Set(Process{ID: "a", Definition: "d", Health: "running", Keep: "none", Technicals: append([]string{"idp", "late"}, bogus...)})
	c.Set(Process{ID: "b", Definition: "d", Health: "running", Keep: "none", Technicals: []string{"late"}})
	if n := c.HeldNames(); n != 2 {
		t.Errorf("%d names held, want 2 (idp twice)", n)
	}
	gen := c.AddTechnical("late")
	if !c.Scanning("late") {
		t.Error("a new technical is not being scanned for")
	}
	c.Set(Process{ID: "b", Definition: "d", Health: "running", Keep: "none"}) // b's layer no longer names it
	c.Set(Process{ID: "c", Definition: "d", Health: "running", Keep: "none", Technicals: []string{"late"}})
	for _, id := range []string{"a", "b", "c", "gone"} { // what the scan read of storage
		c.Scan("late", gen, id)
	}
	c.Scanned("late")
	if n, ids := c.Usage("late", nil, false); n != 2 || !reflect.DeepEqual(ids, []string{"a", "c"}) || c.Scanning("late") {
		t.Errorf("late: %d %v", n, ids)
	}
	c.RemoveTechnical("late")
	c.Scan("late", gen, "b") // a scan still running past the delete adds nothing
	if n, _ := c.Usage("late", nil, false); n != 0 {
		t.Errorf("a deleted technical is still indexed: %d", n)
	}
	if n, _ := c.Usage("old", nil, false); n != 0 {
		t.Errorf("a technical deleted during the start is indexed: %d", n)
	}
	if n, ids := c.Usage("idp", nil, false); n != 2 || !reflect.DeepEqual(ids, []string{"a", "early"}) {
		t.Errorf("idp: %d %v", n, ids)
	}
	if n := c.HeldNames(); n != 2 {
		t.Errorf("%d names held, want 2", n)
	}
}
