"""Contract tests for the KSI emulator (tests/emulator): kind, nerdctl/podman,
kubectl and liqoctl stand-ins must behave like the real tools where KSI can
tell the difference (messages, exit codes, state, locking)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

EMU = Path(__file__).resolve().parent / "emulator"
sys.path.insert(0, str(EMU / "lib"))

from ksiemu import state as emustate  # noqa: E402
from tests.conftest import foreign_file_in_sticky_dir  # noqa: E402

KIND_CFG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
"""


def host_ip() -> str:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.1", 9))
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def _python_dirs() -> list:
    """Directories for ``#!/usr/bin/env python3``: the system python when it has
    PyYAML (it starts ~2x faster than most pyenv/virtualenv pythons), else ours."""
    ours = os.path.dirname(sys.executable)
    try:
        ok = (
            subprocess.run(
                ["/usr/bin/python3", "-c", "import yaml"], capture_output=True, timeout=20
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return ["/usr/bin", "/bin", ours] if ok else [ours, "/usr/bin", "/bin"]


PY_DIRS = _python_dirs()


class Emu:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "state"
        self.tmp = tmp
        self.env = {
            "PATH": os.pathsep.join([str(EMU / "bin"), *PY_DIRS]),
            "HOME": str(tmp / "home"),
            "KSI_EMU_STATE": str(self.root),
            "KIND_EXPERIMENTAL_PROVIDER": "nerdctl",
            "LANG": "C.UTF-8",
        }

    def run(self, *args: str, input: str | None = None, **env: str) -> subprocess.CompletedProcess:
        e = dict(self.env)
        e.update(env)
        for k, v in list(e.items()):
            if v is None:
                del e[k]
        return subprocess.run(
            list(args),
            env=e,
            input=input,
            capture_output=True,
            text=True,
            cwd=str(self.tmp),
            timeout=60,
        )

    def create(
        self,
        name: str,
        kubeconfig: str | None = None,
        config: str | None = None,
        *extra: str,
        **env: str,
    ) -> subprocess.CompletedProcess:
        kc = kubeconfig or str(self.tmp / (f"{name}.kubeconfig"))
        args = ["kind", "create", "cluster", "--name", name, "--kubeconfig", kc]
        if config is not None:
            p = self.tmp / (f"{name}.yaml")
            p.write_text(config)
            args += ["--config", str(p)]
        return self.run(*args, *extra, **env)

    def calls(self, tool: str | None = None) -> list:
        return emustate.read_calls(str(self.root), tool)


@pytest.fixture
def emu(tmp_path: Path) -> Emu:
    return Emu(tmp_path)


# ------------------------------------------------------------------ state / call log


def test_state_root_required(emu: Emu) -> None:
    r = emu.run("kind", "version", KSI_EMU_STATE=None)
    assert r.returncode == 3
    assert r.stderr.strip() == "emulator: KSI_EMU_STATE is not set"


def test_versions_and_overrides(emu: Emu) -> None:
    assert emu.run("kind", "version").stdout.startswith("kind v0.30.0 go")
    assert emu.run("kind", "version", KSI_EMU_VERSION_KIND="0.22.0").stdout.startswith(
        "kind v0.22.0 "
    )
    assert emu.run("nerdctl", "-v").stdout.startswith("nerdctl version 2.")
    assert emu.run("podman", "--version").stdout.startswith("podman version 5.")
    assert "Client version: v1.0.1" in emu.run("liqoctl", "version", "--client").stdout
    v = json.loads(emu.run("kubectl", "version", "--client", "-o", "json").stdout)
    assert v["clientVersion"]["gitVersion"].startswith("v1.34.")


def test_call_log_records_env_and_duration(emu: Emu) -> None:
    emu.run("nerdctl", "ps", "-a", KUBECONFIG="/x/y")
    (rec,) = emu.calls("nerdctl")
    assert rec["argv"] == ["ps", "-a"]
    assert rec["env"] == {"KIND_EXPERIMENTAL_PROVIDER": "nerdctl", "KUBECONFIG": "/x/y"}
    assert rec["exit"] == 0 and rec["duration"] >= 0 and rec["uid"] == os.getuid()
    assert {"cwd", "host", "pid", "ppid", "start"} <= set(rec)


# ------------------------------------------------------------------ kind create / delete


def test_create_happy_path_output_and_kubeconfig(emu: Emu) -> None:
    r = emu.create("a")
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    err = r.stderr
    assert err.startswith(
        'using nerdctl due to KIND_EXPERIMENTAL_PROVIDER\nCreating cluster "a" ...\n'
    )
    assert " ✓ Starting control-plane 🕹️" in err
    assert 'Set kubectl context to "kind-a"' in err
    kc = emu.tmp / "a.kubeconfig"
    assert oct(kc.stat().st_mode & 0o777) == "0o600"
    assert not Path(str(kc) + ".lock").exists()
    import yaml

    cfg = yaml.safe_load(kc.read_text())
    assert cfg["current-context"] == "kind-a"
    assert (
        cfg["clusters"][0]["name"]
        == cfg["users"][0]["name"]
        == cfg["contexts"][0]["name"]
        == "kind-a"
    )
    assert cfg["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")
    # kind drove the runtime through PATH, as the real provider does
    runs = [c for c in emu.calls("nerdctl") if c["argv"][:1] == ["run"]]
    assert len(runs) == 1
    argv = runs[0]["argv"]
    assert argv[1:3] == ["--name", "a-control-plane"]
    for flag in (
        "--label",
        "io.x-k8s.kind.cluster=a",
        "io.x-k8s.kind.role=control-plane",
        "--privileged",
    ):
        assert flag in argv
    assert any(a.startswith("--publish=127.0.0.1:") and a.endswith(":6443/TCP") for a in argv)
    r = emu.run(
        "nerdctl",
        "ps",
        "-a",
        "--filter",
        "label=io.x-k8s.kind.cluster",
        "--format",
        '{{.Names}}\\t{{.Label "io.x-k8s.kind.cluster"}}',
    )
    assert r.stdout == "a-control-plane\ta\n"
    assert emu.run("kind", "get", "clusters").stdout == "a\n"


def test_wrapper_first_on_path_intercepts_run(emu: Emu) -> None:
    wrap = emu.tmp / "wrap"
    wrap.mkdir()
    script = wrap / "nerdctl"
    script.write_text(
        '#!/bin/sh\nif [ "$1" = run ]; then echo "$@" >> {}/intercepted; fi\n'
        'exec {}/nerdctl "$@"\n'.format(emu.tmp, EMU / "bin")
    )
    script.chmod(0o755)
    r = emu.create("w", PATH=str(wrap) + os.pathsep + emu.env["PATH"])
    assert r.returncode == 0, r.stderr
    lines = (emu.tmp / "intercepted").read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith("run --name w-control-plane")


def test_create_existing_name(emu: Emu) -> None:
    assert emu.create("dup").returncode == 0
    r = emu.create("dup")
    assert r.returncode == 1
    assert r.stderr.endswith(
        'ERROR: failed to create cluster: node(s) already exist for a cluster with the name "dup"\n'
    )


def test_invalid_and_long_names(emu: Emu) -> None:
    r = emu.create("Bad_Name")
    assert r.returncode == 1
    assert (
        "ERROR: failed to create cluster: 'Bad_Name' is not a valid cluster name, cluster names "
        "must match "
        "`^[a-z0-9.-]+$`"
    ) in r.stderr
    long = "x" * 51
    r = emu.create(long)
    assert r.returncode == 0
    assert f'cluster name "{long}" is probably too long' in r.stderr


def test_name_priority(emu: Emu) -> None:
    cfg = KIND_CFG + "name: fromconfig\n"
    p = emu.tmp / "c.yaml"
    p.write_text(cfg)
    kc = str(emu.tmp / "kc")
    assert (
        emu.run("kind", "create", "cluster", "--config", str(p), "--kubeconfig", kc).returncode == 0
    )
    assert (
        emu.run(
            "kind",
            "create",
            "cluster",
            "--config",
            str(p),
            "--kubeconfig",
            kc,
            KIND_CLUSTER_NAME="fromenv",
        ).returncode
        == 0
    )
    assert (
        emu.run(
            "kind",
            "create",
            "cluster",
            "--config",
            str(p),
            "--kubeconfig",
            kc,
            "-n",
            "fromflag",
            KIND_CLUSTER_NAME="fromenv",
        ).returncode
        == 0
    )
    assert emu.run("kind", "get", "clusters").stdout.split() == [
        "fromconfig",
        "fromenv",
        "fromflag",
    ]


def test_positional_args_rejected(emu: Emu) -> None:
    r = emu.run("kind", "create", "cluster", "extra")
    assert r.returncode == 1
    assert 'ERROR: unknown command "extra" for "kind create cluster"' in r.stderr


def test_strict_config_decoding(emu: Emu) -> None:
    r = emu.create("s", None, KIND_CFG + "foo: 1\nnodes:\n- role: control-plane\n  bar: true\n")
    assert r.returncode == 1
    assert (
        "ERROR: failed to create cluster: unable to decode config: yaml: unmarshal errors:\n"
        "  line 3: field foo not found in type v1alpha4.Cluster\n"
        "  line 6: field bar not found in type v1alpha4.Node\n"
    ) in r.stderr
    r = emu.create("s", None, KIND_CFG + "networking:\n  apiServerPort: abc\n")
    assert "cannot unmarshal !!str `abc` into int32" in r.stderr
    r = emu.run(
        "kind",
        "create",
        "cluster",
        "--config",
        "-",
        "-n",
        "s",
        input="apiVersion: kind.x-k8s.io/v1alpha3\nkind: Cluster\n",
    )
    assert "unknown apiVersion: kind.x-k8s.io/v1alpha3" in r.stderr


def test_every_documented_field_is_known(emu: Emu) -> None:
    cfg = (
        KIND_CFG
        + """name: full
featureGates: {"Foo": true}
runtimeConfig: {"api/alpha": "false"}
containerdConfigPatches:
- |
  [plugins."io.containerd.grpc.v1.cri".registry]
containerdConfigPatchesJSON6902: []
kubeadmConfigPatches: []
kubeadmConfigPatchesJSON6902: []
networking:
  ipFamily: ipv4
  apiServerAddress: 127.0.0.1
  apiServerPort: 0
  podSubnet: 10.20.0.0/16
  serviceSubnet: 10.21.0.0/16
  disableDefaultCNI: false
  kubeProxyMode: iptables
  dnsSearch: []
nodes:
- role: control-plane
  image: kindest/node:v1.34.0
  labels: {a: b}
  extraMounts:
  - {hostPath: ., containerPath: /data, readOnly: true, selinuxRelabel: false, propagation: None}
  extraPortMappings:
  - {containerPort: 30080, hostPort: 0, listenAddress: 127.0.0.1, protocol: TCP}
  kubeadmConfigPatches: []
  kubeadmConfigPatchesJSON6902: []
"""
    )
    r = emu.create("full", None, cfg)
    assert r.returncode == 0, r.stderr
    run = [c for c in emu.calls("nerdctl") if c["argv"][:1] == ["run"]][0]["argv"]
    assert f"--volume={emu.tmp}:/data:ro" in run


def test_validation_errors(emu: Emu) -> None:
    dup = (
        KIND_CFG
        + """nodes:
- role: control-plane
  extraPortMappings:
  - {containerPort: 80, hostPort: 8080}
  - {containerPort: 81, hostPort: 8080}
"""
    )
    r = emu.create("v", None, dup)
    assert (
        "ERROR: failed to create cluster: invalid configuration for node 0: invalid portMapping: "
        "port mapping "
        "with same listen address, port and protocol already configured: 0.0.0.0:8080/TCP"
    ) in r.stderr
    r = emu.create("v", None, KIND_CFG + "nodes:\n- role: boss\n")
    assert '"boss" is not a valid node role' in r.stderr
    assert "must have at least one control-plane node" in r.stderr
    r = emu.create("v", None, KIND_CFG + "networking:\n  podSubnet: 10.0.0.0/33\n")
    assert "invalid pod subnet" in r.stderr
    r = emu.create(
        "v",
        None,
        KIND_CFG + "nodes:\n- role: control-plane\n  extraPortMappings:\n"
        "  - {containerPort: 1, hostPort: 70000}\n",
    )
    assert "invalid hostPort: invalid port number: 70000" in r.stderr
    assert emu.run("kind", "get", "clusters").stdout == ""


def test_wait_timeout_only_warns(emu: Emu) -> None:
    r = emu.create("slow", None, None, "--wait", "0.3s", KSI_EMU_READY_AFTER="100")
    assert r.returncode == 0
    assert " ✗ Waiting ≤ 0.3s for control-plane = Ready ⏳" in r.stderr
    assert " • WARNING: Timed out waiting for Ready ⚠️" in r.stderr
    r = emu.create("fast", None, None, "--wait", "5m", KSI_EMU_READY_AFTER="0")
    assert " ✓ Waiting ≤ 5m0s for control-plane = Ready ⏳" in r.stderr


def test_delete_is_idempotent_and_cleans_kubeconfig(emu: Emu) -> None:
    kc = str(emu.tmp / "shared")
    assert emu.create("d1", kc).returncode == 0
    assert emu.create("d2", kc).returncode == 0
    r = emu.run("kind", "delete", "cluster", "-n", "d1", "--kubeconfig", kc)
    assert r.returncode == 0
    assert (
        'Deleting cluster "d1" ...' in r.stderr
        and 'Deleted nodes: ["d1-control-plane"]' in r.stderr
    )
    import yaml

    cfg = yaml.safe_load(Path(kc).read_text())
    assert [c["name"] for c in cfg["clusters"]] == ["kind-d2"]
    r = emu.run("kind", "delete", "cluster", "-n", "d1", "--kubeconfig", kc)
    assert r.returncode == 0 and "Deleted nodes" not in r.stderr
    assert (
        emu.run(
            "kind", "delete", "cluster", "-n", "zz", "--kubeconfig", str(emu.tmp / "none")
        ).returncode
        == 0
    )
    nerd = [c["argv"] for c in emu.calls("nerdctl")]
    assert ["rm", "-f", "-v", "d1-control-plane"] in nerd


def test_kubeconfig_lock_is_one_attempt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kind's lockFile is one O_EXCL open with no sleep (v0.33.0 pkg/cluster/internal/
    kubeconfig/internal/kubeconfig/lock.go): the only retries are create.go's export backoff."""
    from ksiemu import kubeconfig as emukc

    kc = tmp_path / "config"
    Path(str(kc) + ".lock").write_text("")
    opened: list[str] = []
    real_open = os.open

    def counting_open(path, *a, **kw):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real_open(path, *a, **kw)

    def no_sleep(_s: float) -> None:
        raise AssertionError("lockFile does not sleep")

    monkeypatch.setattr(emukc.os, "open", counting_open)
    monkeypatch.setattr(time, "sleep", no_sleep)
    with pytest.raises(emukc.KubeconfigError, match="file exists"):
        emukc.lock_file(str(kc))
    assert opened == [str(kc) + ".lock"]


@pytest.mark.parametrize("runtime", ["nerdctl", "podman"])
def test_network_argv_as_kind(emu: Emu, runtime: str) -> None:
    """kind's ensureNetwork argv (v0.33.0 pkg/cluster/internal/providers/{nerdctl,podman}/
    network.go): nerdctl probes `--format={{.Name}}` and the bridge MTU first."""
    assert emu.create("n", KIND_EXPERIMENTAL_PROVIDER=runtime).returncode == 0
    nets = [c["argv"] for c in emu.calls(runtime) if c["argv"][:1] == ["network"]]
    create = ["network", "create", "-d=bridge", "--ipv6", "--subnet", "fc00:f853:ccd:e793::/64",
              "kind"]
    if runtime == "nerdctl":
        assert nets == [["network", "inspect", "kind", "--format={{.Name}}"],
                        ["network", "inspect", "bridge", "-f",
                         '{{ index .Options "com.docker.network.driver.mtu" }}'], create]
    else:
        assert nets == [["network", "inspect", "kind"], create]


def test_stale_kubeconfig_lock(emu: Emu) -> None:
    kc = emu.tmp / "locked"
    Path(str(kc) + ".lock").write_text("")
    r = emu.create("l", str(kc))
    assert r.returncode == 1
    assert (
        f"ERROR: failed to create cluster: failed to lock config file: open {kc}.lock: file exists"
        in r.stderr
    )
    # like real kind, the nodes survive a kubeconfig export failure
    assert emu.run("kind", "get", "nodes", "-n", "l").stdout == "l-control-plane\n"
    r = emu.run("kind", "delete", "cluster", "-n", "l", "--kubeconfig", str(kc))
    assert r.returncode == 1
    assert 'ERROR: failed to delete cluster "l": failed to lock config file' in r.stderr
    assert emu.run("kind", "get", "nodes", "-n", "l").stdout == ""


def test_kubeconfig_target_selection(emu: Emu) -> None:
    a, b = emu.tmp / "ka", emu.tmp / "kb"
    b.write_text("apiVersion: v1\nkind: Config\n")
    r = emu.run(
        "kind", "create", "cluster", "-n", "k", KUBECONFIG=os.pathsep.join([str(a), str(b)])
    )
    assert r.returncode == 0
    assert not a.exists() and "kind-k" in b.read_text()
    r = emu.run("kind", "create", "cluster", "-n", "k2", KUBECONFIG=None)
    assert (emu.tmp / "home" / ".kube" / "config").exists()


def test_port_conflicts(emu: Emu) -> None:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    try:
        cfg = KIND_CFG + f"networking:\n  apiServerPort: {port}\n"
        r = emu.create("p", None, cfg)
        assert r.returncode == 1
        assert " ✗ Preparing nodes 📦" in r.stderr
        assert (
            'ERROR: failed to create cluster: command "nerdctl run --name p-control-plane'
            in r.stderr
        )
        assert "failed with error: exit status 1" in r.stderr
        assert (
            f"Command Output: FATA[0000] failed to load networking flags: bind for "
            f"127.0.0.1:{port} "
            "failed: port is "
            "already allocated" in r.stderr
        )
    finally:
        s.close()
    udp = (
        KIND_CFG + "nodes:\n- role: control-plane\n  extraPortMappings:\n"
        "  - {containerPort: 30090, hostPort: %d, protocol: UDP}\n"
    )
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("0.0.0.0", 0))
    uport = u.getsockname()[1]
    u.close()
    assert emu.create("u1", None, udp % uport).returncode == 0
    r = emu.create("u2", None, udp % uport)
    assert r.returncode == 1 and f"bind for :{uport} failed: port is already allocated" in r.stderr
    assert "Deleted nodes" not in r.stderr  # the run failed: no node to delete
    # podman messages (rootless port forwarder)
    r = emu.run(
        "podman", "run", "-d", "--name", "x", "--publish", f"0.0.0.0:{uport}:30090/udp", "img"
    )
    assert r.returncode == 126
    assert (
        r.stderr
        == f"Error: rootlessport listen udp 0.0.0.0:{uport}: bind: address already in use\n"
    )


