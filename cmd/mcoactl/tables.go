package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mcoad/mcoad/pkg/control"
)

// Renderers for people. Each writes an aligned table (header in capitals)
// or key: value lines; --json bypasses them.

func newTable(w io.Writer, header string) *tabwriter.Writer {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ReplaceAll(header, " ", "\t"))
	return tw
}

func row(tw io.Writer, cells ...string) {
	fmt.Fprintln(tw, strings.Join(cells, "\t"))
}

func writeStatus(w io.Writer, s control.Status) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	kv("daemon", strings.TrimSpace(s.Daemon+" "+s.Version))
	if s.HomeAddress.IsValid() {
		kv("home address", s.HomeAddress.String())
	}
	if s.HomeAgent.IsValid() {
		kv("home agent", s.HomeAgent.String())
	}
	kv("registration", s.Mode)
	kv("bid mode", s.BIDMode)
	kv("profile", s.Profile)
	kv("dataplane", s.Dataplane)
	if s.Daemon == control.DaemonHA {
		kv("roles", strings.Join(s.Roles, ", "))
		kv("authentication", haAuth[s.Auth])
		if len(s.Correspondent) > 0 {
			addrs := make([]string, len(s.Correspondent))
			for i, a := range s.Correspondent {
				addrs[i] = a.String()
			}
			kv("correspondent", strings.Join(addrs, ", "))
		}
		kv("uptime", secs(s.Uptime))
		kv("cache entries", strconv.Itoa(s.Counts.CacheEntries))
		return tw.Flush()
	}
	kv("at home", yesNo(s.AtHome))
	kv("uptime", secs(s.Uptime))
	kv("bindings", fmt.Sprintf("%d (%d registered)", s.Counts.Bindings, s.Counts.Registered))
	kv("interfaces", strconv.Itoa(s.Counts.Interfaces))
	kv("policies", strconv.Itoa(s.Counts.Policies))
	if r := s.MobileRouter; r != nil {
		kv("mobile router", yesNo(r.Enabled)+", "+r.Mode+" mode")
		var ps []string
		for _, p := range r.Prefixes {
			ps = append(ps, p.String())
		}
		kv("mobile networks", strings.Join(ps, " "))
		kv("ingress", strings.Join(r.Ingress, " "))
		kv("forwarding", yesNo(r.Forwarding))
		nemo := "-"
		if r.LastStatus != 0 {
			nemo = status(r.LastStatus, r.LastStatusText)
		}
		if r.HomeAgentNoNEMO {
			nemo = "home agent without NEMO support: prefixes not routed"
		}
		kv("last NEMO status", nemo)
		if r.LastError != "" {
			kv("NEMO error", r.LastError)
		}
	}
	return tw.Flush()
}

// writeRows writes an aligned table of items, one row each, or the line
// none when there are no items.
func writeRows[T any](w io.Writer, items []T, none, header string, cells func(T) []string) error {
	if len(items) == 0 {
		_, err := fmt.Fprintln(w, none)
		return err
	}
	tw := newTable(w, header)
	for _, it := range items {
		row(tw, cells(it)...)
	}
	return tw.Flush()
}

func writeBindings(w io.Writer, bs []control.Binding) error {
	err := writeRows(w, bs, "no bindings", "BID INTERFACE COA PRIO STATE PATH RTT LOSS SEQ LIFETIME EXPIRES STATUS ROLE PEER",
		func(b control.Binding) []string {
			return []string{bid(b.BID), dash(b.Interface), addr(b.CoA), strconv.Itoa(int(b.Priority)), dash(b.State),
				dash(b.Liveness), rtt(b.Health), loss(b.Health),
				strconv.Itoa(int(b.Sequence)), secs(int64(b.Lifetime)), secs(b.ExpiresIn),
				status(b.LastStatus, b.LastStatusText), dash(b.Role), addr(b.Peer)}
		})
	if err != nil || len(bs) == 0 {
		return err
	}
	// Why a binding failed, under the table: the messages are long, a
	// column would push the others off the screen.
	first := true
	for _, b := range bs {
		if b.LastError == "" {
			continue
		}
		if first {
			fmt.Fprintln(w, "\nLast errors:")
			first = false
		}
		if _, err := fmt.Fprintf(w, "  BID %s %s %s: %s\n", bid(b.BID), dash(b.Role), addr(b.Peer), b.LastError); err != nil {
			return err
		}
	}
	return nil
}

// rtt is a path's last round trip ("-" when not measured).
func rtt(h control.Health) string {
	if h.Liveness == "" || h.RTTMs == 0 {
		return "-"
	}
	return strconv.FormatFloat(h.RTTMs, 'f', 2, 64) + "ms"
}

