"""Inside the node: what the template gets before it is stopped (the clone entrypoint, the
throwaway-cluster flags) and what every clone does before systemd starts (a fresh identity).

The clone entrypoint runs before kind's own entrypoint. It deletes every certificate, key and
kubeconfig the template had (cluster CA, etcd CA, front-proxy CA, the service-account signing
key, the admin, super-admin, controller-manager, scheduler and kubelet accounts, the kubelet's
rotated client certificate) and makes new ones with kubeadm from the node's own
/kind/kubeadm.conf. kind's entrypoint then sees the node's new address and regenerates the
API server certificate for it (signed by the new CA). So no credential of one clone is
accepted by another clone or by the template. admin.conf is moved in last: once it exists,
the clone's identity is complete."""

from __future__ import annotations

ENTRYPOINT = "/kind/ksi-clone-entrypoint"
CONFIG = "/kind/kubeadm.conf"        # kind's kubeadm config, made v1beta4 with ECDSA keys
READY_LINE = "ksi: fresh cluster identity"

CLONE_ENTRYPOINT = f"""#!/bin/bash
# KSI warm clone: a fresh cluster identity, then kind's entrypoint ("$@")
set -euo pipefail
k=/etc/kubernetes
rm -rf "$k/pki" "$k/ksi-new" /var/lib/kubelet/pki
rm -f "$k/admin.conf" "$k/super-admin.conf" "$k/controller-manager.conf" \\
  "$k/scheduler.conf" "$k/kubelet.conf"
mkdir -p "$k/pki" "$k/ksi-new" /var/lib/kubelet/pki
kubeadm init phase certs all --config {CONFIG} >/dev/null
kubeadm init phase kubeconfig all --config {CONFIG} --kubeconfig-dir "$k/ksi-new" >/dev/null
for f in kubelet controller-manager scheduler super-admin admin; do
  if [ -e "$k/ksi-new/$f.conf" ]; then mv -f "$k/ksi-new/$f.conf" "$k/$f.conf"; fi
done
rmdir "$k/ksi-new"
echo "{READY_LINE}"
exec "$@"
"""

# A throwaway cluster: no leader election (the template's stale leases held the first pod
# back to ~28 s), etcd without fsync. Applied to the static pod manifests of the template.
PATCH_MANIFESTS = r"""set -e
m=/etc/kubernetes/manifests
for f in kube-controller-manager kube-scheduler; do
  sed -i 's/--leader-elect=true/--leader-elect=false/' "$m/$f.yaml"
  grep -q -- '--leader-elect=false' "$m/$f.yaml" || \
    sed -i "s/^\(\s*\)- $f\$/&\n\1- --leader-elect=false/" "$m/$f.yaml"
  grep -q -- '--leader-elect=false' "$m/$f.yaml"
done
grep -q -- '--unsafe-no-fsync' "$m/etcd.yaml" || \
  sed -i 's/^\(\s*\)- etcd$/&\n\1- --unsafe-no-fsync/' "$m/etcd.yaml"
grep -q -- '--unsafe-no-fsync' "$m/etcd.yaml"
"""

INSTALL = f"cat > {ENTRYPOINT} && chmod 0755 {ENTRYPOINT}"

# The clones' keys are ECDSA P-256: kubeadm makes 16 keys per clone, RSA-2048 took 2.9 s of
# the start on this loaded machine, ECDSA 0.3 s. encryptionAlgorithm needs kubeadm's v1beta4
# (kind writes v1beta3), so kind's config is migrated in the template (kind's entrypoint
# renews the API server certificate from it too; kind itself reads it only at create).
ECDSA_CONFIG = f"""set -e
cp {CONFIG} {CONFIG}.v1beta3
kubeadm config migrate --old-config {CONFIG}.v1beta3 --new-config {CONFIG} >/dev/null 2>&1
if grep -q '^encryptionAlgorithm:' {CONFIG}; then
  sed -i 's/^encryptionAlgorithm:.*/encryptionAlgorithm: ECDSA-P256/' {CONFIG}
else
  sed -i 's/^kind: ClusterConfiguration$/&\\nencryptionAlgorithm: ECDSA-P256/' {CONFIG}
fi
grep -q '^encryptionAlgorithm: ECDSA-P256' {CONFIG}
"""
