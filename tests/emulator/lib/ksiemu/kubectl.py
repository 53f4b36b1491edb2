"""Emulated ``kubectl`` (v1.34 client behaviour) against the emulated API servers.

Messages observed with a real kubectl 1.32 here and read from kubernetes/kubectl:
- ``Error in configuration: context was not found for specified context: X``
- ``error: cannot locate context X`` (config view --minify --context X)
- ``error: no context exists with the name: "X"`` (config use-context)
- ``The connection to the server H:P was refused - did you specify the right host or port?``
- ``error: stat F: no such file or directory`` (--kubeconfig F missing)
- ``error: You must be logged in to the server (Unauthorized)``
- ``Unable to connect to the server: tls: failed to verify certificate: x509: ...``
- ``Error from server (AlreadyExists|NotFound|Forbidden): ...``
- a jsonpath that matches nothing prints nothing and exits 0.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import string
import sys
import time

from . import cli, clusters, faults, gpus, jsonpath, kubeconfig, state, workloads

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List, Optional, Tuple

CLIENT_VERSION = "1.34.1"
SERVER_VERSION = "1.34.0"


class KErr(Exception):
    def __init__(self, msg: str, code: int = 1) -> None:
        super().__init__(msg)
        self.msg = msg
        self.code = code


# resource table: aliases -> (Kind, plural, group, namespaced)
RESOURCES: List[Tuple[Tuple[str, ...], str, str, str, bool]] = [
    (("nodes", "node", "no"), "Node", "nodes", "", False),
    (("pods", "pod", "po"), "Pod", "pods", "", True),
    (("jobs", "job"), "Job", "jobs", "batch", True),
    (("namespaces", "namespace", "ns"), "Namespace", "namespaces", "", False),
    (("serviceaccounts", "serviceaccount", "sa"), "ServiceAccount", "serviceaccounts", "", True),
    (("services", "service", "svc"), "Service", "services", "", True),
    (("events", "event", "ev"), "Event", "events", "", True),
    (("deployments", "deployment", "deploy"), "Deployment", "deployments", "apps", True),
    (("configmaps", "configmap", "cm"), "ConfigMap", "configmaps", "", True),
    (("secrets", "secret"), "Secret", "secrets", "", True),
    (
        ("clusterrolebindings", "clusterrolebinding"),
        "ClusterRoleBinding",
        "clusterrolebindings",
        "rbac.authorization.k8s.io",
        False,
    ),
    (
        ("clusterroles", "clusterrole"),
        "ClusterRole",
        "clusterroles",
        "rbac.authorization.k8s.io",
        False,
    ),
    (
        ("rolebindings", "rolebinding"),
        "RoleBinding",
        "rolebindings",
        "rbac.authorization.k8s.io",
        True,
    ),
    (
        ("persistentvolumeclaims", "persistentvolumeclaim", "pvc"),
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "",
        True,
    ),
    (
        ("storageclasses", "storageclass", "sc"),
        "StorageClass",
        "storageclasses",
        "storage.k8s.io",
        False,
    ),
    (("daemonsets", "daemonset", "ds"), "DaemonSet", "daemonsets", "apps", True),
    (("runtimeclasses", "runtimeclass"), "RuntimeClass", "runtimeclasses", "node.k8s.io", False),
    (("statefulsets", "statefulset", "sts"), "StatefulSet", "statefulsets", "apps", True),
    (
        ("customresourcedefinitions", "customresourcedefinition", "crd", "crds"),
        "CustomResourceDefinition",
        "customresourcedefinitions",
        "apiextensions.k8s.io",
        False,
    ),
    (
        ("resourceslices", "resourceslice"),
        "ResourceSlice",
        "resourceslices",
        "authentication.liqo.io",
        True,
    ),
    (
        ("foreignclusters", "foreigncluster"),
        "ForeignCluster",
        "foreignclusters",
        "core.liqo.io",
        False,
    ),
    (
        ("namespaceoffloadings", "namespaceoffloading"),
        "NamespaceOffloading",
        "namespaceoffloadings",
        "offloading.liqo.io",
        True,
    ),
    (("statefulsets", "statefulset", "sts"), "StatefulSet", "statefulsets", "apps", True),
    (("replicasets", "replicaset", "rs"), "ReplicaSet", "replicasets", "apps", True),
    (("cronjobs", "cronjob", "cj"), "CronJob", "cronjobs", "batch", True),
    (("roles", "role"), "Role", "roles", "rbac.authorization.k8s.io", True),
    (("persistentvolumes", "persistentvolume", "pv"), "PersistentVolume", "persistentvolumes",
     "", False),
    (("ingresses", "ingress", "ing"), "Ingress", "ingresses", "networking.k8s.io", True),
    (("networkpolicies", "networkpolicy", "netpol"), "NetworkPolicy", "networkpolicies",
     "networking.k8s.io", True),
    (("poddisruptionbudgets", "poddisruptionbudget", "pdb"), "PodDisruptionBudget",
     "poddisruptionbudgets", "policy", True),
    (("resourcequotas", "resourcequota", "quota"), "ResourceQuota", "resourcequotas", "", True),
    (("limitranges", "limitrange", "limits"), "LimitRange", "limitranges", "", True),
    (("customresourcedefinitions", "customresourcedefinition", "crd", "crds"),
     "CustomResourceDefinition", "customresourcedefinitions", "apiextensions.k8s.io", False),
]


def unmapped(o: Dict[str, Any], source: str, objs: Dict[str, Any]) -> Optional[str]:
    """kubectl's error for an object whose kind the API server does not serve in its
    apiVersion (built-ins of RESOURCES, or a CRD created in the cluster), else None:
    cli-runtime v0.34.4 pkg/resource/mapper.go infoForData + apimachinery NoKindMatchError."""
    kind, api = str(o.get("kind") or ""), str(o.get("apiVersion") or "")
    group = api.rsplit("/", 1)[0] if "/" in api else ""
    if any(k == kind and g == group for _n, k, _p, g, _ns in RESOURCES):
        return None
    for crd in objs.values():
        spec = (crd.get("spec") or {}) if crd.get("kind") == "CustomResourceDefinition" else {}
        if (spec.get("names") or {}).get("kind") == kind and spec.get("group") == group:
            return None
    md = o.get("metadata") or {}
    return (f'error: resource mapping not found for name: "{md.get("name", "")}" namespace: '
            f'"{md.get("namespace", "")}" from "{source}": no matches for kind "{kind}" in '
            f'version "{api}"\nensure CRDs are installed first')


def resource(alias: str) -> Tuple[str, str, str, bool]:
    a = alias.lower()
    for names, kind, plural, group, nsd in RESOURCES:
        if a in names or a == f"{plural}.{group}" or a == kind.lower():
            return kind, plural, group, nsd
    raise KErr(f'error: the server doesn\'t have a resource type "{alias}"')


def by_kind(kind: str) -> Tuple[str, str, str, bool]:
    for _names, k, plural, group, nsd in RESOURCES:
        if k == kind:
            return k, plural, group, nsd
    return kind, kind.lower() + "s", "", True


def qual(plural: str, group: str) -> str:
    return plural if not group else f"{plural}.{group}"


def singular(kind: str) -> str:
    return kind.lower()


# --------------------------------------------------------------------- connection


class Conn:
    def __init__(
        self,
        rec: Dict[str, Any],
        user: str,
        sa: Optional[Tuple[str, str]],
        namespace: str,
        cfg: Dict[str, Any],
        ctx_name: str,
    ) -> None:
        self.rec = rec
        self.user = user
        self.sa = sa
        self.namespace = namespace
        self.cfg = cfg
        self.ctx_name = ctx_name

    @property
    def dir(self) -> str:
        return clusters.cdir(self.rec["id"])


def refused(server: str) -> KErr:
    host, port = clusters.parse_server(server)
    return KErr(
        f"The connection to the server {host}:{port} was refused - did you specify the right host "
        f"or port?"
    )


def load_cfg(g: Dict[str, Any]) -> Tuple[Dict[str, Any], str]:
    try:
        cfg, _ = kubeconfig.load_for_kubectl(cli.get_str(g, "kubeconfig"))
    except kubeconfig.KubeconfigError as e:
        raise KErr(f"error: {e}") from e
    ctx_name = cli.get_str(g, "context") or cfg.get("current-context") or ""
    return cfg, ctx_name


def connect(g: Dict[str, Any]) -> Conn:
    cfg, ctx_name = load_cfg(g)
    ctx: Dict[str, Any] = {}
    if ctx_name:
        ent = kubeconfig.named(cfg.get("contexts"), ctx_name)
        if ent is None:
            raise KErr(
                f"Error in configuration: context was not found for specified context: {ctx_name}"
            )
        ctx = ent.get("context") or {}
    cluster_ent = (kubeconfig.named(cfg.get("clusters"), ctx.get("cluster", "")) or {}).get(
        "cluster"
    ) or {}
    user_ent = (kubeconfig.named(cfg.get("users"), ctx.get("user", "")) or {}).get("user") or {}
    server = cli.get_str(g, "server") or cluster_ent.get("server") or "http://localhost:8080"
    namespace = cli.get_str(g, "namespace") or ctx.get("namespace") or "default"
    insecure = bool(cluster_ent.get("insecure-skip-tls-verify")) or bool(g.get("insecure"))
    if insecure:
        state.CALL_EXTRA["insecure"] = True
    if faults.should_fail("kubectl", "apiserver-down"):
        raise refused(server)
    rec, entry, host = clusters.resolve(server)
    if rec is None:
        raise refused(server)
    if not insecure:
        ca = kubeconfig.pem_payload(cluster_ent.get("certificate-authority-data", ""))
        if ca != rec["ca_serial"]:
            raise KErr(
                "Unable to connect to the server: tls: failed to verify certificate: x509: "
                "certificate "
                "signed by unknown authority"
            )
        if host not in rec["sans"]:
            ips = [s for s in rec["sans"] if _is_ip(s)]
            names = [s for s in rec["sans"] if not _is_ip(s)]
            valid = ips if _is_ip(host) else names
            raise KErr(
                "Unable to connect to the server: tls: failed to verify certificate: x509: "
                "certificate is "
                "valid for {}, not {}".format(", ".join(valid), host)
            )
    token = cli.get_str(g, "token") or user_ent.get("token") or ""
    if token:
        info = check_token(rec, token)
        if info is None:
            raise KErr("error: You must be logged in to the server (Unauthorized)")
        return Conn(
            rec, "system:serviceaccount:{}:{}".format(*info), info, namespace, cfg, ctx_name
        )
    cert = kubeconfig.pem_payload(user_ent.get("client-certificate-data", ""))
    if cert != rec["client_serial"]:
        raise KErr("error: You must be logged in to the server (Unauthorized)")
    return Conn(rec, "kubernetes-admin", None, namespace, cfg, ctx_name)


def _is_ip(s: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(s)
        return True
    except ValueError:
        return False


def tokens_path(rec: Dict[str, Any]) -> str:
    return os.path.join(clusters.cdir(rec["id"]), "tokens.json")


def check_token(rec: Dict[str, Any], token: str) -> Optional[Tuple[str, str]]:
    t = (state.read_json(tokens_path(rec), {}) or {}).get(
        hashlib.sha256(token.encode()).hexdigest()
    )
    if not t or t["exp"] < time.time():
        return None
    # the ServiceAccount must still exist
    objs = read_objects(rec)
    if "ServiceAccount/{}/{}".format(t["ns"], t["sa"]) not in objs:
        return None
    return t["ns"], t["sa"]


def is_admin(conn: Conn) -> bool:
    if conn.sa is None:
        return True
    ns, sa = conn.sa
    for key, o in read_objects(conn.rec).items():
        if not key.startswith("ClusterRoleBinding/"):
            continue
        if (o.get("roleRef") or {}).get("name") != "cluster-admin":
            continue
        for s in o.get("subjects") or []:
            if (
                s.get("kind") == "ServiceAccount"
                and s.get("name") == sa
                and s.get("namespace") == ns
            ):
                return True
    return False


def authorize(conn: Conn, verb: str, plural: str, group: str, ns: Optional[str]) -> None:
    if is_admin(conn):
        return
    where = (f'in the namespace "{ns}"') if ns else "at the cluster scope"
    raise KErr(
        f'Error from server (Forbidden): {qual(plural, group)} is forbidden: User "{conn.user}" '
        f'cannot {verb} resource "{plural}" in API group "{group}" {where}'
    )


# --------------------------------------------------------------------- object store


def objects_path(rec: Dict[str, Any]) -> str:
    return os.path.join(clusters.cdir(rec["id"]), "objects.json")


def seed(rec: Dict[str, Any]) -> Dict[str, Any]:
    t = rec["created"]
    objs: Dict[str, Any] = {}
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease", "local-path-storage"):
        objs[f"Namespace//{ns}"] = mk(
            "v1", "Namespace", ns, None, t, labels={"kubernetes.io/metadata.name": ns}
        )
        objs[f"ServiceAccount/{ns}/default"] = mk("v1", "ServiceAccount", "default", ns, t)
    objs["Service/default/kubernetes"] = mk(
        "v1",
        "Service",
        "kubernetes",
        "default",
        t,
        extra={
            "spec": {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.1",
                "ports": [{"port": 443, "protocol": "TCP"}],
            }
        },
    )
    objs["ClusterRole//cluster-admin"] = mk(
        "rbac.authorization.k8s.io/v1", "ClusterRole", "cluster-admin", None, t
    )
    objs["StorageClass//standard"] = mk(
        "storage.k8s.io/v1",
        "StorageClass",
        "standard",
        None,
        t,
        extra={"provisioner": "rancher.io/local-path"},
    )
    return objs


def mk(
    api: str,
    kind: str,
    name: str,
    ns: Optional[str],
    t: float,
    labels: Optional[Dict[str, str]] = None,
    extra: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    md: Dict[str, Any] = {
        "name": name,
        "creationTimestamp": state.rfc3339(t),
        "uid": hashlib.md5((f"{kind}/{ns}/{name}/{t:f}").encode()).hexdigest(),
    }
    if ns:
        md["namespace"] = ns
    if labels:
        md["labels"] = labels
    o = {"apiVersion": api, "kind": kind, "metadata": md, "_emu": {"created": t}}
    if extra:
        o.update(extra)
    return o


def read_objects(rec: Dict[str, Any]) -> Dict[str, Any]:
    objs = state.read_json(objects_path(rec))
    if objs is None:
        objs = seed(rec)
    return objs


def update_objects(rec: Dict[str, Any], fn) -> Any:
    p = objects_path(rec)
    result: List[Any] = []

    def upd(cur: Optional[Dict[str, Any]]) -> Dict[str, Any]:
        cur = cur if cur is not None else seed(rec)
        result.append(fn(cur))
        return cur

    state.update_json(p, upd)
    return result[0]


def key_of(kind: str, ns: Optional[str], name: str) -> str:
    return "{}/{}/{}".format(kind, ns or "", name)


# --------------------------------------------------------------------- dynamic state


def liqo_state(rec: Dict[str, Any]) -> Dict[str, Any]:
    return state.read_json(os.path.join(clusters.cdir(rec["id"]), "liqo.json"), {}) or {}


def nodes(rec: Dict[str, Any]) -> List[Dict[str, Any]]:
    now = time.time()
    res = []
    gpu_res = None
    for n in rec["nodes"]:
        labels = {
            "kubernetes.io/hostname": n["name"],
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64",
        }
        if n["role"] == "control-plane":
            labels["node-role.kubernetes.io/control-plane"] = ""
            labels["node.kubernetes.io/exclude-from-external-load-balancers"] = ""
        labels.update(n.get("labels") or {})
        ready = now >= rec["ready_at"]
        o = mk("v1", "Node", n["name"], None, rec["created"], labels=labels)
        o["spec"] = {
            "podCIDR": rec["config"]["networking"]["podSubnet"].split(",")[0],
            "providerID": "kind://{}/{}/{}".format(rec["provider"], rec["name"], n["name"]),
        }
        if n["role"] == "control-plane" and not ready:
            o["spec"]["taints"] = [{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}]
        o["status"] = node_status(ready, rec["ready_at"], rec.get("node_ip", ""))
        if gpu_res is None:
            gpu_res = gpus.node_resources(rec, read_objects(rec))
        if gpu_res[0]:  # the NVIDIA device plugin registered the node's GPUs
            o["status"]["capacity"][gpus.RESOURCE] = str(gpu_res[0])
            o["status"]["allocatable"][gpus.RESOURCE] = str(gpu_res[1])
        res.append(o)
    slices = slice_resources(read_objects(rec))
    for peer in liqo_state(rec).get("peers", {}).values():
        if peer.get("role") != "provider":
            continue
        if not peer.get("virtual_node") and peer["cluster_id"] not in slices:
            continue
        if now < peer.get("visible_at", 0):  # the virtual kubelet has not registered yet
            continue
        ready = now >= peer["ready_at"]
        # the labels of a real Liqo 1.0.1 virtual node (seen here); the provider's cluster
        # labels (liqoctl install --cluster-labels) are propagated to it
        labels = {
            "alpha.service-controller.kubernetes.io/exclude-balancer": "true",
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": peer["cluster_id"],
            "kubernetes.io/os": "linux",
            "kubernetes.io/role": "agent",
            "liqo.io/provider": "kind",
            "liqo.io/remote-cluster-id": peer["cluster_id"],
            "liqo.io/type": "virtual-node",
            "node.kubernetes.io/exclude-from-external-load-balancers": "true",
            "storage.liqo.io/available": "true",
        }
        labels.update(peer.get("labels") or {})
        o = mk("v1", "Node", peer["cluster_id"], None, peer["created"], labels=labels)
        o["spec"] = {
            "taints": [
                {"key": "virtual-node.liqo.io/not-allowed", "value": "true", "effect": "NoExecute"}
            ]
        }
        o["status"] = node_status(ready, peer["ready_at"], "")
        for key in ("capacity", "allocatable"):  # the ResourceSlice's resources
            o["status"][key].update(slices.get(peer["cluster_id"], {}))
        res.append(o)
    return res


def slice_resources(objs: Dict[str, Any]) -> Dict[str, Dict[str, str]]:
    """Provider cluster id -> spec.resources of the ResourceSlices that ask for a virtual
    node (Liqo 1.0.1's default class accepts them as they are: the virtual node's capacity;
    the resources not named keep their defaults)."""
    out: Dict[str, Dict[str, str]] = {}
    for key, o in objs.items():
        if not key.startswith("ResourceSlice/"):
            continue
        md = o.get("metadata") or {}
        if (md.get("annotations") or {}).get("liqo.io/create-virtual-node") != "true":
            continue
        remote = (o.get("spec") or {}).get("providerClusterID") or \
            (md.get("labels") or {}).get("liqo.io/remote-cluster-id")
        if remote:
            res = (o.get("spec") or {}).get("resources") or {}
            out.setdefault(remote, {}).update({k: str(v) for k, v in res.items()})
    return out


def node_status(ready: bool, since: float, ip: str) -> Dict[str, Any]:
    return {
        "conditions": [
            {
                "type": "Ready",
                "status": "True" if ready else "False",
                "reason": "KubeletReady" if ready else "KubeletNotReady",
                "lastTransitionTime": state.rfc3339(since),
            }
        ],
        "addresses": [{"type": "InternalIP", "address": ip}] if ip else [],
        "nodeInfo": {
            "kubeletVersion": "v" + SERVER_VERSION,
            "containerRuntimeVersion": "containerd://2.1.3",
        },
        "allocatable": {"cpu": str(os.cpu_count() or 1), "memory": "8Gi", "pods": "110"},
        "capacity": {"cpu": str(os.cpu_count() or 1), "memory": "8Gi", "pods": "110"},
    }


def system_pods(rec: Dict[str, Any]) -> List[Dict[str, Any]]:
    cp = rec["name"] + "-control-plane"
    ready = time.time() >= rec["ready_at"]
    res = []
    for name in (
        "coredns-66bc5c9577-abcde",
        "coredns-66bc5c9577-fghij",
        "etcd-" + cp,
        "kindnet-xk2p9",
        "kube-apiserver-" + cp,
        "kube-controller-manager-" + cp,
        "kube-proxy-7hq4m",
        "kube-scheduler-" + cp,
    ):
        o = mk("v1", "Pod", name, "kube-system", rec["created"])
        o["spec"] = {
            "nodeName": cp,
            "containers": [{"name": name.split("-")[0], "image": "registry.k8s.io/x"}],
        }
        running = ready or not name.startswith("coredns")
        o["status"] = {
            "phase": "Running" if running else "Pending",
            "containerStatuses": [
                {
                    "name": name.split("-")[0],
                    "ready": running,
                    "restartCount": 0,
                    "state": {"running": {}}
                    if running
                    else {"waiting": {"reason": "ContainerCreating"}},
                }
            ],
        }
        res.append(o)
    return res


def job_seconds(obj: Dict[str, Any]) -> float:
    return float(obj.get("_emu", {}).get("job_seconds", 0.2))


def outcome(obj: Dict[str, Any]) -> str:
    """Emulator-only test hook: annotation ``ksi-emu/outcome: fail|imagepull``."""
    ann = dict((obj.get("metadata") or {}).get("annotations") or {})
    tmpl = ((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}
    ann.update(tmpl.get("annotations") or {})
    if not ann.get("ksi-emu/outcome") and gpus.lost() and gpus.requests_gpu(obj):
        return "fail"  # KSI_EMU_GPU_XID: its GPU had an Xid error, its CUDA calls fail
    return ann.get("ksi-emu/outcome", "")


def with_status(o: Dict[str, Any], rec: Dict[str, Any]) -> Dict[str, Any]:
    o = json.loads(json.dumps(o))
    emu = o.get("_emu", {})
    now = time.time()
    kind = o.get("kind")
    if kind == "Job" and (o.get("spec") or {}).get("suspend"):
        # a Job created with spec.suspend: no pods, never complete (the Job controller
        # only sets the Suspended condition)
        o["status"] = {"conditions": [{"type": "Suspended", "status": "True",
                                       "reason": "JobSuspended", "message": "Job suspended"}]}
        o.pop("_emu", None)
        return o
    if workloads.modelled(o):  # restarts, retries, init containers, Deployments' pods
        o["status"] = workloads.status(o, now)
        if kind == "Pod" and (o.get("spec") or {}).get("nodeName") is None:
            o.setdefault("spec", {})["nodeName"] = rec["name"] + "-control-plane"
        o.pop("_emu", None)
        return o
    if kind == "Job":
        done = now >= emu.get("created", now) + job_seconds(o)
        oc = outcome(o)
        st: Dict[str, Any] = {
            "startTime": state.rfc3339(emu.get("created", now)),
            "active": 0 if done else 1,
        }
        if oc == "imagepull":
            st["active"] = 1
            st["ready"] = 0
        elif done and oc == "fail":
            st["failed"] = 1
            st["conditions"] = [
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"},
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                },
            ]
        elif done:
            st["succeeded"] = 1
            st["completionTime"] = state.rfc3339(emu["created"] + job_seconds(o))
            st["conditions"] = [
                {"type": "SuccessCriteriaMet", "status": "True"},
                {"type": "Complete", "status": "True"},
            ]
        o["status"] = st
    elif kind == "Pod":
        spec = o.get("spec") or {}
        cname = (spec.get("containers") or [{}])[0].get("name", "main")
        oc = outcome(o)
        finite = spec.get("restartPolicy") in ("Never", "OnFailure")
        done = now >= emu.get("created", now) + job_seconds(o)
        if oc == "imagepull":
            o["status"] = {
                "phase": "Pending",
                "containerStatuses": [
                    {
                        "name": cname,
                        "ready": False,
                        "restartCount": 0,
                        "state": {
                            "waiting": {
                                "reason": "ErrImagePull" if not done else "ImagePullBackOff",
                                "message": "failed to pull and unpack image",
                            }
                        },
                    }
                ],
            }
        elif done and oc == "fail":
            o["status"] = {
                "phase": "Failed",
                "containerStatuses": [
                    {
                        "name": cname,
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"reason": "Error", "exitCode": 1}},
                    }
                ],
            }
        elif done and finite:
            o["status"] = {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": cname,
                        "ready": False,
                        "restartCount": 0,
                        "state": {"terminated": {"reason": "Completed", "exitCode": 0}},
                    }
                ],
            }
        else:
            o["status"] = {
                "phase": "Running",
                "containerStatuses": [
                    {"name": cname, "ready": True, "restartCount": 0, "state": {"running": {}}}
                ],
            }
        if spec.get("nodeName") is None:
            o.setdefault("spec", {})["nodeName"] = rec["name"] + "-control-plane"
    o.pop("_emu", None)
    return o


def list_all(conn: Conn, kind: str) -> List[Dict[str, Any]]:
    rec = conn.rec
    if kind == "Node":
        return nodes(rec)
    objs = read_objects(rec)
    raw = [o for k, o in objs.items() if k.startswith(kind + "/")]
    if kind == "Pod":
        raw = workloads.expand_pods(objs, raw, time.time())
    out = [with_status(o, rec) for o in raw]
    if kind == "Pod":
        out += system_pods(rec)
    return out


def match_selector(o: Dict[str, Any], sel: str) -> bool:
    labels = (o.get("metadata") or {}).get("labels") or {}
    for term in [t.strip() for t in sel.split(",") if t.strip()]:
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            if labels.get(k) != v:
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


# --------------------------------------------------------------------- output


def age(ts: str) -> str:
    try:
        t = time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except (ValueError, TypeError):
        return "<unknown>"
    d = max(0, int(time.time() - t))
    if d < 120:
        return f"{d}s"
    if d < 600:
        return f"{d // 60}m{d % 60}s"
    if d < 3 * 3600:
        return f"{d // 60}m"
    return f"{d // 3600}h"


def yaml_dump(o: Any) -> str:
    import yaml

    return yaml.safe_dump(o, default_flow_style=False, sort_keys=True)


def print_objects(
    objs: List[Dict[str, Any]], out: str, kind: str, single: bool, no_headers: bool, all_ns: bool
) -> None:
    if out in ("json", "yaml"):
        data: Any = (
            objs[0]
            if single
            else {
                "apiVersion": "v1",
                "kind": "List",
                "items": objs,
                "metadata": {"resourceVersion": ""},
            }
        )
        sys.stdout.write(json.dumps(data, indent=4) + "\n" if out == "json" else yaml_dump(data))
        return
    if out == "name":
        _, plural, group, _ = by_kind(kind)
        for o in objs:
            state.out(
                "{}/{}".format(
                    singular(kind) + ("." + group if group else ""), o["metadata"]["name"]
                )
            )
        return
    if out.startswith("jsonpath=") or out.startswith("jsonpath-as-json="):
        tmpl = out.split("=", 1)[1]
        data = objs[0] if single else {"apiVersion": "v1", "kind": "List", "items": objs}
        try:
            sys.stdout.write(jsonpath.render(tmpl, data))
        except jsonpath.JSONPathError as e:
            raise KErr(
                f"error: error executing jsonpath {json.dumps(tmpl)}: Error executing template: {e}"
            ) from e
        return
    if out.startswith("custom-columns="):
        cols = [c.split(":", 1) for c in out.split("=", 1)[1].split(",")]
        rows = [[c[0] for c in cols]] if not no_headers else []
        for o in objs:
            rows.append([jsonpath.render("{" + c[1] + "}", o) or "<none>" for c in cols])
        table(rows)
        return
    head, rowfn = columns(kind, out == "wide")
    rows = [] if no_headers else [(["NAMESPACE"] if all_ns else []) + head]
    for o in objs:
        rows.append(([o["metadata"].get("namespace", "")] if all_ns else []) + rowfn(o))
    table(rows)


def table(rows: List[List[str]]) -> None:
    if not rows:
        return
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        state.out("   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())


def columns(kind: str, wide: bool):
    def name(o: Dict[str, Any]) -> str:
        return o["metadata"]["name"]

    def ag(o: Dict[str, Any]) -> str:
        return age(o["metadata"].get("creationTimestamp", ""))

    if kind == "Node":

        def nrow(o: Dict[str, Any]) -> List[str]:
            ready = any(
                c["type"] == "Ready" and c["status"] == "True" for c in o["status"]["conditions"]
            )
            labels = o["metadata"].get("labels", {})
            roles = ",".join(
                sorted(
                    k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/")
                )
            )
            if labels.get("liqo.io/type") == "virtual-node":
                roles = "agent"
            r = [
                name(o),
                "Ready" if ready else "NotReady",
                roles or "<none>",
                ag(o),
                o["status"]["nodeInfo"]["kubeletVersion"],
            ]
            if wide:
                addr = (o["status"].get("addresses") or [{"address": "<none>"}])[0]["address"]
                r += [
                    addr,
                    "<none>",
                    "Debian GNU/Linux 12 (bookworm)",
                    os.uname().release,
                    "containerd://2.1.3",
                ]
            return r

        head = ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
        if wide:
            head += [
                "INTERNAL-IP",
                "EXTERNAL-IP",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME",
            ]
        return head, nrow
    if kind == "Pod":

        def prow(o: Dict[str, Any]) -> List[str]:
            cs = o["status"].get("containerStatuses") or []
            ready = sum(1 for c in cs if c.get("ready"))
            st = o["status"]["phase"]
            for c in cs:
                s = c.get("state", {})
                if "waiting" in s:
                    st = s["waiting"]["reason"]
                elif "terminated" in s:
                    st = s["terminated"]["reason"]
            r = [name(o), f"{ready}/{len(cs) or 1}", st, "0", ag(o)]
            if wide:
                r += [
                    f"10.244.0.{int(hashlib.md5(name(o).encode()).hexdigest()[:2], 16) % 250 + 2}",
                    o.get("spec", {}).get("nodeName", "<none>"),
                    "<none>",
                    "<none>",
                ]
            return r

        head = ["NAME", "READY", "STATUS", "RESTARTS", "AGE"] + (
            ["IP", "NODE", "NOMINATED NODE", "READINESS GATES"] if wide else []
        )
        return head, prow
    if kind == "Job":

        def jrow(o: Dict[str, Any]) -> List[str]:
            st = o.get("status", {})
            conds = {c["type"] for c in st.get("conditions") or []}
            status = (
                "Complete"
                if "Complete" in conds
                else ("Failed" if "Failed" in conds else "Running")
            )
            return [
                name(o),
                status,
                "{}/1".format(st.get("succeeded", 0)),
                "1s" if st.get("succeeded") else ag(o),
                ag(o),
            ]

        return ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], jrow
    if kind == "Namespace":
        return ["NAME", "STATUS", "AGE"], lambda o: [name(o), "Active", ag(o)]
    if kind == "ServiceAccount":
        return ["NAME", "SECRETS", "AGE"], lambda o: [name(o), "0", ag(o)]
    if kind == "Service":
        return (
            ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
            lambda o: [
                name(o),
                o.get("spec", {}).get("type", "ClusterIP"),
                o.get("spec", {}).get("clusterIP", "10.96.0.10"),
                "<none>",
                ",".join(
                    "{}/{}".format(p.get("port"), p.get("protocol", "TCP"))
                    for p in o.get("spec", {}).get("ports") or []
                )
                or "<none>",
                ag(o),
            ],
        )
    if kind == "Event":
        return (
            ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
            lambda o: [
                ag(o),
                o.get("type", "Normal"),
                o.get("reason", ""),
                "{}/{}".format(
                    o.get("involvedObject", {}).get("kind", "").lower(),
                    o.get("involvedObject", {}).get("name", ""),
                ),
                o.get("message", ""),
            ],
        )
    return ["NAME", "AGE"], lambda o: [name(o), ag(o)]


# --------------------------------------------------------------------- flags


def spec() -> cli.Spec:
    s = cli.Spec()
    s.add("kubeconfig", "--kubeconfig")
    s.add("context", "--context")
    s.add("namespace", "-n", "--namespace")
    s.add("token", "--token")
    s.add("server", "-s", "--server")
    s.add("request_timeout", "--request-timeout")
    s.add("insecure", "--insecure-skip-tls-verify", kind="bool")
    s.add("user", "--user")
    s.add("cluster", "--cluster")
    s.add("v", "-v", "--v")
    s.add("output", "-o", "--output")
    s.add("all_namespaces", "-A", "--all-namespaces", kind="bool")
    s.add("selector", "-l", "--selector")
    s.add("no_headers", "--no-headers", kind="bool")
    s.add("show_labels", "--show-labels", kind="bool")
    s.add("watch", "-w", "--watch", kind="bool")
    s.add("field_selector", "--field-selector")
    s.add("filename", "-f", "--filename", kind="list")
    s.add("dry_run", "--dry-run")
    s.add("for", "--for")
    s.add("timeout", "--timeout")
    s.add("all", "--all", kind="bool")
    s.add("duration", "--duration")
    s.add("clusterrole", "--clusterrole")
    s.add("serviceaccount", "--serviceaccount", kind="list")
    s.add("group", "--group", kind="list")
    s.add("overwrite", "--overwrite", kind="bool")
    s.add("all_containers", "--all-containers", kind="bool")
    s.add("container", "-c", "--container")
    s.add("follow", "--follow", kind="bool")
    s.add("tail", "--tail")
    s.add("since", "--since")
    s.add("timestamps", "--timestamps", kind="bool")
    s.add("prefix", "--prefix", kind="bool")
    s.add("ignore_not_found", "--ignore-not-found", kind="bool")
    s.add("wait_flag", "--wait", kind="bool")
    s.add("grace", "--grace-period")
    s.add("force", "--force", kind="bool")
    s.add("raw", "--raw", kind="bool")  # `config view --raw`; `get --raw PATH`: PATH is pos
    s.add("previous", "-p", "--previous", kind="bool")
    s.add("minify", "--minify", kind="bool")
    s.add("flatten", "--flatten", kind="bool")
    s.add("client", "--client", kind="bool")
    s.add("image", "--image")
    s.add("restart", "--restart")
    s.add("validate", "--validate")
    s.add("server_side", "--server-side", kind="bool")
    s.add("field_manager", "--field-manager")
    s.add("bound_object_kind", "--bound-object-kind")
    s.add("bound_object_name", "--bound-object-name")
    s.add("audience", "--audience", kind="list")
    s.add("recursive", "-R", "--recursive", kind="bool")
    s.add("cascade", "--cascade")
    s.add("quiet", "-q", "--quiet", kind="bool")
    s.add("max_log_requests", "--max-log-requests")
    return s


# --------------------------------------------------------------------- commands


def cmd_version(g: Dict[str, Any], pos: List[str]) -> None:
    client = {
        "major": "1",
        "minor": "34",
        "gitVersion": "v" + faults.version("kubectl", CLIENT_VERSION),
        "gitCommit": "93248f9ae092f571eb870b7664c534bfc7d00f03",
        "gitTreeState": "clean",
        "buildDate": "2025-09-09T19:44:50Z",
        "goVersion": "go1.24.6",
        "compiler": "gc",
        "platform": "linux/amd64",
    }
    data: Dict[str, Any] = {"clientVersion": client, "kustomizeVersion": "v5.7.1"}
    err: Optional[KErr] = None
    if not g["client"]:
        try:
            connect(g)
            data["serverVersion"] = dict(
                client, gitVersion="v" + SERVER_VERSION, goVersion="go1.24.6"
            )
        except KErr as e:
            err = e
    out = cli.get_str(g, "output")
    if out == "json":
        state.out(json.dumps(data, indent=2))
    elif out == "yaml":
        sys.stdout.write(yaml_dump(data))
    else:
        state.out("Client Version: {}\nKustomize Version: v5.7.1".format(client["gitVersion"]))
        if "serverVersion" in data:
            state.out("Server Version: v" + SERVER_VERSION)
    if err:
        raise err


def cmd_config(g: Dict[str, Any], pos: List[str]) -> None:
    if not pos:
        raise KErr('error: unknown command "" for "kubectl config"')
    sub = pos[0]
    explicit = cli.get_str(g, "kubeconfig")
    if sub in ("view",):
        cfg, ctx_name = load_cfg(g)
        cfg = json.loads(json.dumps(cfg))
        if g["minify"]:
            if not ctx_name:
                raise KErr("error: current-context must exist in order to minify")
            ctx = kubeconfig.named(cfg.get("contexts"), ctx_name)
            if ctx is None:
                raise KErr(f"error: cannot locate context {ctx_name}")
            cl = kubeconfig.named(
                cfg.get("clusters"), (ctx.get("context") or {}).get("cluster", "")
            )
            us = kubeconfig.named(cfg.get("users"), (ctx.get("context") or {}).get("user", ""))
            cfg = {
                "apiVersion": "v1",
                "kind": "Config",
                "preferences": {},
                "current-context": ctx_name,
                "contexts": [ctx],
                "clusters": [cl] if cl else [],
                "users": [us] if us else [],
            }
        cfg.setdefault("apiVersion", "v1")
        cfg.setdefault("kind", "Config")
        cfg.setdefault("preferences", {})
        if not g["raw"]:
            for c in cfg.get("clusters") or []:
                if "certificate-authority-data" in (c.get("cluster") or {}):
                    c["cluster"]["certificate-authority-data"] = "DATA+OMITTED"
            for u in cfg.get("users") or []:
                for k in ("client-certificate-data", "client-key-data"):
                    if k in (u.get("user") or {}):
                        u["user"][k] = (
                            "DATA+OMITTED" if k == "client-certificate-data" else "DATA+OMITTED"
                        )
                if "token" in (u.get("user") or {}):
                    u["user"]["token"] = "REDACTED"
        out = cli.get_str(g, "output") or "yaml"
        if out == "json":
            state.out(json.dumps(cfg, indent=4))
        elif out.startswith("jsonpath="):
            try:
                sys.stdout.write(jsonpath.render(out.split("=", 1)[1], cfg))
            except jsonpath.JSONPathError as e:
                raise KErr(
                    "error: error executing jsonpath {}: Error executing template: {}".format(
                        json.dumps(out.split("=", 1)[1]), e
                    )
                ) from e
        else:
            sys.stdout.write(yaml_dump(cfg))
        return
    if sub == "current-context":
        cfg, ctx_name = load_cfg(g)
        if not cfg.get("current-context"):
            raise KErr("error: current-context is not set")
        state.out(cfg["current-context"])
        return
    if sub == "get-contexts":
        cfg, ctx_name = load_cfg(g)
        rows = [["CURRENT", "NAME", "CLUSTER", "AUTHINFO", "NAMESPACE"]]
        for c in cfg.get("contexts") or []:
            cc = c.get("context") or {}
            rows.append(
                [
                    "*" if c["name"] == cfg.get("current-context") else "",
                    c["name"],
                    cc.get("cluster", ""),
                    cc.get("user", ""),
                    cc.get("namespace", ""),
                ]
            )
        if g["output"] == "name":
            for r in rows[1:]:
                state.out(r[1])
            return
        table(rows)
        return
    if sub == "use-context":
        if len(pos) < 2:
            raise KErr("error: empty context names are not allowed")
        target = kubeconfig.path_for_merge(explicit)
        cfg = kubeconfig.read(target)
        merged, _ = (
            kubeconfig.load_for_kubectl(explicit)
            if (not explicit or os.path.exists(explicit))
            else ({}, [])
        )
        if kubeconfig.named(merged.get("contexts"), pos[1]) is None:
            raise KErr(f'error: no context exists with the name: "{pos[1]}"')
        cfg["current-context"] = pos[1]
        kubeconfig.write(cfg, target)
        state.out(f'Switched to context "{pos[1]}".')
        return
    raise KErr(f'error: unknown command "{sub}" for "kubectl config"')


def split_targets(pos: List[str]) -> Tuple[str, List[str]]:
    if not pos:
        raise KErr(
            'error: you must specify the type of resource to get. Use "kubectl api-resources" for '
            "a "
            "complete list of supported resources."
        )
    first = pos[0]
    if "/" in first:
        kinds = {p.split("/", 1)[0] for p in pos}
        if len(kinds) != 1:
            raise KErr("error: mixed resource types are not supported by the emulator")
        return first.split("/", 1)[0], [p.split("/", 1)[1] for p in pos]
    return first, pos[1:]


def cmd_get(g: Dict[str, Any], pos: List[str]) -> None:
    conn = connect(g)
    faults.delay("kubectl", "get")
    if g["raw"]:
        return raw_discovery(conn, pos[0] if pos else "")
    rtypes, names = split_targets(pos)
    out = cli.get_str(g, "output")
    # kubectl prints ONE document for structured output, whatever the number of resource types
    # (a List, or the object itself for one named object): k8s.io/kubectl pkg/cmd/get/get.go,
    # printGeneric ("allItems", "isList := len(infos) != 1 || ... !singleItemImplied")
    structured = out in ("json", "yaml") or out.startswith(("jsonpath=", "jsonpath-as-json="))
    every: List[Dict[str, Any]] = []
    types = rtypes.split(",")
    for rtype in types:
        kind, plural, group, nsd = resource(rtype)
        all_ns = bool(g["all_namespaces"]) and nsd
        ns = None if (all_ns or not nsd) else conn.namespace
        authorize(conn, "list" if not names else "get", plural, group, ns)
        objs = [
            o
            for o in list_all(conn, kind)
            if not nsd or all_ns or o["metadata"].get("namespace") == ns
        ]
        if g["selector"]:
            objs = [o for o in objs if match_selector(o, cli.get_str(g, "selector"))]
        if names:
            found = []
            for n in names:
                m = [o for o in objs if o["metadata"]["name"] == n]
                if not m:
                    if g["ignore_not_found"]:
                        continue
                    raise KErr(
                        f'Error from server (NotFound): {qual(plural, group)} "{n}" not found'
                    )
                found += m
            objs = found
        objs.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        if structured and len(types) > 1:
            every += objs
            continue
        if not objs and not names and out in ("", "wide"):
            if nsd and not all_ns:
                state.err(f"No resources found in {ns} namespace.")
            else:
                state.err("No resources found")
            continue
        print_objects(
            objs, out, kind, bool(names) and len(names) == 1, bool(g["no_headers"]), all_ns
        )
    if structured and len(types) > 1:
        print_objects(every, out, "", False, bool(g["no_headers"]), False)


VERSIONS = {"": "v1", "apps": "v1", "batch": "v1", "rbac.authorization.k8s.io": "v1",
            "storage.k8s.io": "v1", "node.k8s.io": "v1", "authentication.liqo.io": "v1beta1",
            "core.liqo.io": "v1beta1", "offloading.liqo.io": "v1beta1"}


def served(conn: Conn) -> Dict[str, List[Dict[str, Any]]]:
    """groupVersion -> discovery resources: the built-in table plus the stored CRDs
    (apiextensions-apiserver serves each CRD's versions at /apis/GROUP/VERSION)."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for _names, kind, plural, group, nsd in RESOURCES:
        gv = f"{group}/{VERSIONS.get(group, 'v1')}" if group else "v1"
        out.setdefault(gv, []).append({"name": plural, "singularName": kind.lower(),
                                       "namespaced": nsd, "kind": kind})
        out[gv].append({"name": plural + "/status", "singularName": "", "namespaced": nsd,
                        "kind": kind})
    for k, o in read_objects(conn.rec).items():
        if not k.startswith("CustomResourceDefinition/"):
            continue
        spec = o.get("spec") or {}
        names = spec.get("names") or {}
        for v in spec.get("versions") or []:
            if v.get("served", True):
                out.setdefault(f"{spec.get('group')}/{v.get('name')}", []).append(
                    {"name": names.get("plural", ""), "singularName": names.get("singular", ""),
                     "namespaced": spec.get("scope") != "Cluster", "kind": names.get("kind")})
    return out


def raw_discovery(conn: Conn, path: str) -> None:
    """`kubectl get --raw /api/v1` / `/apis/G/V`: the APIResourceList (JSON, one line)."""
    parts = [p for p in path.split("/") if p]
    gv = parts[1] if parts[:1] == ["api"] and len(parts) == 2 else (
        "/".join(parts[1:3]) if parts[:1] == ["apis"] and len(parts) == 3 else None)
    res = served(conn).get(gv or "")
    if res is None:
        raise KErr("Error from server (NotFound): the server could not find the requested "
                   "resource")
    sys.stdout.write(json.dumps({"kind": "APIResourceList", "apiVersion": "v1",
                                 "groupVersion": gv, "resources": res}) + "\n")


def parse_docs(paths: List[str]) -> List[Tuple[str, Dict[str, Any]]]:
    import yaml

    res = []
    for p in paths:
        try:
            if p == "-":
                text = sys.stdin.read()
            else:
                with open(p, encoding="utf-8") as f:
                    text = f.read()
        except OSError:
            raise KErr(f'error: the path "{p}" does not exist') from None
        try:
            docs = list(yaml.safe_load_all(text))
        except yaml.YAMLError as e:
            raise KErr(
                f"error: error parsing {p}: error converting YAML to JSON: {str(e).splitlines()[0]}"
            ) from e
        for d in docs:
            if not d:
                continue
            if d.get("kind") == "List":
                res += [(p, x) for x in d.get("items") or []]
            else:
                res.append((p, d))
    return res


def create_obj(conn: Conn, o: Dict[str, Any], source: str, mode: str, g: Dict[str, Any]) -> str:
    """mode: create | apply.  Returns the kubectl output line."""
    kind = o.get("kind", "")
    name = (o.get("metadata") or {}).get("name", "")
    if not kind or not name:
        raise KErr(
            f'error: error validating "{source}": error validating data: [apiVersion not set, '
            f"kind not set]"
            if not kind
            else "error: resource name may not be empty"
        )
    api = o.get("apiVersion", "")
    if not any(any(r["kind"] == kind for r in rs) and gv == api
               for gv, rs in served(conn).items()):
        # k8s.io/cli-runtime resource builder (mappingFor) + kubectl's CRD hint
        where = (o.get("metadata") or {}).get("namespace", "")
        raise KErr(f'error: resource mapping not found for name: "{name}" namespace: '
                   f'"{where}" from "{source or "STDIN"}": no matches for kind "{kind}" in '
                   f'version "{api}"\nensure CRDs are installed first')
    k, plural, group, nsd = by_kind(kind)
    for gv, rs in served(conn).items():
        for r in rs:
            if gv == api and r["kind"] == kind and "/" not in r["name"]:
                plural, nsd = r["name"], r["namespaced"]
                group = api.rsplit("/", 1)[0] if "/" in api else ""
    ns = ((o.get("metadata") or {}).get("namespace") or conn.namespace) if nsd else None
    authorize(conn, "create", plural, group, ns)
    # the same injected server-side failures as `kubectl create serviceaccount|clusterrolebinding`
    point = {"ServiceAccount": "serviceaccount", "ClusterRoleBinding": "clusterrolebinding"}
    if kind in point and faults.should_fail("kubectl", point[kind]):
        raise KErr(
            "Error from server (InternalError): error when creating "
            f'"{source or "STDIN"}": Internal error occurred: emulated failure '
            f"(KSI_EMU_FAIL=kubectl:{point[kind]})"
        )
    shown = "{}{}/{}".format(singular(kind), "." + group if group else "", name)
    now = time.time()
    o = json.loads(json.dumps(o))
    o["metadata"]["creationTimestamp"] = state.rfc3339(now)
    o["metadata"]["uid"] = hashlib.md5((f"{kind}/{name}/{now:f}").encode()).hexdigest()
    if ns:
        o["metadata"]["namespace"] = ns
    o["_emu"] = {"created": now, "job_seconds": state.env_float("KSI_EMU_JOB_SECONDS", 0.2)}

    def fn(objs: Dict[str, Any]) -> str:
        if ns and key_of("Namespace", None, ns) not in objs:
            raise KErr(
                f'Error from server (NotFound): error when creating "{source}": namespaces "{ns}" '
                f"not found"
            )
        key = key_of(kind, ns, name)
        if key in objs:
            if mode == "create":
                raise KErr(
                    f'Error from server (AlreadyExists): error when creating "{source}": '
                    f'{qual(plural, group)} "{name}" already exists'
                    if source
                    else f'Error from server (AlreadyExists): {qual(plural, group)} "{name}" '
                    f"already exists"
                )
            old = objs[key]
            keep = {
                "creationTimestamp": old["metadata"].get("creationTimestamp"),
                "uid": old["metadata"].get("uid"),
            }
            same = {k2: v for k2, v in old.items() if k2 not in ("metadata", "_emu")} == {
                k2: v for k2, v in o.items() if k2 not in ("metadata", "_emu")
            } and old["metadata"].get("labels") == o["metadata"].get("labels")
            o["metadata"].update(keep)
            o["_emu"] = old.get("_emu", o["_emu"])
            objs[key] = o
            return "{} {}".format(shown, "unchanged" if same else "configured")
        objs[key] = o
        if kind == "Job" and not (o.get("spec") or {}).get("suspend"):
            tmpl = (o.get("spec") or {}).get("template") or {}
            suffix = "".join(
                random.choice(string.ascii_lowercase + string.digits) for _ in range(5)
            )
            pod = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{name}-{suffix}",
                    "namespace": ns,
                    "labels": dict(
                        (tmpl.get("metadata") or {}).get("labels") or {},
                        **{
                            "job-name": name,
                            "batch.kubernetes.io/job-name": name,
                            "controller-uid": o["metadata"]["uid"],
                        },
                    ),
                    "annotations": dict((tmpl.get("metadata") or {}).get("annotations") or {}),
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": name,
                            "uid": o["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                    "creationTimestamp": state.rfc3339(now),
                },
                "spec": dict(tmpl.get("spec") or {}),
                "_emu": dict(o["_emu"]),
            }
            pod["spec"].setdefault("restartPolicy", "Never")
            objs[key_of("Pod", ns, pod["metadata"]["name"])] = pod
        if kind == "Namespace":
            objs[key_of("ServiceAccount", name, "default")] = mk(
                "v1", "ServiceAccount", "default", name, now
            )
            o["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        return f"{shown} created"

    return update_objects(conn.rec, fn)


def dry_run_print(o: Dict[str, Any], g: Dict[str, Any]) -> None:
    out = cli.get_str(g, "output")
    o = {k: v for k, v in o.items() if k != "_emu"}
    if out == "json":
        state.out(json.dumps(o, indent=4))
    elif out == "yaml":
        sys.stdout.write(yaml_dump(o))
    else:
        k, _, group, _ = by_kind(o["kind"])
        state.out(
            "{}{}/{} created (dry run)".format(
                singular(k), "." + group if group else "", o["metadata"]["name"]
            )
        )


def cmd_create(g: Dict[str, Any], pos: List[str], mode: str = "create") -> None:
    dry = cli.get_str(g, "dry_run") in ("client", "true")
    faults.delay("kubectl", mode)
    if g["filename"]:
        docs = parse_docs(list(g["filename"]))
        if dry:
            for _, d in docs:
                dry_run_print(d, g)
            return
        conn = connect(g)
        # like kubectl's builder (ContinueOnError): the objects it can map are created,
        # the others' errors come at the end
        errors = []
        for src, d in docs:
            bad = unmapped(d, "STDIN" if src == "-" else src, read_objects(conn.rec))
            if bad:
                errors.append(bad)
                continue
            state.out(
                create_obj(conn, d, "" if src == "-" else src if mode == "create" else src, mode, g)
            )
        if errors:
            raise KErr("\n".join(errors))
        return
    if mode == "apply":
        raise KErr("error: must specify one of -f and -k")
    if not pos:
        raise KErr("error: must specify one of -f and -k")
    what = pos[0]
    time.time()
    if what in ("serviceaccount", "sa"):
        if len(pos) < 2:
            raise KErr("error: exactly one NAME is required, got 0")
        obj = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": pos[1]}}
        if not dry:
            conn = connect(g)
            if faults.should_fail("kubectl", "serviceaccount"):
                raise KErr(
                    "Error from server (InternalError): Internal error occurred: emulated failure "
                    "(KSI_EMU_FAIL=kubectl:serviceaccount)"
                )
            state.out(create_obj(conn, obj, "", "create", g))
        else:
            obj["metadata"]["namespace"] = cli.get_str(g, "namespace") or "default"
            obj["metadata"]["creationTimestamp"] = None
            dry_run_print(obj, g)
        return
    if what in {"namespace", "ns"}:
        obj = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": pos[1]},
            "spec": {},
            "status": {},
        }
        if dry:
            dry_run_print(obj, g)
            return
        state.out(create_obj(connect(g), obj, "", "create", g))
        return
    if what == "clusterrolebinding":
        if len(pos) < 2:
            raise KErr("error: exactly one NAME is required, got 0")
        subjects = []
        for sa in g["serviceaccount"]:
            ns, _, n = sa.partition(":")
            subjects.append({"kind": "ServiceAccount", "name": n, "namespace": ns})
        for grp in g["group"]:
            subjects.append({"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": grp})
        obj = {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": pos[1]},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": cli.get_str(g, "clusterrole"),
            },
            "subjects": subjects,
        }
        if dry:
            obj["metadata"]["creationTimestamp"] = None
            dry_run_print(obj, g)
            return
        conn = connect(g)
        if faults.should_fail("kubectl", "clusterrolebinding"):
            raise KErr(
                "Error from server (InternalError): Internal error occurred: emulated failure "
                "(KSI_EMU_FAIL=kubectl:clusterrolebinding)"
            )
        state.out(create_obj(conn, obj, "", "create", g))
        return
    if what == "token":
        if len(pos) < 2:
            raise KErr("error: exactly one NAME is required, got 0")
        dur_s = cli.get_str(g, "duration", "0")
        try:
            dur = cli.parse_duration(dur_s)
        except ValueError as e:
            raise KErr(f'error: invalid argument "{dur_s}" for "--duration" flag: {e}') from e
        # TokenOptions.Validate runs before any request (kubectl v0.34.4
        # pkg/cmd/create/create_token.go)
        if dur < 0:
            raise KErr("error: --duration must be greater than or equal to 0")
        if dur and int(dur) != dur:
            raise KErr("error: --duration cannot be expressed in units less than seconds")
        conn = connect(g)
        authorize(conn, "create", "serviceaccounts/token", "", conn.namespace)
        sa, ns = pos[1], conn.namespace
        if faults.should_fail("kubectl", "token"):
            raise KErr(
                "error: failed to create token: Internal error occurred: emulated failure "
                "(KSI_EMU_FAIL=kubectl:token)"
            )
        if dur == 0:
            dur = 3600.0
        if dur < 600:
            # kube-apiserver pkg/apis/authentication/validation: TokenRequest
            # expirationSeconds >= 600, reported on the unnamed TokenRequest (recorded:
            # kubectl-create-token-short, made once the service account exists)
            raise KErr(
                'error: failed to create token: TokenRequest.authentication.k8s.io "" is '
                "invalid: "
                f"spec.expirationSeconds: Invalid value: {int(dur)}: may not specify a duration "
                f"less than "
                "10 minutes"
            )
        if key_of("ServiceAccount", ns, sa) not in read_objects(conn.rec):
            raise KErr(f'error: failed to create token: serviceaccounts "{sa}" not found')
        iat = int(time.time())
        payload = {
            "aud": ["https://kubernetes.default.svc.cluster.local"],
            "exp": iat + int(dur),
            "iat": iat,
            "iss": "https://kubernetes.default.svc.cluster.local",
            "jti": os.urandom(8).hex(),
            "kubernetes.io": {
                "namespace": ns,
                "serviceaccount": {"name": sa, "uid": os.urandom(8).hex()},
            },
            "nbf": iat,
            "sub": f"system:serviceaccount:{ns}:{sa}",
        }
        header = {"alg": "RS256", "kid": hashlib.sha1(conn.rec["id"].encode()).hexdigest()[:20]}
        tok = ".".join(
            _b64url(json.dumps(x, separators=(",", ":")).encode()) for x in (header, payload)
        )
        tok += "." + _b64url(hashlib.sha256((tok + conn.rec["ca_serial"]).encode()).digest() * 8)

        def upd(cur: Optional[Dict[str, Any]]) -> Dict[str, Any]:
            cur = cur or {}
            cur[hashlib.sha256(tok.encode()).hexdigest()] = {
                "sa": sa,
                "ns": ns,
                "exp": iat + int(dur),
            }
            return cur

        state.update_json(tokens_path(conn.rec), upd, {})
        state.out(tok)
        return
    if what in ("job", "deployment", "configmap", "secret"):
        raise KErr(f"error: the emulator supports create {what} only through -f")
    raise KErr(f'error: unknown command "{what}" for "kubectl create"')


