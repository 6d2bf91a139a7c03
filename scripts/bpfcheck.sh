#!/usr/bin/env bash
# Rebuilds the committed eBPF objects (pkg/bpftun, from bpf/) in a scratch
# copy and fails when they differ: the objects must come from the sources.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/pkg"
cp -r "$root/bpf" "$root/go.mod" "$root/go.sum" "$tmp/"
cp -r "$root/pkg/bpftun" "$tmp/pkg/"
(cd "$tmp/pkg/bpftun" && go generate >/dev/null)
bad=0
for f in "$root"/pkg/bpftun/*_bpfe[lb].{o,go}; do
	if ! cmp -s "$f" "$tmp/pkg/bpftun/$(basename "$f")"; then
		echo "bpfcheck: ${f#$root/} does not match bpf/ (run make generate and commit)" >&2
		bad=1
	fi
done
exit $bad
