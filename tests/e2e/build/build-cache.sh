#!/usr/bin/env bash
# Build everything the real-kind e2e tests need into a cache dir outside git:
# the kind binary, Kubernetes binaries, etcd, CoreDNS, pause, the control-plane
# and test images (docker-archive tarballs), and a kind node image loaded into
# root podman as localhost/ksi-kind-node:$K8S_VERSION.
#
# Sources: Go modules (proxy.golang.org) and Debian bookworm packages only.
# No container registry is contacted. Idempotent: every step is skipped when
# its output already exists. Run as root. See tests/e2e/README-realkind.md.
#
#   KSI_E2E_CACHE=/var/cache/ksi-e2e tests/e2e/build/build-cache.sh [step ...]
#
# Steps (default: all, in this order):
#   kind k8s etcd coredns crictl pause busybox imgbase images noderootfs nodeimage exampleimages
#   liqo liqoimages
# KSI_E2E_FORCE=1 rebuilds the named steps even if their output exists.
# KSI_E2E_JOBS=N builds with N parallel Go jobs (default 1; CI: nproc), KSI_E2E_NICE=N (19).
set -eEuo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C=${KSI_E2E_CACHE:-/var/cache/ksi-e2e}
export PATH=$PATH:/usr/local/go/bin
GO=${GO:-go}

KIND_VERSION=${KIND_VERSION:-v0.33.0}
K8S_VERSION=${K8S_VERSION:-v1.34.4}       # last line that still defaults to failCgroupV1=false
ETCD_VERSION=${ETCD_VERSION:-v3.6.5}      # kubeadm v1.34 expects registry.k8s.io/etcd:3.6.5-0
ETCD_TAG=${ETCD_TAG:-3.6.5-0}
COREDNS_VERSION=${COREDNS_VERSION:-v1.12.1}  # kubeadm v1.34 CoreDNSVersion
CRICTL_VERSION=${CRICTL_VERSION:-v1.34.0}  # used by `kind export logs` and `kind load docker-image`
PAUSE_TAGS=${PAUSE_TAGS:-"3.10.1 3.10"}   # kubeadm v1.34 PauseVersion, kind's default sandbox
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
NODE_IMAGE=${NODE_IMAGE:-localhost/ksi-kind-node:${K8S_VERSION}}
BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-localhost/ksi-busybox:e2e}
LIQO_VERSION=${LIQO_VERSION:-v1.0.1}
# Liqo without its networking module (this kernel has neither WireGuard nor Geneve):
# the control plane, the virtual kubelet, and what install/uninstall run.
LIQO_IMAGE_CMDS="liqo-controller-manager webhook crd-replicator virtual-kubelet uninstaller metric-agent proxy"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HERE/containers.conf}

# Parallelism: KSI_E2E_JOBS Go compile jobs and threads (default 1: a build by hand on a shared
# machine stays quiet; CI, which has the machine to itself, sets it to nproc: the Kubernetes
# build is CPU-bound). KSI_E2E_NICE: niceness of the heavy steps (default 19 by hand, where
# it keeps the machine usable; it costs nothing when nothing else runs).
JOBS=${KSI_E2E_JOBS:-1}
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "KSI_E2E_JOBS must be a positive integer, not '$JOBS'" >&2; exit 1; }
NICE=(nice -n "${KSI_E2E_NICE:-19}")
export GOFLAGS="-p=$JOBS -trimpath"
export GOMAXPROCS=${GOMAXPROCS:-$JOBS}
export CGO_ENABLED=0

K8S_CMDS="kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy"
K8S_IMAGES="kube-apiserver kube-controller-manager kube-scheduler kube-proxy"