def test_per_host_and_per_uid_separation(emu: Emu) -> None:
    assert emu.create("h", None, None, KSI_EMU_HOSTNAME="node1").returncode == 0
    assert emu.run("kind", "get", "clusters", KSI_EMU_HOSTNAME="node2").stdout == ""
    assert emu.create("h", None, None, KSI_EMU_HOSTNAME="node2").returncode == 0
    assert (
        emu.root
        / "hosts"
        / "node1"
        / (f"nerdctl-{os.getuid()}")
        / "containers"
        / "h-control-plane.json"
    ).exists()
    kc = str(emu.tmp / "h.kubeconfig")
    # loopback API address: reachable only from the same host
    r = emu.run("kubectl", "--kubeconfig", kc, "get", "nodes", KSI_EMU_HOSTNAME="node3")
    assert r.returncode == 1
    assert "was refused - did you specify the right host or port?" in r.stderr
    assert (
        emu.run("kubectl", "--kubeconfig", kc, "get", "nodes", KSI_EMU_HOSTNAME="node2").returncode
        == 0
    )


def test_runtime_daemon_fault_and_counters(emu: Emu) -> None:
    r = emu.run("nerdctl", "ps", KSI_EMU_FAIL="runtime:daemon")
    assert r.returncode == 1
    assert r.stderr.startswith(
        "FATA[0000] rootless containerd not running? (hint: use "
        "`containerd-rootless-setuptool.sh install` to start rootless containerd): stat "
        f"/run/user/{os.getuid()}/containerd-rootless: no such file or directory"
    )
    r = emu.create("f", None, None, KSI_EMU_FAIL="runtime:daemon")
    assert r.returncode == 1
    assert (
        'ERROR: failed to create cluster: failed to get nerdctl info: command "nerdctl info '
        "--format "
        "'{{json .}}'\" failed with error: exit status 1"
    ) in r.stderr
    env = {"KSI_EMU_FAIL": "kind:create@2"}
    assert emu.create("c", None, None, **env).returncode == 1
    r = emu.create("c", None, None, **env)
    assert r.returncode == 1
    assert " ✗ Starting control-plane 🕹️" in r.stderr
    assert 'Deleted nodes: ["c-control-plane"]' in r.stderr
    assert (
        'ERROR: failed to create cluster: failed to init node with kubeadm: command "nerdctl exec '
        "--privileged c-control-plane kubeadm init"
    ) in r.stderr
    assert "\nCommand Output: " in r.stderr
    assert emu.create("c", None, None, **env).returncode == 0


