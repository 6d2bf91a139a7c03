#!/usr/bin/env bash
# The .debs' checks (make debcheck, part of make test):
#   - the three packages (mcoactl, mcoad, mcoa-ha) build, reproducibly;
#     each holds its files and none of the others' (a laptop gets no home
#     agent unit, a server no NetworkManager hook); lintian reports no
#     error and no warning that is not overridden (with a reason) in
#     debian/PACKAGE/lintian-overrides;
#   - the copyright file covers every Go module the programs contain;
#   - dpkg installs them into a throw-away root (a laptop: mcoactl and
#     mcoad; a server: mcoactl and mcoa-ha; then all three), upgrades them
#     to a later version (keeping a changed conffile), removes and purges
#     each, and the purges leave nothing behind;
#   - systemd-analyze verify accepts both units;
#   - the NetworkManager dispatcher hook forwards what it should, quickly;
#     NetworkManager reads the conf.d snippet;
#   - the bash completion completes.
# A missing tool fails the check when MCOA_E2E=1, else it is skipped with a
# message.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/mcoad-debcheck.XXXXXX")
trap 'rm -rf "$work"' EXIT

fail() { echo "debcheck: FAIL: $*" >&2; exit 1; }
step() { echo "debcheck: $*"; }
missing() {
	if [ "${MCOA_E2E:-}" = 1 ]; then
		fail "$1 is not installed (MCOA_E2E=1)"
	fi
	echo "debcheck: SKIP: $1 is not installed: $2" >&2
}
have() { command -v "$1" >/dev/null 2>&1; }

# --- build ---------------------------------------------------------------
mapfile -t debs < <(bash "$here/build.sh" "$work/dist")
[ "${#debs[@]}" = 3 ] || fail "build.sh made ${#debs[@]} packages, want 3"
declare -A deb
for d in "${debs[@]}"; do
	[ -f "$d" ] || fail "build.sh made no $d"
	p=$(dpkg-deb -f "$d" Package)
	deb[$p]=$d
done
for p in mcoactl mcoad mcoa-ha; do [ -n "${deb[$p]:-}" ] || fail "no package $p"; done
step "built $(for d in "${debs[@]}"; do basename "$d"; done | tr '\n' ' ')"
# Reproducible: a second build gives the same files.
mapfile -t debs2 < <(bash "$here/build.sh" "$work/dist2")
for i in 0 1 2; do
	cmp -s "${debs[$i]}" "${debs2[$i]}" || fail "two builds of $(basename "${debs[$i]}") differ: not reproducible (or the source changed in between)"
