package config

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"
)

// perturb changes v to another value of its type.
func perturb(t *testing.T, v reflect.Value) {
	t.Helper()
	switch v.Interface().(type) {
	case netip.Addr:
		v.Set(reflect.ValueOf(netip.MustParseAddr("2001:db8:ffff::9")))
		return
	case netip.Prefix:
		v.Set(reflect.ValueOf(netip.MustParsePrefix("2001:db8:ffff::/48")))
		return
	}
	switch v.Kind() {
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(v.Int() + 1)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(v.Uint() + 1)
	case reflect.Slice:
		v.Set(reflect.Append(v, reflect.Zero(v.Type().Elem())))
	case reflect.Struct:
		perturb(t, v.Field(0))
	default:
		t.Fatalf("cannot perturb %s", v.Type())
	}
}

// Every field of every section is seen by DiffMN and DiffHA: a field added
// to a struct but forgotten in the comparison fails here.
func TestDiffSeesEveryField(t *testing.T) {
	mnSections := []string{"mobile_node", "interface", "correspondent", "policy", "dataplane", "control", "log", "mobile_router"}
	base := labMN()
	base.Interfaces = []Interface{{Match: "eth*"}}
	base.Correspondents = []Correspondent{{}}
	base.Policies = []Policy{{Name: "p", Prefer: []Preference{{Interface: "eth*"}}}}
	if d := DiffMN(base, base); d != nil {
		t.Fatalf("DiffMN(x, x) = %v", d)
	}
	mt := reflect.TypeOf(MN{})
	if mt.NumField() != len(mnSections) {
		t.Fatalf("MN has %d sections, the test knows %d", mt.NumField(), len(mnSections))
	}
	for i := range mt.NumField() {
		sec := reflect.ValueOf(base).Elem().Field(i)
		// The section itself, or its first element for lists.
		st := sec.Type()
		if st.Kind() == reflect.Slice {
			st = st.Elem()
		}
		for j := range st.NumField() {
			c := clone(base)
			f := reflect.ValueOf(c).Elem().Field(i)
			if f.Kind() == reflect.Slice {
				f = f.Index(0)
			}
			perturb(t, f.Field(j))
			if d := DiffMN(base, c); !slices.Equal(d, []string{mnSections[i]}) {
				t.Errorf("changing %s.%s: DiffMN = %v, want [%s]", mt.Field(i).Name, st.Field(j).Name, d, mnSections[i])
			}
		}
	}

	haSections := []string{"home_agent", "correspondent", "dataplane", "control", "log"}
	hbase := labHA()
	hbase.HomeAgent.MNs = []HAMobileNode{{}}
	ht := reflect.TypeOf(HA{})
	if ht.NumField() != len(haSections) {
		t.Fatalf("HA has %d sections, the test knows %d", ht.NumField(), len(haSections))
	}
	for i := range ht.NumField() {
		st := ht.Field(i).Type
		for j := range st.NumField() {
			c := cloneHA(hbase)
			perturb(t, reflect.ValueOf(c).Elem().Field(i).Field(j))
			if d := DiffHA(hbase, c); !slices.Equal(d, []string{haSections[i]}) {
				t.Errorf("changing %s.%s: DiffHA = %v", ht.Field(i).Name, st.Field(j).Name, d)
			}
		}
	}
	mnt := reflect.TypeOf(HAMobileNode{})
	for j := range mnt.NumField() {
		c := cloneHA(hbase)
		perturb(t, reflect.ValueOf(&c.HomeAgent.MNs[0]).Elem().Field(j))
		if d := DiffHA(hbase, c); !slices.Equal(d, []string{"home_agent"}) {
			t.Errorf("changing HAMobileNode.%s: DiffHA = %v", mnt.Field(j).Name, d)
		}
	}
	if d := DiffMN(nil, DefaultMN()); d != nil {
		t.Errorf("nil is not the defaults: %v", d)
	}
	if d := DiffHA(DefaultHA(), nil); d != nil {
		t.Errorf("nil is not the defaults: %v", d)
	}
}

func clone(c *MN) *MN {
	n := *c
	n.Interfaces = slices.Clone(c.Interfaces)
	n.Correspondents = slices.Clone(c.Correspondents)
	n.Policies = slices.Clone(c.Policies)
	for i := range n.Policies {
		n.Policies[i].Prefer = slices.Clone(n.Policies[i].Prefer)
	}
	n.MobileRouter.Prefixes = slices.Clone(c.MobileRouter.Prefixes)
	return &n
}

func cloneHA(c *HA) *HA {
	n := *c
	n.HomeAgent.Serve = slices.Clone(c.HomeAgent.Serve)
	n.HomeAgent.MNs = slices.Clone(c.HomeAgent.MNs)
	for i := range n.HomeAgent.MNs {
		n.HomeAgent.MNs[i].Prefixes = slices.Clone(n.HomeAgent.MNs[i].Prefixes)
	}
	return &n
}
