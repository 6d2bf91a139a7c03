package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/mcoad/mcoad/pkg/control"
)

// `mcoactl status` against mcoad diagnoses, the way `tailscale status`
// does, from what the API already gives: /v1/status, /v1/bindings,
// /v1/interfaces and /metrics. Each diagnosis says what is wrong, what
// shows it and what to do, in plain words.

// diagnosis is one finding of `mcoactl status`.
type diagnosis struct {
	// Check names the finding for scripts: ha-silent, ha-ignores-bu,
	// mh-filtered, tunnel-filtered, rejected, auth, no-ipv6,
	// no-care-of-address, path-dead, dataplane, not-registered.
	Check   string `json:"check"`
	Problem string `json:"problem"`
	Detail  string `json:"detail,omitempty"`
	Fix     string `json:"fix"`
}

// tunnelSilent: a registered binding's tunnel has sent this many packets
// and received none. Below it, a quiet node (a few of its own packets, no
// answer due yet) is not called broken.
const tunnelSilent = 10

// diagnose finds what keeps mcoad from working. It looks at one moment:
// counters that must grow are judged by their totals.
func diagnose(s control.Status, bs []control.Binding, is []control.Interface, m metrics) []diagnosis {
	var ds []diagnosis
	add := func(d diagnosis, ok bool) {
		if ok {
			ds = append(ds, d)
		}
	}
	if s.DataplaneError != "" {
		ds = append(ds, dataplaneDiagnosis(s))
	}
	add(noIPv6Diagnosis(is))
	hb := sortHomeBindings(bs)
	retrans := m.get("mcoad_retransmissions_total")
	authIgnored := m.get("mcoad_ba_ignored_total", "reason", "auth")
	if authIgnored > 0 && hb.registered < len(hb.all) {
		ds = append(ds, authDiagnosis(s, authIgnored))
	}
	if len(hb.rejected) > 0 {
		ds = append(ds, rejectedDiagnosis(s, hb.rejected))
	}
	// BAs that fail authentication are answers: the home agent is there.
	if retrans > 0 && len(hb.silent)+len(hb.alive) > 0 && authIgnored == 0 {
		ds = append(ds, unansweredDiagnosis(s, hb, retrans))
	}
	add(tunnelDiagnosis(s, hb, m))
	if len(hb.dead) > 0 && hb.registered > 0 {
		ds = append(ds, pathDeadDiagnosis(hb.dead))
	}
	if !registered(s, bs) {
		ds = append(ds, notRegisteredDiagnosis(s, is, hb, len(ds)))
	}
	return ds
}

// homeBindings are the bindings with the home agent, sorted by what
// keeps them from being registered.
type homeBindings struct {
	all                           []control.Binding
	registered                    int
	silent, alive, rejected, dead []control.Binding // silent, alive: no answer yet (by liveness)
}

func sortHomeBindings(bs []control.Binding) homeBindings {
	var hb homeBindings
	for _, b := range bs {
		if b.Role != control.RoleHA {
			continue
		}
		hb.all = append(hb.all, b)
		switch {
		case isRegistered(b):
			hb.registered++
		case b.State == "down" || b.Liveness == "dead":
			hb.dead = append(hb.dead, b)
		case b.LastStatus >= 128 && b.LastStatus != 135: // 135: a sequence resync, retried at once
			hb.rejected = append(hb.rejected, b)
		case b.LastStatus == control.NoStatus || strings.Contains(b.LastError, "expired"):
			if b.LastError == "no care-of address to send from" {
				continue
			}
			if b.Liveness == "alive" {
				hb.alive = append(hb.alive, b)
			} else {
				hb.silent = append(hb.silent, b)
			}
		}
	}
	return hb
}

