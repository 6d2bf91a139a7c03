package dataplane

// Driver is one mobile-node backend. Package backends lists the drivers
// (the order "auto" tries them in) and picks one by Config.Backend; a new
// backend is a package that exports a Driver, plus its line in that list.
type Driver struct {
	// Name is the backend's [dataplane] backend value.
	Name string
	// Probe reports why the backend cannot run here (wrapped in
	// ErrUnavailable), nil if it can. nil: it always can. Probing leaves
	// nothing behind.
	Probe func() error
	// New starts the backend in the calling thread's network namespace;
	// cfg is resolved (Config.Resolve).
	New func(cfg Config) (Backend, error)
}
