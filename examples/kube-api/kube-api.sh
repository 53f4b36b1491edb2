#!/usr/bin/env bash
# The Kubernetes REST API with curl and the admin-user token KSI provides
# ($K8S_CLUSTER_API_TOKEN, cluster-admin). TLS is verified against the cluster's CA,
# taken from the kubeconfig; never switch verification off (-k/--insecure).
# No 'set -x' here: it would print the token.
#   ksi run examples/kube-api/kube-api.sh
set -euo pipefail
: "${K8S_CLUSTER_NAME:?is unset: run this script with 'ksi run'}"
: "${K8S_CLUSTER_API:?is unset: run this script with 'ksi run'}"
: "${K8S_CLUSTER_API_TOKEN:?is unset: run this script with 'ksi run'}"

CA=$(mktemp)
cleanup() {
  local rc=$?
  trap - EXIT
  rm -f "$CA"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# The cluster CA: inline data (what kind writes), else a file path.
kubectl config view --raw --minify --context "$K8S_CLUSTER_NAME" \
  -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d > "$CA"
if [[ ! -s $CA ]]; then
  ca_file=$(kubectl config view --raw --minify --context "$K8S_CLUSTER_NAME" \
    -o jsonpath='{.clusters[0].cluster.certificate-authority}')
  [[ -n $ca_file ]] || { echo "no CA for context $K8S_CLUSTER_NAME in the kubeconfig" >&2; exit 1; }
  cp "$ca_file" "$CA"
fi

# GET PATH: curl with TLS verification and the bearer token; fails on HTTP errors.
api() {
  curl --fail --silent --show-error --cacert "$CA" \
    -H "Authorization: Bearer $K8S_CLUSTER_API_TOKEN" -H "Accept: application/json" \
    "$K8S_CLUSTER_API$1"
}

echo "== GET $K8S_CLUSTER_API/version"
api /version
echo
# Names of the items of a list, without jq: each item's metadata starts with its name.
# The API server pretty-prints JSON for curl, so join the lines first.
item_names() {
  tr -d '\n' | grep -o '"metadata": *{ *"name": *"[^"]*"' | sed 's/.*"name": *"//; s/"$//'
}

echo "== GET $K8S_CLUSTER_API/api/v1/namespaces"
api /api/v1/namespaces | item_names | sed 's/^/namespace /'
echo "== GET $K8S_CLUSTER_API/api/v1/namespaces/kube-system/pods"
api /api/v1/namespaces/kube-system/pods | item_names | sed 's/^/pod /'