def test_logline_fault_and_retain(emu: Emu) -> None:
    r = emu.create("g", None, None, KSI_EMU_FAIL="kind:logline")
    assert r.returncode == 1
    assert (
        'ERROR: failed to create cluster: could not find a log line that matches "Reached target '
        ".*Multi-User "
        'System.*|detected cgroup v1"'
    ) in r.stderr
    assert emu.run("kind", "get", "nodes", "-n", "g").stdout == ""
    r = emu.create("g", None, None, "--retain", KSI_EMU_FAIL="kind:logline")
    assert r.returncode == 1
    assert emu.run("kind", "get", "nodes", "-n", "g").stdout == "g-control-plane\n"


def test_rootless_cgroup_v1_refused(emu: Emu) -> None:
    r = emu.create("cg", None, None, KSI_EMU_CGROUP_VERSION="1")
    assert r.returncode == 1
    assert (
        "ERROR: failed to create cluster: running kind with rootless provider requires cgroup v2, "
        "see "
        "https://kind.sigs.k8s.io/docs/user/rootless/"
    ) in r.stderr
    assert (
        emu.create("cg", None, None, KSI_EMU_CGROUP_VERSION="1", KSI_EMU_ROOTLESS="0").returncode
        == 0
    )
    info = json.loads(emu.run("nerdctl", "info", "--format", "{{json .}}").stdout)
    assert "name=rootless" in info["SecurityOptions"] and info["CgroupVersion"] == "2"
    pinfo = json.loads(emu.run("podman", "info", "--format", "json").stdout)
    assert pinfo["host"]["security"]["rootless"] is True and pinfo["host"]["cgroupVersion"] == "v2"


