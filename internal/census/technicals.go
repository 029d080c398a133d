package census

// The technical credentials that exist. The usage index holds, of what a process's runtime layer
// names, only the technical credentials that exist: a layer may name up to 32,000 that do not
// (they are skipped until written), and holding those would cost memory per process that no
// answer needs. A credential created later is found by a scan of the processes (Scan), whose reads
// lose to any change the census hears of meanwhile.

// techInfo is an existing technical credential: its name as the index holds it, once however many
// processes name it, and the generation it came at.
type techInfo struct {
	name string
	gen  uint64
}

func (c *Census) heldName(name string) (string, bool) {
	t, ok := c.techs[name]
	return t.name, ok
}

// SetTechnicals tells the census which technical credentials exist (read when the plugin starts),
// and drops from the index every name not among them.
func (c *Census) SetTechnicals(names []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.techKnown = true
	for _, n := range names {
		if _, ok := c.techs[n]; !ok && !c.techGone[n] {
			c.techs[n] = techInfo{name: n, gen: c.gen}
		}
	}
	for t := range c.runtime {
		if _, ok := c.techs[t]; !ok {
			c.dropTechnical(t)
		}
	}
	c.techGone = nil
}

// AddTechnical records a technical credential's creation. It answers the generation a scan of
// the processes for it starts at (Scan); the processes set from now on are indexed as they come.
func (c *Census) AddTechnical(name string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.techs[name]; ok {
		return t.gen
	}
	c.techs[name] = techInfo{name: name, gen: c.gen}
	c.techGoing[name] = true
	return c.gen
}

// Scan adds a process that a read of storage found naming a technical credential created at
// generation gen, unless the process changed since (its set knew the name), or the credential was
// deleted or created again.
func (c *Census) Scan(name string, gen uint64, id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, live := c.procs[id]
	t, exists := c.techs[name]
	if live && exists && t.gen == gen && s.gen <= gen {
		c.addRuntime(name, id, c.strings[s.def])
	}
}

// Scanned marks a scan for a technical credential done.
func (c *Census) Scanned(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.techGoing, name)
}

// Scanning says whether the processes are still being read for a technical credential: its usage
// may be short meanwhile.
func (c *Census) Scanning(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.techGoing[name]
}

// RemoveTechnical records a technical credential's deletion: the index forgets it.
func (c *Census) RemoveTechnical(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.techs, name)
	delete(c.techGoing, name)
	if !c.techKnown { // deleted after the start's list was read: SetTechnicals must not bring it back
		c.techGone[name] = true
	}
	c.dropTechnical(name)
}

// dropTechnical removes a name from the index and from each process's list.
func (c *Census) dropTechnical(name string) {
	for id := range c.runtime[name] {
		list := c.techOf[id][:0]
		for _, t := range c.techOf[id] {
			if t != name {
				list = append(list, t)
			}
		}
		if len(list) == 0 {
			delete(c.techOf, id)
		} else {
			c.techOf[id] = list
		}
	}
	delete(c.runtime, name)
}

// HeldNames counts the technical names the index holds, for tests and their figures.
func (c *Census) HeldNames() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, list := range c.techOf {
		n += len(list)
	}
	return n
}
