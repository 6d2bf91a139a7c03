#!/usr/bin/env bash
# Installs what building, testing and the lab need on a Debian machine, and
# only what is missing. Idempotent; safe to run on every `make`.
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1; }
have ip        || need+=(iproute2)
have radvd     || need+=(radvd)
have nft       || need+=(nftables)
have tshark    || need+=(tshark)
have iperf3    || need+=(iperf3)
have dbus-daemon || need+=(dbus-daemon)
have busctl    || need+=(systemd)
have tcpdump   || need+=(tcpdump)
have ping      || need+=(iputils-ping)
# The .deb (make deb, make debcheck).
have dpkg-deb  || need+=(dpkg)
have dpkg-shlibdeps || need+=(dpkg-dev)
have lintian   || need+=(lintian)
have systemd-analyze || need+=(systemd)
have objcopy   || need+=(binutils)
have gcc       || need+=(gcc)        # cgo: the packaged programs are PIE with RELRO
[ -x /bin/kill ] || need+=(procps)  # systemd-analyze checks ExecReload's /bin/kill
have dbus-send || need+=(dbus-bin)  # pkg/nm tests: dbus-send, dbus-monitor
[ -r /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)

if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing ${need[*]}; run as root (or install them) first" >&2
		exit 1
	fi
	echo "deps: installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# wireshark-common asks whether non-root users may capture; the default
	# (no) is what we want, and noninteractive takes it.
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/staticcheck" ]; then
	echo "deps: installing staticcheck"
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
