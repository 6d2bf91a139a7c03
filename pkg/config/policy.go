package config

import (
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// PolicyText is a flow policy in text form, as the control API and mcoactl
// carry it (control.Policy has the same fields). ParsePolicy checks it with
// the rules of [[policy]] and Policy.Text turns a Policy back into it.
type PolicyText struct {
	Name      string
	Protocol  string   // "tcp", "udp", "icmpv6", "any" or "" (any)
	SrcPrefix string   // "" any
	DstPrefix string   // "" any
	SrcPort   string   // "5060", "5060-5061" or "" (any)
	DstPort   string   // same
	User      string   // user name or uid; "" any
	Cgroup    string   // cgroup v2 path, "/system.slice/x.service"; "" any
	Prefer    []string // interface patterns, "bid:N" or "N" (a BID), best first
}

// ParsePolicy checks a policy given as text and returns it; every problem is
// reported, each naming the policy and the key.
func ParsePolicy(in PolicyText) (Policy, error) {
	p := Policy{Name: in.Name, Protocol: ProtoAny, User: in.User, Cgroup: in.Cgroup}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("policy %q: %s: %s", in.Name, key, fmt.Sprintf(format, args...)))
	}
	if in.Name == "" {
		bad("name", "is empty")
	}
	switch Protocol(in.Protocol) {
	case "", ProtoAny:
	case ProtoTCP, ProtoUDP, ProtoICMPv6:
		p.Protocol = Protocol(in.Protocol)
	default:
		bad("protocol", "%q is not one of tcp, udp, icmpv6, any", in.Protocol)
	}
	for _, pf := range []struct {
		key, s string
		dst    *netip.Prefix
	}{{"src_prefix", in.SrcPrefix, &p.SrcPrefix}, {"dst_prefix", in.DstPrefix, &p.DstPrefix}} {
		if pf.s == "" {
			continue
		}
		v, err := netip.ParsePrefix(pf.s)
		switch {
		case err != nil || !v.Addr().Is6() || v.Addr().Is4In6():
			bad(pf.key, "%q is not an IPv6 prefix", pf.s)
		case v.Masked() != v:
			bad(pf.key, "%q has bits set after the prefix length (did you mean %q?)", pf.s, v.Masked().String())
		default:
			*pf.dst = v
		}
	}
	for _, pr := range []struct {
		key, s string
		dst    *PortRange
	}{{"src_port", in.SrcPort, &p.SrcPort}, {"dst_port", in.DstPort, &p.DstPort}} {
		if pr.s == "" {
			continue
		}
		r, err := ParsePorts(pr.s)
		switch {
		case err != nil:
			bad(pr.key, "%v", err)
		case p.Protocol != ProtoTCP && p.Protocol != ProtoUDP:
			bad(pr.key, "ports need protocol \"tcp\" or \"udp\"")
		default:
			*pr.dst = r
		}
	}
	if err := CheckPolicyUser(in.User); in.User != "" && err != nil {
		bad("user", "%v", err)
	}
	if err := CheckPolicyCgroup(in.Cgroup); in.Cgroup != "" && err != nil {
		bad("cgroup", "%v", err)
	}
	if len(in.Prefer) == 0 {
		bad("prefer", "is empty")
	}
	for _, s := range in.Prefer {
		pr, err := ParsePreference(s)
		if err != nil {
			bad("prefer", "%v", err)
			continue
		}
		p.Prefer = append(p.Prefer, pr)
	}
	if len(errs) > 0 {
		return Policy{}, errors.Join(errs...)
	}
	return p, nil
}

// Text returns p in the text form ParsePolicy reads.
func (p Policy) Text() PolicyText {
	t := PolicyText{Name: p.Name, User: p.User, Cgroup: p.Cgroup}
	if p.Protocol != ProtoAny {
		t.Protocol = string(p.Protocol)
	}
	if p.SrcPrefix.IsValid() {
		t.SrcPrefix = p.SrcPrefix.String()
	}
	if p.DstPrefix.IsValid() {
		t.DstPrefix = p.DstPrefix.String()
	}
	if !p.SrcPort.IsZero() {
		t.SrcPort = p.SrcPort.String()
	}
	if !p.DstPort.IsZero() {
		t.DstPort = p.DstPort.String()
	}
	for _, pr := range p.Prefer {
		t.Prefer = append(t.Prefer, pr.String())
	}
	return t
}

// ParsePorts reads a port ("5060") or an inclusive range ("5060-5061").
func ParsePorts(s string) (PortRange, error) {
	los, his, isRange := strings.Cut(s, "-")
	if !isRange {
		his = los
	}
	lo, err1 := strconv.ParseUint(strings.TrimSpace(los), 10, 16)
	hi, err2 := strconv.ParseUint(strings.TrimSpace(his), 10, 16)
	if err1 != nil || err2 != nil || lo == 0 || hi == 0 {
		return PortRange{}, fmt.Errorf("%q is not a port or port range (5060 or \"5060-5061\", ports 1..65535)", s)
	}
	if lo > hi {
		return PortRange{}, fmt.Errorf("%q: the low port is above the high port", s)
	}
	return PortRange{uint16(lo), uint16(hi)}, nil
}

// ParsePreference reads one prefer entry: "bid:N" or a bare number is a
// BID, anything else an interface pattern (path.Match syntax).
func ParsePreference(s string) (Preference, error) {
	n, isBID := strings.CutPrefix(s, "bid:")
	if !isBID && s != "" && strings.Trim(s, "0123456789") == "" {
		n, isBID = s, true
	}
	if isBID {
		b, err := strconv.ParseUint(n, 10, 16)
		if err != nil || b == 0 {
			return Preference{}, fmt.Errorf("%q: a BID is 1..65535", s)
		}
		return Preference{BID: uint16(b)}, nil
	}
	if s == "" {
		return Preference{}, errors.New("empty interface pattern")
	}
	if _, err := path.Match(s, ""); err != nil {
		return Preference{}, fmt.Errorf("%q is not a valid pattern (path.Match syntax: * ? [a-z] \\)", s)
	}
	return Preference{Interface: s}, nil
}

// CheckPolicyUser checks the form of a policy's user: a uid or a user name.
// Whether the user exists is known only on the machine that applies it.
func CheckPolicyUser(s string) error {
	if s == "" {
		return errors.New("is empty")
	}
	if strings.Trim(s, "0123456789") == "" {
		if _, err := strconv.ParseUint(s, 10, 32); err != nil || s == "4294967295" {
			return fmt.Errorf("uid %s out of range", s)
		}
		return nil
	}
	if len(s) > 256 || strings.ContainsAny(s, ":/ \t\n\x00") {
		return fmt.Errorf("%q is not a user name or uid", s)
	}
	return nil
}

// CheckPolicyCgroup checks the form of a policy's cgroup: an absolute path in
// the cgroup v2 hierarchy, without "." or ".." components.
func CheckPolicyCgroup(s string) error {
	if !strings.HasPrefix(s, "/") || strings.ContainsRune(s, 0) || path.Clean(s) != s || s == "/" {
		return fmt.Errorf("%q is not a cgroup v2 path (absolute and clean, e.g. /system.slice/x.service)", s)
	}
	return nil
}
