"""`ksi run` end to end on one node against the contract emulator (no Slurm)."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import NOTHING, ROOT, leftovers, run_ksi

ENV_DUMP = """#!/bin/bash
set -eu
{
  echo "NAME=$K8S_CLUSTER_NAME"
  echo "API=$K8S_CLUSTER_API"
  echo "TOKEN=$K8S_CLUSTER_API_TOKEN"
  echo "PORT=$K8S_PORT"
  echo "KUBECONFIG=$KUBECONFIG"
  echo "PWD=$PWD"
  echo "NODES=$(kubectl --context "$K8S_CLUSTER_NAME" get nodes -o name | tr '\\n' ' ')"
  echo "KCMODE=$(stat -c %a "$KUBECONFIG")"
  echo "KCDIRMODE=$(stat -c %a "$(dirname "$KUBECONFIG")")"
} > "${OUT:-env.out}"
"""


def parse_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def calls(env: dict[str, str]) -> list[dict]:
    p = Path(env["KSI_EMU_STATE"]) / "calls.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def test_workload_sees_the_contract(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text(ENV_DUMP)
    res = run_ksi(["run", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    got = parse_env(workdir / "env.out")
    assert got["NAME"].startswith("kind-ksi-local-")
    assert got["API"].startswith("https://127.0.0.1:")
    assert len(got["TOKEN"]) > 20
    assert 30000 <= int(got["PORT"]) <= 32767
    assert got["PWD"] == str(workdir)
    assert got["NODES"].strip() == f"node/{got['NAME'][5:]}-control-plane"
    assert got["KCMODE"] == "600" and got["KCDIRMODE"] == "700"
    assert not Path(got["KUBECONFIG"]).is_relative_to(workdir)
    assert not (Path(emu_env["HOME"]) / ".kube").exists()  # never ~/.kube/config
    # the node container got the working directory at /app and K8S_PORT mapped 1:1
    runs = [c for c in calls(emu_env) if c["tool"] == "nerdctl" and c["argv"][:1] == ["run"]]
    assert len(runs) == 1
    argv = " ".join(runs[0]["argv"])
    assert f"{workdir}:/app" in argv
    assert f"0.0.0.0:{got['PORT']}:{got['PORT']}/tcp" in argv.lower()
    assert not any(c.get("insecure") for c in calls(emu_env))  # TLS always verified
    assert res.stderr.count("phase ") >= 7
    assert leftovers(emu_env) == NOTHING


def test_exit_status_propagates_and_report_is_written(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text('echo "$K8S_CLUSTER_API_TOKEN" > tok\n'
                                   "echo out-of-workload; exit 7\n")
    res = run_ksi(["run", "wl.sh"], emu_env, workdir)
    assert res.returncode == 7
    assert "out-of-workload" in res.stdout
    reports = list(workdir.glob("ksi-report-*.json"))
    assert len(reports) == 1
    rep = json.loads(reports[0].read_text())
    assert rep["exit_code"] == 7
    assert [p["phase"] for p in rep["phases"]] == [
        "job", "plan", "preflight", "gpus", "reserve", "provision", "ready", "access",
        "workload", "teardown"]
    assert all(p["status"] == "ok" for p in rep["phases"])
    assert rep["ports"]["k8s"] and rep["ports"]["api"]
    token = (workdir / "tok").read_text().strip()
    assert len(token) > 20 and token not in json.dumps(rep)
    assert leftovers(emu_env) == NOTHING


def test_verbose_shows_commands_with_token_masked(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text(
        'echo "$K8S_CLUSTER_API_TOKEN" > token.txt\n'
        'kubectl --context "$K8S_CLUSTER_NAME" --token "$K8S_CLUSTER_API_TOKEN" get nodes\n')
    res = run_ksi(["run", "-v", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    token = (workdir / "token.txt").read_text().strip()
    assert token and token not in res.stderr and token not in res.stdout
    assert "$ kind create cluster" in res.stderr
    assert "create token admin-user" in res.stderr


def test_kind_create_failure_exports_logs_and_cleans(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("touch ran\n")
    res = run_ksi(["run", "wl.sh"], {**emu_env, "KSI_EMU_FAIL": "kind:create"}, workdir)
    assert res.returncode == 79, res.stderr
    assert last_line(res.stderr).startswith("ksi: error: ")
    assert not (workdir / "ran").exists()
    assert any((workdir / "ksi-logs").iterdir())
    assert leftovers(emu_env) == NOTHING


def test_node_start_failure_is_retried(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("true\n")
    res = run_ksi(["run", "wl.sh"], {**emu_env, "KSI_EMU_FAIL": "kind:logline@1"}, workdir)
    assert res.returncode == 0, res.stderr
    creates = [c for c in calls(emu_env) if c["tool"] == "kind" and c["argv"][:2] ==
               ["create", "cluster"]]
    assert [c["exit"] for c in creates] == [1, 0]
    assert "inotify" in res.stderr
    assert leftovers(emu_env) == NOTHING


def test_kind_network_race_is_retried(emu_env: dict, workdir: Path) -> None:
    """kind (podman provider) checks for its 'kind' network, then creates it: a second kind
    that creates it in between makes podman say 'already exists' and kind fail (seen on the
    test bed, three nodes on one root podman). KSI sees the network exists and retries."""
    (workdir / "wl.sh").write_text("true\n")
    env = {**emu_env, "KSI_EMU_FAIL": "kind:network-race@1"}
    first = run_ksi(["run", "--provider", "podman", "wl.sh"], emu_env, workdir)
    assert first.returncode == 0, first.stderr  # the network exists from now on
    res = run_ksi(["run", "--provider", "podman", "-v", "wl.sh"], env, workdir)
    assert res.returncode == 0, res.stderr
    creates = [c for c in calls(emu_env) if c["tool"] == "kind" and c["argv"][:2] ==
               ["create", "cluster"]]
    assert [c["exit"] for c in creates] == [0, 1, 0]
    nets = [c for c in calls(emu_env) if c["tool"] == "podman" and c["argv"][:2] ==
            ["network", "create"]]
    assert [c["exit"] for c in nets] == [0, 125]
    assert "created the 'kind' network meanwhile" in res.stderr
    assert leftovers(emu_env) == NOTHING


def test_node_start_failure_diagnosis_after_all_attempts(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("true\n")
    env = {**emu_env, "KSI_EMU_FAIL": "kind:logline", "KSI_CREATE_RETRIES": "1"}
    res = run_ksi(["run", "wl.sh"], env, workdir)
    assert res.returncode == 80
    line = last_line(res.stderr)
    assert "after 2 attempts" in line and "fs.inotify.max_user_instances" in line
    assert leftovers(emu_env) == NOTHING


def test_dry_run_changes_nothing(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("true\n")
    res = run_ksi(["run", "--dry-run", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    assert "containerPath: /app" in res.stdout and f"hostPath: {workdir}" in res.stdout
    assert "kind create cluster --name ksi-local-" in res.stdout
    assert calls(emu_env) == []
    assert not Path(emu_env["KSI_STATE_DIR"]).exists()
    assert not Path(emu_env["KSI_LOCK_DIR"]).exists()
    assert list(workdir.iterdir()) == [workdir / "wl.sh"]


def test_preset_port_is_used(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text('echo "$K8S_PORT" > port\n')
    res = run_ksi(["run", "wl.sh"], {**emu_env, "K8S_PORT": "31777"}, workdir)
    assert res.returncode == 0, res.stderr
    assert (workdir / "port").read_text().strip() == "31777"


def test_kubeconfig_lock_race_of_the_original_is_gone(emu_env: dict, workdir: Path) -> None:
    """A stale lock on the shared ~/.kube/config (the original's fault 2) does not matter:
    each cluster has its own kubeconfig."""
    kube = Path(emu_env["HOME"]) / ".kube"
    kube.mkdir()
    (kube / "config").write_text("apiVersion: v1\nkind: Config\n")
    (kube / "config.lock").write_text("")
    (workdir / "wl.sh").write_text("true\n")
    res = run_ksi(["run", "wl.sh"], {**emu_env, "KUBECONFIG": str(kube / "config")}, workdir)
    assert res.returncode == 0, res.stderr
    assert (kube / "config").read_text() == "apiVersion: v1\nkind: Config\n"


# ------------------------------------------------------------------ signals
def _children(pid: int) -> list[tuple[int, str]]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat_fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat_fields[1]) == pid:
                out.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ")
                            .decode(errors="replace")))
        except (OSError, IndexError, ValueError):
            continue
    return out


def wait_until(pred, timeout: float = 30.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def _start(emu_env: dict, workdir: Path, extra_env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ksi", "run", "wl.sh"],
                            env={**emu_env, **extra_env}, cwd=workdir, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_during_create_tears_down(emu_env: dict, workdir: Path, signum: int) -> None:
    (workdir / "wl.sh").write_text("touch ran\n")
    proc = _start(emu_env, workdir, {"KSI_EMU_DELAY": "kind:create=60"})
    wait_until(lambda: any("create cluster" in c for _, c in _children(proc.pid)))
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "interrupted by" in last_line(err)
    assert not (workdir / "ran").exists()
    assert leftovers(emu_env) == NOTHING


def test_sigterm_during_workload_is_forwarded(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text(
        "trap 'echo got-term > term; exit 0' TERM\n"
        "touch started\n"
        "while true; do sleep 0.05; done\n")
    proc = _start(emu_env, workdir, {})
    wait_until(lambda: (workdir / "started").exists(), timeout=60)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert (workdir / "term").read_text().strip() == "got-term"
    assert leftovers(emu_env) == NOTHING


def test_workload_ignoring_sigterm_is_killed_after_grace(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("trap '' TERM\ntouch started\n"
                                   "while true; do sleep 0.05; done\n")
    proc = _start(emu_env, workdir, {"KSI_WORKLOAD_GRACE": "1"})
    wait_until(lambda: (workdir / "started").exists(), timeout=60)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert leftovers(emu_env) == NOTHING


def test_sigusr1_never_stops_ksi_and_reaches_the_workload(emu_env: dict,
                                                           workdir: Path) -> None:
    """SIGUSR1 (sbatch --signal=USR1@60) is the workload's: during create it is ignored (the
    default action would kill KSI and leak the cluster), during the workload it is passed on
    (outside Slurm; under Slurm slurmstepd signals every process of the step itself)."""
    (workdir / "wl.sh").write_text(
        "trap 'echo got-usr1 >> usr1' USR1\n"
        "touch started\n"
        "while [ ! -e usr1 ]; do sleep 0.05; done\n"
        "exit 3\n")
    proc = _start(emu_env, workdir, {"KSI_EMU_DELAY": "kind:create=2"})
    wait_until(lambda: any("create cluster" in c for _, c in _children(proc.pid)))
    proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: (workdir / "started").exists(), timeout=60)
    assert proc.poll() is None
    proc.send_signal(signal.SIGUSR1)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert (workdir / "usr1").read_text() == "got-usr1\n"
    assert "SIGUSR1 received: not a reason to stop" in err
    assert leftovers(emu_env) == NOTHING


# ------------------------------------------------------------------ concurrency
def test_sixteen_concurrent_runs_do_not_collide(emu_env: dict, tmp_path: Path) -> None:
    procs = []
    for i in range(16):
        d = tmp_path / f"w{i}"
        d.mkdir()
        (d / "wl.sh").write_text(ENV_DUMP)
        procs.append((d, subprocess.Popen(
            [sys.executable, "-m", "ksi", "run", "wl.sh"], env=emu_env, cwd=d, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)))
    results = []
    for d, p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        results.append(parse_env(d / "env.out"))
    for key in ("NAME", "PORT", "KUBECONFIG", "API", "TOKEN"):
        values = [r[key] for r in results]
        assert len(set(values)) == 16, (key, values)
    assert leftovers(emu_env) == NOTHING


# ------------------------------------------------------------------ bad inputs
def _bin_without(tmp_path: Path, missing: str) -> str:
    """A PATH with the emulator's tools and python3 but not `missing`."""
    b = tmp_path / f"bin-no-{missing}"
    b.mkdir()
    for tool in ("kind", "kubectl", "nerdctl", "podman"):
        if tool != missing:
            (b / tool).symlink_to(ROOT / "tests" / "emulator" / "bin" / tool)
    (b / "python3").symlink_to(sys.executable)
    return str(b)