def _b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def cmd_delete(g: Dict[str, Any], pos: List[str]) -> None:
    conn = connect(g)
    targets: List[Tuple[str, Optional[str], str]] = []
    if g["filename"]:
        for _, d in parse_docs(list(g["filename"])):
            k, _, _, nsd = by_kind(d.get("kind", ""))
            targets.append(
                (
                    k,
                    ((d.get("metadata") or {}).get("namespace") or conn.namespace) if nsd else None,
                    d["metadata"]["name"],
                )
            )
    else:
        rtype, names = split_targets(pos)
        kind, plural, group, nsd = resource(rtype)
        ns = conn.namespace if nsd else None
        if g["all"] or g["selector"]:
            for o in list_all(conn, kind):
                if nsd and o["metadata"].get("namespace") != ns:
                    continue
                if g["selector"] and not match_selector(o, cli.get_str(g, "selector")):
                    continue
                names.append(o["metadata"]["name"])
            if not names:
                state.err("No resources found")
                return
        for n in names:
            targets.append((kind, ns, n))
    for kind, ns, name in targets:
        k, plural, group, _ = by_kind(kind)
        authorize(conn, "delete", plural, group, ns)

        def fn(
            objs: Dict[str, Any], kind: str = kind, ns: Optional[str] = ns, name: str = name
        ) -> Optional[str]:
            key = key_of(kind, ns, name)
            if key not in objs:
                return None
            uid = objs[key]["metadata"].get("uid")
            del objs[key]
            for k2 in list(objs):
                o = objs[k2]
                owners = (o.get("metadata") or {}).get("ownerReferences") or []
                if any(r.get("uid") == uid for r in owners):
                    del objs[k2]
                if kind == "Namespace" and (o.get("metadata") or {}).get("namespace") == name:
                    objs.pop(k2, None)
            return "deleted"

        res = update_objects(conn.rec, fn)
        if res is None:
            if g["ignore_not_found"]:
                continue
            raise KErr(f'Error from server (NotFound): {qual(plural, group)} "{name}" not found')
        state.out(
            '{}{} "{}" deleted'.format(singular(k), "." + group if group else "", name)
            + (f" from {ns} namespace" if ns else "")
        )


