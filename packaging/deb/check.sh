#!/usr/bin/env bash
# The .deb's checks (make debcheck, part of make test):
#   - it builds; lintian reports no error and no warning that is not
#     overridden (with a reason) in debian/lintian-overrides;
#   - the copyright file covers every Go module the programs contain;
#   - dpkg installs it into a throw-away root, installs it again over
#     itself (keeping a changed conffile), removes and purges it, and the
#     purge leaves nothing behind;
#   - systemd-analyze verify accepts the units;
#   - the NetworkManager dispatcher hook forwards what it should, quickly;
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
deb=$(bash "$here/build.sh" "$work/dist")
[ -f "$deb" ] || fail "build.sh made no package"
step "built $(basename "$deb")"
# Reproducible: a second build is the same file.
deb2=$(bash "$here/build.sh" "$work/dist2")
cmp -s "$deb" "$deb2" || fail "two builds differ: not reproducible (or the source changed in between)"

# --- contents --------------------------------------------------------------
dpkg-deb -c "$deb" >"$work/contents"
for f in ./usr/sbin/mcoad ./usr/sbin/mcoa-ha ./usr/bin/mcoactl \
	./etc/mcoad/mcoad.toml ./etc/mcoad/mcoa-ha.toml \
	./lib/systemd/system/mcoad.service ./lib/systemd/system/mcoa-ha.service \
	./usr/share/dbus-1/system.d/org.mcoad.MobileNode1.conf \
	./usr/lib/NetworkManager/dispatcher.d/90-mcoad \
	./usr/share/bash-completion/completions/mcoactl \
	./usr/share/man/man8/mcoad.8.gz ./usr/share/man/man8/mcoa-ha.8.gz \
	./usr/share/man/man8/mcoactl.8.gz ./usr/share/man/man5/mcoad.toml.5.gz \
	./usr/share/doc/mcoad/copyright ./usr/share/doc/mcoad/changelog.Debian.gz; do
	grep -q " $f\$" "$work/contents" || fail "$f is not in the package"
done
# NetworkManager runs only dispatcher scripts owned by root and writable by
# no one else.
grep -E ' \./usr/lib/NetworkManager/dispatcher\.d/90-mcoad$' "$work/contents" |
	grep -q '^-rwxr-xr-x root/root ' || fail "90-mcoad is not root's with mode 0755"
if grep -v '^d' "$work/contents" | grep -v ' root/root ' >/dev/null; then
	fail "files not owned by root"
fi
dpkg-deb -f "$deb" Depends | grep -q 'adduser' || fail "Depends lacks adduser (postinst runs addgroup)"

# --- copyright covers the embedded Go modules -------------------------------
dpkg-deb -x "$deb" "$work/x"
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
	if ! lintian --fail-on error,warning --display-info "$deb" >"$work/lintian" 2>&1; then
		cat "$work/lintian" >&2
		fail "lintian"
	fi
	# Every override has a reason: a comment line right above it.
	awk '/^#/ { c = 1; next } /^[[:space:]]*$/ { c = 0; next } { if (!c) { print "override without a reason: " $0; bad = 1 } c = 0 } END { exit bad }' \
		"$here/debian/lintian-overrides" || fail "lintian-overrides"
	step "lintian: no errors, no warnings ($(grep -c '^mcoad: ' "$here/debian/lintian-overrides") overrides, $(grep -c '^I: ' "$work/lintian" || true) info)"
else
	missing lintian "the package is not linted"
fi

# --- dpkg into a throw-away root ------------------------------------------
root=$work/root
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
touch "$root/var/lib/dpkg/status" "$root/var/lib/dpkg/available"
# The maintainer scripts run outside the root with DPKG_ROOT set
# (--force-script-chrootless); the root has none of the dependencies.
dpkg_root() {
	dpkg --root="$root" --force-not-root --force-script-chrootless --force-depends \
		--log=/dev/null "$@"
}
status() { dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Status}' mcoad 2>/dev/null || true; }

dpkg_root -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
[ "$(status)" = "install ok installed" ] || fail "after install: status '$(status)'"
for f in usr/sbin/mcoad usr/sbin/mcoa-ha usr/bin/mcoactl etc/mcoad/mcoad.toml \
	lib/systemd/system/mcoad.service usr/share/dbus-1/system.d/org.mcoad.MobileNode1.conf; do
	[ -e "$root/$f" ] || fail "after install: /$f missing"
done
[ -x "$root/usr/sbin/mcoad" ] && "$root/usr/sbin/mcoad" -version | grep -q "^mcoad $(dpkg-deb -f "$deb" Version | sed 's/-[^-]*$//')\$" ||
	fail "the installed mcoad does not say its version"
dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Conffiles}\n' mcoad | grep -q '/etc/mcoad/mcoad.toml' ||
	fail "/etc/mcoad/mcoad.toml is not a conffile"
step "dpkg --root: installed"

# What the daemon leaves at run time, and an administrator's edit.
mkdir -p "$root/var/lib/mcoad" && echo '{}' >"$root/var/lib/mcoad/bul-seq.json"
mkdir -p "$root/var/lib/mcoa-ha" && echo '{}' >"$root/var/lib/mcoa-ha/bindings.json"
echo '# edited' >>"$root/etc/mcoad/mcoad.toml"
dpkg_root --force-confold -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i over itself"; }
[ "$(status)" = "install ok installed" ] || fail "after reinstall: status '$(status)'"
grep -q '^# edited$' "$root/etc/mcoad/mcoad.toml" || fail "reinstall lost the edited conffile"
step "dpkg --root: installed over itself, the edited conffile kept"

dpkg_root -r mcoad >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r"; }
[ ! -e "$root/usr/sbin/mcoad" ] || fail "after remove: /usr/sbin/mcoad is still there"
[ -e "$root/etc/mcoad/mcoad.toml" ] || fail "remove took the conffile (only purge may)"
dpkg_root -P mcoad >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -P"; }
[ -z "$(status)" ] || [ "$(status)" = "unknown ok not-installed" ] || fail "after purge: status '$(status)'"
# Nothing but dpkg's own database (and the directories holding it) is left;
# deb-systemd-helper leaves /var/lib/systemd, systemd's directory on a real
# system, empty.
left=$(cd "$root" && find . -mindepth 1 \( -path ./var/lib/dpkg -prune \) -o -print |
	grep -v -x -e ./var -e ./var/lib -e ./var/lib/systemd || true)
[ -z "$left" ] || fail "purge left: $(echo "$left" | tr '\n' ' ')"
step "dpkg --root: removed and purged, nothing left"

# --- systemd units -----------------------------------------------------------
if have systemd-analyze; then
	# verify wants what the units name: the targets they order against
	# (the host's units), /bin/kill, the programs (from the package) and
	# the man pages of Documentation= (MANPATH). A root made of those.
	sa=$work/sa
	mkdir -p "$sa/usr/lib/systemd/system" "$sa/bin"
	for d in /usr/lib/systemd/system /lib/systemd/system; do
		[ -d "$d" ] && cp -a "$d/." "$sa/usr/lib/systemd/system/"
	done
	cp /bin/kill "$sa/bin/kill" || fail "no /bin/kill (procps) for ExecReload="
	dpkg-deb -x "$deb" "$sa"
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
	step "systemd-analyze verify: units accepted"
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

echo "debcheck: ok ($(basename "$deb"))"
