// Package homeagent is the home agent's data plane (Forwarder): the
// tunnels from the home agent to the bindings of its cache, in userspace
// over a TUN device.
package homeagent
