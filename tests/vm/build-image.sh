#!/usr/bin/env bash
# Build the VM test bed image (issue 13) into a cache outside git:
#   ${KSI_VM_CACHE:-/var/cache/ksi-vm}/{disk.raw,vmlinuz,initrd.img,ssh/,image.json}
# Debian trixie packages (debootstrap) + nerdctl from its Go module (Debian has no nerdctl)
# + kind/kubectl/liqoctl and the kind node image from the host's real-kind cache
# (tests/e2e/build/build-cache.sh). Idempotent: each step is skipped when its stamp exists.
# The last step boots the image once (tests/vm/vmctl.py prime): containerd-rootless-setuptool.sh
# install + install-bypass4netnsd as each user, and the node and busybox images (archives in
# the disk) loaded into the first user's rootless nerdctl and podman. image.json is written LAST, atomically; it is what
# tests/vm/check-image.sh accepts. Run as root:   tests/vm/build-image.sh [step ...]
# Steps: rootfs nerdctl kindbits configure images disk prime manifest
# KSI_VM_FORCE=1 redoes the named steps (and everything after them).
set -eEuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
V=${KSI_VM_CACHE:-/var/cache/ksi-vm}
E2E=${KSI_E2E_CACHE:-/var/cache/ksi-e2e}
SUITE=${KSI_VM_SUITE:-trixie}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
NERDCTL_VERSION=${NERDCTL_VERSION:-v1.7.7}   # v2.x module zips lack their mod/tigron replace dir
K8S_VERSION=${K8S_VERSION:-v1.34.4}
NODE_IMAGE=${NODE_IMAGE:-localhost/ksi-kind-node:${K8S_VERSION}}
DISK_SIZE=${KSI_VM_DISK_SIZE:-40G}            # sparse; a boot writes to a qcow2 overlay
USERS="ksi:1000 ksi2:1001"
PKGS="systemd systemd-sysv dbus dbus-user-session libpam-systemd udev kmod linux-image-amd64
 initramfs-tools openssh-server python3 python3-click python3-rich python3-yaml python3-hostlist
 podman containerd rootlesskit slirp4netns passt bypass4netns uidmap iptables fuse-overlayfs
 crun runc containernetworking-plugins catatonit netavark curl netcat-openbsd iproute2 procps
 openssl e2fsprogs less psmisc nftables"
export PATH=$PATH:/usr/local/go/bin
export GOFLAGS="-p=1 -trimpath" GOMAXPROCS=1 CGO_ENABLED=0
export CONTAINERS_CONF=${CONTAINERS_CONF:-$REPO/tests/e2e/build/containers.conf}
# niceness 10 for the heavy steps, not more: niceness adds up, and a VM at 19 (nice inside
# `nice -n 10 build-image.sh`) starves under a loaded host
NICE=(nice -n $((10 - $(nice))))
R=$V/rootfs
ST=$V/stamps

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (debootstrap, chroot, mkfs)"
for t in debootstrap mkfs.ext4 qemu-system-x86_64 qemu-img go ssh ssh-keygen podman python3; do
  command -v "$t" >/dev/null || die "missing host tool $t (apt-get install debootstrap e2fsprogs qemu-system-x86 qemu-utils openssh-client podman; go at /usr/local/go)"
done
mkdir -p "$V" "$ST"

in_root() { chroot "$R" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }

# ------------------------------------------------------------------- rootfs
build_rootfs() {
  rm -rf "$R" "$R.tmp"
  "${NICE[@]}" debootstrap --variant=minbase --include=apt-utils,ca-certificates \
    "$SUITE" "$R.tmp" "$MIRROR"
  echo "deb $MIRROR $SUITE main" > "$R.tmp/etc/apt/sources.list"
  mv "$R.tmp" "$R"
  mount_api
  in_root apt-get update -q
  # shellcheck disable=SC2086
  "${NICE[@]}" chroot "$R" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
    --no-install-recommends $PKGS
  in_root apt-get clean
  umount_api
}
mount_api() { local m; for m in proc sys dev; do mountpoint -q "$R/$m" || mount --bind "/$m" "$R/$m"; done; }
umount_api() { local m; for m in dev sys proc; do mountpoint -q "$R/$m" && umount -l "$R/$m"; done; true; }
trap umount_api EXIT