def cmd_label(g: Dict[str, Any], pos: List[str]) -> None:
    conn = connect(g)
    rtype, rest = split_targets(pos)
    kind, plural, group, nsd = resource(rtype)
    names = [r for r in rest if "=" not in r and not r.endswith("-")]
    changes = [r for r in rest if "=" in r or r.endswith("-")]
    ns = conn.namespace if nsd else None
    for n in names:

        def fn(objs: Dict[str, Any], n: str = n) -> bool:
            o = objs.get(key_of(kind, ns, n))
            if o is None:
                return False
            labels = o["metadata"].setdefault("labels", {})
            for c in changes:
                if c.endswith("-"):
                    labels.pop(c[:-1], None)
                else:
                    k, v = c.split("=", 1)
                    if k in labels and labels[k] != v and not g["overwrite"]:
                        raise KErr(
                            f"error: '{k}' already has a value ({labels[k]}), and --overwrite is "
                            f"false"
                        )
                    labels[k] = v
            return True

        if not update_objects(conn.rec, fn):
            raise KErr(f'Error from server (NotFound): {qual(plural, group)} "{n}" not found')
        state.out("{}{}/{} labeled".format(singular(kind), "." + group if group else "", n))


def find_pod(conn: Conn, target: str) -> Dict[str, Any]:
    ns = conn.namespace
    if target.startswith("job/") or target.startswith("jobs/"):
        job = target.split("/", 1)[1]
        for o in list_all(conn, "Pod"):
            if (
                o["metadata"].get("namespace") == ns
                and (o["metadata"].get("labels") or {}).get("job-name") == job
            ):
                return o
        if not any(
            o["metadata"]["name"] == job
            for o in list_all(conn, "Job")
            if o["metadata"].get("namespace") == ns
        ):
            raise KErr(f'Error from server (NotFound): jobs.batch "{job}" not found')
        raise KErr("error: timed out waiting for the condition")
    name = target.split("/", 1)[1] if "/" in target else target
    for o in list_all(conn, "Pod"):
        if o["metadata"].get("namespace") == ns and o["metadata"]["name"] == name:
            return o
    raise KErr(f'Error from server (NotFound): pods "{name}" not found')


