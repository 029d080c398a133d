package credential

// Use says where a credential stands; a type lists the uses it allows.
type Use int

const (
	// UseTechnical: a named credential of the technical credentials manager.
	UseTechnical Use = 1 << iota
	// UseRegistry: an entry of a service's list in a registry (static, shared by processes).
	UseRegistry
	// UseCurrent: the current credentials of a process's user.
	UseCurrent
	// UseRuntime: an entry of a service's list in a process's runtime layer.
	UseRuntime

	// UseListed: an entry of a service's list, in a registry or a runtime layer.
	UseListed   = UseRegistry | UseRuntime
	UseAnywhere = UseTechnical | UseListed | UseCurrent
)

func (u Use) String() string {
	switch u {
	case UseTechnical:
		return "a technical credential"
	case UseRegistry:
		return "a registry's service entry"
	case UseRuntime:
		return "a runtime layer's service entry"
	case UseCurrent:
		return "a process's current credentials"
	}
	return "this place"
}
