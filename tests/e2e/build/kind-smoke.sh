#!/usr/bin/env bash
# Smoke test of the real-kind cache: create a single-node kind cluster with
# root podman and the locally built node image, using a config shaped like the
# one KSI generates (src/ksi/plan/kindconfig.py: extraMounts /app,
# extraPortMappings TCP+UDP, apiServerAddress/Port, podSubnet/serviceSubnet,
# containerdConfigPatches). Then check: node Ready, a busybox pod runs and
# reads /app, a NodePort is reachable from the host through the port mapping,
# cluster DNS, `kind load image-archive`, `kind get clusters`,
# `kind export logs`. Prints timings and the node container's memory, then
# deletes the cluster (KEEP=1 keeps it). Needs a complete cache.
#   KSI_E2E_CACHE=/var/cache/ksi-e2e tests/e2e/build/kind-smoke.sh
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
C=${KSI_E2E_CACHE:-/var/cache/ksi-e2e}
K8S_VERSION=${K8S_VERSION:-v1.34.4}
NODE_IMAGE=${NODE_IMAGE:-localhost/ksi-kind-node:${K8S_VERSION}}
BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-localhost/ksi-busybox:e2e}
NAME=${CLUSTER_NAME:-ksi-smoke}
API_PORT=${API_PORT:-36443}
NODE_PORT=${NODE_PORT:-30080}
UDP_PORT=${UDP_PORT:-30081}
POD_SUBNET=${POD_SUBNET:-10.100.0.0/16}
SERVICE_SUBNET=${SERVICE_SUBNET:-10.101.0.0/16}
export CONTAINERS_CONF=${CONTAINERS_CONF:-$HERE/containers.conf}
export KIND_EXPERIMENTAL_PROVIDER=podman
R=$C/run/$NAME
export KUBECONFIG=$R/kubeconfig
KIND=$C/bin/kind
KUBECTL=$C/k8s-bin/kubectl
fails=0
ok()   { echo "CHECK ok:     $*"; }
bad()  { echo "CHECK FAILED: $*"; fails=$((fails + 1)); }
now()  { date +%s.%N; }
since() { printf '%.1f' "$(echo "$(now) - $1" | bc)"; }

"$HERE/check-cache.sh" >/dev/null 2>&1 || { "$HERE/check-cache.sh"; exit 1; }
# kind bind-mounts /lib/modules; this VM's kernel has no modules directory
[[ -d /lib/modules ]] || mkdir -p /lib/modules

rm -rf "$R"; mkdir -p "$R/app"
echo "hello-from-host-app-dir" > "$R/app/hello.txt"
cat > "$R/kind.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
networking:
  apiServerAddress: 127.0.0.1
  apiServerPort: $API_PORT
  podSubnet: $POD_SUBNET
  serviceSubnet: $SERVICE_SUBNET
nodes:
- role: control-plane
  extraMounts:
  - hostPath: $R/app
    containerPath: /app
  extraPortMappings:
  - {containerPort: $NODE_PORT, hostPort: $NODE_PORT, listenAddress: 0.0.0.0, protocol: TCP}
  - {containerPort: $UDP_PORT, hostPort: $UDP_PORT, listenAddress: 0.0.0.0, protocol: UDP}
containerdConfigPatches:
- |-
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."mirror-test.invalid"]
    endpoint = ["http://127.0.0.1:5999"]
EOF

"$KIND" delete cluster --name "$NAME" >/dev/null 2>&1 || true
t0=$(now)
"$KIND" create cluster --name "$NAME" --image "$NODE_IMAGE" --config "$R/kind.yaml" --kubeconfig "$KUBECONFIG" ${KIND_ARGS:-}
echo "TIME kind create cluster: $(since "$t0")s"

t1=$(now)
"$KUBECTL" wait --for=condition=Ready node --all --timeout=180s
echo "TIME node Ready after create: $(since "$t1")s"

# pods need the namespace's default ServiceAccount, created by the controller-manager
for _ in $(seq 120); do "$KUBECTL" get serviceaccount default >/dev/null 2>&1 && break; sleep 1; done
t2=$(now)
"$KUBECTL" apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: ksi-busybox
  labels: {app: ksi-busybox}
spec:
  containers:
  - name: bb
    image: $BUSYBOX_IMAGE
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "echo hello-from-real-kind on \$(hostname); cat /app/hello.txt; exec busybox httpd -f -p 8080 -h /app"]
    volumeMounts: [{name: app, mountPath: /app}]
  volumes:
  - name: app
    hostPath: {path: /app}
---
apiVersion: v1
kind: Service
metadata:
  name: ksi-busybox
spec:
  type: NodePort
  selector: {app: ksi-busybox}
  ports:
  - {port: 8080, targetPort: 8080, nodePort: $NODE_PORT}