def cmd_logs(g: Dict[str, Any], pos: List[str]) -> None:
    conn = connect(g)
    if not pos:
        raise KErr("error: expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'.")
    pod = find_pod(conn, pos[0])
    authorize(conn, "get", "pods/log", "", conn.namespace)
    containers = pod.get("spec", {}).get("containers") or [{"name": "main"}]
    cname = cli.get_str(g, "container")
    if cname:
        containers = [
            c
            for c in (pod.get("spec", {}).get("initContainers") or []) + containers
            if c.get("name") == cname
        ]
        if not containers:
            raise KErr(
                "error: container {} is not valid for pod {}".format(cname, pod["metadata"]["name"])
            )
    elif not g["all_containers"]:
        containers = containers[:1]
    if workloads.modelled(pod) or cname in [
        c.get("name") for c in pod.get("spec", {}).get("initContainers") or []
    ]:
        raw = next(
            (
                o
                for o in workloads.expand_pods(
                    read_objects(conn.rec),
                    [o for k, o in read_objects(conn.rec).items() if k.startswith("Pod/")],
                    time.time(),
                )
                if o["metadata"]["name"] == pod["metadata"]["name"]
                and o["metadata"].get("namespace") == pod["metadata"].get("namespace")
            ),
            None,
        )
        if raw is None:
            raise KErr(f'Error from server (NotFound): pods "{pod["metadata"]["name"]}" not found')
        try:
            workloads.logs(raw, containers[0].get("name", "") if cname else (
                (raw.get("spec") or {}).get("containers") or [{}])[0].get("name", ""),
                bool(g["previous"]), bool(g["follow"]))
        except ValueError as e:
            raise KErr(f"Error from server (BadRequest): {e}") from None
        return
    cs = (pod.get("status", {}).get("containerStatuses") or [{}])[0].get("state", {})
    if "waiting" in cs:
        raise KErr(
            'Error from server (BadRequest): container "{}" in pod "{}" is waiting to start: '
            "{}".format(
                containers[0].get("name"),
                pod["metadata"]["name"],
                "trying and failing to pull image"
                if "Pull" in cs["waiting"]["reason"]
                else "ContainerCreating",
            )
        )
    for c in containers:
        cmd = list(c.get("command") or []) + list(c.get("args") or [])
        text = None
        if cmd and os.path.basename(str(cmd[0])) == "echo":
            text = " ".join(str(x) for x in cmd[1:])
        elif len(cmd) >= 3 and cmd[1] == "-c" and str(cmd[2]).strip().startswith("echo "):
            text = str(cmd[2]).strip()[5:].strip().strip("'\"")
        if text is None:
            text = "emulated log of pod {} container {}".format(
                pod["metadata"]["name"], c.get("name")
            )
        if g["prefix"]:
            text = "[pod/{}/{}] {}".format(pod["metadata"]["name"], c.get("name"), text)
        state.out(text)
    if "terminated" in cs and cs["terminated"].get("exitCode"):
        state.out("emulated failure (ksi-emu/outcome: fail)")