# ------------------------------------------------------------------ nerdctl
# Built as the main module from a writable copy of its Go module (like build-cache.sh's liqo);
# containerd-rootless{,-setuptool}.sh come from the same module (extras/rootless).
nerdctl_src() { go mod download -json "github.com/containerd/nerdctl@$NERDCTL_VERSION" | sed -n 's/.*"Dir": "\(.*\)",/\1/p'; }
build_nerdctl() {
  local src=$V/src/nerdctl-$NERDCTL_VERSION dir
  dir=$(nerdctl_src)
  rm -rf "$src"; mkdir -p "$V/src" "$V/gobin"
  cp -r "$dir" "$src"; chmod -R u+w "$src"
  (cd "$src" && "${NICE[@]}" go build -ldflags \
    "-s -w -X github.com/containerd/nerdctl/pkg/version.Version=$NERDCTL_VERSION" \
    -o "$V/gobin/" ./cmd/nerdctl)
  cp "$src/extras/rootless/containerd-rootless.sh" "$src/extras/rootless/containerd-rootless-setuptool.sh" "$V/gobin/"
  chmod 0755 "$V/gobin/"*
  "$V/gobin/nerdctl" --version
}

# ----------------------------------------------------------- kind et al.
build_kindbits() {
  [[ -x $E2E/bin/kind && -x $E2E/k8s-bin/kubectl ]] || die "$E2E lacks bin/kind or k8s-bin/kubectl: run tests/e2e/build/build-cache.sh first (tests/e2e/build/check-cache.sh says what is missing)"
  install -m 0755 "$V/gobin/nerdctl" "$V/gobin/containerd-rootless.sh" \
    "$V/gobin/containerd-rootless-setuptool.sh" "$R/usr/local/bin/"
  install -m 0755 "$E2E/bin/kind" "$E2E/k8s-bin/kubectl" "$R/usr/local/bin/"
  if [[ -x $E2E/liqo-bin/liqoctl ]]; then install -m 0755 "$E2E/liqo-bin/liqoctl" "$R/usr/local/bin/"
  else log "no $E2E/liqo-bin/liqoctl: the image has no liqoctl"; fi
}

