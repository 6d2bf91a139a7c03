package config

import "slices"

// DiffMN names the sections that differ between two configurations, in
// file order ("mobile_node", "interface", "correspondent", "policy",
// "dataplane", "control", "log", "mobile_router"); nil when they are the
// same. A hot reload uses it to decide what to re-apply.
func DiffMN(old, cur *MN) []string {
	if old == nil {
		old = DefaultMN()
	}
	if cur == nil {
		cur = DefaultMN()
	}
	var out []string
	add := func(name string, same bool) {
		if !same {
			out = append(out, name)
		}
	}
	add("mobile_node", old.MobileNode == cur.MobileNode)
	add("interface", slices.Equal(old.Interfaces, cur.Interfaces))
	add("correspondent", slices.Equal(old.Correspondents, cur.Correspondents))
	add("policy", slices.EqualFunc(old.Policies, cur.Policies, Policy.Equal))
	add("dataplane", old.Dataplane == cur.Dataplane)
	add("control", old.Control == cur.Control)
	add("log", old.Log == cur.Log)
	add("mobile_router", old.MobileRouter.Enabled == cur.MobileRouter.Enabled &&
		slices.Equal(old.MobileRouter.Prefixes, cur.MobileRouter.Prefixes) &&
		old.MobileRouter.Mode == cur.MobileRouter.Mode && slices.Equal(old.MobileRouter.Ingress, cur.MobileRouter.Ingress))
	return out
}

// DiffHA is DiffMN for mcoa-ha: "home_agent", "correspondent",
// "dataplane", "control", "log".
func DiffHA(old, cur *HA) []string {
	if old == nil {
		old = DefaultHA()
	}
	if cur == nil {
		cur = DefaultHA()
	}
	var out []string
	add := func(name string, same bool) {
		if !same {
			out = append(out, name)
		}
	}
	a, b := old.HomeAgent, cur.HomeAgent
	add("home_agent", a.Address == b.Address && a.Interface == b.Interface && a.HomePrefix == b.HomePrefix &&
		slices.Equal(a.Serve, b.Serve) && a.BulkRegistration == b.BulkRegistration &&
		a.MaxLifetime == b.MaxLifetime && a.Profile == b.Profile && a.BIDOptionType == b.BIDOptionType &&
		a.RequireAuth == b.RequireAuth && slices.EqualFunc(a.MNs, b.MNs, HAMobileNode.Equal) && a.StateDir == b.StateDir)
	add("correspondent", old.Correspondent.Equal(cur.Correspondent))
	add("dataplane", old.Dataplane == cur.Dataplane)
	add("control", old.Control == cur.Control)
	add("log", old.Log == cur.Log)
	return out
}