EOF
"$KUBECTL" wait --for=condition=Ready pod/ksi-busybox --timeout=180s
echo "TIME busybox pod Ready after apply: $(since "$t2")s"
sleep 1
logs=$("$KUBECTL" logs ksi-busybox); echo "$logs"
grep -q hello-from-real-kind <<<"$logs" && ok "pod runs" || bad "pod output"
grep -q hello-from-host-app-dir <<<"$logs" && ok "extraMounts /app visible in a hostPath pod" || bad "extraMounts /app"
podip=$("$KUBECTL" get pod ksi-busybox -o jsonpath='{.status.podIP}')
python3 -c 'import ipaddress as i, sys; sys.exit(i.ip_address(sys.argv[1]) not in i.ip_network(sys.argv[2]))' \
  "$podip" "${POD_SUBNET%%,*}" && ok "pod IP $podip is in podSubnet $POD_SUBNET" || bad "pod IP $podip not in $POD_SUBNET"

out=""
for _ in $(seq 30); do out=$(curl -s --max-time 2 "http://127.0.0.1:$NODE_PORT/hello.txt" || true); [[ -n $out ]] && break; sleep 1; done
[[ $out == hello-from-host-app-dir ]] && ok "NodePort $NODE_PORT reachable from the host via extraPortMappings" \
  || bad "NodePort via host port $NODE_PORT (got '$out')"
podman port "$NAME-control-plane" | grep -q "$UDP_PORT/udp" && ok "UDP port mapping $UDP_PORT published" || bad "UDP mapping"

# cluster DNS through CoreDNS (our build) and the kube-proxy service VIP
"$KUBECTL" -n kube-system rollout status deployment/coredns --timeout=120s
"$KUBECTL" exec ksi-busybox -- busybox nslookup kubernetes.default.svc.cluster.local \
  && ok "cluster DNS (CoreDNS via service VIP in $SERVICE_SUBNET)" || bad "cluster DNS"

"$KUBECTL" -n kube-system exec "etcd-$NAME-control-plane" -- true 2>/dev/null || true
podman exec "$NAME-control-plane" containerd config dump | grep -q mirror-test.invalid \
  && ok "containerdConfigPatches applied" || bad "containerdConfigPatches"

# kind load image-archive: a retagged busybox archive
python3 "$HERE/mkimage.py" --out "$R/loaded.tar" --tag localhost/ksi-loaded:e2e --layer "$C/layers/busybox.tar" --cmd '["/bin/sh"]' >/dev/null
t3=$(now)
"$KIND" load image-archive "$R/loaded.tar" --name "$NAME"
echo "TIME kind load image-archive (2 MB): $(since "$t3")s"
"$KUBECTL" run ksi-loaded --image=localhost/ksi-loaded:e2e --image-pull-policy=Never --restart=Never -- /bin/sh -c 'echo loaded-image-runs'
"$KUBECTL" wait --for=jsonpath='{.status.phase}'=Succeeded pod/ksi-loaded --timeout=120s \
  && ok "kind load image-archive + pod from loaded image" || bad "loaded image pod"

"$KIND" get clusters | grep -qx "$NAME" && ok "kind get clusters lists $NAME" || bad "kind get clusters"
t4=$(now)
"$KIND" export logs "$R/logs" --name "$NAME" >/dev/null 2>&1 && ok "kind export logs ($(since "$t4")s, $(find "$R/logs" -type f | wc -l) files)" \
  || bad "kind export logs"

"$KUBECTL" get nodes -o wide
"$KUBECTL" get pods -A -o wide
node=$NAME-control-plane
echo "MEM node container (podman stats): $(podman stats --no-stream --format '{{.MemUsage}}' "$node")"
pid=$(podman inspect --format '{{.State.Pid}}' "$node")
memcg=$(awk -F: '$2=="memory"{print $3}' "/proc/$pid/cgroup")
memcg=${memcg%/init.scope}   # systemd (PID 1 of the node) moves itself into init.scope
d=/sys/fs/cgroup/memory$memcg
if [[ -r $d/memory.usage_in_bytes ]]; then
  echo "MEM node container memory cgroup: usage $(( $(cat "$d/memory.usage_in_bytes") / 1048576 )) MiB incl. page cache," \
    "rss $(( $(awk '$1=="total_rss"{print $2}' "$d/memory.stat") / 1048576 )) MiB," \
    "max_usage $(( $(cat "$d/memory.max_usage_in_bytes") / 1048576 )) MiB"
fi

if [[ -z ${KEEP:-} ]]; then
  t5=$(now)
  "$KIND" delete cluster --name "$NAME"
  echo "TIME kind delete cluster: $(since "$t5")s"
else
  echo "kept cluster $NAME; KUBECONFIG=$KUBECONFIG; delete: KIND_EXPERIMENTAL_PROVIDER=podman CONTAINERS_CONF=$CONTAINERS_CONF $KIND delete cluster --name $NAME"
fi
echo "SMOKE $([[ $fails == 0 ]] && echo PASSED || echo "FAILED ($fails)")"
exit $((fails > 0))
