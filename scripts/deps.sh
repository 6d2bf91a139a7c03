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
# The eBPF programs (make generate; make check rebuilds them to compare).
have clang     || need+=(clang)
have llvm-strip || need+=(llvm)
[ -r /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
# mcoactl's zsh and fish completions are checked in their shells.
have zsh       || need+=(zsh)
have fish      || need+=(fish)

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

# NetworkManager, for the e2e test that runs a real one inside the lab's mn
# namespace (internal/lab/networkmanager.go). Installing it must not start it,
# nor anything it pulls in, on this host: a policy-rc.d that refuses every
# start (invoke-rc.d and deb-systemd-invoke ask it) is in place during the
# install and the previous one, if any, is put back; the units the package
# enables are disabled again; and whatever of it runs afterwards in the host's
# namespace that did not run before is stopped.
host_pids() { # pids of NetworkManager and its helpers in this (the host's) network namespace
	local d hostns
	hostns=$(readlink /proc/$$/ns/net)
	for d in /proc/[0-9]*; do
		case "$(cat "$d/comm" 2>/dev/null)" in
		NetworkManager | nm-dispatcher | wpa_supplicant | ModemManager | dhclient) ;;
		*) continue ;;
		esac
		[ "$(readlink "$d/ns/net" 2>/dev/null)" = "$hostns" ] && echo "${d#/proc/}"
	done
	return 0
}
install_network_manager() {
	local guard=/usr/sbin/policy-rc.d saved= before pid
	if [ -e "$guard" ]; then
		saved=$(mktemp)
		cp -p "$guard" "$saved"
	fi
	# shellcheck disable=SC2064 # expand now: the paths are fixed
	trap "if [ -n '$saved' ]; then mv -f '$saved' '$guard'; else rm -f '$guard'; fi" EXIT
	printf '#!/bin/sh\n# scripts/deps.sh: no service starts while network-manager installs\nexit 101\n' >"$guard"
	chmod 755 "$guard"
	before=" $(host_pids | tr '\n' ' ') "
	echo "deps: installing network-manager (not started)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq --no-install-recommends network-manager >/dev/null ||
		{ apt-get update -qq && apt-get install -y -qq --no-install-recommends network-manager >/dev/null; }
	if command -v systemctl >/dev/null 2>&1; then
		systemctl disable -q NetworkManager.service NetworkManager-wait-online.service \
			NetworkManager-dispatcher.service 2>/dev/null || true
	fi
	for pid in $(host_pids); do
		case "$before" in *" $pid "*) continue ;; esac
		echo "deps: $(cat "/proc/$pid/comm" 2>/dev/null) (pid $pid) started in the host's namespace by the install; stopping it" >&2
		kill "$pid" 2>/dev/null || true
	done
	if [ -n "$saved" ]; then mv -f "$saved" "$guard"; else rm -f "$guard"; fi
	trap - EXIT
}
if ! { have NetworkManager || [ -x /usr/sbin/NetworkManager ]; } || ! have nmcli; then
	if [ "$(id -u)" != 0 ]; then
		echo "deps: missing network-manager; run as root (or install it) first" >&2
		exit 1
	fi
	install_network_manager
fi

gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/staticcheck" ]; then
	echo "deps: installing staticcheck"
	go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
if [ ! -x "$gobin/deadcode" ]; then
	echo "deps: installing deadcode"
	go install golang.org/x/tools/cmd/deadcode@v0.52.0
fi