func noIPv6Diagnosis(is []control.Interface) (diagnosis, bool) {
	var noV6 []string
	for _, i := range is {
		if i.State == "no-address" {
			noV6 = append(noV6, i.Name)
		}
	}
	if len(noV6) == 0 {
		return diagnosis{}, false
	}
	return diagnosis{Check: "no-ipv6",
		Problem: fmt.Sprintf("%s: up, but no global IPv6 address to use as care-of address", plural("interface", noV6)),
		Detail: "mcoad uses only networks that give IPv6 addresses: an IPv4-only network, or one whose " +
			"router sends no Router Advertisements, is not used.",
		Fix: fmt.Sprintf("check `ip -6 addr show dev %s` and that the network offers IPv6 (`rdisc6 %s`, "+
			"net.ipv6.conf.%s.accept_ra); mcoad uses it as soon as an address appears. An interface that never "+
			"will can be left out with an [[interface]] rule with exclude = true.", noV6[0], noV6[0], noV6[0])}, true
}

func authDiagnosis(s control.Status, authIgnored float64) diagnosis {
	return diagnosis{Check: "auth",
		Problem: "authentication fails: the home agent's Binding Acknowledgements do not verify",
		Detail:  fmt.Sprintf("%.0f Binding Acknowledgements ignored for a missing or wrong MN-HA authenticator (mcoad_ba_ignored_total{reason=\"auth\"}).", authIgnored),
		Fix: "mnha_spi and mnha_key in mcoad.toml must be the spi and key of the [[home_agent.mn]] entry for " +
			s.HomeAddress.String() + " in the home agent's mcoa-ha.toml (the same hex key on both sides, e.g. made by `mcoactl genkey`); restart the daemon whose key changed."}
}

// unansweredDiagnosis says which of three it is when Binding Updates get
// no answer: nothing answers at all, the home agent answers ping but not
// BUs, or one path loses the BUs.
func unansweredDiagnosis(s control.Status, hb homeBindings, retrans float64) diagnosis {
	ha, hoa := s.HomeAgent.String(), s.HomeAddress.String()
	unanswered := func(list []control.Binding) string {
		return fmt.Sprintf("No Binding Acknowledgement for %s; %.0f Binding Updates retransmitted so far.", bidNames(list), retrans)
	}
	keyHint := " A home agent drops a Binding Update whose authenticator does not verify without an answer: check that the keys match (mcoa_ha_bu_dropped_total{reason=\"auth\"} in its `mcoactl metrics`)."
	if s.Auth == "none" {
		keyHint = " mcoad has no MN-HA key (mnha_key): a home agent that requires authentication drops its Binding Updates without an answer."
	}
	switch {
	case hb.registered > 0 && len(hb.alive) > 0:
		return diagnosis{Check: "mh-filtered",
			Problem: fmt.Sprintf("the Mobility Header is filtered on the path of %s", bidNames(hb.alive)),
			Detail: unanswered(hb.alive) + " The home agent answers ping from there and registers the other bindings: " +
				"something on that path drops IPv6 packets with next header 135.",
			Fix: "the firewall of that network (or its operator) must let IPv6 protocol 135 through both ways; " +
				"until then the other bindings carry the traffic. Lower its priority (mcoactl priority) or exclude the interface to stop trying."}
	case hb.registered > 0:
		return diagnosis{Check: "mh-filtered",
			Problem: fmt.Sprintf("Binding Updates from %s get no answer", bidNames(hb.silent)),
			Detail:  unanswered(hb.silent) + " Other bindings are registered: the home agent works, this path does not reach it or drops protocol 135.",
			Fix:     "check that this network reaches " + ha + " (`ping -6 -I INTERFACE " + ha + "`) and lets IPv6 protocol 135 through; the other bindings carry the traffic meanwhile."}
	case len(hb.alive) > 0 && len(hb.silent) == 0:
		return diagnosis{Check: "ha-ignores-bu",
			Problem: "the home agent " + ha + " answers ping but not Binding Updates",
			Detail:  unanswered(hb.alive),
			Fix: "check that mcoa-ha runs on " + ha + " and serves " + hoa + " (home_agent.serve), and that the firewalls on the way " +
				"and on the home agent let IPv6 protocol 135 (Mobility Header) through." + keyHint}
	}
	return diagnosis{Check: "ha-silent",
		Problem: "the home agent " + ha + " does not answer",
		Detail:  unanswered(append(slices.Clone(hb.silent), hb.alive...)),
		Fix: "check that home_agent in mcoad.toml is the home agent's address, that it is reachable from here " +
			"(`ping -6 " + ha + "`), that mcoa-ha runs there and serves " + hoa + ", and that the firewalls on the way let IPv6 protocol 135 (Mobility Header) through." + keyHint}
}

