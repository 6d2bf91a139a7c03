package backends

import (
	"github.com/mcoad/mcoad/pkg/dataplane"
	"github.com/mcoad/mcoad/pkg/dataplane/ebpf"
	"github.com/mcoad/mcoad/pkg/dataplane/ip6tnl"
	"github.com/mcoad/mcoad/pkg/dataplane/tun"
)

// drivers are the backends, in the order "auto" tries them: the kernel's
// ip6tnl where it exists, else the userspace one. The eBPF backend comes
// last: "auto" never reaches it (tun always runs) until the home agent's
// eBPF side and route optimisation are in place; "ebpf" chooses it.
var drivers = []dataplane.Driver{ip6tnl.Driver, tun.Driver, ebpf.Driver}
