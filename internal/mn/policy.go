package mn

import (
	"github.com/mcoad/mcoad/pkg/config"
	"github.com/mcoad/mcoad/pkg/policy"
)

// toPolicies turns the configuration's [[policy]] entries into
// pkg/policy's own type: the one place the two meet.
func toPolicies(ps []config.Policy) []policy.Policy {
	if len(ps) == 0 {
		return nil
	}
	out := make([]policy.Policy, len(ps))
	for i, p := range ps {
		out[i] = toPolicy(p)
	}
	return out
}

func toPolicy(p config.Policy) policy.Policy {
	prefer := make([]policy.Preference, len(p.Prefer))
	for i, pr := range p.Prefer {
		prefer[i] = policy.Preference{BID: pr.BID, Interface: pr.Interface}
	}
	return policy.Policy{
		Name: p.Name, Protocol: p.Protocol.Number(),
		SrcPrefix: p.SrcPrefix, DstPrefix: p.DstPrefix,
		SrcPort: policy.Ports(p.SrcPort), DstPort: policy.Ports(p.DstPort),
		User: p.User, Cgroup: p.Cgroup, Prefer: prefer,
	}
}