// tunnelDiagnosis: registered, but nothing comes back through the tunnel.
func tunnelDiagnosis(s control.Status, hb homeBindings, m metrics) (diagnosis, bool) {
	var quiet []string
	for _, b := range hb.all {
		if !isRegistered(b) || b.BID == 0 {
			continue
		}
		bid := strconv.Itoa(int(b.BID))
		tx, rx := m.get("mcoad_tunnel_tx_packets_total", "bid", bid), m.get("mcoad_tunnel_rx_packets_total", "bid", bid)
		if tx >= tunnelSilent && rx == 0 {
			quiet = append(quiet, fmt.Sprintf("BID %s (%s: %.0f sent, 0 received)", bid, dash(b.Interface), tx))
		}
	}
	if len(quiet) == 0 {
		return diagnosis{}, false
	}
	return diagnosis{Check: "tunnel-filtered",
		Problem: "registered, but nothing comes back through the tunnel of " + strings.Join(quiet, ", "),
		Detail: "The home agent acknowledges the bindings, so the Mobility Header passes; the packets it tunnels back " +
			"(IPv6 in IPv6, protocol 41) do not arrive.",
		Fix: "let IPv6 protocol 41 through the firewalls between the care-of address and " + s.HomeAgent.String() + ", and on the home agent; " +
			"check that mcoa-ha runs with a data plane ([dataplane] backend is not \"none\") and that the home prefix is routed to it."}, true
}

func pathDeadDiagnosis(dead []control.Binding) diagnosis {
	return diagnosis{Check: "path-dead",
		Problem: fmt.Sprintf("the path of %s is dead: withdrawn", bidNames(dead)),
		Detail:  "Its link is up but its probes to the home agent go unanswered (a captive portal, a stalled cellular bearer, a broken router); the other bindings carry its traffic.",
		Fix:     "nothing, unless it lasts: mcoad keeps probing and registers it again once the path answers. Sign in to the network if it has a portal."}
}

// notRegisteredDiagnosis says the home address does not work, and where to
// look when found is 0 (no other diagnosis explains why).
func notRegisteredDiagnosis(s control.Status, is []control.Interface, hb homeBindings, found int) diagnosis {
	d := diagnosis{Check: "not-registered",
		Problem: "not registered with the home agent: the home address " + s.HomeAddress.String() + " does not work",
		Fix:     "see the problems above; `mcoactl bindings` shows each binding's state and last error."}
	switch {
	case !slices.ContainsFunc(is, func(i control.Interface) bool { return i.CoA.IsValid() }):
		d.Check = "no-care-of-address"
		d.Detail = "No interface has a care-of address (a global IPv6 address outside the home prefix)."
		d.Fix = "connect a network that offers IPv6; `mcoactl interfaces` shows what each interface lacks."
	case len(hb.all) == 0:
		d.Detail = "There are care-of addresses but no bindings yet."
		d.Fix = "wait a moment; if it lasts, `mcoactl register` and look at mcoad's log (journalctl -u mcoad)."
	case found == 0:
		d.Fix = "wait for the Binding Acknowledgement; `mcoactl bindings` shows each binding's state and last error."
	}
	return d
}