done
version=$(dpkg-deb -f "${deb[mcoad]}" Version)
# A later version, for the upgrade.
next=${version%-*}-$((${version##*-} + 1))
mapfile -t debsNext < <(DEB_VERSION=$next bash "$here/build.sh" "$work/dist-next")
declare -A debNext
for d in "${debsNext[@]}"; do debNext[$(dpkg-deb -f "$d" Package)]=$d; done

# --- contents --------------------------------------------------------------
has() { # has PACKAGE PATH...: the package holds these files
	local p=$1 f
	shift
	dpkg-deb -c "${deb[$p]}" >"$work/contents-$p"
	for f in "$@"; do
		grep -q " \.$f\$" "$work/contents-$p" || fail "$f is not in $p"
	done
}
hasnt() { # hasnt PACKAGE PATTERN...: nothing in the package matches
	local p=$1 f
	shift
	for f in "$@"; do
		if grep -E " \.$f\$" "$work/contents-$p" >/dev/null; then
			fail "$p holds $(grep -E " \.$f\$" "$work/contents-$p" | awk '{print $NF}' | tr '\n' ' ')"
		fi
	done
}
has mcoactl /usr/bin/mcoactl /usr/share/man/man8/mcoactl.8.gz \
	/usr/share/bash-completion/completions/mcoactl \
	/usr/share/doc/mcoactl/copyright /usr/share/doc/mcoactl/changelog.Debian.gz
# The zsh and fish completions, once they exist in the source.
for f in usr/share/zsh/vendor-completions/_mcoactl usr/share/fish/vendor_completions.d/mcoactl.fish; do
	[ ! -e "$here/root/$f" ] || has mcoactl "/$f"
done
has mcoad /usr/sbin/mcoad /etc/mcoad/mcoad.toml /lib/systemd/system/mcoad.service \
	/usr/share/dbus-1/system.d/org.mcoad.MobileNode1.conf \
	/usr/lib/NetworkManager/dispatcher.d/90-mcoad /usr/lib/NetworkManager/conf.d/90-mcoad.conf \
	/usr/share/man/man8/mcoad.8.gz /usr/share/man/man5/mcoad.toml.5.gz \
	/usr/share/doc/mcoad/copyright /usr/share/doc/mcoad/changelog.Debian.gz
has mcoa-ha /usr/sbin/mcoa-ha /etc/mcoad/mcoa-ha.toml /lib/systemd/system/mcoa-ha.service \
	/usr/share/man/man8/mcoa-ha.8.gz \
	/usr/share/doc/mcoa-ha/copyright /usr/share/doc/mcoa-ha/changelog.Debian.gz
# A laptop gets no home agent, a server no NetworkManager or D-Bus files;
# mcoactl is in one package only.
hasnt mcoad '.*mcoa-ha.*' '/usr/bin/mcoactl' '.*completion.*'
hasnt mcoa-ha '.*NetworkManager.*' '.*dbus-1.*' '/usr/sbin/mcoad' '/usr/bin/mcoactl' '.*mcoad\.(toml|service|8).*'
hasnt mcoactl '/usr/sbin/.*' '.*\.service' '/etc/.*' '.*NetworkManager.*'
# NetworkManager runs only dispatcher scripts owned by root and writable by
# no one else.
grep -E ' \./usr/lib/NetworkManager/dispatcher\.d/90-mcoad$' "$work/contents-mcoad" |
	grep -q '^-rwxr-xr-x root/root ' || fail "90-mcoad is not root's with mode 0755"
for p in mcoactl mcoad mcoa-ha; do
	if grep -v '^d' "$work/contents-$p" | grep -v ' root/root ' >/dev/null; then
		fail "$p: files not owned by root"
	fi
done
dpkg-deb -f "${deb[mcoactl]}" Depends | grep -q 'adduser' || fail "mcoactl's Depends lacks adduser (postinst runs addgroup)"
for p in mcoad mcoa-ha; do
	dpkg-deb -f "${deb[$p]}" Depends | grep -q "mcoactl (= $version)" || fail "$p does not depend on mcoactl (= $version)"
done
# The files mcoactl and mcoa-ha took over from the one package of 0.1.0.
for p in mcoactl mcoa-ha; do
	for f in Breaks Replaces; do
		dpkg-deb -f "${deb[$p]}" $f | grep -q 'mcoad (<< 0.2.0~)' || fail "$p: $f lacks mcoad (<< 0.2.0~)"
	done
done
step "contents: each package its own files"

# --- copyright covers the embedded Go modules -------------------------------
for p in mcoactl mcoad mcoa-ha; do dpkg-deb -x "${deb[$p]}" "$work/x"; done
for bin in "$work"/x/usr/sbin/* "$work"/x/usr/bin/*; do
	go version -m "$bin" | awk '$1 == "dep" || $1 == "=>" { print $2 }'
done | sort -u >"$work/modules"
while read -r mod; do
	grep -q "^Files:.* $mod/\*\|^ $mod/\*" "$here/debian/copyright" ||
		fail "debian/copyright does not cover the Go module $mod"
done <"$work/modules"
step "copyright covers $(wc -l <"$work/modules") Go modules"

# --- lintian ---------------------------------------------------------------
if have lintian; then
	# Overrides are honoured; what remains at warning level or above fails.
	# (--show-overrides would make overridden tags fail too.)
	if ! lintian --fail-on error,warning --display-info "${deb[@]}" >"$work/lintian" 2>&1; then
		cat "$work/lintian" >&2
		fail "lintian"
	fi
	# Every override has a reason: a comment line right above it.
	for p in mcoactl mcoad mcoa-ha; do
		awk '/^#/ { c = 1; next } /^[[:space:]]*$/ { c = 0; next } { if (!c) { print "override without a reason: " $0; bad = 1 } c = 0 } END { exit bad }' \
			"$here/debian/$p/lintian-overrides" || fail "$p/lintian-overrides"
	done
	step "lintian: no errors, no warnings ($(cat "$here"/debian/*/lintian-overrides | grep -c '^[a-z-]*: ') overrides, $(grep -c '^I: ' "$work/lintian" || true) info)"
else
	missing lintian "the packages are not linted"
fi

# --- dpkg into a throw-away root ------------------------------------------
root=$work/root
newroot() {
	rm -rf "$root"
	mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
	touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
}
# The maintainer scripts run outside the root with DPKG_ROOT set
# (--force-script-chrootless); the root has none of the dependencies
# outside these packages.
dpkg_root() {
	dpkg --root="$root" --force-not-root --force-script-chrootless --force-depends \
		--log=/dev/null "$@" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg $*"; }
}
status() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Status} ${Version}' "$1" 2>/dev/null || true; }
installed() { # installed VERSION PACKAGE...
	local v=$1 p
	shift
	for p in "$@"; do
		[ "$(status "$p")" = "install ok installed $v" ] || fail "$p: status '$(status "$p")', want installed $v"
	done
}
# Nothing but dpkg's own database (and the directories holding it) is left;
# deb-systemd-helper leaves /var/lib/systemd, systemd's directory on a real
# system, empty; /run is the test's (the daemons' sockets), empty too.
leftovers() {
	(cd "$root" && find . -mindepth 1 \( -path ./var/lib/dpkg -prune \) -o -print |
		grep -v -x -e ./var -e ./var/lib -e ./var/lib/systemd -e ./run || true)
}

