// Package census keeps, in memory and incrementally, what an operator's status and a technical
// credential's usage need to know of the live processes: counts by health and keep mode, open
// tasks, and which processes a technical credential reaches (by their definition registry, or by
// a runtime layer that names it). It is told of every process change, and seeded by a background
// read of storage when the plugin starts on the active node; a change it hears of during that read
// wins over what the read found. No storage, clock or network here.
package census

import (
	"sort"
	"sync"
)

// Process is what the census keeps of one process.
type Process struct {
	ID         string
	Definition string
	Health     string
	Keep       string
	OpenTask   bool
	Technicals []string // the technical credentials its runtime layer names
	// TaskID and OwnerEntityID, for a process waiting for its owner's task: the open tasks list
	// without reading a task.
	TaskID        string
	OwnerEntityID string
}

// summary is a process as kept: the strings interned, so 100,000 processes cost little.
type summary struct {
	def, health, keep uint16
	openTask          bool
	gen               uint64 // the census's generation when it was set: a scan's read loses to a later set
}

// maxSample bounds the ids kept per definition for usage answers.
const maxSample = 100

// Census is the live processes' counts and usage index. Safe for concurrent use.
type Census struct {
	mu       sync.Mutex
	seeded   bool
	strings  []string          // interned: definitions, healths, keep modes
	index    map[string]uint16 // string -> its place in strings
	procs    map[string]summary
	gone     map[string]bool // deleted while seeding: the seed must not bring them back
	unsure   map[string]bool // changed underneath (an invalidation): ask storage
	byHealth map[string]int
	byKeep   map[string]int
	nTasks   int
	byDef    map[string]*group
	runtime  map[string]map[string]string // technical -> process id -> its definition
	techOf   map[string][]string          // process id -> the technicals its runtime layer names (only when some)
	tasks    map[string]openTask          // open task id -> what it is of
	taskOf   map[string]string            // process id -> its open task's id
	// The technical credentials that exist (technicals.go): the runtime index holds only them.
	gen       uint64              // grows with every set
	techKnown bool                // false until told which exist: until then every name is held
	techs     map[string]techInfo // name -> the string held everywhere, and the generation it came at
	techGoing map[string]bool     // created, and a scan of the processes for it under way
	techGone  map[string]bool     // deleted before SetTechnicals: not among those that exist
}

// openTask is an open task: its process and owner entity.
type openTask struct{ processID, owner string }

// group is the processes of one definition: how many, and a sample of their ids.
type group struct {
	count  int
	sample map[string]bool
}

// New is an empty census, not yet seeded.
func New() *Census {
	return &Census{index: map[string]uint16{}, procs: map[string]summary{}, gone: map[string]bool{}, unsure: map[string]bool{},
		byHealth: map[string]int{}, byKeep: map[string]int{}, byDef: map[string]*group{}, runtime: map[string]map[string]string{},
		tasks: map[string]openTask{}, taskOf: map[string]string{}, techOf: map[string][]string{},
		techs: map[string]techInfo{}, techGoing: map[string]bool{}, techGone: map[string]bool{}}
}

func (c *Census) intern(s string) uint16 {
	if i, ok := c.index[s]; ok {
		return i
	}
	c.strings = append(c.strings, s)
	c.index[s] = uint16(len(c.strings) - 1)
	return c.index[s]
}

// Set records a process as it now is (created or changed).
func (c *Census) Set(p Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.gone, p.ID)
	delete(c.unsure, p.ID)
	c.set(p)
}

// Delete records a process's end.
func (c *Census) Delete(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seeded {
		c.gone[id] = true
	}
	delete(c.unsure, id)
	c.remove(id)
}

// Exists says whether a process lives, when the census knows (seeded, and not changed
// underneath since): a create then needs no storage read to learn that its id is free.
func (c *Census) Exists(id string) (exists, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seeded || c.unsure[id] {
		return false, false
	}
	_, exists = c.procs[id]
	return exists, true
}

// Unsure marks a process changed underneath (an invalidation): Exists defers to storage for it
// until the census hears of it again.
func (c *Census) Unsure(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.unsure[id] = true
}

// Seed adds what the read of storage found of a process, unless a change was heard of since.
func (c *Census) Seed(p Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, known := c.procs[p.ID]; known || c.gone[p.ID] {
		return
	}
	c.set(p)
}

// Seeded marks the read of storage done: the counts are whole from now on.
func (c *Census) Seeded() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seeded, c.gone = true, map[string]bool{}
}

