#!/usr/bin/env bash
# Exit 0 when the real-kind e2e cache built by build-cache.sh is complete,
# else print what is missing and exit 1. Cheap: no builds, no network.
#   KSI_E2E_CACHE=/var/cache/ksi-e2e tests/e2e/build/check-cache.sh [--liqo]
# --liqo: also liqoctl, Liqo's component images and its chart (steps liqo liqoimages)
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C=${KSI_E2E_CACHE:-/var/cache/ksi-e2e}
K8S_VERSION=${K8S_VERSION:-v1.34.4}
NODE_IMAGE=${NODE_IMAGE:-localhost/ksi-kind-node:${K8S_VERSION}}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HERE/containers.conf}

missing=()
need_x() { [[ -x $1 ]] || missing+=("$1"); }
need_s() { [[ -s $1 ]] || missing+=("$1"); }

need_x "$C/bin/kind"
for c in kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
  need_x "$C/k8s-bin/$c"
done
for b in etcd coredns crictl pause busybox; do need_x "$C/bin/$b"; done
for i in kube-apiserver kube-controller-manager kube-scheduler kube-proxy etcd coredns pause busybox; do
  need_s "$C/images/$i.tar"
done
need_s "$C/rootfs-node/kind/version"
if ! command -v podman >/dev/null; then
  missing+=("podman (apt-get install podman)")
elif ! podman image exists "$NODE_IMAGE" 2>/dev/null; then
  missing+=("podman image $NODE_IMAGE")
elif [[ ! -f $C/nodeimage.stamp ]] || \
     [[ $(cat "$C/nodeimage.stamp") != "$NODE_IMAGE $(stat -c %Y "$C/rootfs-node/kind/version" 2>/dev/null)" ]]; then
  missing+=("podman image $NODE_IMAGE is older than $C/rootfs-node (rerun build-cache.sh nodeimage)")
fi
if [[ ${1:-} == --liqo ]]; then
  LIQO_VERSION=${LIQO_VERSION:-v1.0.1}
  need_x "$C/liqo-bin/liqoctl"
  need_s "$C/liqo-chart/Chart.yaml"
  for c in liqo-controller-manager webhook crd-replicator virtual-kubelet proxy; do
    need_s "$C/liqo-images/ghcr.io_liqotech_${c}_${LIQO_VERSION}.tar"
  done
fi
[[ -d /lib/modules ]] || missing+=("/lib/modules (kind bind-mounts it; 'mkdir -p /lib/modules' on this kernel-without-modules VM)")

if ((${#missing[@]})); then
  echo "real-kind cache $C is incomplete; missing:"
  printf '  - %s\n' "${missing[@]}"
  echo "build with: KSI_E2E_CACHE=$C $HERE/build-cache.sh${1:+ (steps liqo liqoimages for --liqo)}"
  exit 1
fi
echo "real-kind cache $C is complete (node image $NODE_IMAGE${1:+; Liqo $LIQO_VERSION})"