# A laptop: mcoactl and mcoad.
newroot
dpkg_root -i "${deb[mcoactl]}" "${deb[mcoad]}"
installed "$version" mcoactl mcoad
[ ! -e "$root/lib/systemd/system/mcoa-ha.service" ] && [ ! -e "$root/usr/sbin/mcoa-ha" ] || fail "a laptop got the home agent"
dpkg_root -P mcoad mcoactl
[ -z "$(leftovers)" ] || fail "laptop purge left: $(leftovers | tr '\n' ' ')"
# A server: mcoactl and mcoa-ha.
dpkg_root -i "${deb[mcoactl]}" "${deb[mcoa-ha]}"
installed "$version" mcoactl mcoa-ha
[ ! -e "$root/usr/lib/NetworkManager" ] && [ ! -e "$root/usr/sbin/mcoad" ] && [ ! -e "$root/usr/share/dbus-1" ] ||
	fail "a server got the mobile node's files"
dpkg_root -P mcoa-ha mcoactl
[ -z "$(leftovers)" ] || fail "server purge left: $(leftovers | tr '\n' ' ')"
step "dpkg --root: a laptop (mcoactl, mcoad) and a server (mcoactl, mcoa-ha) installed and purged"

# All three; then an upgrade.
newroot
dpkg_root -i "${deb[mcoactl]}" "${deb[mcoad]}" "${deb[mcoa-ha]}"
installed "$version" mcoactl mcoad mcoa-ha
for f in usr/sbin/mcoad usr/sbin/mcoa-ha usr/bin/mcoactl etc/mcoad/mcoad.toml etc/mcoad/mcoa-ha.toml \
	lib/systemd/system/mcoad.service lib/systemd/system/mcoa-ha.service \
	usr/share/dbus-1/system.d/org.mcoad.MobileNode1.conf usr/lib/NetworkManager/conf.d/90-mcoad.conf; do
	[ -e "$root/$f" ] || fail "after install: /$f missing"
done
for p in mcoad mcoa-ha; do
	"$root/usr/sbin/$p" -version | grep -q "^$p ${version%-*}\$" || fail "the installed $p does not say its version ${version%-*}"
done
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Conffiles}\n' mcoad | grep -q '/etc/mcoad/mcoad.toml' ||
	fail "/etc/mcoad/mcoad.toml is not a conffile of mcoad"
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Conffiles}\n' mcoa-ha | grep -q '/etc/mcoad/mcoa-ha.toml' ||
	fail "/etc/mcoad/mcoa-ha.toml is not a conffile of mcoa-ha"
step "dpkg --root: all three installed"

