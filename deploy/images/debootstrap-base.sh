#!/usr/bin/env bash
# Make a minimal Debian base image from Debian's packages with debootstrap, for machines
# that cannot pull images from a registry, and import it into podman (or docker).
#
#   deploy/images/debootstrap-base.sh [TAG]     (default localhost/debian-base:bookworm)
#
# Environment: SUITE (bookworm), MIRROR (default: the first deb.debian.org-style URI apt
# uses on this machine, else http://deb.debian.org/debian), ENGINE (podman), WORK (a
# temporary directory, removed at the end). Needs root and debootstrap.
#
# Like the official debian:*-slim images, it keeps no documentation, manual pages or
# translations, now or in packages installed later (a dpkg path-exclude file), and no apt
# lists or package cache.
set -euo pipefail

tag="${1:-localhost/debian-base:bookworm}"
suite="${SUITE:-bookworm}"
engine="${ENGINE:-podman}"
if [ -z "${MIRROR:-}" ]; then
    MIRROR="$(grep -rhoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
        /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
        grep -oE 'https?://[^[:space:]]+' | head -n 1 || true)"
    MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi
work="$(mktemp -d "${WORK:-/var/tmp}/debootstrap.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

echo "debootstrap-base: $suite from $MIRROR into $tag" >&2
debootstrap --variant=minbase "$suite" "$rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
}

mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d" "$rootfs/etc/apt/apt.conf.d"
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/01-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
cat >"$rootfs/etc/apt/apt.conf.d/01-slim" <<'CFG'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
CFG
find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/log/*.log
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true

tar -C "$rootfs" --numeric-owner -c . |
    "$engine" import -q --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$tag" >/dev/null
echo "debootstrap-base: made $tag ($("$engine" image inspect --format '{{.Size}}' "$tag") bytes)" >&2
