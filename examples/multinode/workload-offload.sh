#!/usr/bin/env bash
# Multi-node example: spread a Job's pods over every node of the Slurm job.
#
#   srun -N3 ksi run examples/multinode/workload-offload.sh "$SHARED_DIR"
#
# KSI runs this script once, on the head node, against a cluster that has one Liqo virtual
# node per other node of the job (label liqo.io/type=virtual-node). Pods reach the other
# nodes only from an *offloaded* namespace: `liqoctl offload namespace` creates the same
# namespace in the other clusters and lets the scheduler place pods on the virtual nodes.
set -euo pipefail
: "${K8S_CLUSTER_NAME:?run this with ksi run}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ns=ksi-offload-demo
pods=$(( ${KSI_NODE_COUNT:-1} * 2 ))

cleanup() {
  liqoctl unoffload namespace "$ns" --kubeconfig "$KUBECONFIG" --skip-confirm >/dev/null 2>&1 || true
  kubectl --context "$K8S_CLUSTER_NAME" delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "nodes of this job: ${KSI_NODE_COUNT:-1}; virtual nodes: ${KSI_VIRTUAL_NODES:-none}"
kubectl --context "$K8S_CLUSTER_NAME" get nodes -o wide

kubectl --context "$K8S_CLUSTER_NAME" create namespace "$ns"
# label BEFORE creating pods: pods created at the same moment may not be offloaded otherwise
kubectl --context "$K8S_CLUSTER_NAME" label namespace "$ns" liqo.io/scheduling-enabled=true
# EnforceSameName: the namespace has the same name everywhere (hostPath /app works alike);
# LocalAndRemote: pods may run on the head's own node and on the virtual nodes.
liqoctl offload namespace "$ns" --kubeconfig "$KUBECONFIG" \
  --namespace-mapping-strategy EnforceSameName --pod-offloading-strategy LocalAndRemote

sed -e "s/completions: 6/completions: $pods/" -e "s/parallelism: 6/parallelism: $pods/" \
  "$here/job-spread.yaml" | kubectl --context "$K8S_CLUSTER_NAME" -n "$ns" create -f -

# the Job object exists now: waiting on it cannot race its creation
kubectl --context "$K8S_CLUSTER_NAME" -n "$ns" wait --for=condition=complete --timeout=10m job/spread
kubectl --context "$K8S_CLUSTER_NAME" -n "$ns" get pods -o wide   # NODE: local or virtual
for pod in $(kubectl --context "$K8S_CLUSTER_NAME" -n "$ns" get pods -l job-name=spread -o name); do
  kubectl --context "$K8S_CLUSTER_NAME" -n "$ns" logs "$pod"
done

# To pin a pod to one node of the job, use the virtual node's cluster id:
#   nodeSelector: {liqo.io/remote-cluster-id: <one of $KSI_VIRTUAL_NODES>}
# or offload to some nodes only:  liqoctl offload namespace NS -l 'slurm-host=node2'
