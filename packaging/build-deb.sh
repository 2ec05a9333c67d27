#!/usr/bin/env bash
# Builds the Debian package from a built rampart binary, with dpkg-deb (see README, "Install").
#   packaging/build-deb.sh [BINARY] [OUT_DIR]
# BINARY defaults to target/release/rampart (cargo build --release --locked -p rampart);
# OUT_DIR to target/debian. RAMPART_DEB_COMPRESSION (default xz) is passed to dpkg-deb -Z.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
binary="${1:-$root/target/release/rampart}"
out="${2:-$root/target/debian}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n1)"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

install -D -m 0755 "$binary" "$stage/usr/bin/rampart"
install -D -m 0644 "$here/rampart.service" "$stage/lib/systemd/system/rampart.service"
install -D -m 0640 "$here/rampart.toml" "$stage/etc/rampart/rampart.toml"
install -D -m 0644 "$root/README.md" "$stage/usr/share/doc/rampart/README.md"
install -D -m 0644 "$root/docs/rampart.example.toml" "$stage/usr/share/doc/rampart/rampart.example.toml"
install -D -m 0644 "$here/copyright" "$stage/usr/share/doc/rampart/copyright"
install -d -m 0755 "$stage/DEBIAN"
installed_size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: rampart
Version: $version
Architecture: $arch
Maintainer: Rampart maintainers <rampart@example.invalid>
Installed-Size: $installed_size
Depends: libc6, adduser, systemd | systemd-sysv
Section: admin
Priority: optional
Homepage: https://example.invalid/rampart
Description: privileged-access gateway (SSH bastion and PAM)
 Rampart authenticates people with their own identity, decides whether they may
 reach a target now, connects with a credential from its vault, relays and
 records the session, and writes every fact into a hash-chained audit log.
CONTROL
echo "/etc/rampart/rampart.toml" > "$stage/DEBIAN/conffiles"
install -m 0755 "$here/postinst" "$stage/DEBIAN/postinst"
install -m 0755 "$here/prerm" "$stage/DEBIAN/prerm"
install -m 0755 "$here/postrm" "$stage/DEBIAN/postrm"
mkdir -p "$out"
deb="$out/rampart_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"${RAMPART_DEB_COMPRESSION:-xz}" --build "$stage" "$deb" >/dev/null
echo "$deb"
