"""Emulated ``liqoctl`` (Liqo v1.0.x behaviour; see /work/shared/notes/liqo-peering.md).

Liqo state of a cluster lives in ``$KSI_EMU_STATE/clusters/<id>/liqo.json``:
installation (cluster id, labels, advertised ``apiServer.address``, networking module),
peers (role, virtual node, times) and offloaded namespaces.

Checked against a real liqoctl v1.0.1 (built from its Go module, run on real kind here;
tests/e2e/README-realkind.md): progress and ``INFO: ``/``ERRO: `` lines go to stderr, each
after a pterm spinner clear (``\r`` + spaces + ``\r``); exit 1 on error; a flag error is
cobra's ``Error: unknown flag: --x``; an unknown command prints the help and exits 0. With
the networking module off, peer needs ``--networking-disabled`` and ``info`` says
``Disabled``; the virtual node appears a moment after ``peer`` returns; ``info``'s
offloading status may lag behind a Ready virtual node.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time

from . import cli, clusters, faults, kubectl, state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict, List

LIQO_DEFAULT = "1.0.1"
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class LErr(Exception):
    pass


SPINNER_CLEAR = "\r" + " " * 80 + "\r"   # pterm, when stderr is not a terminal


def info(msg: str) -> None:
    state.err(SPINNER_CLEAR + "INFO: " + msg)


def warn(msg: str) -> None:
    state.err(SPINNER_CLEAR + "WARN: " + msg)


def progress(msg: str) -> None:
    state.err(SPINNER_CLEAR + msg)


def liqo_path(rec: Dict[str, Any]) -> str:
    return os.path.join(clusters.cdir(rec["id"]), "liqo.json")


def load(rec: Dict[str, Any]) -> Dict[str, Any]:
    return state.read_json(liqo_path(rec), {}) or {}


def update(rec: Dict[str, Any], fn) -> Dict[str, Any]:
    return state.update_json(liqo_path(rec), lambda cur: fn(cur or {}), {})


def connect(kcfg: str, ctx: str) -> kubectl.Conn:
    g = {
        "kubeconfig": kcfg,
        "context": ctx,
        "server": "",
        "token": "",
        "namespace": "",
        "insecure": False,
    }
    try:
        return kubectl.connect(g)
    except kubectl.KErr as e:
        m = re.match(r"The connection to the server (\S+) was refused", e.msg)
        if m:
            raise LErr(
                f"failed to initialize the Kubernetes clients: Get "
                f'"https://{m.group(1)}/api?timeout=32s": dial tcp {m.group(1)}: '
                "connect: connection refused"
            ) from e
        raise LErr(e.msg) from e  # real: "ERRO: error: stat /x: no such file or directory"


def spec() -> cli.Spec:
    s = cli.Spec()
    s.add("kubeconfig", "--kubeconfig")
    s.add("context", "--context")
    s.add("namespace", "-n", "--namespace")
    s.add("remote_kubeconfig", "--remote-kubeconfig")
    s.add("remote_context", "--remote-context")
    s.add("remote_namespace", "--remote-namespace")
    s.add("cluster_id", "--cluster-id")
    s.add("disable_telemetry", "--disable-telemetry", kind="bool")
    s.add("set", "--set", kind="list")
    s.add("set_string", "--set-string", kind="list")
    s.add("reserved_subnets", "--reserved-subnets", kind="list")
    s.add("cluster_labels", "--cluster-labels", kind="list")
    s.add("timeout", "--timeout")
    s.add("local_chart_path", "--local-chart-path")
    s.add("version", "--version")
    s.add("verbose", "--verbose", kind="bool")
    s.add("output", "-o", "--output")
    s.add("gw_type", "--gw-server-service-type")
    s.add("gw_nodeport", "--gw-server-service-nodeport")
    s.add("gw_port", "--gw-server-service-port")
    s.add("gw_client_address", "--gw-client-address")
    s.add("gw_client_port", "--gw-client-port")
    s.add("mtu", "--mtu")
    s.add("networking_disabled", "--networking-disabled", kind="bool")
    s.add("create_resource_slice", "--create-resource-slice")
    s.add("resource_slice_class", "--resource-slice-class")
    s.add("skip_confirm", "--skip-confirm", kind="bool")
    s.add("wait", "--wait", kind="bool")
    s.add("delete_namespaces", "--delete-namespaces", kind="bool")
    s.add("nms", "--namespace-mapping-strategy")
    s.add("pos", "--pod-offloading-strategy")
    s.add("selector", "-l", "--selector")
    s.add("client", "--client", kind="bool")
    s.add("purge", "--purge", kind="bool")
    s.add("dry_run", "--dry-run", kind="bool")
    s.add("only_output_values", "--only-output-values", kind="bool")
    s.add("pod_cidr", "--pod-cidr")
    s.add("service_cidr", "--service-cidr")
    s.add("disable_api_server_defaulting", "--disable-api-server-defaulting", kind="bool")
    s.add("enable_metrics", "--enable-metrics", kind="bool")
    s.add("remote_cluster_id", "--remote-cluster-id")
    s.add("class", "--class")
    s.add("cpu", "--cpu")
    s.add("memory", "--memory")
    s.add("pods", "--pods")
    s.add("no_virtual_node", "--no-virtual-node", kind="bool")
    return s


def cmd_version(g: Dict[str, Any], pos: List[str]) -> None:
    v = faults.version("liqoctl", LIQO_DEFAULT)
    state.out(f"Client version: v{v}")
    if g["client"]:
        return
    conn = connect(cli.get_str(g, "kubeconfig"), cli.get_str(g, "context"))
    st = load(conn.rec)
    if not st.get("installed"):
        raise LErr("failed to retrieve the server version: Liqo is not installed in the cluster")
    state.out("Server version: v{}".format(st.get("version", v)))


def cmd_install(g: Dict[str, Any], pos: List[str]) -> None:
    provider = pos[0] if pos else ""
    if provider not in (
        "kind",
        "kubeadm",
        "k3s",
        "eks",
        "gke",
        "aks",
        "openshift",
        "generic",
        "k0s",
    ):
        raise LErr(f'unknown command "{provider}" for "liqoctl install"')
    cid = cli.get_str(g, "cluster_id")
    if cid and (len(cid) > 63 or not DNS1123.match(cid)):
        raise LErr(
            f'invalid cluster ID "{cid}": a lowercase RFC 1123 label must consist of lower case '
            f"alphanumeric "
            "characters or '-', and must start and end with an alphanumeric character"
        )
    conn = connect(cli.get_str(g, "kubeconfig"), cli.get_str(g, "context"))
    chart = cli.get_str(g, "local_chart_path")
    if chart and not os.path.isfile(os.path.join(chart, "Chart.yaml")):
        # helm's chart loader (helm.sh/helm/v3 pkg/chart/loader): the directory has no chart
        raise LErr(f"Chart.yaml file is missing in {chart}" if os.path.isdir(chart)
                   else f"path \"{chart}\" not found")
    progress("Initializing installer")
    info("Installer initialized")
    progress("Retrieving cluster configuration")
    faults.delay("liqoctl", "install")
    if faults.should_fail("liqoctl", "install"):
        raise LErr(
            "Error installing or upgrading Liqo: context deadline exceeded (emulated failure, "
            "KSI_EMU_FAIL=liqoctl:install)"
        )
    rec = conn.rec
    values: Dict[str, str] = {}
    for kv in list(g["set"]) + list(g["set_string"]):
        k, _, v = kv.partition("=")
        values[k] = v
    labels: Dict[str, str] = {}
    for item in g["cluster_labels"]:
        for kv in item.split(","):
            if kv:
                k, _, v = kv.partition("=")
                labels[k] = v
    reserved = [s for item in g["reserved_subnets"] for s in item.split(",") if s]
    if not cid:
        cid = "{}-{}".format(rec["name"], os.urandom(3).hex())
    api = values.get("apiServer.address") or "https://{}:6443".format(
        rec.get("node_ip", "172.18.0.2")
    )
    info("Cluster configuration correctly retrieved")
    progress("Generating installation parameters")
    info("Installation parameters correctly generated")
    progress("Installing or upgrading Liqo... (this may take a few minutes)")

    def upd(cur: Dict[str, Any]) -> Dict[str, Any]:
        prev_id = cur.get("cluster_id")
        if cur.get("installed") and prev_id and prev_id != cid:
            raise LErr(
                f'the cluster ID "{cid}" does not match the one of the existing installation '
                f'("{prev_id}")'
            )
        cur.update(
            {
                "installed": True,
                "cluster_id": cid,
                "labels": labels,
                "api_address": api,
                "values": values,
                "reserved_subnets": reserved,
                "version": faults.version("liqoctl", LIQO_DEFAULT),
                "installed_at": cur.get("installed_at", time.time()),
                "provider": provider,
                "telemetry": not g["disable_telemetry"] and not chart,
                # chart value networking.enabled (deployments/liqo/values.yaml, default true)
                "networking": values.get("networking.enabled", "true").lower() != "false",
            }
        )
        cur.setdefault("peers", {})
        cur.setdefault("offloaded", {})
        return cur

    update(rec, upd)
    info("All Set! You can now proceed establishing a peering (liqoctl peer --help for more "
         "information)")
    info("Make sure to use the same version of Liqo on all remote clusters")


def require_installed(conn: kubectl.Conn, which: str) -> Dict[str, Any]:
    st = load(conn.rec)
    if not st.get("installed"):
        raise LErr(f'{which}: Liqo is not installed in the cluster ("liqo" namespace not found)')
    return st


def reachable_from(host: str, url: str, consumer: Dict[str, Any], provider: Dict[str, Any]) -> bool:
    """Would a pod of ``consumer`` (running on ``host``) reach the provider's ``url``?
    A node-internal address (node IP:6443, <name>-control-plane:6443: Liqo's default
    for kind) is reachable only inside the same runtime network (same host, runtime, user)."""
    h, port = clusters.parse_server(url)
    if h in (provider.get("node_ip"), "{}-control-plane".format(provider["name"])):
        return (consumer["host"], consumer["provider"], consumer["uid"]) == (
            provider["host"],
            provider["provider"],
            provider["uid"],
        ) and port == 6443
    old = os.environ.get("KSI_EMU_HOSTNAME")
    os.environ["KSI_EMU_HOSTNAME"] = host
    try:
        rec, _entry, _h = clusters.resolve(url)
    finally:
        if old is None:
            os.environ.pop("KSI_EMU_HOSTNAME", None)
        else:
            os.environ["KSI_EMU_HOSTNAME"] = old
    return rec is not None and rec["id"] == provider["id"]


def cmd_peer(g: Dict[str, Any], pos: List[str]) -> None:
    if pos:
        raise LErr(f'unknown command "{pos[0]}" for "liqoctl peer"')
    if cli.get_str(g, "remote_kubeconfig") == cli.get_str(g, "kubeconfig"):
        raise LErr("error: local and remote clusters must be different")
    local = connect(cli.get_str(g, "kubeconfig"), cli.get_str(g, "context"))
    remote = connect(cli.get_str(g, "remote_kubeconfig"), cli.get_str(g, "remote_context"))
    lst = require_installed(local, "local cluster")
    rst = require_installed(remote, "remote cluster")
    if lst["cluster_id"] == rst["cluster_id"]:
        raise LErr(
            "the local and remote clusters have the same cluster ID ({})".format(lst["cluster_id"])
        )
    timeout = cli.parse_duration(cli.get_str(g, "timeout", "10m"))
    me = os.getpid()
    # in-progress marker on the consumer cluster (for the peer-race fault)
    race = [False]

    def mark(cur: Dict[str, Any]) -> Dict[str, Any]:
        ip = cur.setdefault("peering_in_progress", {})
        live = {k: v for k, v in ip.items() if v > time.time() - 600 and _alive(int(k))}
        if live and faults.configured("liqoctl", "peer-race"):
            race[0] = True
        live[str(me)] = time.time()
        cur["peering_in_progress"] = live
        return cur

    update(local.rec, mark)
    try:
        if race[0] and faults.should_fail("liqoctl", "peer-race"):
            raise LErr(
                "failed to create the tenant: Operation cannot be fulfilled on "
                "tenants.authentication.liqo.io "
                '"{}": the object has been modified; please apply your changes to the latest '
                "version and try "
                "again".format(rst["cluster_id"])
            )
        faults.delay("liqoctl", "peer")
        if faults.should_fail("liqoctl", "peer"):
            raise LErr(
                "failed to establish the peering: emulated failure (KSI_EMU_FAIL=liqoctl:peer)"
            )
        # liqoctl's order (pkg/liqoctl/peer/handler.go RunPeer): networking, authentication,
        # offloading (ResourceSlice)
        networking = not g["networking_disabled"]
        if networking:
            peer_networking(g, local, remote, lst, rst, timeout)
        # control plane: the consumer's controllers reach the provider's advertised API address
        progress("Ensuring tenant namespace")
        info("Tenant namespace correctly ensured")
        if not reachable_from(local.rec["host"], rst["api_address"], local.rec, remote.rec):
            progress("Waiting for nonce to be generated")
            raise LErr(
                'Unable to ensure authentication: Get "{}/api?timeout=32s": dial tcp {}: '
                "i/o timeout".format(rst["api_address"], rst["api_address"].split("://", 1)[-1])
            )
        for step, done in (("Ensuring nonce secret", "Nonce secret ensured"),
                           ("Waiting for nonce to be generated", "Nonce generated successfully"),
                           ("Ensuring signed nonce", "Signed nonce secret ensured"),
                           ("Generating tenant", "Tenant correctly generated"),
                           ("Applying tenant on provider cluster",
                            "Tenant correctly applied on provider cluster"),
                           ("Generating identity", "Identity correctly generated"),
                           ("Applying identity on consumer cluster",
                            "Identity correctly applied on consumer cluster")):
            progress(step)
            info(done)
        now = time.time()
        ready = now + state.env_float("KSI_EMU_PEER_READY_AFTER", 0.0)
        # the virtual kubelet registers its Node a moment after peer returns (real: 1-5 s)
        visible = now + state.env_float("KSI_EMU_VN_AFTER", 0.0)
        rslice = cli.get_str(g, "create_resource_slice", "true").lower() != "false"

        def add_provider(cur: Dict[str, Any]) -> Dict[str, Any]:
            cur.setdefault("peers", {})[rst["cluster_id"]] = {
                "cluster_id": rst["cluster_id"],
                "role": "provider",
                "created": now,
                "ready_at": ready,
                "visible_at": visible,
                "offloading_at": ready + state.env_float("KSI_EMU_OFFLOADING_LAG", 0.0),
                "networking": networking,
                "virtual_node": rslice,
                "labels": rst.get("labels", {}),
                "cluster": remote.rec["id"],
            }
            cur.get("peering_in_progress", {}).pop(str(me), None)
            return cur

        def add_consumer(cur: Dict[str, Any]) -> Dict[str, Any]:
            cur.setdefault("peers", {})[lst["cluster_id"]] = {
                "cluster_id": lst["cluster_id"],
                "role": "consumer",
                "created": now,
                "ready_at": ready,
                "networking": networking,
                "virtual_node": False,
                "cluster": local.rec["id"],
            }
            return cur

        update(local.rec, add_provider)
        update(remote.rec, add_consumer)
        tenant = TENANT_PREFIX + rst["cluster_id"]  # "Ensuring tenant namespace" (consumer)

        def add_tenant(objs: Dict[str, Any]) -> None:
            objs.setdefault(f"Namespace//{tenant}", kubectl.mk(
                "v1", "Namespace", tenant, None, now,
                labels={"kubernetes.io/metadata.name": tenant}))

        kubectl.update_objects(local.rec, add_tenant)
        if rslice:
            progress("Creating ResourceSlice")
            info("ResourceSlice created")
            progress("Waiting for ResourceSlice authentication to be accepted")
            info("ResourceSlice authentication: Accepted")
            info("ResourceSlice resources: Accepted")
    finally:

        def unmark(cur: Dict[str, Any]) -> Dict[str, Any]:
            cur.get("peering_in_progress", {}).pop(str(me), None)
            return cur

        update(local.rec, unmark)


def peer_networking(g: Dict[str, Any], local: kubectl.Conn, remote: kubectl.Conn,
                    lst: Dict[str, Any], rst: Dict[str, Any], timeout: float) -> None:
    """The networking part of peer: the gateway server on the provider (a NodePort mapped to
    a host UDP port), the client on the consumer connecting to it."""
    progress("Retrieving network configuration")
    if not lst.get("networking", True) or not rst.get("networking", True):
        # real liqoctl 1.0.1 against an installation with networking.enabled=false (seen here)
        raise LErr("Unable to ensure networking: unable to retrieve pod CIDR: the pod CIDR is "
                   "not yet configured: missing status on the Network resource")
    info("Network configuration correctly retrieved")
    gw_type = cli.get_str(g, "gw_type", "LoadBalancer")
    nodeport = cli.get_str(g, "gw_nodeport")
    caddr = cli.get_str(g, "gw_client_address")
    cport = cli.get_str(g, "gw_client_port")
    ok = gw_type == "NodePort" and nodeport and caddr and cport
    if ok:
        ok = any(
            str(pm.get("protocol", "TCP")).upper() == "UDP"
            and int(pm.get("containerPort") or 0) == int(nodeport)
            and int(pm.get("hostPort") or 0) == int(cport)
            for pm in remote.rec.get("portMappings", [])
        )
    if ok and clusters.is_loopback(caddr) and remote.rec["host"] != local.rec["host"]:
        ok = False
    info("Gateway server created on the provider cluster")
    if not ok:
        time.sleep(min(timeout, state.env_float("KSI_EMU_PEER_FAIL_AFTER", 0.0)))
        raise LErr(
            "Unable to ensure networking: timed out waiting for the gateway connection to be "
            "established: context deadline exceeded (gateway {}:{} not reachable: check the "
            "NodePort {}/UDP mapping on the provider)".format(
                caddr or "<unset>", cport or "<unset>", nodeport or "<unset>")
        )
    info("Gateway client created on the consumer cluster")
    info("Connection established")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cmd_unpeer(g: Dict[str, Any], pos: List[str]) -> None:
    local = connect(cli.get_str(g, "kubeconfig"), cli.get_str(g, "context"))
    remote = connect(cli.get_str(g, "remote_kubeconfig"), cli.get_str(g, "remote_context"))
    lst = require_installed(local, "local cluster")
    rst = require_installed(remote, "remote cluster")
    faults.delay("liqoctl", "unpeer")
    if faults.should_fail("liqoctl", "unpeer"):
        raise LErr(
            "failed to unpeer: timed out waiting for the ResourceSlices to be deleted (emulated "
            "failure)"
        )
    if rst["cluster_id"] not in lst.get("peers", {}):
        raise LErr('no peering found with cluster "{}"'.format(rst["cluster_id"]))
    update(local.rec, lambda cur: (cur.get("peers", {}).pop(rst["cluster_id"], None), cur)[1])
    update(remote.rec, lambda cur: (cur.get("peers", {}).pop(lst["cluster_id"], None), cur)[1])
    info("Peering with cluster {} successfully disabled".format(rst["cluster_id"]))


def status_of(peer: Dict[str, Any]) -> str:
    return "Healthy" if time.time() >= peer["ready_at"] else "Unhealthy"


def peer_statuses(p: Dict[str, Any]) -> Dict[str, str]:
    """liqoctl info's module statuses (pkg/liqoctl/info/common CheckModuleStatus): a module
    not in use is Disabled. The offloading status of a provider lags behind its virtual node
    by KSI_EMU_OFFLOADING_LAG seconds (set at peer time; real 1.0.1: up to a minute, seen
    here)."""
    s = status_of(p)
    offload = "Disabled"
    if p["role"] == "provider":
        at = p.get("offloading_at", p["ready_at"])
        offload = "Healthy" if time.time() >= at else "Unhealthy"
    return {
        "networkingStatus": s if p.get("networking", True) else "Disabled",
        "authenticationStatus": s,
        "offloadingStatus": offload,
    }


def cmd_info(g: Dict[str, Any], pos: List[str]) -> None:
    conn = connect(cli.get_str(g, "kubeconfig"), cli.get_str(g, "context"))
    if not load(conn.rec).get("installed"):
        # real liqoctl 1.0.1 info (recorded: liqoctl-info-no-liqo)
        raise LErr("Liqo is not installed in the current cluster! \n\nYou can install liqo "
                   "via the 'liqoctl install' command.\nCheck 'liqoctl install --help' for "
                   "further information.")
    st = require_installed(conn, "local cluster")
    net = conn.rec["config"]["networking"]
    peers = []
    for p in sorted(st.get("peers", {}).values(), key=lambda x: x["cluster_id"]):
        peers.append({"clusterID": p["cluster_id"],
                      "role": "Provider" if p["role"] == "provider" else "Consumer",
                      **peer_statuses(p)})
    labels = {"liqo.io/provider": st.get("provider", "kind"), **st.get("labels", {})}
    # the shape real liqoctl 1.0.1 printed here (sections health, local, [network], peerings)
    data: Dict[str, Any] = {
        "health": {"healthy": True},
        "local": {
            "clusterID": st["cluster_id"],
            "version": "v" + st.get("version", LIQO_DEFAULT),
            "labels": labels,
            "APIServerAddr": st["api_address"],
        },
    }
    if st.get("networking", True):
        data["network"] = {
            "podCIDR": net["podSubnet"],
            "serviceCIDR": net["serviceSubnet"],
            "externalCIDR": "10.70.0.0/16",
            "internalCIDR": "10.80.0.0/16",
        }
    data["peerings"] = {"peers": peers}
    out = cli.get_str(g, "output")
    if out == "json":
        state.out(json.dumps(data, indent=2))
        return
    if out == "yaml":
        sys.stdout.write(kubectl.yaml_dump(data))
        return
    bar = "─" * 64
    state.out(f"┌─ Local installation info {bar}┐")
    state.out("|  Cluster ID:     {}".format(st["cluster_id"]))
    state.out("|  Version:        v{}".format(st.get("version", LIQO_DEFAULT)))
    state.out("|  K8s API server: {}".format(st["api_address"]))
    state.out(f"└{bar}┘")
    state.out(f"┌─ Active peerings {bar}┐")
    for p in peers:
        state.out("|  {}".format(p["clusterID"]))
        state.out("|      Role:                  {}".format(p["role"]))
        state.out("|      Networking status:     {}".format(p["networkingStatus"]))
        state.out("|      Authentication status: {}".format(p["authenticationStatus"]))
        state.out("|      Offloading status:     {}".format(p["offloadingStatus"]))
    state.out(f"└{bar}┘")


def cmd_offload(g: Dict[str, Any], pos: List[str], on: bool) -> None:
    if len(pos) < 2 or pos[0] != "namespace":
        raise LErr("namespace name or label selector must be specified")  # real 1.0.1
    ns = pos[1]
    conn = connect(cli.get_str(g, "kubeconfig"), cli.get_str(g, "context"))
    require_installed(conn, "local cluster")
    if kubectl.key_of("Namespace", None, ns) not in kubectl.read_objects(conn.rec):
        raise LErr(f'namespace "{ns}" not found')

    def upd(cur: Dict[str, Any]) -> Dict[str, Any]:
        off = cur.setdefault("offloaded", {})
        if on:
            off[ns] = {
                "namespaceMappingStrategy": cli.get_str(g, "nms", "DefaultName"),
                "podOffloadingStrategy": cli.get_str(g, "pos", "LocalAndRemote"),
                "selector": cli.get_str(g, "selector"),
            }
        else:
            off.pop(ns, None)
        return cur

    update(conn.rec, upd)
    if on:
        progress(f'Enabling namespace offloading for "{ns}"')
        info(f'Offloading of namespace "{ns}" correctly enabled')
        progress(f'Waiting for offloading of namespace "{ns}" to complete')
        providers = [x for x in load(conn.rec).get("peers", {}).values()
                     if x.get("role") == "provider"]
        if providers:
            info("Offloading completed successfully")
        else:  # real 1.0.1 on a cluster without peerings (seen here)
            warn("Offloading completed, but no cluster was selected")
    else:
        info(f'Offloading of namespace "{ns}" correctly disabled')


def cmd_uninstall(g: Dict[str, Any], pos: List[str]) -> None:
    conn = connect(cli.get_str(g, "kubeconfig"), cli.get_str(g, "context"))
    if not g["skip_confirm"]:
        state.err("? Do you want to continue? [y/N]: ")
        ans = ""
        if sys.stdin.isatty():
            ans = sys.stdin.readline().strip().lower()
        if ans not in ("y", "yes"):
            raise LErr("uninstall aborted")
    st = load(conn.rec)
    if st.get("peers"):
        warn("Active peerings are still present: the uninstall may hang until they are removed")
    state.remove(liqo_path(conn.rec))
    info("Liqo uninstalled")


TENANT_PREFIX = "liqo-tenant-"


def resource_slice(name: str, tenant: str, remote: str, g: Dict[str, Any]) -> Dict[str, Any]:
    """forge.ResourceSlice + MutateResourceSlice (v1.0.1): the labels, the virtual node
    annotation, spec.class/providerClusterID and the non-empty --cpu/--memory/--pods."""
    md: Dict[str, Any] = {
        "creationTimestamp": None, "name": name, "namespace": tenant,
        "labels": {"liqo.io/remote-cluster-id": remote, "liqo.io/remoteID": remote,
                   "liqo.io/replication": "true"},
    }
    if not g["no_virtual_node"]:
        md["annotations"] = {"liqo.io/create-virtual-node": "true"}
    spec: Dict[str, Any] = {"class": cli.get_str(g, "class", "default"),
                            "providerClusterID": remote}
    res = {k: cli.get_str(g, k) for k in ("cpu", "memory", "pods") if cli.get_str(g, k)}
    if res:
        spec["resources"] = res
    return {"apiVersion": "authentication.liqo.io/v1beta1", "kind": "ResourceSlice",
            "metadata": md, "spec": spec, "status": {}}


def cmd_create(g: Dict[str, Any], pos: List[str]) -> None:
    """`create resourceslice NAME --remote-cluster-id ID [-o json|yaml]`
    (pkg/liqoctl/rest/resourceslice/create.go): with -o the ResourceSlice is printed, not
    applied; without, it is created and its resources waited for."""
    if not pos or pos[0] not in ("resourceslice", "resourceslices"):
        raise LErr(f'unknown command "{pos[0] if pos else ""}" for "liqoctl create"')
    if len(pos) != 2:
        state.err(f"Error: accepts 1 arg(s), received {len(pos) - 1}")
        raise state.EmuExit(1)
    remote = cli.get_str(g, "remote_cluster_id")
    if not remote:
        state.err('Error: required flag(s) "remote-cluster-id" not set')
        raise state.EmuExit(1)
    out = cli.get_str(g, "output")
    if out and out not in ("json", "yaml"):
        raise LErr(f'unsupported output format "{out}"')
    conn = connect(cli.get_str(g, "kubeconfig"), cli.get_str(g, "context"))
    tenant = TENANT_PREFIX + remote
    if f"Namespace//{tenant}" not in kubectl.read_objects(conn.rec):
        why = f'tenant namespace not found for cluster "{remote}"'
        if out:  # Printer.CheckErr -> kubectl's util.CheckErr ("error: " prefix), no spinner
            state.err(f"ERRO: error: {why}")
            raise state.EmuExit(1)
        raise LErr(f"Unable to get tenant namespace: {why}")
    rs = resource_slice(pos[1], tenant, remote, g)
    if out == "json":
        state.out(json.dumps(rs, indent=4))
        return
    if out:
        import yaml

        sys.stdout.write(yaml.safe_dump(rs, default_flow_style=False, sort_keys=True))
        return
    progress("Creating ResourceSlice")

    def store(objs: Dict[str, Any]) -> None:
        o = dict(rs, status={"resources": dict(rs["spec"].get("resources") or {})})
        o["metadata"] = dict(rs["metadata"], creationTimestamp=state.rfc3339(time.time()))
        objs[f"ResourceSlice/{tenant}/{pos[1]}"] = o

    kubectl.update_objects(conn.rec, store)
    info("ResourceSlice created")
    progress("Waiting for ResourceSlice authentication to be accepted")
    info("ResourceSlice authentication: Accepted")
    info("ResourceSlice resources: Accepted")


def run(argv: List[str]) -> int:
    try:
        g, pos = cli.parse(argv, spec())
    except cli.FlagError as e:
        state.err(f"Error: {e}")  # cobra's own message, not liqoctl's printer
        return 1
    known = ("version", "install", "peer", "unpeer", "info", "offload", "unoffload",
             "uninstall", "create")
    if not pos or pos[0] not in known:  # real liqoctl: the help, exit 0
        state.out("liqoctl is a CLI tool to install and manage Liqo.")
        return 0
    sub, rest = pos[0], pos[1:]
    try:
        if sub == "version":
            cmd_version(g, rest)
        elif sub == "install":
            cmd_install(g, rest)
        elif sub == "peer":
            cmd_peer(g, rest)
        elif sub == "unpeer":
            cmd_unpeer(g, rest)
        elif sub == "info":
            cmd_info(g, rest)
        elif sub == "offload":
            cmd_offload(g, rest, True)
        elif sub == "unoffload":
            cmd_offload(g, rest, False)
        elif sub == "uninstall":
            cmd_uninstall(g, rest)
        elif sub == "create":
            cmd_create(g, rest)
        else:
            raise LErr(f'unknown command "{sub}" for "liqoctl"')
    except LErr as e:
        state.err(SPINNER_CLEAR + f"ERRO: {e}")
        return 1
    return 0


def main(argv: List[str]) -> None:
    state.run_tool("liqoctl", argv, run)
