#!/usr/bin/env bash
# Builds the binary packages of the source mcoad with dpkg-deb from staged
# trees, into OUTDIR:
#   mcoactl_VERSION_ARCH.deb  mcoactl, its completions, the group mcoa
#   mcoad_VERSION_ARCH.deb    the mobile node: mcoad, unit, D-Bus policy,
#                             NetworkManager hook and conf.d snippet
#   mcoa-ha_VERSION_ARCH.deb  the home agent: mcoa-ha, unit
# mcoad and mcoa-ha depend on the same version of mcoactl, so a laptop gets
# no home agent unit and a server no NetworkManager hook, and both get
# mcoactl. VERSION is the top entry of packaging/deb/debian/changelog
# (DEB_VERSION overrides it: check.sh builds a later one to test an
# upgrade); ARCH is this machine's (dpkg --print-architecture). Prints the
# paths of the .debs, one a line.
#
#   packaging/deb/build.sh [OUTDIR]     (default OUTDIR: dist)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/dist}
GO=${GO:-go}

version=${DEB_VERSION:-$(sed -n '1s/^mcoad (\([^)]*\)).*/\1/p' "$here/debian/changelog")}
[ -n "$version" ] || { echo "build.sh: no version in debian/changelog" >&2; exit 1; }
upstream=${version%-*} # what the programs say with -version
arch=$(dpkg --print-architecture)
case $arch in
amd64) goarch=amd64 ;;
arm64) goarch=arm64 ;;
armhf) goarch=arm; export GOARM=7 ;;
i386) goarch=386 ;;
ppc64el) goarch=ppc64le ;;
riscv64) goarch=riscv64 ;;
s390x) goarch=s390x ;;
*) echo "build.sh: no Go architecture known for $arch" >&2; exit 1 ;;
esac
# Reproducible: every timestamp is the changelog's.
SOURCE_DATE_EPOCH=$(date -d "$(sed -n 's/^ -- .*>  //p' "$here/debian/changelog" | head -1)" +%s)
export SOURCE_DATE_EPOCH

work=$(mktemp -d "${TMPDIR:-/tmp}/mcoad-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
umask 022

# Programs: position independent, full RELRO, Debian's hardening flags for
# the little C that cgo compiles.
bin=$work/bin
mkdir -p "$bin"
export CGO_ENABLED=1 GOOS=linux GOARCH=$goarch
cd "$top" # dpkg-buildflags maps the current directory's path away
CGO_CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
CGO_LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
export CGO_CFLAGS CGO_LDFLAGS
ldflags="-s -w -X main.version=$upstream -linkmode=external -extldflags=-Wl,-z,relro,-z,now"
for name in mcoad mcoa-ha mcoactl; do
	"$GO" build -trimpath -buildmode=pie -buildvcs=false -ldflags "$ldflags" -o "$bin/$name" "./cmd/$name"
	# The C compiler's notes are of no use in the package.
	objcopy --remove-section=.comment "$bin/$name"
done

# What goes where: programs (name:directory), files of root/ (a trailing
# ? marks one that is shipped only when it exists: the zsh and fish
# completions), man pages, configuration files from etc/.
declare -A progs files mans etcs
progs[mcoactl]="mcoactl:usr/bin"
files[mcoactl]="usr/share/bash-completion/completions/mcoactl
usr/share/zsh/vendor-completions/_mcoactl?
usr/share/fish/vendor_completions.d/mcoactl.fish?"
mans[mcoactl]="mcoactl.8"
etcs[mcoactl]=""
progs[mcoad]="mcoad:usr/sbin"
files[mcoad]="lib/systemd/system/mcoad.service
usr/lib/NetworkManager/dispatcher.d/90-mcoad
usr/lib/NetworkManager/conf.d/90-mcoad.conf
usr/share/dbus-1/system.d/org.mcoad.MobileNode1.conf"
mans[mcoad]="mcoad.8 mcoad.toml.5"
etcs[mcoad]="mcoad.toml"
progs[mcoa-ha]="mcoa-ha:usr/sbin"
files[mcoa-ha]="lib/systemd/system/mcoa-ha.service"
mans[mcoa-ha]="mcoa-ha.8"
etcs[mcoa-ha]="mcoa-ha.toml"

mkdir -p "$out"
for pkg in mcoactl mcoad mcoa-ha; do
	stage=$work/$pkg
	deb=$here/debian/$pkg
	for p in ${progs[$pkg]}; do
		install -D -m 0755 "$bin/${p%%:*}" "$stage/${p#*:}/${p%%:*}"
	done
	while read -r f; do
		[ -n "$f" ] || continue
		case $f in
		*\?) f=${f%\?}; [ -e "$here/root/$f" ] || continue ;;
		esac
		install -D -m 0644 "$here/root/$f" "$stage/$f"
	done <<<"${files[$pkg]}"
	for e in ${etcs[$pkg]}; do
		install -D -m 0644 "$top/etc/$e" "$stage/etc/mcoad/$e"
	done
	for m in ${mans[$pkg]}; do
		sec=${m##*.}
		install -D -m 0644 "$here/man/$m" "$stage/usr/share/man/man$sec/$m"
		gzip -9n "$stage/usr/share/man/man$sec/$m"
	done
	doc=$stage/usr/share/doc/$pkg
	install -D -m 0644 "$here/debian/copyright" "$doc/copyright"
	install -m 0644 "$here/debian/changelog" "$doc/changelog.Debian"
	gzip -9n "$doc/changelog.Debian"
	install -D -m 0644 "$deb/lintian-overrides" "$stage/usr/share/lintian/overrides/$pkg"

	# Modes: dpkg-deb --root-owner-group makes everything root's.
	find "$stage" -type d -exec chmod 0755 {} +
	find "$stage" -type f -exec chmod 0644 {} +
	chmod 0755 "$stage"/usr/*bin/*
	[ ! -e "$stage/usr/lib/NetworkManager/dispatcher.d/90-mcoad" ] ||
		chmod 0755 "$stage/usr/lib/NetworkManager/dispatcher.d/90-mcoad"

	# Control area.
	mkdir -p "$stage/DEBIAN"
	for f in postinst prerm postrm; do
		[ ! -e "$deb/$f" ] || install -m 0755 "$deb/$f" "$stage/DEBIAN/$f"
	done
	[ ! -e "$deb/conffiles" ] || install -m 0644 "$deb/conffiles" "$stage/DEBIAN/conffiles"
	shlibs=$(
		t=$(mktemp -d)
		mkdir "$t/debian"
		printf 'Source: mcoad\n\nPackage: %s\nArchitecture: any\n' "$pkg" >"$t/debian/control"
		cd "$t" && dpkg-shlibdeps -O "$stage"/usr/*bin/* 2>/dev/null | sed -n 's/^shlibs:Depends=//p'
		rm -rf "$t"
	)
	[ -n "$shlibs" ] || { echo "build.sh: dpkg-shlibdeps found no library dependencies of $pkg" >&2; exit 1; }
	size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
	sed -e "s/@VERSION@/$version/g" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
		"$deb/control.in" >"$stage/DEBIAN/control"
	(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
	chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"

	find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	debfile=$out/${pkg}_${version}_${arch}.deb
	# gzip: a third of xz's time for the same .deb a few MB larger; make
	# test builds it twice.
	dpkg-deb --root-owner-group -Zgzip -z9 --build "$stage" "$debfile" >/dev/null
	echo "$debfile"
done