def _taken_port() -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    for port in range(32700, 32767):
        try:
            s.bind(("0.0.0.0", port))
            s.listen()
            return s
        except OSError:
            continue
    raise RuntimeError("no port to occupy")


BAD = [
    # (id, args, extra env, setup, expected exit, words in the cause)
    ("missing-workload", ["run", "nope.sh"], {}, None, 65, "does not exist"),
    ("workload-is-dir", ["run", "adir"], {}, "adir", 66, "is a directory"),
    ("missing-shared-dir", ["run", "wl.sh", "/nonexistent/shared"], {}, None, 67,
     "shared directory"),
    ("shared-dir-is-file", ["run", "wl.sh", "wl.sh"], {}, None, 68, "not a directory"),
    ("port-not-number", ["run", "wl.sh"], {"K8S_PORT": "http"}, None, 69, "not a port number"),
    ("port-out-of-range", ["run", "wl.sh"], {"K8S_PORT": "8080"}, None, 70, "outside"),
    ("port-taken", ["run", "wl.sh"], {}, "taken", 71, "already in use"),
    ("no-free-port", ["run", "wl.sh"], {}, "full", 72, "no free port"),
    ("unknown-provider", ["run", "--provider", "lxc", "wl.sh"], {}, None, 73,
     "unknown provider"),
    ("provider-binary-missing", ["run", "wl.sh"], {}, "no-nerdctl", 74, "not on PATH"),
    ("kind-missing", ["run", "wl.sh"], {}, "no-kind", 75, "'kind' is not on PATH"),
    ("kubectl-missing", ["run", "wl.sh"], {}, "no-kubectl", 75, "'kubectl' is not on PATH"),
    ("runtime-down", ["run", "wl.sh"], {"KSI_EMU_FAIL": "runtime:daemon"}, None, 76,
     "nerdctl info failed"),
    ("bad-config-file", ["run", "wl.sh"], {}, "badconfig", 77, "unknown setting"),
    ("bad-kind-fragment", ["run", "--kind-config", "frag.yaml", "wl.sh"], {}, "frag", 77,
     "kind rejected the cluster config"),
    ("state-dir-unsafe", ["run", "wl.sh"], {}, "statefile", 78, "not a directory"),
    ("kind-create-fails", ["run", "wl.sh"], {"KSI_EMU_FAIL": "kind:create"}, None, 79,
     "could not create the cluster"),
    ("node-never-starts", ["run", "wl.sh"], {"KSI_EMU_FAIL": "kind:logline",
                                              "KSI_CREATE_RETRIES": "0"}, None, 80,
     "Multi-User System"),
    ("nodes-not-ready", ["run", "wl.sh"], {"KSI_EMU_READY_AFTER": "3600",
                                            "KSI_READY_TIMEOUT": "1"}, None, 81, "not Ready"),
    ("serviceaccount-fails", ["run", "wl.sh"], {"KSI_EMU_FAIL": "kubectl:serviceaccount"},
     None, 82, "service account"),
    ("token-fails", ["run", "wl.sh"], {"KSI_EMU_FAIL": "kubectl:token"}, None, 83, "token"),
]