func dataplaneDiagnosis(s control.Status) diagnosis {
	d := diagnosis{Check: "dataplane",
		Problem: fmt.Sprintf("the data plane (%s) cannot set up the tunnels: traffic of the home address may not flow", dash(s.Dataplane)),
		Detail:  "It says: " + s.DataplaneError,
	}
	switch s.Dataplane {
	case "kernel":
		d.Fix = "the kernel backend needs the ip6_tunnel module (`modprobe ip6_tunnel`), IPv6 policy routing " +
			"(CONFIG_IPV6_MULTIPLE_TABLES) and nftables. Without them, set [dataplane] backend = \"tun\" in mcoad.toml and restart mcoad."
	case "tun":
		d.Fix = "the TUN backend needs /dev/net/tun (`modprobe tun`), IPv6 policy routing (CONFIG_IPV6_MULTIPLE_TABLES) " +
			"and nftables in the kernel, and mcoad's capabilities (CAP_NET_ADMIN, CAP_NET_RAW); the message above names what failed."
	default:
		d.Fix = "the message above names what failed; mcoad's log (journalctl -u mcoad) has the details."
	}
	return d
}

func rejectedDiagnosis(s control.Status, rejected []control.Binding) diagnosis {
	b := rejected[0]
	d := diagnosis{Check: "rejected",
		Problem: fmt.Sprintf("the home agent rejects %s: status %s", bidNames(rejected), status(b.LastStatus, b.LastStatusText)),
	}
	if b.LastError != "rejected: "+b.LastStatusText {
		d.Detail = b.LastError // more than the status says
	}
	hoa, ha := s.HomeAddress.String(), s.HomeAgent.String()
	switch b.LastStatus {
	case 129: // administratively prohibited
		if s.Auth == "none" {
			d.Check = "auth"
			d.Problem = "authentication fails: the home agent refuses Binding Updates without an MN-HA key (status 129)"
			d.Fix = "set mnha_spi and mnha_key in mcoad.toml to the spi and key of the [[home_agent.mn]] entry for " + hoa +
				" on the home agent (`mcoactl genkey` makes a key and prints both sides), then restart mcoad."
			return d
		}
		d.Fix = "the home agent refuses this home address: check that home_agent.serve covers " + hoa +
			" and that its [[home_agent.mn]] entry has the same spi and key as mcoad.toml."
	case 131, 132, 133: // not a home agent for this address
		d.Fix = "check home_address, home_prefix and home_agent in mcoad.toml against the home agent's home_prefix and serve " +
			"in mcoa-ha.toml on " + ha + "."
	case 140, 141, 142, 143: // NEMO
		d.Fix = "the home agent does not let this node be a mobile router for its prefixes: check prefixes in its " +
			"[[home_agent.mn]] entry for " + hoa + " against [mobile_router] prefixes here."
	case 144, 145, 146: // MCoA (draft-00)
		d.Fix = "the home agent does not accept these bindings together: check that both run the same wire profile " +
			"(profile, bid_option_type) and, for 146, set registration = \"individual\" or bulk_registration = true on the home agent."
	default:
		d.Fix = "look at the home agent's log for why it refuses " + hoa + "; `mcoactl bindings` shows each binding's last status."
	}
	return d
}

// bidNames is "BID 2 (wlan0)" or "BIDs 1 (eth0), 2 (wlan0)".
func bidNames(bs []control.Binding) string {
	sorted := slices.Clone(bs)
	slices.SortStableFunc(sorted, func(a, b control.Binding) int { return int(a.BID) - int(b.BID) })
	names := make([]string, len(sorted))
	for i, b := range sorted {
		names[i] = bid(b.BID)
		if b.Interface != "" {
			names[i] += " (" + b.Interface + ")"
		}
	}
	if len(names) == 1 {
		return "BID " + names[0]
	}
	return "BIDs " + strings.Join(names, ", ")
}

func plural(noun string, names []string) string {
	if len(names) == 1 {
		return noun + " " + names[0]
	}
	return noun + "s " + strings.Join(names, ", ")
}
