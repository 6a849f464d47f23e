#!/usr/bin/env bash
# make deb: builds stockade_VERSION_ARCH.deb with dpkg-buildpackage (the version is
# debian/changelog's). The build runs on a copy of the sources in BUILDDIR/deb, so the tree
# gets none of debhelper's files and dpkg-buildpackage writes nothing outside BUILDDIR; the
# package is moved to BUILDDIR/.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "${1:-build}"
build=$(cd "${1:-build}" && pwd)
cd "$top"
version=$(dpkg-parsechangelog -S Version)
deb=stockade_${version}_$(dpkg --print-architecture).deb
src=$build/deb/stockade-$version
rm -rf "$build/deb" "$build/$deb"
mkdir -p "$src"
tar -C "$top" --exclude=./.git --exclude=./build --exclude=./build.log --exclude="./${build#"$top"/}" -cf - . | tar -C "$src" -xf -
(cd "$src" && DEB_BUILD_OPTIONS="parallel=$(nproc) ${DEB_BUILD_OPTIONS:-}" \
        dpkg-buildpackage -us -uc -b --no-sign >"$build/deb/build.log" 2>&1) ||
        { tail -n 40 "$build/deb/build.log"; echo "deb: dpkg-buildpackage failed (log: $build/deb/build.log)" >&2; exit 1; }
mv "$build/deb/$deb" "$build/$deb"
echo "$build/$deb"