# What the daemons leave at run time, and an administrator's edits.
mkdir -p "$root/var/lib/mcoad" && echo '{}' >"$root/var/lib/mcoad/bul-seq.json"
mkdir -p "$root/var/lib/mcoa-ha" && echo '{}' >"$root/var/lib/mcoa-ha/bindings.json"
mkdir -p "$root/run/mcoad" && : >"$root/run/mcoad/mcoad.sock" && : >"$root/run/mcoad/mcoa-ha.sock"
echo '# edited' >>"$root/etc/mcoad/mcoad.toml"
echo '# edited' >>"$root/etc/mcoad/mcoa-ha.toml"
dpkg_root --force-confold -i "${debNext[mcoactl]}" "${debNext[mcoad]}" "${debNext[mcoa-ha]}"
installed "$next" mcoactl mcoad mcoa-ha
grep -q '^# edited$' "$root/etc/mcoad/mcoad.toml" && grep -q '^# edited$' "$root/etc/mcoad/mcoa-ha.toml" ||
	fail "the upgrade lost an edited conffile"
[ -e "$root/var/lib/mcoad/bul-seq.json" ] && [ -e "$root/var/lib/mcoa-ha/bindings.json" ] || fail "the upgrade lost the daemons' state"
step "dpkg --root: upgraded to $next, the edited conffiles and the state kept"

# Removing and purging the mobile node leaves the home agent whole.
dpkg_root -r mcoad
[ ! -e "$root/usr/sbin/mcoad" ] || fail "after remove: /usr/sbin/mcoad is still there"
[ -e "$root/etc/mcoad/mcoad.toml" ] || fail "remove took the conffile (only purge may)"
dpkg_root -P mcoad
[ ! -e "$root/var/lib/mcoad" ] && [ ! -e "$root/etc/mcoad/mcoad.toml" ] && [ ! -e "$root/run/mcoad/mcoad.sock" ] ||
	fail "purge of mcoad left its state, socket or configuration"
[ -e "$root/var/lib/mcoa-ha/bindings.json" ] && [ -e "$root/etc/mcoad/mcoa-ha.toml" ] && [ -e "$root/run/mcoad/mcoa-ha.sock" ] &&
	[ -x "$root/usr/bin/mcoactl" ] || fail "purge of mcoad took mcoa-ha's files"
dpkg_root -P mcoa-ha mcoactl
[ -z "$(status mcoad)$(status mcoa-ha)$(status mcoactl)" ] ||
	[ "$(status mcoad)$(status mcoa-ha)$(status mcoactl)" = "" ] || fail "after purge: $(status mcoad) $(status mcoa-ha) $(status mcoactl)"
[ -z "$(leftovers)" ] || fail "purge left: $(leftovers | tr '\n' ' ')"
step "dpkg --root: mcoad removed and purged with mcoa-ha untouched, then all purged, nothing left"

# --- systemd units -----------------------------------------------------------
if have systemd-analyze; then
	# verify wants what the units name: the targets they order against
	# (the host's units), /bin/kill, the programs (from the packages) and
	# the man pages of Documentation= (MANPATH). A root made of those.
	sa=$work/sa
	mkdir -p "$sa/usr/lib/systemd/system" "$sa/bin"
	for d in /usr/lib/systemd/system /lib/systemd/system; do
		[ -d "$d" ] && cp -a "$d/." "$sa/usr/lib/systemd/system/"
	done
	cp /bin/kill "$sa/bin/kill" || fail "no /bin/kill (procps) for ExecReload="
	for p in mcoactl mcoad mcoa-ha; do dpkg-deb -x "${deb[$p]}" "$sa"; done
	# Any remark (unknown key, bad value, missing program) fails: verify
	# itself exits 0 on most of them.
	if ! out=$(cd "$sa" && MANPATH=$sa/usr/share/man SYSTEMD_LOG_LEVEL=notice \
		systemd-analyze verify --root="$sa" lib/systemd/system/mcoad.service lib/systemd/system/mcoa-ha.service 2>&1); then
		echo "$out" >&2
		fail "systemd-analyze verify"
	fi
	if [ -n "$out" ]; then
		echo "$out" >&2
		fail "systemd-analyze verify has remarks"
	fi
	# Reloads that fail on a refused file (mcoactl reload on each
	# daemon's socket); both Type=notify with a cleanup after a killed run.
	unit() { grep -E "^$2=" "$sa/lib/systemd/system/$1" | tr '\n' ';'; }
	[ "$(unit mcoad.service ExecReload)" = "ExecReload=/usr/bin/mcoactl reload;" ] || fail "mcoad.service: $(unit mcoad.service ExecReload)"
	[ "$(unit mcoa-ha.service ExecReload)" = "ExecReload=/usr/bin/mcoactl -socket /run/mcoad/mcoa-ha.sock reload;" ] ||
		fail "mcoa-ha.service: $(unit mcoa-ha.service ExecReload)"
	for u in mcoad mcoa-ha; do
		[ "$(unit $u.service Type)" = "Type=notify;" ] || fail "$u.service is not Type=notify"
		unit $u.service ExecStopPost | grep -q "^ExecStopPost=/usr/sbin/$u -cleanup" || fail "$u.service has no cleanup"
	done
	# -check-config FILE refuses a bad file, as mcoad's does.
	printf '[home_agent]\naddress = 7\n' >"$work/bad-ha.toml"
	if "$sa/usr/sbin/mcoa-ha" -check-config "$work/bad-ha.toml" >/dev/null 2>&1; then
		fail "mcoa-ha -check-config accepts a bad file"
	fi
	step "systemd-analyze verify: units accepted; reloads fail on a refused file"
