"""Unit tests of the core's pure parts: names, ports, kind config, settings, job environment."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tests.conftest import foreign_file_in_sticky_dir

from ksi.access.admin import MIN_TOKEN_SECONDS, token_seconds
from ksi.errors import Exit, KsiError
from ksi.jobenv import LocalEnvironment, SlurmEnvironment, detect
from ksi.jobenv.slurm import parse_time_left
from ksi.plan import kindconfig, names
from ksi.plan.ports import PortBook, ensure_lock_dir, parse_port, port_in_use
from ksi.settings import load

SLURM = {"SLURM_JOB_ID": "4242", "SLURM_STEP_ID": "3", "SLURM_NODEID": "1",
         "SLURM_PROCID": "1", "SLURM_LOCALID": "0", "SLURM_NNODES": "3",
         "SLURM_STEP_NUM_NODES": "3", "SLURM_JOB_NODELIST": "node[1-3]",
         "SLURM_STEP_NODELIST": "node[1-3]"}


# ------------------------------------------------------------------ job environment
def test_slurm_environment_reads_step_identity() -> None:
    env = detect(SLURM)
    assert isinstance(env, SlurmEnvironment)
    assert (env.job_id, env.step_id, env.node_id, env.proc_id, env.num_nodes) == \
        ("4242", "3", 1, 1, 3)
    assert env.nodes == ["node1", "node2", "node3"]


def test_batch_script_is_one_node_step_batch() -> None:
    environ = {k: v for k, v in SLURM.items() if k not in ("SLURM_STEP_ID",)}
    environ["SLURMD_NODENAME"] = "node1"
    env = detect(environ)
    assert (env.step_id, env.num_nodes, env.node_id, env.nodes) == ("batch", 1, 0, ["node1"])


def test_no_slurm_gives_local_identity_and_forcing_local_works() -> None:
    assert isinstance(detect({}), LocalEnvironment)
    assert isinstance(detect({**SLURM, "KSI_JOBENV": "local"}), LocalEnvironment)


def test_garbage_job_id_is_rejected() -> None:
    with pytest.raises(KsiError):
        detect({"SLURM_JOB_ID": "abc"})


@pytest.mark.parametrize(("text", "seconds"), [
    ("1-02:03:04", 93784), ("02:03:04", 7384), ("03:04", 184), ("UNLIMITED", None),
    ("NOT_SET", None), ("", None), ("weird", None)])
def test_parse_time_left(text: str, seconds: float | None) -> None:
    assert parse_time_left(text) == seconds


def test_token_lifetime_covers_the_job() -> None:
    assert token_seconds(7200, 86400, 600) == 7800
    assert token_seconds(None, 86400, 600) == 86400
    assert token_seconds(5, 86400, 0) == MIN_TOKEN_SECONDS


# ------------------------------------------------------------------ names
def test_cluster_names_are_valid_unique_and_traceable() -> None:
    env = detect(SLURM)
    made = {names.cluster_name(env) for _ in range(200)}
    assert len(made) > 190  # random suffix: collisions within one step are rare...
    for n in made:
        assert names.NAME_RE.match(n) and len(n) <= names.MAX_LEN
        assert names.job_of(n) == "4242"
    local = names.cluster_name(detect({}))
    assert names.job_of(local) == "local"
    assert names.context_name("x") == "kind-x"


def test_huge_ids_still_fit_kind_limits() -> None:
    env = detect({**SLURM, "SLURM_JOB_ID": "4294967294", "SLURM_STEP_ID": "4294967294",
                  "SLURM_PROCID": "65535"})
    n = names.cluster_name(env)
    assert len(n) <= 50 and names.NAME_RE.match(n)


# ------------------------------------------------------------------ ports
def test_parse_port_rejects_bad_values() -> None:
    assert parse_port("30080", 30000, 32767) == 30080
    with pytest.raises(KsiError) as e1:
        parse_port("http", 30000, 32767)
    assert e1.value.code == Exit.PORT_NOT_A_NUMBER
    with pytest.raises(KsiError) as e2:
        parse_port("8080", 30000, 32767)
    assert e2.value.code == Exit.PORT_OUT_OF_RANGE


def test_reservation_is_exclusive_and_released(tmp_path: Path) -> None:
    book = PortBook(tmp_path / "locks")
    r = book.reserve_any(31000, 31010, "K8S_PORT")
    with pytest.raises(KsiError) as exc:
        PortBook(tmp_path / "locks").reserve(r.port, "K8S_PORT")
    assert exc.value.code == Exit.PORT_TAKEN
    assert book.held_by_others() == [r.port]
    r.release()
    r.release()  # idempotent
    assert book.held_by_others() == []
    assert not (tmp_path / "locks" / f"port-{r.port}.lock").exists()
    assert oct((tmp_path / "locks").stat().st_mode & 0o7777) == "0o1777"


def test_another_users_lock_file_still_reserves_its_port(tmp_path: Path) -> None:
    """A run of another user left its (unlocked) lock file: the port can be reserved, the
    reservation is exclusive, and releasing it leaves that user's file alone."""
    locks = ensure_lock_dir(tmp_path / "locks")
    port = next(p for p in range(31500, 31600) if port_in_use(p) is None)
    f = foreign_file_in_sticky_dir(locks, f"port-{port}.lock")
    r = PortBook(locks).reserve(port, "K8S_PORT")
    with pytest.raises(KsiError) as exc:
        PortBook(locks).reserve(port, "K8S_PORT")
    assert exc.value.code == Exit.PORT_TAKEN
    r.release()
    assert f.stat().st_uid == 1501