func (c *Census) set(p Process) {
	c.remove(p.ID)
	c.gen++
	s := summary{def: c.intern(p.Definition), health: c.intern(p.Health), keep: c.intern(p.Keep), openTask: p.OpenTask, gen: c.gen}
	c.procs[p.ID] = s
	c.byHealth[p.Health]++
	c.byKeep[p.Keep]++
	if p.OpenTask {
		c.nTasks++
	}
	if p.TaskID != "" {
		c.tasks[p.TaskID] = openTask{processID: p.ID, owner: p.OwnerEntityID}
		c.taskOf[p.ID] = p.TaskID
	}
	g := c.byDef[p.Definition]
	if g == nil {
		g = &group{sample: map[string]bool{}}
		c.byDef[p.Definition] = g
	}
	g.count++
	if len(g.sample) < maxSample {
		g.sample[p.ID] = true
	}
	for _, t := range p.Technicals {
		c.addRuntime(t, p.ID, p.Definition)
	}
}

// addRuntime records that a process's runtime layer names a technical credential, if it exists
// (or while the census is not told yet which do).
func (c *Census) addRuntime(technical, id, definition string) {
	if c.techKnown {
		held, ok := c.heldName(technical)
		if !ok {
			return
		}
		technical = held
	}
	if c.runtime[technical] == nil {
		c.runtime[technical] = map[string]string{}
	}
	if _, dup := c.runtime[technical][id]; dup {
		return
	}
	c.runtime[technical][id] = definition
	c.techOf[id] = append(c.techOf[id], technical)
}

func (c *Census) remove(id string) {
	s, ok := c.procs[id]
	if !ok {
		return
	}
	delete(c.procs, id)
	c.byHealth[c.strings[s.health]]--
	c.byKeep[c.strings[s.keep]]--
	if s.openTask {
		c.nTasks--
	}
	if task, ok := c.taskOf[id]; ok {
		delete(c.tasks, task)
		delete(c.taskOf, id)
	}
	def := c.strings[s.def]
	if g := c.byDef[def]; g != nil {
		g.count--
		delete(g.sample, id)
		if g.count == 0 {
			delete(c.byDef, def)
		}
	}
	for _, t := range c.techOf[id] { // only its own technicals: no walk over every one on each change
		delete(c.runtime[t], id)
		if len(c.runtime[t]) == 0 {
			delete(c.runtime, t)
		}
	}
	delete(c.techOf, id)
}

// Counts is what status shows of the processes.
type Counts struct {
	Seeded    bool // false while the start's read of storage is under way: the counts may be short
	Processes int
	ByHealth  map[string]int
	ByKeep    map[string]int
	OpenTasks int
}

// Counts answers the counts now.
func (c *Census) Counts() Counts {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := Counts{Seeded: c.seeded, Processes: len(c.procs), ByHealth: map[string]int{}, ByKeep: map[string]int{}, OpenTasks: c.nTasks}
	for k, v := range c.byHealth {
		if v > 0 {
			out.ByHealth[k] = v
		}
	}
	for k, v := range c.byKeep {
		if v > 0 {
			out.ByKeep[k] = v
		}
	}
	return out
}

// OpenTasks lists the open tasks' ids, of one owner entity (all when owner is ""), in order;
// known is false until the census is seeded (the caller then reads storage).
func (c *Census) OpenTasks(owner string) (ids []string, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.seeded {
		return nil, false
	}
	ids = []string{}
	for id, t := range c.tasks {
		if owner == "" || t.owner == owner {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids, true
}

// Usage is how many live processes reach a technical credential, with up to 100 of their ids:
// those whose definition is one of definitions (registries naming it), every one when global
// (a global registry names it), and those whose runtime layer names it.
func (c *Census) Usage(technical string, definitions []string, global bool) (int, []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := map[string]bool{}
	sample := func(id string) {
		if len(ids) < maxSample {
			ids[id] = true
		}
	}
	count := 0
	if global {
		count = len(c.procs)
		for _, g := range c.byDef {
			for id := range g.sample {
				sample(id)
			}
		}
		return count, sorted(ids)
	}
	named := map[string]bool{}
	for _, d := range definitions {
		named[d] = true
		if g := c.byDef[d]; g != nil {
			count += g.count
			for id := range g.sample {
				sample(id)
			}
		}
	}
	for id, def := range c.runtime[technical] {
		if !named[def] {
			count++
			sample(id)
		}
	}
	return count, sorted(ids)
}

func sorted(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}