def cond_met(o: Dict[str, Any], cond: str) -> bool:
    if cond.startswith("condition="):
        want = cond.split("=", 1)[1]
        val = "true"
        if "=" in want:
            want, val = want.split("=", 1)
        for c in (o.get("status") or {}).get("conditions") or []:
            if (
                c.get("type", "").lower() == want.lower()
                and c.get("status", "").lower() == val.lower()
            ):
                return True
        return False
    if cond.startswith("jsonpath="):
        expr = cond.split("=", 1)[1]
        want = None
        if "}=" in expr:
            expr, want = expr.rsplit("=", 1)
        expr = expr.strip("'\"")
        vals = jsonpath.evaluate(expr.strip("{}"), o)
        if want is None:
            return bool(vals)
        return any(jsonpath._fmt(v) == want.strip("'\"") for v in vals)
    raise KErr(f"error: unrecognized condition: {json.dumps(cond)}")


def cmd_wait(g: Dict[str, Any], pos: List[str]) -> None:
    conn = connect(g)
    cond = cli.get_str(g, "for")
    if not cond:
        raise KErr("error: --for must be specified")
    timeout = cli.parse_duration(cli.get_str(g, "timeout", "30s"))
    faults.delay("kubectl", "wait")
    rtype, names = split_targets(pos)
    kind, plural, group, nsd = resource(rtype)
    ns = conn.namespace if nsd else None
    deadline = time.time() + timeout

    def current() -> List[Dict[str, Any]]:
        objs = [o for o in list_all(conn, kind) if not nsd or o["metadata"].get("namespace") == ns]
        if g["selector"]:
            objs = [o for o in objs if match_selector(o, cli.get_str(g, "selector"))]
        if names:
            sel = []
            for n in names:
                m = [o for o in objs if o["metadata"]["name"] == n]
                if not m and cond != "delete":
                    raise KErr(
                        f'Error from server (NotFound): {qual(plural, group)} "{n}" not found'
                    )
                sel += m
            objs = sel
        return sorted(objs, key=lambda o: o["metadata"]["name"])

    objs = current()
    if not objs and cond != "delete":
        raise KErr("error: no matching resources found")
    pending = [o["metadata"]["name"] for o in objs]
    shown = "{}{}".format(singular(kind), "." + group if group else "")
    while True:
        objs = {o["metadata"]["name"]: o for o in current()}
        still = []
        for n in pending:
            o = objs.get(n)
            if cond == "delete":
                if o is None:
                    state.out(f"{shown}/{n} condition met")
                else:
                    still.append(n)
            elif o is not None and cond_met(o, cond):
                state.out(f"{shown}/{n} condition met")
            else:
                still.append(n)
        pending = still
        if not pending:
            return
        if time.time() >= deadline:
            # "%s on %s/%s" with Mapping.Resource.Resource: the plural, no group (kubectl
            # v0.34.4 pkg/cmd/wait/condition.go extendErrWaitTimeout)
            raise KErr(f"error: timed out waiting for the condition on {plural}/{pending[0]}")
        time.sleep(min(0.05, max(0.0, deadline - time.time())))


