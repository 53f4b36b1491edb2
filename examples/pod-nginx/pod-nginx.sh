#!/usr/bin/env bash
# nginx behind a NodePort Service on $K8S_PORT, the host port KSI maps 1:1 into the
# cluster: reachable from other nodes as http://<this host>:$K8S_PORT/.
# By default it fetches the page once and exits; with KSI_EXAMPLE_SERVE=1 it keeps
# serving until the job is cancelled (scancel, Ctrl-C).
#   ksi run examples/pod-nginx/pod-nginx.sh
#   KSI_EXAMPLE_SERVE=1 srun -N1 ksi run examples/pod-nginx/pod-nginx.sh
set -euo pipefail
: "${K8S_CLUSTER_NAME:?is unset: run this script with 'ksi run'}"
: "${K8S_PORT:?is unset: run this script with 'ksi run'}"

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NS=nginx
TIMEOUT=${KSI_EXAMPLE_TIMEOUT:-3600}   # seconds, image pull included
PLACEHOLDER=30080                      # the nodePort written in service.yaml
SLEEPER=

cleanup() {
  local rc=$?
  trap - EXIT
  if [[ -n $SLEEPER ]]; then kill "$SLEEPER" 2>/dev/null || true; fi
  kubectl --context "$K8S_CLUSTER_NAME" delete namespace "$NS" --ignore-not-found \
    --wait=false >/dev/null 2>&1 || true
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

kubectl --context "$K8S_CLUSTER_NAME" create namespace "$NS"
kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" apply -f "$HERE/deployment.yaml"
# The Service with nodePort = $K8S_PORT: service.yaml with its placeholder replaced.
grep -q "nodePort: $PLACEHOLDER\$" "$HERE/service.yaml"
sed "s/nodePort: $PLACEHOLDER\$/nodePort: $K8S_PORT/" "$HERE/service.yaml" |
  kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" apply -f -

# The Deployment object exists now: waiting on it cannot race its pods' creation.
kubectl --context "$K8S_CLUSTER_NAME" -n "$NS" rollout status deployment/nginx \
  --timeout="${TIMEOUT}s"

echo "nginx is served on port $K8S_PORT; from another node: curl http://$(hostname):$K8S_PORT/"

# The node port can lag the rollout by a moment (kube-proxy rules): retry briefly.
curl --fail --silent --show-error --retry 15 --retry-connrefused --retry-delay 2 \
  "http://127.0.0.1:$K8S_PORT/"

if [[ ${KSI_EXAMPLE_SERVE:-0} == 1 ]]; then
  echo "serving until cancelled (scancel or Ctrl-C)"
  # In the background + wait: bash runs the TERM/INT traps at once, not after sleep.
  sleep infinity &
  SLEEPER=$!
  wait "$SLEEPER"
fi