else
	missing systemd-analyze "the units are not verified"
fi

# --- the dispatcher hook ----------------------------------------------------
hook=$work/x/usr/lib/NetworkManager/dispatcher.d/90-mcoad
fake=$work/fake-mcoactl
printf '#!/bin/sh\necho "$*" >>%s\n' "$work/hints" >"$fake"
chmod 755 "$fake"
run_hook() { MCOA_DISPATCH_MCOACTL=$1 timeout 10 "$hook" "$2" "$3" || fail "90-mcoad $2 $3: exit $?"; }
run_hook "$fake" eth0 up
run_hook "$fake" wwan0 down
run_hook "$fake" "" connectivity-change
run_hook "$fake" eth0 pre-up
run_hook "$fake" eth0 dhcp4-change
printf 'hint up eth0\nhint down wwan0\nhint connectivity\n' | cmp -s - "$work/hints" ||
	fail "90-mcoad forwarded: $(tr '\n' ';' <"$work/hints")"
# mcoad hanging or gone never holds NetworkManager up or fails its action.
printf '#!/bin/sh\nsleep 30\n' >"$fake"
run_hook "$fake" eth0 up
run_hook "$work/no-such-mcoactl" eth0 up
printf '#!/bin/sh\nexit 1\n' >"$fake"
run_hook "$fake" eth0 down
step "dispatcher hook: forwards up, down, connectivity-change; bounded and silent"

# --- bash completion ----------------------------------------------------------
if [ -r /usr/share/bash-completion/bash_completion ]; then
	comp() {
		bash -c 'source /usr/share/bash-completion/bash_completion; source "$1"; shift
			COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
			_mcoactl; echo "${COMPREPLY[*]}"' _ "$work/x/usr/share/bash-completion/completions/mcoactl" "$@"
	}
	[ "$(comp mcoactl hi)" = hint ] || fail "completion of 'mcoactl hi': '$(comp mcoactl hi)'"
	[ "$(comp mcoactl -socket /x/y.sock hint c)" = connectivity ] || fail "completion after -socket"
	[ "$(comp mcoactl policy a)" = add ] || fail "completion of 'mcoactl policy a'"
	[ "$(comp mcoactl deregister --a)" = --all ] || fail "completion of 'mcoactl deregister --a'"
	step "bash completion completes"
else
	missing bash-completion "the completion is not exercised"
fi

# --- NetworkManager's conf.d snippet -------------------------------------------
if have NetworkManager; then
	nmc=$work/nm
	mkdir -p "$nmc/etc" "$nmc/empty"
	: >"$nmc/etc/NetworkManager.conf"
	NetworkManager --print-config --config="$nmc/etc/NetworkManager.conf" --config-dir="$nmc/empty" \
		--system-config-dir="$work/x/usr/lib/NetworkManager/conf.d" >"$work/nm.out" 2>&1 || { cat "$work/nm.out" >&2; fail "NetworkManager --print-config"; }
	grep -q '^managed=0$' "$work/nm.out" && grep -q '^match-device=interface-name:mcoab\*;' "$work/nm.out" ||
		{ cat "$work/nm.out" >&2; fail "NetworkManager does not read 90-mcoad.conf"; }
	step "NetworkManager reads 90-mcoad.conf: mcoad's devices unmanaged"
else
	missing NetworkManager "the conf.d snippet is not read"
fi

echo "debcheck: ok ($(for d in "${debs[@]}"; do basename "$d"; done | tr '\n' ' '))"