RETURNED: dict[str, int] = {}  # case -> the exit code KSI returned (filled by the test below)


def _bad_run(emu_env: dict, workdir: Path, tmp_path: Path, case: str, args: list,
             extra: dict, setup: str | None, words: str) -> int:
    """Run one bad input; check the one-line cause and that nothing is left; KSI's code."""
    (workdir / "wl.sh").write_text("touch ran\n")
    env = {**emu_env, **extra}
    held: socket.socket | None = None
    if setup == "adir":
        (workdir / "adir").mkdir()
    elif setup == "taken":
        held = _taken_port()
        env["K8S_PORT"] = str(held.getsockname()[1])
    elif setup == "full":
        held = _taken_port()
        port = held.getsockname()[1]
        env["KSI_PORT_RANGE"] = f"{port}-{port}"
    elif setup and setup.startswith("no-"):
        env["PATH"] = _bin_without(tmp_path, setup[3:])
    elif setup == "badconfig":
        Path(env["KSI_USER_CONFIG"]).write_text("colour = 'blue'\n")
    elif setup == "frag":
        (workdir / "frag.yaml").write_text("networking:\n  podSubnetz: 10.1.0.0/16\n")
    elif setup == "statefile":
        Path(env["KSI_STATE_DIR"]).write_text("not a dir")
    try:
        res = run_ksi(args, env, workdir)
    finally:
        if held:
            held.close()
    RETURNED[case] = res.returncode
    line = last_line(res.stderr)
    assert line.startswith("ksi: error: ") and " -- fix: " in line, line
    assert words in line, line
    assert not (workdir / "ran").exists()
    left = leftovers(emu_env)
    if setup == "statefile":
        left["state"] = []  # the file the test put there itself
    assert left == NOTHING
    return res.returncode