// loss is the share of a path's recent probes lost ("-" when not watched).
func loss(h control.Health) string {
	if h.Liveness == "" {
		return "-"
	}
	return strconv.FormatFloat(100*h.Loss, 'f', 0, 64) + "%"
}

// pathHealth is a path's liveness for `mcoactl monitor` ("" when not watched).
func pathHealth(h control.Health) string {
	if h.Liveness == "" {
		return ""
	}
	return "path " + h.Liveness + " rtt " + rtt(h) + " loss " + loss(h)
}

func writeInterfaces(w io.Writer, is []control.Interface) error {
	return writeRows(w, is, "no interfaces", "NAME INDEX BID COA PRIO STATE PATH RTT LOSS HOME METERED",
		func(i control.Interface) []string {
			return []string{i.Name, strconv.Itoa(i.Index), bid(i.BID), addr(i.CoA), strconv.Itoa(int(i.Priority)),
				dash(i.State), dash(i.Liveness), rtt(i.Health), loss(i.Health), yesDash(i.HomeLink), yesDash(i.Metered)}
		})
}

func writePolicies(w io.Writer, ps []control.Policy) error {
	return writeRows(w, ps, "no policies", "NAME PROTO SRC-PORT DST-PORT DST-PREFIX USER CGROUP PREFER",
		func(p control.Policy) []string {
			return []string{p.Name, dash(p.Protocol), dash(p.SrcPort), dash(p.DstPort), dash(p.DstPrefix),
				dash(p.User), dash(p.Cgroup), dash(strings.Join(p.Prefer, ","))}
		})
}

func writeCache(w io.Writer, cs []control.CacheEntry) error {
	return writeRows(w, cs, "binding cache is empty", "HOA BID COA PRIO SEQ LIFETIME EXPIRES TYPE",
		func(c control.CacheEntry) []string {
			typ := "cn"
			if c.HomeRegistration {
				typ = "home"
			}
			return []string{addr(c.HoA), bid(c.BID), addr(c.CoA), strconv.Itoa(int(c.Priority)),
				strconv.Itoa(int(c.Sequence)), secs(int64(c.Lifetime)), secs(c.ExpiresIn), typ}
		})
}

// formatEvent is one line of `mcoactl monitor`, with the time in loc.
func formatEvent(ev control.Event, loc *time.Location) string {
	var b strings.Builder
	b.WriteString(ev.Time.In(loc).Format("2006-01-02 15:04:05.000"))
	b.WriteString(" " + ev.Kind)
	if ev.Removed {
		b.WriteString(" removed")
	}
	add := func(parts ...string) {
		for _, p := range parts {
			if p != "" {
				b.WriteString(" " + p)
			}
		}
	}
	switch {
	case ev.Kind == control.EventLost:
		add(fmt.Sprintf("%d events (this monitor fell behind)", ev.Lost))
	case ev.Binding != nil:
		x := ev.Binding
		add(x.Role, addr(x.Peer), "bid "+bid(x.BID), x.Interface, addr(x.CoA), x.State,
			fmt.Sprintf("prio %d seq %d lifetime %s", x.Priority, x.Sequence, secs(int64(x.Lifetime))))
		if x.LastStatus != control.NoStatus {
			add("status " + status(x.LastStatus, x.LastStatusText))
		}
		add(pathHealth(x.Health))
		if x.LastError != "" {
			add("error: " + x.LastError)
		}
	case ev.Interface != nil:
		x := ev.Interface
		add(x.Name, x.State, "bid "+bid(x.BID), addr(x.CoA), fmt.Sprintf("prio %d", x.Priority), pathHealth(x.Health))
		if x.HomeLink {
			add("home-link")
		}
		if x.Metered {
			add("metered")
		}
	case ev.Policy != nil:
		add(ev.Policy.Name)
		if !ev.Removed {
			add("prefer " + strings.Join(ev.Policy.Prefer, ","))
		}
	case ev.Cache != nil:
		x := ev.Cache
		add(addr(x.HoA), "bid "+bid(x.BID), addr(x.CoA),
			fmt.Sprintf("prio %d seq %d lifetime %s", x.Priority, x.Sequence, secs(int64(x.Lifetime))))
	}
	add(ev.Message)
	return b.String()
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.String()
}

func bid(b uint16) string {
	if b == 0 {
		return "-"
	}
	return strconv.Itoa(int(b))
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// secs formats a number of seconds like time.Duration does ("6m40s");
// zero or less is "-".
func secs(n int64) string {
	if n <= 0 {
		return "-"
	}
	return (time.Duration(n) * time.Second).String()
}

func status(code int, text string) string {
	if code == control.NoStatus {
		return "-"
	}
	if text == "" {
		return strconv.Itoa(code)
	}
	return fmt.Sprintf("%d (%s)", code, text)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func yesDash(b bool) string {
	if b {
		return "yes"
	}
	return "-"
}