mkdir -p "$C"/{bin,k8s-bin,images,layers,logs,src}
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { log "ERROR: $*"; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (debootstrap, chroot, root podman)"
# host prerequisites (Debian): go at /usr/local/go, and
#   apt-get install debootstrap podman runc containerd busybox-static python3 file
for t in $GO debootstrap podman runc containerd ctr python3 tar file; do
  command -v "$t" >/dev/null || die "missing host tool: $t (apt-get install debootstrap podman runc containerd python3 file)"
done

# run STEP: skip when the done-test passes, else build it, log it and time it.
# (The build function is not run in an `if`/`||` context, so `set -e` applies
# inside it; the ERR trap names the failing step.)
CUR_STEP=
trap 'log "ERROR: step [${CUR_STEP:-?}] failed (line $LINENO), log: $C/logs/${CUR_STEP:-build}.log"; exit 1' ERR
step() {
  local name=$1 donetest=$2 fn=$3
  if [[ -z ${KSI_E2E_FORCE:-} ]] && eval "$donetest"; then
    log "[$name] up to date"
    return 0
  fi
  log "[$name] building ..."
  CUR_STEP=$name
  local t0=$SECONDS
  "$fn" > >(tee "$C/logs/$name.log") 2>&1
  sleep 0.2   # let tee drain
  local dt=$((SECONDS - t0))
  CUR_STEP=
  log "[$name] done in ${dt}s"
  echo "$name ${dt}s $(date -u +%FT%TZ)" >> "$C/logs/timings.txt"
}

# ---------------------------------------------------------------- kind binary
build_kind() {
  GOBIN=$C/bin "${NICE[@]}" $GO install "sigs.k8s.io/kind@${KIND_VERSION}"
}

# ------------------------------------------------------ kubernetes binaries
# k8s.io/kubernetes uses replace directives for its staging modules, so it
# cannot be `go install`ed. A throwaway module requires it and pins every
# staging module to the matching v0.X.Y.
build_k8s() {
  local src=$C/src/k8s v=${K8S_VERSION#v} minor
  minor=$(cut -d. -f2 <<<"$v")
  mkdir -p "$src"
  local kmod
  kmod=$($GO mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')
  {
    printf 'module ksi-e2e/k8sbuild\n\ngo 1.24.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
    grep -E '=> \./staging' "$kmod" | awk -v r="v0.${v#1.}" '{print "\t" $1 " => " $1 " " r}'
    printf ')\n'
  } > "$src/go.mod"
  cat > "$src/deps.go" <<'EOF'
package k8sbuild

import (
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/kubectl/pkg/cmd"
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubernetes/cmd/kube-proxy/app"
	_ "k8s.io/kubernetes/cmd/kube-scheduler/app"
	_ "k8s.io/kubernetes/cmd/kubeadm/app"
	_ "k8s.io/kubernetes/cmd/kubelet/app"
)
EOF
  (cd "$src" && $GO mod tidy)
  local ld="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=${K8S_VERSION} -X $p.gitMajor=1 -X $p.gitMinor=${minor}"
    ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=0000000000000000000000000000000000000000"
    ld+=" -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  local pkgs=() c
  for c in $K8S_CMDS; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  (cd "$src" && "${NICE[@]}" $GO build -ldflags "$ld" -o "$C/k8s-bin/" "${pkgs[@]}")
  "$C/k8s-bin/kubeadm" version -o short
}
k8s_done() { local c; for c in $K8S_CMDS; do [[ -x $C/k8s-bin/$c ]] || return 1; done; }

# ----------------------------------------------------------------------- etcd
build_etcd() {
  local src=$C/src/etcd
  mkdir -p "$src"
  cp "$HERE/etcd/main.go" "$src/main.go"
  printf 'module ksi-e2e/etcd\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$src/go.mod"
  (cd "$src" && $GO mod tidy && "${NICE[@]}" $GO build -ldflags "-s -w" -o "$C/bin/etcd" .)
  "$C/bin/etcd" --version
}

build_coredns() {
  GOBIN=$C/bin "${NICE[@]}" $GO install -ldflags "-s -w" "github.com/coredns/coredns@${COREDNS_VERSION}"
  "$C/bin/coredns" -version
}

build_crictl() {
  GOBIN=$C/bin "${NICE[@]}" $GO install -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION}" \
    "sigs.k8s.io/cri-tools/cmd/crictl@${CRICTL_VERSION}"
}

build_pause() {
  (cd "$HERE/pause" && "${NICE[@]}" $GO build -ldflags "-s -w" -o "$C/bin/pause" .)
}

build_busybox() {
  # busybox-static is a Debian package on the host
  [[ -x /bin/busybox ]] && file -L /bin/busybox | grep -q static || apt-get install -y busybox-static
  cp /bin/busybox "$C/bin/busybox"
}

# ----------------------------------------------- base rootfs for the images
# kube-proxy needs iptables/conntrack; the other components get the same base
# layer (stored once in containerd, it is shared by digest).
build_imgbase() {
  rm -rf "$C/rootfs-imgbase.tmp"
  "${NICE[@]}" debootstrap --variant=minbase --include=iptables,iproute2,conntrack,ca-certificates,nftables \
    bookworm "$C/rootfs-imgbase.tmp" "$DEBIAN_MIRROR"
  rm -rf "$C/rootfs-imgbase.tmp"/var/cache/apt/archives/*.deb "$C/rootfs-imgbase.tmp"/var/lib/apt/lists/*
  imgbase_iptables_legacy "$C/rootfs-imgbase.tmp"
  rm -rf "$C/rootfs-imgbase"
  mv "$C/rootfs-imgbase.tmp" "$C/rootfs-imgbase"
}

# kind's entrypoint picks the node's iptables mode by counting existing rules;
# in the node's fresh netns both counts are 0 and it picks "legacy". kube-proxy
# (from our image) must write to the same backend, so default it to legacy too.
imgbase_iptables_legacy() {
  chroot "$1" update-alternatives --set iptables /usr/sbin/iptables-legacy
  chroot "$1" update-alternatives --set ip6tables /usr/sbin/ip6tables-legacy
}

# deterministic uncompressed layer tar of a directory
mklayer() { # DIR OUT
  tar -C "$1" --sort=name --mtime=@0 --numeric-owner --xattrs -cf "$2.tmp" . && mv "$2.tmp" "$2"
}

build_images() {
  local L=$C/layers I=$C/images st c t
  st=$(mktemp -d)
  mklayer "$C/rootfs-imgbase" "$L/imgbase.tar"
  for c in $K8S_IMAGES; do
    rm -rf "$st"/*; mkdir -p "$st/usr/local/bin"
    cp "$C/k8s-bin/$c" "$st/usr/local/bin/"
    mklayer "$st" "$L/$c.tar"
    python3 "$HERE/mkimage.py" --out "$I/$c.tar" --tag "registry.k8s.io/$c:${K8S_VERSION}" \
      --layer "$L/imgbase.tar" --layer "$L/$c.tar" --entrypoint "[\"/usr/local/bin/$c\"]"
  done
  rm -rf "$st"/*; mkdir -p "$st/usr/local/bin" "$st/var/lib/etcd"
  cp "$C/bin/etcd" "$st/usr/local/bin/"
  mklayer "$st" "$L/etcd.tar"
  python3 "$HERE/mkimage.py" --out "$I/etcd.tar" --tag "registry.k8s.io/etcd:${ETCD_TAG}" \
    --layer "$L/imgbase.tar" --layer "$L/etcd.tar" --entrypoint '["/usr/local/bin/etcd"]'
  rm -rf "$st"/*; mkdir -p "$st/etc/ssl/certs"
  cp "$C/bin/coredns" "$st/coredns"
  cp "$C/rootfs-imgbase/etc/ssl/certs/ca-certificates.crt" "$st/etc/ssl/certs/"
  mklayer "$st" "$L/coredns.tar"
  python3 "$HERE/mkimage.py" --out "$I/coredns.tar" --tag "registry.k8s.io/coredns/coredns:${COREDNS_VERSION}" \
    --layer "$L/coredns.tar" --entrypoint '["/coredns"]'
  rm -rf "$st"/*; cp "$C/bin/pause" "$st/pause"
  mklayer "$st" "$L/pause.tar"
  local tags=()
  for t in $PAUSE_TAGS; do tags+=(--tag "registry.k8s.io/pause:$t"); done
  python3 "$HERE/mkimage.py" --out "$I/pause.tar" "${tags[@]}" --layer "$L/pause.tar" \
    --entrypoint '["/pause"]' --user 65535:65535
  rm -rf "$st"/*; mkdir -p "$st/bin" "$st/etc" "$st/tmp"
  cp "$C/bin/busybox" "$st/bin/busybox"
  for c in sh ash cat echo env hostname id ls nc ping sleep wget true false date uname ip ps; do
    ln -s busybox "$st/bin/$c"
  done
  echo 'root:x:0:0:root:/:/bin/sh' > "$st/etc/passwd"; echo 'root:x:0:' > "$st/etc/group"
  chmod 1777 "$st/tmp"
  mklayer "$st" "$L/busybox.tar"
  python3 "$HERE/mkimage.py" --out "$I/busybox.tar" --tag "$BUSYBOX_IMAGE" --layer "$L/busybox.tar" \
    --cmd '["/bin/sh"]'
  rm -rf "$st"
}
images_done() { local i; for i in $K8S_IMAGES etcd coredns pause busybox; do [[ -s $C/images/$i.tar ]] || return 1; done; }

# ----------------------------------------------------------- node rootfs
# Layout follows what kind's own base image provides (learned from
# sigs.k8s.io/kind images/base): systemd as PID 1 behind kind's entrypoint,
# containerd + runc + CNI plugins, kubelet/kubeadm/kubectl, /kind/version,
# preloaded images. kind's base-image support files (entrypoint, kubelet
# units, helper scripts) are taken unchanged from the kind Go module of the
# same version as the kind binary, at build time; nothing of it is in git.
NODE_PKGS=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,iptables,iproute2,conntrack,ethtool,socat,util-linux,mount,kmod,ca-certificates,procps,libseccomp2,nftables,jq,curl
build_noderootfs() {
  local R=$C/rootfs-node.tmp KM
  rm -rf "$R"
  "${NICE[@]}" debootstrap --variant=minbase --include=$NODE_PKGS bookworm "$R" "$DEBIAN_MIRROR"
  rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*

  KM=$($GO mod download -json "sigs.k8s.io/kind@${KIND_VERSION}" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  local F=$KM/images/base/files
  install -D -m 0755 "$F/usr/local/bin/entrypoint" "$R/usr/local/bin/entrypoint"
  mkdir -p "$R/kind/bin" "$R/kind/manifests" "$R/etc/systemd/system/kubelet.service.d" \
    "$R/etc/containerd" "$R/etc/cni/net.d" "$R/opt/cni" "$R/etc/kubernetes/manifests" "$R/etc/sysctl.d"
  install -m 0755 "$F"/kind/bin/* "$R/kind/bin/"
  install -m 0644 "$F"/etc/systemd/system/{kubelet.service,kubelet.slice,containerd.service,undo-mount-hacks.service} \
    "$R/etc/systemd/system/"
  install -m 0644 "$F"/etc/systemd/system/kubelet.service.d/* "$R/etc/systemd/system/kubelet.service.d/"
  install -m 0644 "$F"/etc/sysctl.d/* "$R/etc/sysctl.d/"
  install -m 0644 "$F"/etc/default/kubelet "$R/etc/default/kubelet" 2>/dev/null || true
  install -m 0644 "$F"/etc/crictl.yaml "$R/etc/crictl.yaml" 2>/dev/null || true

  # our own pieces
  install -m 0644 "$HERE/node/containerd-config.toml" "$R/etc/containerd/config.toml"
  install -D -m 0644 "$HERE/node/containerd-limits.conf" "$R/etc/systemd/system/containerd.service.d/10-ksi-limits.conf"
  install -m 0644 "$HERE/node/default-cni.yaml" "$R/kind/manifests/default-cni.yaml"
  ln -sfn /usr/lib/cni "$R/opt/cni/bin"
  for c in kubelet kubeadm kubectl; do install -m 0755 "$C/k8s-bin/$c" "$R/usr/bin/$c"; done
  install -m 0755 "$C/bin/crictl" "$R/usr/local/bin/crictl"
  echo -n "${K8S_VERSION}" > "$R/kind/version"
  printf 'KSI real-kind node image, built by tests/e2e/build/build-cache.sh\nkind %s, kubernetes %s\n' \
    "$KIND_VERSION" "$K8S_VERSION" > "$R/kind/README.txt"

  # systemd-in-a-container trimming (the same idea as kind's base image)
  rm -f "$R"/lib/systemd/system/multi-user.target.wants/* "$R"/etc/systemd/system/*.wants/* \
    "$R"/lib/systemd/system/local-fs.target.wants/* "$R"/lib/systemd/system/sockets.target.wants/*udev* \
    "$R"/lib/systemd/system/sockets.target.wants/*initctl* "$R"/lib/systemd/system/basic.target.wants/*
  find "$R/lib/systemd/system/sysinit.target.wants/" -name systemd-tmpfiles-setup.service -delete
  echo "ReadKMsg=no" >> "$R/etc/systemd/journald.conf"
  chroot "$R" systemctl enable kubelet.service containerd.service undo-mount-hacks.service
  chroot "$R" systemctl mask systemd-binfmt.service systemd-firstboot.service getty@tty1.service \
    console-getty.service
  : > "$R/etc/machine-id"
  rm -f "$R/etc/hostname"
  chmod 755 "$R/kind" "$R/kind/bin"

  preload_images "$R"
  rm -rf "$C/rootfs-node"
  mv "$R" "$C/rootfs-node"
}

# import the image tarballs into the node's containerd store (namespace
# k8s.io, overlayfs snapshots) with the host's containerd binary, which is the
# same Debian package as inside the node.
preload_images() {
  local R=$1 T
  T=$(mktemp -d /run/ksi-ctrd.XXXXXX)
  cat > "$T/config.toml" <<EOF
version = 2
root = "$R/var/lib/containerd"
state = "$T/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$T/ctrd.sock"
[ttrpc]
  address = "$T/ctrd.sock.ttrpc"
EOF
  containerd --config "$T/config.toml" > "$T/containerd.log" 2>&1 &
  local pid=$! i
  for i in $(seq 50); do [[ -S $T/ctrd.sock ]] && break; sleep 0.2; done
  local rc=0
  for i in "$C"/images/*.tar; do
    ctr --address "$T/ctrd.sock" -n k8s.io images import --snapshotter overlayfs "$i" || { rc=1; break; }
  done
  ctr --address "$T/ctrd.sock" -n k8s.io images ls -q || true
  kill "$pid"; wait "$pid" || true
  [[ $rc == 0 ]] || { cat "$T/containerd.log"; return 1; }
  rm -rf "$T"
}

# ------------------------------------------------------------ node image
build_nodeimage() {
  podman rmi -f "$NODE_IMAGE" >/dev/null 2>&1 || true
  tar -C "$C/rootfs-node" --numeric-owner --xattrs -c . | "${NICE[@]}" podman import \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' \
    --change 'STOPSIGNAL SIGRTMIN+3' \
    --change 'ENV container=docker' \
    - "$NODE_IMAGE"
  podman image inspect --format '{{.Id}} {{.Size}}' "$NODE_IMAGE"
  rootfs_stamp > "$C/nodeimage.stamp"
}
rootfs_stamp() { echo "$NODE_IMAGE $(stat -c %Y "$C/rootfs-node/kind/version" 2>/dev/null)"; }
nodeimage_done() {
  podman image exists "$NODE_IMAGE" && [[ -f $C/nodeimage.stamp && $(cat "$C/nodeimage.stamp") == "$(rootfs_stamp)" ]]
}

# ------------------------------------------------------------ example images
# The busybox-based examples (examples/job-yaml) name docker.io/library/busybox:1.36: our own
# busybox image under that name, archived with `ksi images save` (KSI's offline image cache
# format) for the e2e tests to preload. Other examples' images (nginx, sysbench, pytorch)
# cannot be built here; their e2e tests skip and say so.
EXAMPLE_BUSYBOX=docker.io/library/busybox:1.36
build_exampleimages() {
  mkdir -p "$C/example-images"
  podman image exists "$BUSYBOX_IMAGE" || podman load -i "$C/images/busybox.tar"
  podman tag "$BUSYBOX_IMAGE" "$EXAMPLE_BUSYBOX"
  PYTHONPATH="$HERE/../../../src${PYTHONPATH:+:$PYTHONPATH}" python3 -m ksi images save \
    --provider podman --dir "$C/example-images" "$EXAMPLE_BUSYBOX"
}

# ------------------------------------------------------------ Liqo
# liqoctl and Liqo's component binaries from the Go module of that release (its go.mod has a
# replace directive, so it is built as the main module from a writable copy), the Helm chart
# from the same module (liqoctl install --local-chart-path), and one image per component
# named as the chart names it (ghcr.io/liqotech/<component>:<version>), written as docker
# archives under the names `ksi images` uses, so KSI's offline preload loads them.
build_liqo() {
  local src=$C/src/liqo-$LIQO_VERSION dir c pkgs=()
  dir=$($GO mod download -json "github.com/liqotech/liqo@${LIQO_VERSION}" | sed -n 's/.*"Dir": "\(.*\)",/\1/p')
  rm -rf "$src"
  cp -r "$dir" "$src"
  chmod -R u+w "$src"
  mkdir -p "$C/liqo-bin"
  for c in liqoctl $LIQO_IMAGE_CMDS; do pkgs+=("./cmd/$c"); done
  (cd "$src" && "${NICE[@]}" $GO build -ldflags \
    "-s -w -X github.com/liqotech/liqo/pkg/liqoctl/version.LiqoctlVersion=${LIQO_VERSION}" \
    -o "$C/liqo-bin/" "${pkgs[@]}")
  rm -rf "$C/liqo-chart"
  cp -r "$src/deployments/liqo" "$C/liqo-chart"
  "$C/liqo-bin/liqoctl" version --client
}
liqo_done() { local c; for c in liqoctl $LIQO_IMAGE_CMDS; do [[ -x $C/liqo-bin/$c ]] || return 1; done; [[ -s $C/liqo-chart/Chart.yaml ]]; }

build_liqoimages() {
  local L=$C/layers D=$C/liqo-images st c
  mkdir -p "$D"
  st=$(mktemp -d)
  # the binaries are static (CGO off): a base of CA certificates, users and /tmp is enough
  mkdir -p "$st/etc/ssl/certs" "$st/tmp"
  chmod 1777 "$st/tmp"
  cp "$C/rootfs-imgbase/etc/ssl/certs/ca-certificates.crt" "$st/etc/ssl/certs/"
  echo 'root:x:0:0:root:/:/sbin/nologin' > "$st/etc/passwd"; echo 'root:x:0:' > "$st/etc/group"
  mklayer "$st" "$L/liqobase.tar"
  for c in $LIQO_IMAGE_CMDS; do
    rm -rf "${st:?}"/*; mkdir -p "$st/usr/bin"
    cp "$C/liqo-bin/$c" "$st/usr/bin/$c"
    ln -s "$c" "$st/usr/bin/liqo-component"
    mklayer "$st" "$L/liqo-$c.tar"
    python3 "$HERE/mkimage.py" --out "$D/ghcr.io_liqotech_${c}_${LIQO_VERSION}.tar" \
      --tag "ghcr.io/liqotech/$c:$LIQO_VERSION" --layer "$L/liqobase.tar" --layer "$L/liqo-$c.tar" \
      --entrypoint '["/usr/bin/liqo-component"]'
  done
  rm -rf "$st"
}
liqoimages_done() { local c; for c in $LIQO_IMAGE_CMDS; do [[ -s $C/liqo-images/ghcr.io_liqotech_${c}_${LIQO_VERSION}.tar ]] || return 1; done; }

ALL="kind k8s etcd coredns crictl pause busybox imgbase images noderootfs nodeimage exampleimages liqo liqoimages"
STEPS=${*:-$ALL}
T0=$SECONDS
for s in $STEPS; do
  case $s in
    kind)       step kind       '[[ -x $C/bin/kind ]]'          build_kind ;;
    k8s)        step k8s        'k8s_done'                      build_k8s ;;
    etcd)       step etcd       '[[ -x $C/bin/etcd ]]'          build_etcd ;;
    coredns)    step coredns    '[[ -x $C/bin/coredns ]]'       build_coredns ;;
    crictl)     step crictl     '[[ -x $C/bin/crictl ]]'        build_crictl ;;
    pause)      step pause      '[[ -x $C/bin/pause ]]'         build_pause ;;
    busybox)    step busybox    '[[ -x $C/bin/busybox ]]'       build_busybox ;;
    imgbase)    step imgbase    '[[ -d $C/rootfs-imgbase/usr ]]' build_imgbase ;;
    images)     step images     'images_done'                   build_images ;;
    noderootfs) step noderootfs '[[ -s $C/rootfs-node/kind/version ]]' build_noderootfs ;;
    nodeimage)  step nodeimage  'nodeimage_done'                build_nodeimage ;;
    exampleimages) step exampleimages '[[ -s $C/example-images/docker.io_library_busybox_1.36.tar ]]' build_exampleimages ;;
    liqo)       step liqo       'liqo_done'                     build_liqo ;;
    liqoimages) step liqoimages 'liqoimages_done'               build_liqoimages ;;
    *) die "unknown step $s (steps: $ALL)" ;;
  esac
done
log "all requested steps done in $((SECONDS - T0))s (jobs $JOBS); cache: $C; node image: $NODE_IMAGE"