def test_port_bound_by_another_program_is_taken(tmp_path: Path) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # UDP only: TCP probe alone misses it
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    try:
        assert port_in_use(port) == "udp4"
        if 30000 <= port <= 60999:
            with pytest.raises(KsiError) as exc:
                PortBook(tmp_path).reserve(port, "K8S_PORT")
            assert exc.value.code == Exit.PORT_TAKEN
    finally:
        s.close()


def test_ipv6_only_listener_is_seen(tmp_path: Path) -> None:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    try:
        s.listen()
        assert port_in_use(s.getsockname()[1]) == "tcp6"
    finally:
        s.close()


def test_no_free_port_is_its_own_error(tmp_path: Path) -> None:
    book = PortBook(tmp_path)
    held = book.reserve_any(32000, 32000, "K8S_PORT")
    try:
        with pytest.raises(KsiError) as exc:
            PortBook(tmp_path).reserve_any(32000, 32000, "K8S_PORT")
        assert exc.value.code == Exit.NO_FREE_PORT
    finally:
        held.release()


def test_killed_holder_frees_the_port(tmp_path: Path) -> None:
    code = ("import sys,time; sys.path.insert(0, sys.argv[2]);"
            "from pathlib import Path; from ksi.plan.ports import PortBook;"
            "r = PortBook(Path(sys.argv[1])).reserve(31500, 'K8S_PORT');"
            "print('held', flush=True); sys.stdin.read()")
    src = str(Path(__file__).resolve().parents[1] / "src")
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path), src],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    with pytest.raises(KsiError):
        PortBook(tmp_path).reserve(31500, "K8S_PORT")
    p.kill()
    p.wait()
    r = PortBook(tmp_path).reserve(31500, "K8S_PORT")  # the kernel dropped the flock
    r.release()


# ------------------------------------------------------------------ kind config
def test_kind_config_maps_workdir_port_and_api() -> None:
    cfg = kindconfig.build(workdir="/home/u/proj", k8s_port=30123, api_address="10.0.0.5",
                           api_port=41001, pod_subnet="10.100.16.0/20",
                           udp_ports=((31999, 31500),), mirrors={"docker.io": "https://m"})
    node = cfg["nodes"][0]
    assert node["extraMounts"] == [{"hostPath": "/home/u/proj", "containerPath": "/app"}]
    assert {"containerPort": 30123, "hostPort": 30123, "listenAddress": "0.0.0.0",
            "protocol": "TCP"} in node["extraPortMappings"]
    assert {"containerPort": 31999, "hostPort": 31500, "listenAddress": "0.0.0.0",
            "protocol": "UDP"} in node["extraPortMappings"]
    assert cfg["networking"]["apiServerAddress"] == "10.0.0.5"
    assert 'mirrors."docker.io"' in cfg["containerdConfigPatches"][0]
    assert yaml.safe_load(kindconfig.dump(cfg)) == cfg


