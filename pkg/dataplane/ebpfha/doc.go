// Package ebpfha is the home agent's data plane in the kernel ([dataplane]
// backend = "ebpf"): the tunnels from the home agent to the bindings of its
// cache run as pkg/bpftun's Home programs, with no packet in userspace.
package ebpfha