def test_podman_provider(emu: Emu) -> None:
    r = emu.create("pm", None, None, KIND_EXPERIMENTAL_PROVIDER="podman")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(
        "using podman due to KIND_EXPERIMENTAL_PROVIDER\nenabling experimental podman provider\n"
    )
    r = emu.run(
        "podman",
        "ps",
        "-a",
        "--format",
        '{{.Names}}\\t{{.Label "io.x-k8s.kind.cluster"}}',
        KSI_EMU_VERSION_PODMAN="4.3.1",
    )
    assert r.returncode == 125 and "can't evaluate field Label" in r.stderr
    r = emu.run(
        "podman",
        "ps",
        "-a",
        "--format",
        '{{.Names}}\\t{{index .Labels "io.x-k8s.kind.cluster"}}',
        KSI_EMU_VERSION_PODMAN="4.3.1",
    )
    assert r.stdout == "pm-control-plane\tpm\n"
    r = emu.run("podman", "rm", "nope")
    assert (
        r.returncode == 1
        and r.stderr == 'Error: no container with name or ID "nope" found: no such container\n'
    )
    assert emu.run("podman", "rm", "-f", "nope").returncode == 0


def test_unknown_provider_and_autodetect(emu: Emu) -> None:
    r = emu.create("auto", None, None, KIND_EXPERIMENTAL_PROVIDER="bogus")
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith('ignoring unknown value "bogus" for KIND_EXPERIMENTAL_PROVIDER\n')
    assert any(c["argv"][:1] == ["run"] for c in emu.calls("nerdctl"))