def test_kind_config_fragment_merges(tmp_path: Path) -> None:
    base = kindconfig.build(workdir="/w", k8s_port=30001, api_address="127.0.0.1",
                            api_port=41000)
    frag = tmp_path / "frag.yaml"
    frag.write_text("nodes:\n- labels: {site: x}\n  extraMounts:\n  - hostPath: /scratch\n"
                    "    containerPath: /scratch\nfeatureGates: {Foo: true}\n")
    merged = kindconfig.merge(base, kindconfig.load_fragment(str(frag)))
    mounts = [m["containerPath"] for m in merged["nodes"][0]["extraMounts"]]
    assert mounts == ["/app", "/scratch"]
    assert merged["nodes"][0]["labels"] == {"site": "x"}
    assert merged["featureGates"] == {"Foo": True}
    frag.write_text("- a list\n")
    with pytest.raises(KsiError) as exc:
        kindconfig.load_fragment(str(frag))
    assert exc.value.code == Exit.CONFIG_INVALID


# ------------------------------------------------------------------ settings
def test_settings_precedence_and_origins(tmp_path: Path) -> None:
    site, user = tmp_path / "site.toml", tmp_path / "user.toml"
    site.write_text('provider = "podman"\ncreate_retries = 5\nteardown_margin = 10\n')
    user.write_text('[ksi]\ncreate_retries = 3\n')
    environ = {"KSI_SITE_CONFIG": str(site), "KSI_USER_CONFIG": str(user),
               "KSI_TEARDOWN_MARGIN": "20"}
    s = load({"provider": "docker", "image": None}, environ)
    assert s.provider == "docker" and s.origins["provider"] == "flag --provider"
    assert s.create_retries == 3 and s.origins["create_retries"].startswith("user file")
    assert s.teardown_margin == 20 and s.origins["teardown_margin"].startswith("environment")
    assert s.origins["image"] == "default"


@pytest.mark.parametrize(("text", "needle"), [
    ("bogus = 1\n", "unknown setting 'bogus'"),
    ("create_retries = \"many\"\n", "create_retries='many' is invalid"),
    ("runtime_mode = \"lxc\"\n", "is not one of"),
    ("port_range = \"5-4\"\n", "not a port range"),
    ("provider = \n", "not valid TOML"),
])
def test_settings_errors_name_the_file(tmp_path: Path, text: str, needle: str) -> None:
    user = tmp_path / "user.toml"
    user.write_text(text)
    with pytest.raises(KsiError) as exc:
        load({}, {"KSI_USER_CONFIG": str(user), "KSI_SITE_CONFIG": str(tmp_path / "no")})
    assert exc.value.code == Exit.CONFIG_INVALID
    assert needle in exc.value.line()
    assert "\n" not in exc.value.line()


def test_error_line_is_one_line_with_fix() -> None:
    e = KsiError("a\ncause", "do\nthis")
    assert e.line() == "ksi: error: a cause -- fix: do this"


def test_exit_codes_are_distinct() -> None:
    """Every NAME has its own code: iterating an Enum skips aliases (a second name with the
    same value), Exit.__members__ does not. Each code is in the README's table."""
    members = dict(Exit.__members__)
    values = [int(e) for e in members.values()]
    dup = {v for v in values if values.count(v) > 1}
    assert not dup, {v: [n for n, e in members.items() if e == v] for v in dup}
    assert all(64 <= v <= 113 for v in values if v)
    table = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = table[table.index("### Endings and exit codes"):]
    assert [v for v in values if v and not re.search(rf"\b{v}\b", table)] == []


def test_default_state_root_is_private_per_user(tmp_path: Path) -> None:
    from ksi.plan.paths import default_state_root, ensure_private_dir

    assert default_state_root({}) == Path(f"/tmp/ksi-{os.getuid()}")
    assert default_state_root({"XDG_RUNTIME_DIR": str(tmp_path)}) == tmp_path / "ksi"
    d = tmp_path / "state"
    d.mkdir(mode=0o755)
    ensure_private_dir(d)
    assert d.stat().st_mode & 0o777 == 0o700
    link = tmp_path / "link"
    link.symlink_to(d)
    with pytest.raises(KsiError) as exc:
        ensure_private_dir(link)
    assert exc.value.code == Exit.STATE_UNSAFE


