#!/usr/bin/env bash
# sysbench CPU benchmark in a bare pod: create it, wait until it has *finished*
# (phase Succeeded; a pod that exits is never Ready), print its output, clean up.
#   ksi run examples/pod-sysbench/pod-sysbench.sh
set -euo pipefail
: "${K8S_CLUSTER_NAME:?is unset: run this script with 'ksi run'}"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NS=sysbench
POD=sysbench-cpu
TIMEOUT=${KSI_EXAMPLE_TIMEOUT:-3600}   # seconds, image pull included

cleanup() {
  local rc=$?
  trap - EXIT
  kubectl --context "$K8S_CLUSTER_NAME" delete namespace "$NS" --ignore-not-found \
    --wait=false >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# Wait for pod/$1 to terminate: 0 when it Succeeded, 1 when it Failed or time ran out.
# kubectl wait runs in 10 s slices, so a failed pod (which never reaches Succeeded)
# is noticed at once and a SIGTERM from scancel is handled between slices.
wait_pod_finished() {
  local pod=$1 deadline=$((SECONDS + TIMEOUT)) phase
  while ((SECONDS < deadline)); do
    if kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" wait "pod/$pod" \
        --for=jsonpath='{.status.phase}'=Succeeded --timeout=10s >/dev/null 2>&1; then
      return 0
    fi
    phase=$(kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" get "pod/$pod" \
      -o jsonpath='{.status.phase}') || return 1
    if [[ $phase == Failed ]]; then
      echo "pod/$pod failed" >&2
      return 1
    fi
  done
  echo "pod/$pod did not finish within ${TIMEOUT}s" >&2
  kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" describe "pod/$pod" >&2 || true
  return 1
}

kubectl --context "$K8S_CLUSTER_NAME" create namespace "$NS"
kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" create -f "$HERE/pod.yaml"

rc=0
wait_pod_finished "$POD" || rc=$?
kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" logs "pod/$POD" || true
[[ $rc == 0 ]] || exit "$rc"
