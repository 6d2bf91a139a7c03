package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"

	"github.com/mcoad/mcoad/pkg/control"
)

// TestStatusMobileRouter: `mcoactl status` shows a mobile router's NEMO
// state, and nothing of it for a mobile host.
func TestStatusMobileRouter(t *testing.T) {
	s := testStatus
	s.MobileRouter = &control.MobileRouter{Enabled: true, Mode: "explicit",
		Prefixes: []netip.Prefix{netip.MustParsePrefix("2001:db8:bbbb::/64")}, Ingress: []string{"lan0"},
		Forwarding: true, LastStatus: 141, LastStatusText: "NOT AUTHORIZED FOR PREFIX", LastError: "rejected: 141"}
	var b strings.Builder
	if err := writeStatus(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"mobile router:     yes, explicit mode\n",
		"mobile networks:   2001:db8:bbbb::/64\n",
		"ingress:           lan0\n",
		"forwarding:        yes\n",
		"last NEMO status:  141 (NOT AUTHORIZED FOR PREFIX)\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	if err := writeStatus(&b, testStatus); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "mobile") {
		t.Errorf("a mobile host's status mentions a mobile router:\n%s", b.String())
	}
}

// TestStatusRoles: mcoa-ha's status names the roles it runs and the
// correspondent's addresses.
func TestStatusRoles(t *testing.T) {
	s := control.Status{Daemon: control.DaemonHA, Roles: []string{"correspondent"}, Correspondent: []netip.Addr{netip.MustParseAddr("2001:db8:cccc::1")}}
	var b bytes.Buffer
	if err := writeStatus(&b, s); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"roles:          correspondent\n", "correspondent:  2001:db8:cccc::1\n"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "home agent:") {
		t.Errorf("a correspondent-only status names a home agent:\n%s", b.String())
	}
}
