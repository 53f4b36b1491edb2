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
ctx=(--context "$K8S_CLUSTER_NAME")
ns=ksi-offload-demo
pods=$(( KSI_NODE_COUNT * 2 ))

echo "nodes of this job: $KSI_NODE_COUNT; virtual nodes: ${KSI_VIRTUAL_NODES:-none}"
kubectl "${ctx[@]}" get nodes -o wide

kubectl "${ctx[@]}" create namespace "$ns"
# label BEFORE creating pods: pods created at the same moment may not be offloaded otherwise
kubectl "${ctx[@]}" label namespace "$ns" liqo.io/scheduling-enabled=true
# EnforceSameName: the namespace has the same name everywhere (hostPath /app works alike);
# LocalAndRemote: pods may run on the head's own node and on the virtual nodes.
liqoctl offload namespace "$ns" --kubeconfig "$KUBECONFIG" \
  --namespace-mapping-strategy EnforceSameName --pod-offloading-strategy LocalAndRemote

kubectl "${ctx[@]}" -n "$ns" create -f - <<YAML
apiVersion: batch/v1
kind: Job
metadata:
  name: spread
spec:
  completions: $pods
  parallelism: $pods
  template:
    spec:
      restartPolicy: Never
      # one pod per node where possible
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: kubernetes.io/hostname
        whenUnsatisfiable: ScheduleAnyway
        labelSelector: {matchLabels: {job-name: spread}}
      containers:
      - name: hello
        image: alpine
        command: ['sh', '-c', 'echo "pod $(hostname) says hello"']
YAML

kubectl "${ctx[@]}" -n "$ns" wait --for=condition=complete --timeout=10m job/spread
kubectl "${ctx[@]}" -n "$ns" get pods -o wide     # NODE column: local node or virtual nodes
for pod in $(kubectl "${ctx[@]}" -n "$ns" get pods -l job-name=spread -o name); do
  kubectl "${ctx[@]}" -n "$ns" logs "$pod"
done

# To pin a pod to one node of the job, use the virtual node's cluster id:
#   nodeSelector: {liqo.io/remote-cluster-id: <one of $KSI_VIRTUAL_NODES>}
# or offload to some nodes only:  liqoctl offload namespace NS -l 'slurm-host=node2'

liqoctl unoffload namespace "$ns" --kubeconfig "$KUBECONFIG" --skip-confirm || true
kubectl "${ctx[@]}" delete namespace "$ns" --wait=false