@pytest.mark.parametrize(("case", "args", "extra", "setup", "code", "words"), BAD,
                         ids=[b[0] for b in BAD])
def test_bad_input_gives_one_line_cause_and_its_code(
        emu_env: dict, workdir: Path, tmp_path: Path, case: str, args: list, extra: dict,
        setup: str | None, code: int, words: str) -> None:
    assert _bad_run(emu_env, workdir, tmp_path, case, args, extra, setup, words) == code


def test_kind_warning_is_not_the_cause(emu_env: dict, workdir: Path) -> None:
    """Rootless podman < 4: kind warns about "Delegate=yes" on every create (kind v0.33.0
    providers/podman/provider.go); a later kubeadm failure is still 79, not a cgroup 76."""
    (workdir / "wl.sh").write_text("true\n")
    env = {**emu_env, "KSI_EMU_VERSION_PODMAN": "3.4.4", "KSI_EMU_FAIL": "kind:create"}
    kind = subprocess.run(["kind", "create", "cluster", "--name", "w"], capture_output=True,
                          text=True, env={**env, "KIND_EXPERIMENTAL_PROVIDER": "podman"},
                          timeout=60)
    assert "Delegate=yes" in kind.stderr and "init node with kubeadm" in kind.stderr
    res = run_ksi(["run", "--provider", "podman", "wl.sh"], env, workdir)
    assert res.returncode == 79, last_line(res.stderr)
    assert "failed to init node with kubeadm" in last_line(res.stderr)


