#!/usr/bin/env bash
# Builds dist/mcoad_VERSION_ARCH.deb with dpkg-deb from a staged tree.
# VERSION is the top entry of packaging/deb/debian/changelog; ARCH is this
# machine's (dpkg --print-architecture). Prints the path of the .deb.
#
#   packaging/deb/build.sh [OUTDIR]     (default OUTDIR: dist)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
out=${1:-$top/dist}
GO=${GO:-go}

version=$(sed -n '1s/^mcoad (\([^)]*\)).*/\1/p' "$here/debian/changelog")
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

stage=$(mktemp -d "${TMPDIR:-/tmp}/mcoad-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
umask 022

# Programs: position independent, full RELRO, Debian's hardening flags for
# the little C that cgo compiles.
mkdir -p "$stage/usr/sbin" "$stage/usr/bin"
export CGO_ENABLED=1 GOOS=linux GOARCH=$goarch
cd "$top" # dpkg-buildflags maps the current directory's path away
CGO_CFLAGS="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
CGO_LDFLAGS="$(dpkg-buildflags --get LDFLAGS)"
export CGO_CFLAGS CGO_LDFLAGS
ldflags="-s -w -X main.version=$upstream -linkmode=external -extldflags=-Wl,-z,relro,-z,now"
for p in mcoad:usr/sbin mcoa-ha:usr/sbin mcoactl:usr/bin; do
	name=${p%%:*} dir=${p#*:}
	(cd "$top" && "$GO" build -trimpath -buildmode=pie -buildvcs=false -ldflags "$ldflags" \
		-o "$stage/$dir/$name" "./cmd/$name")
	# The C compiler's notes are of no use in the package.
	objcopy --remove-section=.comment "$stage/$dir/$name"
done

# Static files, laid out as installed.
cp -a "$here/root/." "$stage/"
install -D -m 0644 "$top/etc/mcoad.toml" "$stage/etc/mcoad/mcoad.toml"
install -D -m 0644 "$top/etc/mcoa-ha.toml" "$stage/etc/mcoad/mcoa-ha.toml"
for m in "$here"/man/*.[1-8]; do
	sec=${m##*.}
	install -D -m 0644 "$m" "$stage/usr/share/man/man$sec/$(basename "$m")"
	gzip -9n "$stage/usr/share/man/man$sec/$(basename "$m")"
done
doc=$stage/usr/share/doc/mcoad
install -D -m 0644 "$here/debian/copyright" "$doc/copyright"
install -m 0644 "$here/debian/changelog" "$doc/changelog.Debian"
gzip -9n "$doc/changelog.Debian"
install -D -m 0644 "$here/debian/lintian-overrides" "$stage/usr/share/lintian/overrides/mcoad"

# Modes: dpkg-deb --root-owner-group makes everything root's.
find "$stage" -type d -exec chmod 0755 {} +
find "$stage" -type f -exec chmod 0644 {} +
chmod 0755 "$stage"/usr/sbin/* "$stage"/usr/bin/* "$stage/usr/lib/NetworkManager/dispatcher.d/90-mcoad"

# Control area.
mkdir -p "$stage/DEBIAN"
for f in postinst prerm postrm; do
	install -m 0755 "$here/debian/$f" "$stage/DEBIAN/$f"
done
install -m 0644 "$here/debian/conffiles" "$stage/DEBIAN/conffiles"
shlibs=$(
	t=$(mktemp -d)
	mkdir "$t/debian"
	printf 'Source: mcoad\n\nPackage: mcoad\nArchitecture: any\n' >"$t/debian/control"
	cd "$t" && dpkg-shlibdeps -O "$stage"/usr/sbin/* "$stage"/usr/bin/* 2>/dev/null | sed -n 's/^shlibs:Depends=//p'
	rm -rf "$t"
)
[ -n "$shlibs" ] || { echo "build.sh: dpkg-shlibdeps found no library dependencies" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@SHLIBS@/$shlibs/" \
	"$here/debian/control.in" >"$stage/DEBIAN/control"
(cd "$stage" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$stage/DEBIAN/md5sums"
chmod 0644 "$stage/DEBIAN/md5sums" "$stage/DEBIAN/control"

find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
mkdir -p "$out"
deb=$out/mcoad_${version}_${arch}.deb
# gzip: a third of xz's time for the same .deb a few MB larger; make test
# builds it twice.
dpkg-deb --root-owner-group -Zgzip -z9 --build "$stage" "$deb" >/dev/null
echo "$deb"
