#!/usr/bin/env bash
# Installs one program from a Debian package into a project-local directory, without root:
# apt-get downloads the .deb with a private package index (no /var/lib/apt writes, no
# sudo) and dpkg-deb unpacks it; nothing is installed system-wide.
#
#   scripts/deb-tool.sh DEST PROGRAM PACKAGE [LIBRARY_PACKAGE...]
#
# Leaves DEST/bin/PROGRAM (the package index is kept in DEST/../apt for the next tool): the program itself, or, when LIBRARY_PACKAGEs are given, a
# wrapper that points LD_LIBRARY_PATH at their unpacked libraries. KEEP_ROOT=1 keeps the
# whole unpacked tree in DEST/root for a program that needs its other files (valgrind's
# tools under usr/libexec); the caller then runs DEST/root/usr/bin/PROGRAM itself. Needs apt-get and
# dpkg-deb (Debian, Ubuntu); exits 3 without them, so a caller can skip loudly.
set -euo pipefail

dest=$1 program=$2
shift 2
command -v apt-get >/dev/null && command -v dpkg-deb >/dev/null || {
  echo "deb-tool: no apt-get/dpkg-deb here (not Debian or Ubuntu): cannot fetch $program" >&2
  exit 3
}
mkdir -p "$dest"
dest=$(cd "$dest" && pwd)
# One private index for every tool beside DEST.
apt_dir="$(dirname "$dest")/apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$dest/debs" "$dest/root" "$dest/bin"
# A private index: `update` and `download` then need no root. The sandbox user must be
# us, since only root may switch to `_apt`.
apt=(apt-get -q -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache"
  -o Debug::NoLocking=1 -o "APT::Sandbox::User=$(id -un)")
if [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*Packages*' -print -quit)" ]; then
  echo "deb-tool: reading the Debian package index (private copy in $apt_dir)"
  "${apt[@]}" update >/dev/null
fi
for pkg in "$@"; do
  echo "deb-tool: downloading Debian package $pkg"
  (cd "$dest/debs" && "${apt[@]}" download "$pkg" >/dev/null)
done
for deb in "$dest"/debs/*.deb; do
  dpkg-deb -x "$deb" "$dest/root"
done
bin=$(find "$dest/root/usr/bin" "$dest/root/usr/sbin" "$dest/root/bin" -name "$program" -type f 2>/dev/null | head -n1 || true)
[ -n "$bin" ] || { echo "deb-tool: $program is not in package $1" >&2; exit 1; }
if [ $# -gt 1 ]; then
  libs=$(find "$dest/root" -name '*.so*' -printf '%h\n' | sort -u | paste -sd:)
  printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
    "$libs" "$bin" > "$dest/bin/$program"
  chmod +x "$dest/bin/$program"
elif [ "${KEEP_ROOT:-}" = 1 ]; then
  ln -sf "$bin" "$dest/bin/$program"
else
  # Only the program is needed: drop the rest of the package (Prometheus' web assets).
  mv "$bin" "$dest/bin/$program"
  rm -rf "$dest/root"
fi
rm -rf "$dest/debs" "$apt_dir/cache/archives"/*.deb
echo "deb-tool: $dest/bin/$program"