def test_runtime_basics(emu: Emu) -> None:
    r = emu.run("nerdctl", "run", "-d", "--name", "n1", "--bogus", "img")
    assert r.returncode == 1 and r.stderr == "FATA[0000] unknown flag: --bogus\n"
    assert emu.run("nerdctl", "run", "-d", "--name", "n1", "img").returncode == 0
    r = emu.run("nerdctl", "run", "-d", "--name", "n1", "img")
    assert r.returncode == 1 and r.stderr.startswith('FATA[0000] name "n1" is already used by ID "')
    r = emu.run("nerdctl", "inspect", "-f", "{{.State.Running}} {{.State.Pid}}", "n1")
    assert r.stdout.startswith("true ")
    assert emu.run("nerdctl", "rm", "-f", "gone").returncode == 0
    r = emu.run("nerdctl", "rm", "gone")
    assert r.returncode == 1 and "no such container: gone" in r.stderr
    assert emu.run("nerdctl", "rm", "-f", "-v", "n1").returncode == 0
    r = emu.run("nerdctl", "run", "-d", "img2", KSI_EMU_IMAGES_PRESENT="0")
    assert (
        r.returncode == 1
        and 'failed to resolve reference "docker.io/library/img2:latest"' in r.stderr
    )


def test_images_and_kind_load(emu: Emu) -> None:
    tar = str(emu.tmp / "img.tar")
    assert emu.run("nerdctl", "save", "-o", tar, "kindest/node:v1.34.0").returncode == 0
    r = emu.run("nerdctl", "load", "-i", tar, KSI_EMU_IMAGES_PRESENT="0")
    assert r.stdout == "Loaded image: docker.io/kindest/node:v1.34.0\n"
    assert (
        emu.run(
            "nerdctl", "image", "inspect", "kindest/node:v1.34.0", KSI_EMU_IMAGES_PRESENT="0"
        ).returncode
        == 0
    )
    r = emu.run("kind", "load", "image-archive", tar, "-n", "nope")
    assert r.returncode == 1 and 'ERROR: no nodes found for cluster "nope"' in r.stderr
    assert emu.create("ld").returncode == 0
    assert emu.run("kind", "load", "image-archive", tar, "-n", "ld").returncode == 0
    node = json.loads(
        (
            emu.root
            / "hosts"
            / emustate_host()
            / (f"nerdctl-{os.getuid()}")
            / "containers"
            / "ld-control-plane.json"
        ).read_text()
    )
    assert node["images"] == ["docker.io/kindest/node:v1.34.0"]
    r = emu.run("kind", "load", "docker-image", "busybox", "-n", "ld")
    assert r.returncode == 1 and 'ERROR: image: "busybox" not present locally' in r.stderr


def emustate_host() -> str:
    return socket.gethostname()


def test_export_logs(emu: Emu) -> None:
    assert emu.create("el").returncode == 0
    d = emu.tmp / "logs"
    r = emu.run("kind", "export", "logs", str(d), "-n", "el")
    assert r.returncode == 0 and r.stdout.strip() == str(d)
    assert 'Exporting logs for cluster "el" to:' in r.stderr
    assert (d / "kind-version.txt").exists() and (d / "el-control-plane" / "journal.log").exists()
    # the directory is printed before collecting (kind v0.33.0 export/logs/logs.go), so a
    # failed collection still names it
    r = emu.run("kind", "export", "logs", str(d), "-n", "el", KSI_EMU_FAIL="kind:export-logs")
    assert r.returncode == 1 and r.stdout == f"{d}\n"
    assert r.stderr.index("Exporting logs") < r.stderr.index("ERROR: ")


def test_get_kubeconfig(emu: Emu) -> None:
    r = emu.run("kind", "get", "kubeconfig", "-n", "missing")
    assert r.returncode == 1
    assert (
        "ERROR: could not locate any control plane nodes for cluster named 'missing'. Use the "
        "--name option to "
        "select a different cluster"
    ) in r.stderr
    assert emu.create("gk").returncode == 0
    out = emu.run("kind", "get", "kubeconfig", "-n", "gk", "--internal").stdout
    assert "server: https://gk-control-plane:6443" in out


# ------------------------------------------------------------------ kubectl


@pytest.fixture
def cluster(emu: Emu):
    r = emu.create("k", None, None, KSI_EMU_READY_AFTER="0")
    assert r.returncode == 0, r.stderr
    emu.env["KUBECONFIG"] = str(emu.tmp / "k.kubeconfig")
    return emu


