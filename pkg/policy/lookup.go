package policy

import (
	"fmt"
	"os/user"
	"strconv"
)

// lookupUser turns a policy's user (a uid or a name) into a uid.
func lookupUser(s string) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	u, err := user.Lookup(s)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("uid %q: %w", u.Uid, err)
	}
	return uint32(n), nil
}

// Check tells whether p's user and cgroup exist on this machine now, as the
// control API wants to know before it accepts a policy (Apply leaves out a
// policy whose user or cgroup it cannot find, and tries again each time).
func Check(p Policy) error {
	if p.User != "" {
		if _, err := lookupUser(p.User); err != nil {
			return fmt.Errorf("policy %q: user %q: %w", p.Name, p.User, err)
		}
	}
	if p.Cgroup != "" {
		if _, _, err := lookupCgroup(p.Cgroup); err != nil {
			return fmt.Errorf("policy %q: cgroup %q: %w", p.Name, p.Cgroup, err)
		}
	}
	return nil
}
