#!/usr/bin/env bash
# Builds the lab's Debian bookworm guest once and caches it under
#   ${SLUICE_E2E_CACHE:-/var/cache/sluice-e2e}/image-<hash>/{root.ext4,vmlinuz,initrd.img}
# where <hash> covers this script and the guest init, so editing either rebuilds.
# Everything comes from Debian's archive through debootstrap/apt. Needs root.
# Prints the image directory on stdout (progress goes to stderr).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
CACHE=${SLUICE_E2E_CACHE:-/var/cache/sluice-e2e}
MIRROR=${SLUICE_E2E_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
PACKAGES=(linux-image-amd64 kmod procps psmisc ppp pptp-linux pptpd xl2tpd strongswan libstrongswan-standard-plugins iperf3 iproute2 nftables
  iputils-ping tcpdump)

log() { printf '\033[1m[image]\033[0m %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot)"
for tool in debootstrap mkfs.ext4 sha256sum; do
  command -v "$tool" >/dev/null || die "$tool is missing: apt-get install -y debootstrap e2fsprogs"
done

key=$(cat "$here/build-image.sh" "$here/guest/sluice-init" | sha256sum | cut -c1-16)
OUT="$CACHE/image-$key"
if [ -f "$OUT/done" ]; then echo "$OUT"; exit 0; fi

mkdir -p "$CACHE"
exec 9>"$CACHE/build.lock"
flock 9                                  # one builder at a time; the loser reuses the winner's image
if [ -f "$OUT/done" ]; then echo "$OUT"; exit 0; fi

start=$(date +%s)
TMP=$(mktemp -d "$CACHE/build.XXXXXX")
ROOT="$TMP/root"
cleanup() {
  for m in dev/pts dev sys proc; do mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m"; done
  rm -rf "$TMP"
}
trap cleanup EXIT

log "debootstrap $SUITE (minbase) from $MIRROR into $ROOT"
debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$TMP/debootstrap.log" 2>&1 \
  || { tail -n 30 "$TMP/debootstrap.log" >&2; die "debootstrap failed"; }

# No docs, no man pages, no locales; no daemons started during installation.
mkdir -p "$ROOT/etc/dpkg/dpkg.cfg.d"
printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' \
  'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' >"$ROOT/etc/dpkg/dpkg.cfg.d/01-nodoc"
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"; chmod +x "$ROOT/usr/sbin/policy-rc.d"
echo "deb $MIRROR $SUITE main" >"$ROOT/etc/apt/sources.list"
mount -t proc proc "$ROOT/proc"; mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"; mount --bind /dev/pts "$ROOT/dev/pts"

log "apt-get install ${PACKAGES[*]}"
chroot "$ROOT" /usr/bin/env DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends ${PACKAGES[*]} && apt-get clean" \
  >"$TMP/apt.log" 2>&1 || { tail -n 40 "$TMP/apt.log" >&2; die "apt-get install failed"; }
for m in dev/pts dev sys proc; do umount "$ROOT/$m"; done

log "configuring the guest"
install -m 0755 "$here/guest/sluice-init" "$ROOT/sbin/sluice-init"
rm -f "$ROOT/usr/sbin/policy-rc.d"
echo sluice-guest >"$ROOT/etc/hostname"
printf '127.0.0.1 localhost sluice-guest\n' >"$ROOT/etc/hosts"
: >"$ROOT/etc/resolv.conf"

mkdir -p "$OUT.tmp"
kver=$(ls "$ROOT/lib/modules" | sort -V | tail -n 1)
cp "$ROOT/boot/vmlinuz-$kver" "$OUT.tmp/vmlinuz"
cp "$ROOT/boot/initrd.img-$kver" "$OUT.tmp/initrd.img"

# Slim the root: the guest only needs virtio, PPP, tun, netfilter and crypto modules.
rm -rf "$ROOT"/boot/* "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/* \
  "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/debconf/*-old
mods="$ROOT/lib/modules/$kver/kernel"
rm -rf "$mods"/drivers/{gpu,media,infiniband,staging,net/wireless,net/ethernet,bluetooth,iio,isdn,hwmon,input,usb,scsi,md,ata,nvme,mmc,platform,thunderbolt,video,edac} \
  "$mods"/sound "$mods"/net/{wireless,mac80211,bluetooth} "$mods"/fs/{xfs,btrfs,ocfs2,gfs2,nfs,nfsd,ceph,cifs,smb,f2fs,jfs,reiserfs,ntfs3}
chroot "$ROOT" depmod "$kver"

size_mb=$(( $(du -sm "$ROOT" | cut -f1) * 12 / 10 + 64 ))
log "mkfs.ext4 -d ($size_mb MiB)"
mkfs.ext4 -q -F -L sluice-root -d "$ROOT" "$OUT.tmp/root.ext4" "${size_mb}M" >&2
echo "$kver" >"$OUT.tmp/kernel-version"
dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f '${Package} ${Version}\n' >"$OUT.tmp/packages.txt"
touch "$OUT.tmp/done"
rm -rf "$OUT"; mv "$OUT.tmp" "$OUT"
for old in "$CACHE"/image-*; do               # images of older versions of this script
  [ "$old" = "$OUT" ] || { log "removing stale image $old"; rm -rf "$old"; }
done
log "image ready in $(( $(date +%s) - start ))s: $OUT (kernel $kver, $(du -sh "$OUT/root.ext4" | cut -f1) on disk)"
echo "$OUT"