def test_kubectl_nodes_wait_and_contexts(cluster: Emu) -> None:
    e = cluster
    r = e.run(
        "kubectl",
        "--context",
        "kind-k",
        "wait",
        "--for=condition=Ready",
        "nodes",
        "--all",
        "--timeout=5s",
    )
    assert r.returncode == 0 and r.stdout == "node/k-control-plane condition met\n"
    r = e.run(
        "kubectl", "get", "nodes", "-l", "node-role.kubernetes.io/control-plane", "-o", "name"
    )
    assert r.stdout == "node/k-control-plane\n"
    r = e.run("kubectl", "--context", "kind-x", "get", "nodes")
    assert r.returncode == 1
    assert (
        r.stderr == "Error in configuration: context was not found for specified context: kind-x\n"
    )
    r = e.run(
        "kubectl",
        "config",
        "view",
        "--minify",
        "--context",
        "kind-k",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    )
    assert r.stdout.startswith("https://127.0.0.1:")
    r = e.run(
        "kubectl", "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.nothere}"
    )
    assert r.returncode == 0 and r.stdout == ""
    r = e.run("kubectl", "wait", "--for=condition=Ready", "nodes", "-l", "nope=1", "--timeout=1s")
    assert r.returncode == 1 and r.stderr == "error: no matching resources found\n"


def test_kubectl_wait_timeout(emu: Emu) -> None:
    assert emu.create("nr", None, None, KSI_EMU_READY_AFTER="100").returncode == 0
    r = emu.run(
        "kubectl",
        "--kubeconfig",
        str(emu.tmp / "nr.kubeconfig"),
        "wait",
        "--for=condition=Ready",
        "nodes",
        "--all",
        "--timeout=0.2s",
    )
    assert r.returncode == 1
    assert r.stderr == "error: timed out waiting for the condition on nodes/nr-control-plane\n"


def test_kubectl_admin_token_flow(cluster: Emu) -> None:
    e = cluster
    r = e.run("kubectl", "-n", "kube-system", "create", "serviceaccount", "admin-user")
    assert r.stdout == "serviceaccount/admin-user created\n"
    r = e.run("kubectl", "-n", "kube-system", "create", "serviceaccount", "admin-user")
    assert r.returncode == 1
    assert (
        r.stderr
        == 'Error from server (AlreadyExists): serviceaccounts "admin-user" already exists\n'
    )
    r = e.run("kubectl", "-n", "kube-system", "create", "token", "nobody")
    assert r.returncode == 1 and 'serviceaccounts "nobody" not found' in r.stderr
    tok = e.run(
        "kubectl", "-n", "kube-system", "create", "token", "admin-user", "--duration", "24h"
    ).stdout.strip()
    assert tok.count(".") == 2
    import base64

    payload = json.loads(base64.urlsafe_b64decode(tok.split(".")[1] + "==="))
    assert payload["sub"] == "system:serviceaccount:kube-system:admin-user"
    assert payload["exp"] - payload["iat"] == 86400
    r = e.run("kubectl", "-n", "kube-system", "create", "token", "admin-user", "--duration", "5m")
    assert r.returncode == 1 and "may not specify a duration less than 10 minutes" in r.stderr
    server = e.run(
        "kubectl", "config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}"
    ).stdout
    ca = e.run(
        "kubectl",
        "config",
        "view",
        "--minify",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    ).stdout
    kc = e.tmp / "token.kubeconfig"
    kc.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "t",
                "clusters": [
                    {"name": "t", "cluster": {"server": server, "certificate-authority-data": ca}}
                ],
                "users": [{"name": "t", "user": {"token": tok}}],
                "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
            }
        )
    )
    r = e.run("kubectl", "--kubeconfig", str(kc), "get", "pods", "-A")
    assert r.returncode == 1 and "Error from server (Forbidden)" in r.stderr
    e.run(
        "kubectl",
        "create",
        "clusterrolebinding",
        "admin-user",
        "--clusterrole=cluster-admin",
        "--serviceaccount=kube-system:admin-user",
    )
    assert e.run("kubectl", "--kubeconfig", str(kc), "get", "nodes").returncode == 0
    assert (
        e.run("kubectl", "--kubeconfig", str(kc), "auth", "can-i", "create", "pods").stdout
        == "yes\n"
    )
    assert not any(c.get("insecure") for c in e.calls("kubectl"))
    r = e.run("kubectl", "--kubeconfig", str(kc), "--token", "x.y.z", "get", "nodes")
    assert r.stderr == "error: You must be logged in to the server (Unauthorized)\n"
    # x509: the host is not in the certificate SANs
    bad = kc.read_text().replace("127.0.0.1", host_ip())
    kc.write_text(bad)
    if host_ip() != "127.0.0.1":
        r = e.run("kubectl", "--kubeconfig", str(kc), "get", "nodes")
        assert r.returncode == 1


def test_kubectl_jobs_pods_logs(cluster: Emu) -> None:
    e = cluster
    job = """apiVersion: batch/v1
kind: Job
metadata: {name: hello}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [echo, hello, world]}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: bad}
spec:
  template:
    metadata: {annotations: {ksi-emu/outcome: fail}}
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
"""
    r = e.run("kubectl", "apply", "-f", "-", input=job, KSI_EMU_JOB_SECONDS="0")
    assert r.stdout == "job.batch/hello created\njob.batch/bad created\n"
    r = e.run("kubectl", "wait", "--for=condition=complete", "job/hello", "--timeout=5s")
    assert r.stdout == "job.batch/hello condition met\n"
    assert e.run("kubectl", "logs", "job/hello").stdout == "hello world\n"
    r = e.run("kubectl", "get", "job", "bad", "-o", "json")
    conds = json.loads(r.stdout)["status"]["conditions"]
    assert {
        "type": "Failed",
        "status": "True",
        "reason": "BackoffLimitExceeded",
        "message": "Job has reached the specified backoff limit",
    } in conds
    r = e.run(
        "kubectl", "get", "pods", "-l", "job-name=bad", "-o", "jsonpath={.items[0].status.phase}"
    )
    assert r.stdout == "Failed"
    # several resource types, structured output: ONE List (kubectl's printGeneric)
    r = e.run("kubectl", "get", "jobs,pods", "-o", "json")
    doc = json.loads(r.stdout)
    assert doc["kind"] == "List"
    assert {"Job", "Pod"} == {i["kind"] for i in doc["items"]}
    r = e.run("kubectl", "get", "jobs,pods", "-o", "jsonpath={.items[*].kind}")
    assert sorted(set(r.stdout.split())) == ["Job", "Pod"]
    r = e.run("kubectl", "apply", "-f", "-", input=job)
    assert r.stdout == "job.batch/hello unchanged\njob.batch/bad unchanged\n"
    r = e.run("kubectl", "create", "-f", "-", input=job)
    assert r.returncode == 1 and "(AlreadyExists)" in r.stderr
    r = e.run("kubectl", "delete", "job", "hello")
    assert r.stdout == 'job.batch "hello" deleted from default namespace\n'
    r = e.run("kubectl", "get", "job", "hello")
    assert (
        r.returncode == 1
        and r.stderr == 'Error from server (NotFound): jobs.batch "hello" not found\n'
    )