def cmd_auth(g: Dict[str, Any], pos: List[str]) -> None:
    if not pos or pos[0] != "can-i":
        raise KErr('error: unknown command "{}" for "kubectl auth"'.format(pos[0] if pos else ""))
    conn = connect(g)
    if is_admin(conn):
        state.out("yes")
        return
    state.out("no")
    raise KErr("", 1)


def cmd_describe(g: Dict[str, Any], pos: List[str]) -> None:
    conn = connect(g)
    rtype, names = split_targets(pos)
    kind, plural, group, nsd = resource(rtype)
    objs = [
        o
        for o in list_all(conn, kind)
        if not nsd or o["metadata"].get("namespace") == conn.namespace
    ]
    if names:
        objs = [o for o in objs if o["metadata"]["name"] in names]
        if not objs:
            raise KErr(
                f'Error from server (NotFound): {qual(plural, group)} "{names[0]}" not found'
            )
    for o in objs:
        md = o["metadata"]
        state.out("Name:         {}".format(md["name"]))
        if md.get("namespace"):
            state.out("Namespace:    {}".format(md["namespace"]))
        state.out(
            "Labels:       {}".format(
                ",".join("{}={}".format(*kv) for kv in sorted((md.get("labels") or {}).items()))
                or "<none>",
            )
        )
        st = o.get("status") or {}
        if "phase" in st:
            state.out("Status:       {}".format(st["phase"]))
        for c in st.get("conditions") or []:
            state.out("  {}\t{}".format(c.get("type"), c.get("status")))
        state.out("Events:       <none>\n")