def test_bad_inputs_cover_many_distinct_codes(tmp_path: Path) -> None:
    """The codes KSI RETURNED (not the table's): many distinct classes, one code each, and
    only cases of one class share a code. Cases the run above did not reach (-k) run here."""
    from tests.conftest import make_emu_env

    for case, args, extra, setup, _code, words in BAD:
        if case not in RETURNED:
            d = tmp_path / case
            (d / "work").mkdir(parents=True)
            _bad_run(make_emu_env(d), d / "work", d, case, args, extra, setup, words)
    returned = {case: RETURNED[case] for case, *_ in BAD}
    assert len(set(returned.values())) >= 15, returned
    shared = {c for c in set(returned.values()) if list(returned.values()).count(c) > 1}
    # only kind and kubectl missing (75) and the two config errors (77) share a code
    assert shared <= {75, 77}, {c: [k for k, v in returned.items() if v == c] for c in shared}
    assert all(64 <= c <= 113 for c in returned.values()), returned


def test_state_root_is_private(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text('ls -ld "$(dirname "$(dirname "$KUBECONFIG")")" > root\n')
    res = run_ksi(["run", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    mode = stat.S_IMODE(os.stat(emu_env["KSI_STATE_DIR"]).st_mode)
    assert mode == 0o700


# ------------------------------------------------------------------ providers and options
@pytest.mark.parametrize("provider", ["podman", "nerdctl"])
def test_provider_is_passed_to_kind(emu_env: dict, workdir: Path, provider: str) -> None:
    (workdir / "wl.sh").write_text("true\n")
    res = run_ksi(["run", "--provider", provider, "--image", "kindest/node:v1.34.0", "wl.sh"],
                  emu_env, workdir)
    assert res.returncode == 0, res.stderr
    kinds = [c for c in calls(emu_env) if c["tool"] == "kind" and c["argv"] != ["version"]]
    assert kinds and all(c["env"]["KIND_EXPERIMENTAL_PROVIDER"] == provider for c in kinds)
    create = next(c for c in kinds if c["argv"][:2] == ["create", "cluster"])
    assert create["argv"][create["argv"].index("--image") + 1] == "kindest/node:v1.34.0"
    assert any(c["tool"] == provider and c["argv"][:1] == ["run"] for c in calls(emu_env))
    assert leftovers(emu_env) == NOTHING


def test_systemd_scope_wraps_kind(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("true\n")
    res = run_ksi(["run", "--dry-run", "--systemd-scope", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    lines = [ln for ln in res.stdout.splitlines() if "kind create cluster" in ln
             or "kind delete cluster" in ln]
    assert len(lines) == 2
    assert all("systemd-run --user --scope" in ln for ln in lines)


def test_teardown_retries_a_failed_kind_delete(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("true\n")
    res = run_ksi(["run", "wl.sh"], {**emu_env, "KSI_EMU_FAIL": "kind:delete@1"}, workdir)
    assert res.returncode == 0, res.stderr
    deletes = [c["exit"] for c in calls(emu_env) if c["tool"] == "kind"
               and c["argv"][:2] == ["delete", "cluster"]]
    assert deletes == [1, 0]
    assert leftovers(emu_env) == NOTHING


def test_kind_delete_failing_is_covered_by_force_removal(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("true\n")
    res = run_ksi(["run", "wl.sh"], {**emu_env, "KSI_EMU_FAIL": "kind:delete"}, workdir)
    assert res.returncode == 0, res.stderr
    assert leftovers(emu_env) == NOTHING


def test_teardown_that_cannot_delete_says_so(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("true\n")
    res = run_ksi(["run", "wl.sh"], {**emu_env, "KSI_EMU_FAIL": "runtime:rm"}, workdir)
    assert res.returncode == 95, res.stderr
    assert "teardown incomplete" in last_line(res.stderr) and "ksi gc" in last_line(res.stderr)
    left = leftovers(emu_env)
    assert left["ports"] == [] and len(left["containers"]) == 1
    assert len(left["state"]) == 1  # the run record stays for 'ksi gc'


def test_podman_node_volumes_do_not_outlive_a_forced_removal(emu_env: dict,
                                                              workdir: Path) -> None:
    """kind's podman provider labels each node's /var volume '<node>=true' and deletes it only
    with the node: when KSI must remove the node itself, it removes the volume too."""
    (workdir / "wl.sh").write_text("true\n")
    env = {**emu_env, "KSI_EMU_FAIL": "kind:delete"}
    res = run_ksi(["run", "--provider", "podman", "wl.sh"], env, workdir)
    assert res.returncode == 0, res.stderr
    vols = [json.loads(p.read_text()) for p in
            (Path(emu_env["KSI_EMU_STATE"]) / "hosts").glob("*/podman-*/volumes.json")]
    assert vols and all(v == {} for v in vols)
    made = [c for c in calls(emu_env) if c["tool"] == "podman" and c["argv"][:2] ==
            ["volume", "create"]]
    assert len(made) == 1 and made[0]["argv"][2:4] == ["--label",
                                                       made[0]["argv"][-1][:-4] + "=true"]
    assert leftovers(emu_env) == NOTHING


@pytest.mark.parametrize("node", [0, 2])
def test_dry_run_of_a_multi_node_step_shows_the_federation(emu_env: dict, workdir: Path,
                                                           tmp_path: Path, node: int) -> None:
    (workdir / "wl.sh").write_text("true\n")
    env = {**emu_env, "SLURM_JOB_ID": "77", "SLURM_STEP_ID": "0", "SLURM_NODEID": str(node),
           "SLURM_PROCID": str(node), "SLURM_STEP_NUM_NODES": "3",
           "SLURM_STEP_NODELIST": "node[1-3]", "KSI_API_ADDRESS": "10.79.0.1" + str(node + 1)}
    res = run_ksi(["run", "--dry-run", "wl.sh", str(tmp_path)], env, workdir)
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert f"apiServerAddress: 10.79.0.1{node + 1}" in out
    assert f"podSubnet: 10.100.{16 * node}.0/20" in out and "protocol: UDP" in out
    assert "liqoctl install kind --cluster-id ksi-77-0-" in out
    peers = [ln for ln in out.splitlines() if "liqoctl peer" in ln]
    assert len(peers) == (2 if node == 0 else 0)
    assert ("bash " in out) == (node == 0)  # only the head runs the workload
    assert calls(emu_env) == [] and not Path(emu_env["KSI_STATE_DIR"]).exists()
    assert not (tmp_path / ".ksi").exists()


def test_federate_on_one_node_installs_liqo_for_an_unchanged_workload(emu_env: dict,
                                                                      workdir: Path) -> None:
    """federate=always: a one-node run installs Liqo as every node of a multi-node job does,
    so a workload that offloads a namespace runs unchanged (no SHARED_DIR needed)."""
    (workdir / "wl.sh").write_text(
        'echo "$KSI_NODE_COUNT:${KSI_VIRTUAL_NODES-unset}" > nodes\n'
        'kubectl --context "$K8S_CLUSTER_NAME" create namespace work\n'
        'liqoctl offload namespace work --kubeconfig "$KUBECONFIG" '
        '--pod-offloading-strategy LocalAndRemote\n')
    res = run_ksi(["run", "--federate", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    assert (workdir / "nodes").read_text() == "1:\n"
    assert "WARN: Offloading completed, but no cluster was selected" in res.stderr
    install = [c["argv"] for c in calls(emu_env) if c["tool"] == "liqoctl"
               and c["argv"][:1] == ["install"]]
    assert len(install) == 1
    argv = install[0]
    assert "apiServer.address=https://127.0.0.1:" in " ".join(argv)
    assert not any(a.startswith("127.") for a in argv)  # loopback is no reserved subnet
    assert [c for c in calls(emu_env) if c["argv"][:1] == ["peer"]] == []
    assert "phase peer: ok" in res.stderr and "0 virtual node(s)" in res.stderr
    assert leftovers(emu_env) == NOTHING


def test_plain_one_node_run_installs_no_liqo(emu_env: dict, workdir: Path) -> None:
    (workdir / "wl.sh").write_text("true\n")
    res = run_ksi(["run", "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    assert [c for c in calls(emu_env) if c["tool"] == "liqoctl"] == []


def test_liqo_settings_reach_liqoctl(emu_env: dict, workdir: Path, tmp_path: Path) -> None:
    """Offline sites: a local chart and a pinned version; no networking module; extra values."""
    chart = tmp_path / "liqo-chart"
    chart.mkdir()
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: liqo\nversion: 0.1.0\n")
    (workdir / "wl.sh").write_text("true\n")
    env = {**emu_env, "SLURM_JOB_ID": "78", "SLURM_STEP_ID": "0", "SLURM_NODEID": "0",
           "SLURM_PROCID": "0", "SLURM_STEP_NUM_NODES": "2", "SLURM_STEP_NODELIST": "node[1-2]",
           "KSI_API_ADDRESS": "10.79.0.11", "KSI_LIQO_CHART": str(chart),
           "KSI_LIQO_VERSION": "v1.0.1", "KSI_LIQO_NETWORKING": "false",
           "KSI_LIQO_SET": "metricAgent.enable=false,proxy.enabled=false"}
    res = run_ksi(["run", "--dry-run", "wl.sh", str(tmp_path)], env, workdir)
    assert res.returncode == 0, res.stderr
    install = next(ln for ln in res.stdout.splitlines() if "liqoctl install" in ln)
    assert f"--version v1.0.1 --local-chart-path {chart}" in install
    assert "--set networking.enabled=false --set metricAgent.enable=false --set " \
           "proxy.enabled=false" in install
    peer = next(ln for ln in res.stdout.splitlines() if "liqoctl peer" in ln)
    assert "--networking-disabled" in peer and "--gw-" not in peer
    assert "protocol: UDP" not in res.stdout  # no gateway port without networking
    bad = run_ksi(["run", "--dry-run", "wl.sh", str(tmp_path)],
                  {**env, "KSI_LIQO_CHART": str(tmp_path / "nope")}, workdir)
    assert bad.returncode == 77 and "is not a Helm chart directory" in last_line(bad.stderr)
    bad = run_ksi(["run", "--dry-run", "wl.sh", str(tmp_path)],
                  {**env, "KSI_LIQO_SET": "novalue"}, workdir)
    assert bad.returncode == 77 and "liqo_set entry 'novalue'" in last_line(bad.stderr)


def _processes_mentioning(text: str) -> list[str]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and int(d.name) != os.getpid():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmd:
                out.append(cmd)
    return out


def test_liqo_install_overlaps_readiness_and_is_stopped_at_teardown(emu_env: dict,
                                                                   workdir: Path) -> None:
    """The Liqo install starts as soon as kind created the cluster (in a helper thread, while
    KSI waits for the nodes); a scancel during it tears down and leaves no liqoctl behind."""
    (workdir / "wl.sh").write_text("touch ran\n")
    # nodes never Ready before the SIGTERM however slow the machine (was 3 s: a race)
    proc = _start(emu_env, workdir, {"KSI_FEDERATE": "always", "KSI_EMU_READY_AFTER": "600",
                                     "KSI_EMU_DELAY": "liqoctl:install=60"})
    # liqoctl install runs while the nodes are not Ready yet
    wait_until(lambda: any("liqoctl" in c and " install " in c
                           for c in _processes_mentioning(emu_env["KSI_STATE_DIR"])),
               timeout=60)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    phases = {p["phase"]: p for p in
              json.loads(next(workdir.glob("ksi-report-*.json")).read_text())["phases"]}
    ready = phases["ready"]
    # the install started before the wait for the nodes ended (here: SIGTERM cut it short)
    assert phases["liqo"]["start_offset"] < ready["start_offset"] + ready["seconds"]
    assert ready["status"] == "interrupted" and phases["liqo"]["status"] == "failed"
    assert _processes_mentioning(emu_env["KSI_STATE_DIR"]) == []
    assert not (workdir / "ran").exists()
    assert leftovers(emu_env) == NOTHING


def test_a_failed_liqo_install_fails_the_run_after_the_overlap(emu_env: dict,
                                                               workdir: Path) -> None:
    (workdir / "wl.sh").write_text("touch ran\n")
    res = run_ksi(["run", "--federate", "wl.sh"],
                  {**emu_env, "KSI_EMU_FAIL": "liqoctl:install"}, workdir)
    assert res.returncode == 87, res.stderr
    assert "phase liqo: failed" in res.stderr and "phase access: ok" in res.stderr
    assert "liqoctl install kind failed (exit 1): ERRO: Error installing or upgrading Liqo" \
        in last_line(res.stderr)
    assert not (workdir / "ran").exists()
    assert leftovers(emu_env) == NOTHING
