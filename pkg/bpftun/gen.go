package bpftun

// The objects are committed so that `go build` needs no clang; `make
// generate` rebuilds them and `make check` fails when they differ from
// the sources.
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" -target bpfel,bpfeb tunnel ../../bpf/tunnel.c
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu" -target bpfel,bpfeb home ../../bpf/home.c