def run(argv: List[str]) -> int:
    try:
        g, pos = cli.parse(argv, spec())
    except cli.FlagError as e:
        state.err(f"error: {e}\nSee 'kubectl --help' for usage.")
        return 1
    if not pos:
        state.out("kubectl controls the Kubernetes cluster manager.")
        return 0
    sub, rest = pos[0], pos[1:]
    if sub == "logs" and "-f" in argv:
        g["follow"] = True
    handlers = {
        "version": cmd_version,
        "config": cmd_config,
        "get": cmd_get,
        "create": cmd_create,
        "apply": lambda gg, pp: cmd_create(gg, pp, "apply"),
        "delete": cmd_delete,
        "label": cmd_label,
        "logs": cmd_logs,
        "wait": cmd_wait,
        "auth": cmd_auth,
        "describe": cmd_describe,
    }
    h = handlers.get(sub)
    if h is None:
        state.err(f'error: unknown command "{sub}" for "kubectl"')
        return 1
    faults.delay("kubectl", sub)
    try:
        h(g, rest)
    except KErr as e:
        if e.msg:
            state.err(e.msg)
        return e.code
    except BrokenPipeError:
        return 0
    return 0


def main(argv: List[str]) -> None:
    # `logs -f` means --follow; `-f` elsewhere means --filename
    if argv and "logs" in argv:
        argv = ["--follow" if a == "-f" else a for a in argv]
    state.run_tool("kubectl", argv, run)