def test_kubectl_apiserver_down_and_deleted_cluster(cluster: Emu) -> None:
    e = cluster
    r = e.run("kubectl", "get", "nodes", KSI_EMU_FAIL="kubectl:apiserver-down")
    assert r.returncode == 1 and r.stderr.startswith("The connection to the server 127.0.0.1:")
    e.run("nerdctl", "rm", "-f", "k-control-plane")
    r = e.run("kubectl", "get", "nodes")
    assert r.returncode == 1 and "was refused - did you specify the right host or port?" in r.stderr


def test_kubectl_insecure_is_recorded(cluster: Emu) -> None:
    e = cluster
    assert e.run("kubectl", "--insecure-skip-tls-verify", "get", "ns").returncode == 0
    assert e.calls("kubectl")[-1].get("insecure") is True


# ------------------------------------------------------------------ liqoctl


def test_liqo_cross_host_peering(emu: Emu) -> None:
    ip = host_ip()
    if ip == "127.0.0.1":
        pytest.skip("needs a non-loopback address")
    s = socket.socket()
    s.bind((ip, 0))
    p1 = s.getsockname()[1]
    s.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((ip, 0))
    gw = u.getsockname()[1]
    u.close()
    for i, host in ((1, "node1"), (2, "node2")):
        cfg = KIND_CFG + (
            f"networking:\n  apiServerAddress: {ip}\n"
            f"  apiServerPort: {p1 if i == 1 else 0}\n  podSubnet: 10.{i * 10}.0.0/16\n"
            "nodes:\n- role: control-plane\n  extraPortMappings:\n"
            f"  - {{containerPort: 30090, hostPort: {gw + i}, protocol: UDP}}\n"
        )
        r = emu.create(f"c{i}", None, cfg, KSI_EMU_HOSTNAME=host)
        if r.returncode != 0:
            pytest.skip("port not free: " + r.stderr[-200:])
    kc = {i: str(emu.tmp / (f"c{i}.kubeconfig")) for i in (1, 2)}
    import yaml

    srv2 = yaml.safe_load(Path(kc[2]).read_text())["clusters"][0]["cluster"]["server"]
    r = emu.run(
        "liqoctl",
        "peer",
        "--kubeconfig",
        kc[1],
        "--remote-kubeconfig",
        kc[2],
        KSI_EMU_HOSTNAME="node1",
    )
    assert r.returncode == 1 and "Liqo is not installed" in r.stderr
    for i in (1, 2):
        r = emu.run(
            "liqoctl",
            "install",
            "kind",
            "--cluster-id",
            f"c{i}",
            "--disable-telemetry",
            "--set",
            "apiServer.address=" + (srv2 if i == 2 else f"https://{ip}:{p1}"),
            "--kubeconfig",
            kc[i],
            "--cluster-labels",
            f"slurm-host=node{i}",
            KSI_EMU_HOSTNAME=f"node{i}",
        )
        assert r.returncode == 0, r.stderr
        assert "\nINFO: Installer initialized\n" in r.stderr  # (text mode: \r reads as \n)
    peer = [
        "liqoctl",
        "peer",
        "--kubeconfig",
        kc[1],
        "--remote-kubeconfig",
        kc[2],
        "--gw-server-service-type",
        "NodePort",
        "--gw-server-service-nodeport",
        "30090",
        "--gw-client-address",
        ip,
    ]
    r = emu.run(*peer, "--gw-client-port", str(gw + 1), KSI_EMU_HOSTNAME="node1")
    assert r.returncode == 1 and "gateway" in r.stderr
    r = emu.run(
        *peer,
        "--gw-client-port",
        str(gw + 2),
        KSI_EMU_HOSTNAME="node1",
        KSI_EMU_PEER_READY_AFTER="100",
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.rstrip().endswith("ResourceSlice resources: Accepted")
    info = json.loads(
        emu.run(
            "liqoctl", "info", "-o", "json", "--kubeconfig", kc[1], KSI_EMU_HOSTNAME="node1"
        ).stdout
    )
    (p,) = info["peerings"]["peers"]
    assert p["clusterID"] == "c2" and p["networkingStatus"] != "Healthy"
    r = emu.run(
        "kubectl",
        "--kubeconfig",
        kc[1],
        "get",
        "nodes",
        "-l",
        "liqo.io/type=virtual-node",
        "-o",
        "json",
        KSI_EMU_HOSTNAME="node1",
    )
    (node,) = json.loads(r.stdout)["items"]
    assert node["metadata"]["name"] == "c2"
    assert node["metadata"]["labels"]["liqo.io/remote-cluster-id"] == "c2"
    assert node["spec"]["taints"] == [
        {"key": "virtual-node.liqo.io/not-allowed", "value": "true", "effect": "NoExecute"}
    ]
    assert node["status"]["conditions"][0]["status"] == "False"
    r = emu.run(
        "liqoctl",
        "unpeer",
        "--kubeconfig",
        kc[1],
        "--remote-kubeconfig",
        kc[2],
        "--skip-confirm",
        KSI_EMU_HOSTNAME="node1",
    )
    assert r.returncode == 0, r.stderr
    r = emu.run("liqoctl", "uninstall", "--kubeconfig", kc[1], KSI_EMU_HOSTNAME="node1", input="")
    assert r.returncode == 1
    assert (
        emu.run(
            "liqoctl",
            "uninstall",
            "--skip-confirm",
            "--kubeconfig",
            kc[1],
            KSI_EMU_HOSTNAME="node1",
        ).returncode
        == 0
    )


def apiport(kubeconfig: str) -> str:
    import yaml

    server = yaml.safe_load(Path(kubeconfig).read_text())["clusters"][0]["cluster"]["server"]
    return server.rsplit(":", 1)[1]


def test_liqo_default_api_address_unreachable_across_hosts(emu: Emu) -> None:
    ip = host_ip()
    if ip == "127.0.0.1":
        pytest.skip("needs a non-loopback address")
    for i in (1, 2):
        cfg = KIND_CFG + f"networking:\n  apiServerAddress: {ip}\n"
        assert emu.create(f"d{i}", None, cfg, KSI_EMU_HOSTNAME=f"n{i}").returncode == 0
        kc = str(emu.tmp / (f"d{i}.kubeconfig"))
        assert (
            emu.run(
                "liqoctl",
                "install",
                "kind",
                "--cluster-id",
                f"d{i}",
                "--kubeconfig",
                kc,
                KSI_EMU_HOSTNAME=f"n{i}",
            ).returncode
            == 0
        )
    r = emu.run(
        "liqoctl",
        "peer",
        "--kubeconfig",
        str(emu.tmp / "d1.kubeconfig"),
        "--remote-kubeconfig",
        str(emu.tmp / "d2.kubeconfig"),
        "--networking-disabled",
        KSI_EMU_HOSTNAME="n1",
    )
    assert r.returncode == 1 and "ERRO: Unable to ensure authentication" in r.stderr


def test_liqo_without_networking_as_real_liqoctl_1_0_1(emu: Emu) -> None:
    """What a real liqoctl v1.0.1 did here with networking.enabled=false: peer needs
    --networking-disabled, info says Disabled, the virtual node shows up a moment after peer
    returns and the offloading status may lag behind it."""
    ip = host_ip()
    if ip == "127.0.0.1":
        pytest.skip("needs a non-loopback address")
    kc = {}
    for i in (1, 2):
        cfg = KIND_CFG + f"networking:\n  apiServerAddress: {ip}\n"
        assert emu.create(f"n{i}", None, cfg, KSI_EMU_HOSTNAME=f"h{i}").returncode == 0
        kc[i] = str(emu.tmp / f"n{i}.kubeconfig")
        r = emu.run("liqoctl", "install", "kind", "--cluster-id", f"n{i}", "--kubeconfig", kc[i],
                    "--set", f"apiServer.address=https://{ip}:{apiport(kc[i])}",
                    "--set", "networking.enabled=false", KSI_EMU_HOSTNAME=f"h{i}")
        assert r.returncode == 0, r.stderr
    peer = ["liqoctl", "peer", "--kubeconfig", kc[1], "--remote-kubeconfig", kc[2]]
    r = emu.run(*peer, KSI_EMU_HOSTNAME="h1")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1] == (
        "ERRO: Unable to ensure networking: unable to retrieve pod CIDR: the pod CIDR is not "
        "yet configured: missing status on the Network resource")
    r = emu.run(*peer, "--networking-disabled", KSI_EMU_HOSTNAME="h1", KSI_EMU_VN_AFTER="30",
                KSI_EMU_OFFLOADING_LAG="60")
    assert r.returncode == 0, r.stderr
    assert r.stderr.rstrip().endswith("INFO: ResourceSlice resources: Accepted")
    r = emu.run("kubectl", "--kubeconfig", kc[1], "wait", "--for=condition=Ready", "node",
                "-l", "liqo.io/remote-cluster-id=n2", "--timeout=1s", KSI_EMU_HOSTNAME="h1")
    assert r.returncode == 1 and r.stderr == "error: no matching resources found\n"
    info = json.loads(emu.run("liqoctl", "info", "-o", "json", "--kubeconfig", kc[1],
                              KSI_EMU_HOSTNAME="h1").stdout)
    assert sorted(info) == ["health", "local", "peerings"]  # no network section
    assert info["local"]["APIServerAddr"].startswith(f"https://{ip}:")
    assert info["peerings"]["peers"] == [{
        "clusterID": "n2", "role": "Provider", "networkingStatus": "Disabled",
        "authenticationStatus": "Healthy", "offloadingStatus": "Unhealthy"}]