def test_the_telling_line_of_real_liqoctl_output() -> None:
    """liqoctl 1.0.1 writes pterm lines to stderr: spinner clears ('\\r' + spaces + '\\r'),
    'INFO: ...', then 'ERRO: ...' followed by more INFO hints (captured here from a real
    `liqoctl install kind` that timed out)."""
    from ksi.errors import last_line

    pad = "\r" + " " * 80 + "\r"
    stderr = (f"{pad}Installing or upgrading Liqo... (this may take a few minutes)\n"
              f"{pad}Operation canceled: rolling back...\n"
              f"{pad}ERRO: Error installing or upgrading Liqo: release liqo failed, and has "
              "been uninstalled due to atomic being set: timed out waiting for the condition\n"
              "INFO: Likely causes for the installation/upgrade timeout could include:\n"
              "INFO: * One or more pods failed to start (e.g., they are in the ImagePullBackOff "
              "status)\n")
    assert last_line(stderr) == ("ERRO: Error installing or upgrading Liqo: release liqo "
                                 "failed, and has been uninstalled due to atomic being set: "
                                 "timed out waiting for the condition")


def _helper_sleep(r, event, what: str, out: list, first):
    """A helper thread that calls first(), then runs `sleep 60` through r, keeping the
    CommandFailed it gets in out."""
    import threading

    from ksi.errors import CommandFailed

    def helper() -> None:
        first()
        try:
            r.run(["sleep", "60"], timeout=120, what=what)
        except CommandFailed as exc:
            out.append(exc)

    t = threading.Thread(target=helper)
    t.start()
    return t


def test_runner_stops_what_helper_threads_still_run() -> None:
    """At teardown the executor stops commands of helper threads (a `liqoctl peer`, the Liqo
    install), so that none outlives the run."""
    import threading

    from ksi.runner import Runner

    r = Runner()
    out: list[BaseException] = []
    started = threading.Event()
    t = _helper_sleep(r, started, "a helper's command", out, first=started.set)
    started.wait(5)
    deadline = time.monotonic() + 10
    while not r._live and time.monotonic() < deadline:  # the Popen is registered
        time.sleep(0.01)
    t0 = time.monotonic()
    assert r.stop_all(grace=1.0) == 1
    t.join(10)
    assert not t.is_alive() and time.monotonic() - t0 < 5
    assert out and "a helper's command failed (exit -15)" in out[0].cause
    assert r.stop_all() == 0


def test_runner_stops_a_helper_command_started_after_stop_all() -> None:
    """A helper thread's command whose start raced teardown's stop_all() (its Popen was not
    registered yet, or it came after) is stopped at once; teardown's own commands (the
    thread that called stop_all) still run."""
    import threading

    from ksi.runner import Runner

    r = Runner()
    go = threading.Event()
    out: list[BaseException] = []
    t = _helper_sleep(r, go, "a late helper command", out, first=lambda: go.wait(10))
    assert r.stop_all() == 0
    go.set()
    t.join(30)
    assert not t.is_alive()
    assert out and "a late helper command failed (exit -15)" in out[0].cause
    assert r.run(["true"]).returncode == 0  # teardown's own commands run


def test_kind_failure_names_the_failed_command_and_its_output() -> None:
    """kind's ERROR line alone says only 'exit status 1': the cause is in the Command
    Output kind prints after it (cmd/kind/app/main.go); the one-line error carries both."""
    from ksi.provision.kind import classify

    stderr = ('Creating cluster "c" ...\n ✗ Preparing nodes 📦\nERROR: failed to create cluster: '
              'command "nerdctl run --name c-control-plane --privileged --net kind '
              'kindest/node:v1.34.0" failed with error: exit status 1\n\nCommand Output: '
              'time="2026-12-02T13:07:21Z" level=fatal msg="failed to create shim task"\n'
              'error: OCI runtime create failed: cannot mount /dev/fuse\n')
    code, cause, _ = classify(stderr)
    assert code == Exit.CLUSTER_CREATE_FAILED
    assert cause == ('kind could not create the cluster: "nerdctl run …" failed: exit status 1: '
                     'error: OCI runtime create failed: cannot mount /dev/fuse')
    code, cause, _ = classify('ERROR: failed to create cluster: node(s) already exist for a '
                              'cluster with the name "c"\n')
    assert cause == 'kind could not create the cluster: node(s) already exist for a cluster ' \
                    'with the name "c"'
