#!/usr/bin/env bash
# A Job from a YAML file: create it, wait for the *Job* to complete (the job object
# exists as soon as 'create' returns, so the wait cannot race), print its logs.
#   ksi run examples/job-yaml/job-yaml.sh
set -euo pipefail
: "${K8S_CLUSTER_NAME:?is unset: run this script with 'ksi run'}"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NS=hello
JOB=hello
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

kubectl --context "$K8S_CLUSTER_NAME" create namespace "$NS"
kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" create -f "$HERE/job-hello-world.yaml"

rc=0
wait_job "$JOB" || rc=$?
kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" logs "job/$JOB" || true
[[ $rc == 0 ]] || exit "$rc"
