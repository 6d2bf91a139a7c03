package bul

import "time"

// The home agent tunnels are the data plane's: it reports the working ones
// (SetTunnels) after each apply, and the engine sends the HoTI from the
// home address through the one of the primary binding. Which tunnel
// carries a binding is decided here only (tunnelBID), for the data plane
// (Entry.TunnelBID) and for the HoTI alike.

func (c *machine) setTunnels(ts []Tunnel, now time.Time) {
	clear(c.tunnels)
	for _, t := range ts {
		c.tunnels[t.BID] = t
	}
	c.pump(now)
}

// tunnelBID numbers the tunnel of a binding with bid on iface: its own BID,
// or for a binding without BID (single mode, or a correspondent that does
// not know MCoA) the BID of its care-of address's interface (0: none).
func (c *machine) tunnelBID(bid uint16, iface string) uint16 {
	if bid != 0 {
		return bid
	}
	for i := range c.careofs {
		if co := &c.careofs[i]; co.Iface == iface {
			return co.BID
		}
	}
	return 0
}

// tunnel is the working tunnel numbered tbid (the zero Tunnel: none).
func (c *machine) tunnel(tbid uint16) Tunnel {
	if tbid == 0 {
		return Tunnel{}
	}
	return c.tunnels[tbid]
}

// bestTunnel is the working tunnel of the primary registered binding (the
// highest priority): packets from the home address leave through it (the
// zero Tunnel: none yet).
func (c *machine) bestTunnel() Tunnel {
	var best *entry
	for _, e := range c.ents {
		if e.want == wantRegister && e.registered && (best == nil || e.regPrio > best.regPrio) {
			best = e
		}
	}
	if best == nil {
		return Tunnel{}
	}
	if t := c.tunnel(c.tunnelBID(best.bid, best.iface)); t.usable() {
		return t
	}
	return Tunnel{}
}

// fillTunnel names v's tunnel.
func (c *machine) fillTunnel(v *Entry) {
	v.TunnelBID = c.tunnelBID(v.BID, v.Interface)
	v.Tunnel = c.tunnel(v.TunnelBID).Name
}
