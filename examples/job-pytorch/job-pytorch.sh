#!/usr/bin/env bash
# PyTorch training as a Job. The training script (train.py beside this file) goes in
# a ConfigMap; the model lands in ./out/model.pt of the working directory, which the
# Kind node mounts at /app and the pod reaches by hostPath /app.
#   ksi run examples/job-pytorch/job-pytorch.sh
set -euo pipefail
: "${K8S_CLUSTER_NAME:?is unset: run this script with 'ksi run'}"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NS=pytorch
JOB=pytorch-train
TIMEOUT=${KSI_EXAMPLE_TIMEOUT:-3600}   # seconds, image pull (about 3 GB) included

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

# Wait for job/$1: 0 when Complete, 1 when Failed (backoffLimit used up) or time ran out.
# kubectl wait runs in 10 s slices so that a failed Job ends the wait at once.
wait_job() {
  local job=$1 deadline=$((SECONDS + TIMEOUT)) failed
  while ((SECONDS < deadline)); do
    if kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" wait "job/$job" \
        --for=condition=complete --timeout=10s >/dev/null 2>&1; then
      return 0
    fi
    failed=$(kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" get "job/$job" \
      -o jsonpath='{.status.conditions[?(@.type=="Failed")].status}') || return 1
    if [[ $failed == True ]]; then
      echo "job/$job failed" >&2
      return 1
    fi
  done
  echo "job/$job did not complete within ${TIMEOUT}s" >&2
  kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" describe "job/$job" >&2 || true
  return 1
}

# The output directory exists before the pod starts, owned by the user who runs ksi.
mkdir -p out

kubectl --context "$K8S_CLUSTER_NAME" create namespace "$NS"
kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" create configmap pytorch-train \
  --from-file=train.py="$HERE/train.py"
kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" create -f "$HERE/job.yaml"

rc=0
wait_job "$JOB" || rc=$?
kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" logs "job/$JOB" || true
ls -l out/
[[ $rc == 0 ]] || exit "$rc"
