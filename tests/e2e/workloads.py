"""The real workload both the real-kind tests and the VM tests run: a pod serving /app on a
NodePort at K8S_PORT, and the script lines that check the four variables and the token."""

WEB = """apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: web
    image: localhost/ksi-busybox:e2e
    imagePullPolicy: Never
    command: ["/bin/busybox", "sh", "-c",
              "echo from-pod > /app/from-pod.txt && exec /bin/busybox httpd -f -p 8080 -h /app"]
    volumeMounts: [{name: app, mountPath: /app}]
  volumes:
  - name: app
    hostPath: {path: /app, type: Directory}
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  type: NodePort
  selector: {app: web}
  ports:
  - {port: 8080, targetPort: 8080, nodePort: NODEPORT}
"""

# Records the variables, the cluster's CA and the API's answers to the token and to a bad
# one, then applies WEB with K8S_PORT as its NodePort.
API_CHECKS = (
    r"""printf 'NAME=%s\nAPI=%s\nPORT=%s\nTOKENLEN=%s\n' "$K8S_CLUSTER_NAME" "$K8S_CLUSTER_API" \
  "$K8S_PORT" "${#K8S_CLUSTER_API_TOKEN}" > vars.txt
kubectl config view --raw --minify --context "$K8S_CLUSTER_NAME" \
  -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d > ca.crt
curl --fail -sS --cacert ca.crt -H "Authorization: Bearer $K8S_CLUSTER_API_TOKEN" \
  "$K8S_CLUSTER_API/api/v1/namespaces/kube-system" -o api.json
curl -sS -o /dev/null -w '%{http_code}' --cacert ca.crt \
  -H "Authorization: Bearer x$K8S_CLUSTER_API_TOKEN" "$K8S_CLUSTER_API/api" > badtoken.txt
sed "s/NODEPORT/$K8S_PORT/" web.yaml | kubectl --context "$K8S_CLUSTER_NAME" apply -f -
""")