# ---------------------------------------------------------------- configure
build_configure() {
  local u name uid start=100000 home
  echo ksi-vm > "$R/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 ksi-vm\n::1 localhost\n' > "$R/etc/hosts"
  printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\nksi /ksi 9p trans=virtio,version=9p2000.L,ro,msize=262144,nofail 0 0\n' > "$R/etc/fstab"
  mkdir -p "$R/ksi"
  # user-mode networking (slirp): static 10.0.2.15, no DHCP wait
  mkdir -p "$R/etc/systemd/network"
  printf '[Match]\nName=en* eth*\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\nDNS=10.0.2.3\n' \
    > "$R/etc/systemd/network/10-slirp.network"
  ln -sf /lib/systemd/system/systemd-networkd.service "$R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
  echo 'nameserver 10.0.2.3' > "$R/etc/resolv.conf"
  # rootless kind's host prerequisites
  printf 'ip_tables\nip6_tables\niptable_nat\nip6table_nat\n' > "$R/etc/modules-load.d/ksi.conf"
  mkdir -p "$R/etc/systemd/system/user@.service.d"
  printf '[Service]\nDelegate=cpu cpuset io memory pids\n' > "$R/etc/systemd/system/user@.service.d/delegate.conf"
  printf 'fs.inotify.max_user_watches = 524288\nfs.inotify.max_user_instances = 512\n' > "$R/etc/sysctl.d/90-ksi.conf"
  # CNI plugins where nerdctl looks by default
  mkdir -p "$R/opt/cni"; ln -sfn /usr/lib/cni "$R/opt/cni/bin"
  # the serial console and journal stay small; no password logins at all
  sed -i 's/^#\?PasswordAuthentication.*/PasswordAuthentication no/; s/^#\?PermitRootLogin.*/PermitRootLogin prohibit-password/; s/^#\?UseDNS.*/UseDNS no/' "$R/etc/ssh/sshd_config"
  in_root passwd -l root >/dev/null
  # only the users' rootless daemons run: no root containerd, no timers waking up under TCG
  in_root systemctl disable containerd.service >/dev/null 2>&1 || true
  in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer dpkg-db-backup.timer systemd-networkd-wait-online.service >/dev/null 2>&1 || true
  # keys: one client pair for root (the harness) and the users, one host key, all in the cache
  mkdir -p "$V/ssh"; chmod 0700 "$V/ssh"
  [[ -s $V/ssh/id_ed25519 ]] || ssh-keygen -q -t ed25519 -N '' -C ksi-vm-harness -f "$V/ssh/id_ed25519"
  [[ -s $V/ssh/ssh_host_ed25519_key ]] || ssh-keygen -q -t ed25519 -N '' -C ksi-vm -f "$V/ssh/ssh_host_ed25519_key"
  rm -f "$R"/etc/ssh/ssh_host_*
  install -m 0600 "$V/ssh/ssh_host_ed25519_key" "$R/etc/ssh/"
  install -m 0644 "$V/ssh/ssh_host_ed25519_key.pub" "$R/etc/ssh/"
  echo "ksi-vm $(cut -d' ' -f1,2 "$V/ssh/ssh_host_ed25519_key.pub")" > "$V/ssh/known_hosts"
  install -d -m 0700 "$R/root/.ssh"; install -m 0600 "$V/ssh/id_ed25519.pub" "$R/root/.ssh/authorized_keys"
  mkdir -p "$R/var/lib/systemd/linger"
  for u in $USERS; do
    name=${u%%:*}; uid=${u##*:}; home=/home/$name
    in_root id "$name" >/dev/null 2>&1 || in_root useradd -m -u "$uid" -U -s /bin/bash "$name"
    touch "$R/var/lib/systemd/linger/$name"
    install -d -m 0700 -o "$uid" -g "$uid" "$R$home/.ssh"
    install -m 0600 -o "$uid" -g "$uid" "$V/ssh/id_ed25519.pub" "$R$home/.ssh/authorized_keys"
  done
  # one range per user, written after useradd (which allocates ranges of its own when
  # /etc/subuid exists: two lines per user would give doctor and rootlesskit two ranges)
  : > "$R/etc/subuid.tmp"
  for u in $USERS; do
    echo "${u%%:*}:$start:65536" >> "$R/etc/subuid.tmp"; start=$((start + 65536))
  done
  cp "$R/etc/subuid.tmp" "$R/etc/subgid"; mv "$R/etc/subuid.tmp" "$R/etc/subuid"
}

# ------------------------------------------------------------------- images
# The kind node image from the host's root podman and the busybox test image, as archives in
# the disk itself (/var/lib/ksi-images; over 9p a 1 GB archive loads far slower under TCG),
# loaded by `vmctl.py prime` into the first user's rootless nerdctl and podman.
build_images() {
  local d=$R/var/lib/ksi-images
  podman image exists "$NODE_IMAGE" || die "host podman has no $NODE_IMAGE: run tests/e2e/build/build-cache.sh (nodeimage)"
  rm -rf "$d"; mkdir -p "$d"
  "${NICE[@]}" podman save --format docker-archive -o "$d/node.tar.tmp" "$NODE_IMAGE"
  mv "$d/node.tar.tmp" "$d/node.tar"
  echo "$NODE_IMAGE" > "$d/node.name"
  cp "$E2E/images/busybox.tar" "$d/busybox.tar"   # localhost/ksi-busybox:e2e
  chmod 0755 "$d"; chmod 0644 "$d/"*
}

# --------------------------------------------------------------------- disk
build_disk() {
  umount_api
  cp "$R/boot/vmlinuz-"* "$V/vmlinuz.tmp"; cp "$R/boot/initrd.img-"* "$V/initrd.img.tmp"
  rm -f "$V/disk.raw.tmp"
  truncate -s "$DISK_SIZE" "$V/disk.raw.tmp"
  "${NICE[@]}" mkfs.ext4 -q -L ksi-root -d "$R" "$V/disk.raw.tmp"
  mv "$V/vmlinuz.tmp" "$V/vmlinuz"; mv "$V/initrd.img.tmp" "$V/initrd.img"
  mv "$V/disk.raw.tmp" "$V/disk.raw"
}

# -------------------------------------------------------------------- prime
build_prime() {
  "${NICE[@]}" python3 "$HERE/vmctl.py" prime
}

# ----------------------------------------------------------------- manifest
build_manifest() {
  local ver
  ver() { dpkg-query --admindir="$R/var/lib/dpkg" -W -f '${Version}' "$1"; }
  python3 - "$V" <<EOF
import hashlib, json, os, sys
v = sys.argv[1]
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
files = ["vmlinuz", "initrd.img", "ssh/id_ed25519", "ssh/known_hosts"]
st = os.stat(os.path.join(v, "disk.raw"))
m = {
    "suite": "$SUITE",
    "kernel": "$(ls "$R/lib/modules")",
    "versions": {
        "linux-image": "$(ver "linux-image-$(ls "$R/lib/modules")")",
        "systemd": "$(ver systemd)", "containerd": "$(ver containerd)",
        "podman": "$(ver podman)", "rootlesskit": "$(ver rootlesskit)",
        "slirp4netns": "$(ver slirp4netns)", "bypass4netns": "$(ver bypass4netns)",
        "crun": "$(ver crun)", "runc": "$(ver runc)", "python3": "$(ver python3)",
        "nerdctl": "$NERDCTL_VERSION",
        "kind": "$("$R/usr/local/bin/kind" version | cut -d' ' -f2)",
        "kubectl": "$("$R/usr/local/bin/kubectl" version --client -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["clientVersion"]["gitVersion"])')",
        "liqoctl": "$([[ -x $R/usr/local/bin/liqoctl ]] && "$R/usr/local/bin/liqoctl" version --client 2>/dev/null | grep -o 'v[0-9][^ ]*' | head -1)",
        "node_image": "$NODE_IMAGE",
    },
    "disk": {"size": st.st_size, "mtime_ns": st.st_mtime_ns},
    "sha256": {f: sha(os.path.join(v, f)) for f in files},
}
tmp = os.path.join(v, "image.json.tmp")
with open(tmp, "w") as f:
    json.dump(m, f, indent=1)
    f.flush()
    os.fsync(f.fileno())
os.replace(tmp, os.path.join(v, "image.json"))
print(json.dumps(m["versions"]))
EOF
}

ALL="rootfs nerdctl kindbits configure images disk prime manifest"
# all in one function: bash has parsed it whole before it runs, so editing this file
# during a build cannot change what the running build does
main() {
  STEPS=${*:-$ALL}
  T0=$SECONDS
  forced=
  for s in $STEPS; do
    case " $ALL " in *" $s "*) ;; *) die "unknown step $s (steps: $ALL)";; esac
    [[ ${KSI_VM_FORCE:-} == 1 ]] && forced=1
    if [[ -z $forced && -f $ST/$s ]]; then log "$s: done (stamp $ST/$s)"; continue; fi
    # a step invalidates the image and everything built after it
    rm -f "$V/image.json"
    hit=; for t in $ALL; do [[ $t == "$s" ]] && hit=1; [[ -n $hit ]] && rm -f "$ST/$t"; done
    log "$s: building"; t=$SECONDS
    [[ $s == rootfs || $s == kindbits || $s == configure ]] && [[ -d $R ]] && mount_api
    "build_$s"
    umount_api
    date -u +%FT%TZ > "$ST/$s"
    echo "$s $((SECONDS - t))s $(date -u +%FT%TZ)" >> "$V/timings.txt"
    log "$s: done in $((SECONDS - t))s"
    forced=1   # later steps depend on this one
  done
  log "image steps done in $((SECONDS - T0))s; cache $V"
  "$HERE/check-image.sh"
}
main "$@"; exit