def test_fault_counter_is_shared_state(emu: Emu) -> None:
    env = {"KSI_EMU_FAIL": "kubectl:apiserver-down@1"}
    assert emu.create("fc").returncode == 0
    kc = str(emu.tmp / "fc.kubeconfig")
    assert emu.run("kubectl", "--kubeconfig", kc, "get", "ns", **env).returncode == 1
    assert emu.run("kubectl", "--kubeconfig", kc, "get", "ns", **env).returncode == 0


def test_delay_injection(emu: Emu) -> None:
    t = time.monotonic()
    emu.run("kubectl", "version", "--client", KSI_EMU_DELAY="kubectl:version=0.3")
    assert time.monotonic() - t >= 0.3
    assert emu.calls("kubectl")[-1]["duration"] >= 0.3


def test_state_lock_file_of_another_user_can_be_locked(tmp_path: Path) -> None:
    """Emulated tools of root and of a user share lock files in sticky dirs (the emulated
    host's .ports.lock); with fs.protected_regular the kernel refuses root O_CREAT on the
    user's file, and a tool must still lock it (seen: root's nerdctl run crashed)."""
    d = tmp_path / "host"
    d.mkdir()
    d.chmod(0o1777)
    f = foreign_file_in_sticky_dir(d, ".ports.lock")
    with emustate.locked(str(f)):
        assert f.stat().st_uid == 1501
