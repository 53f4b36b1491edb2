"""Issue 4, fast: subnet carving, the rendezvous protocol between 'nodes' that are threads
of this process (fake node ids), and the not-shared check."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from tests.conftest import EMU_BIN

from ksi.errors import Exit, KsiError
from ksi.federate import subnets
from ksi.federate.liqo import unhealthy
from ksi.federate.protocol import Federation
from ksi.federate.rendezvous import JobDir, Watch, wait_for
from ksi.plan.plan import Plan
from ksi.settings import Settings

# ---------------------------------------------------------------- subnets


def test_subnets_are_disjoint_per_node_and_avoid_liqo():
    nets = [subnets.for_node("10.100.0.0/14", "10.104.0.0/14", i, 8,
                             [("lan", "10.79.0.0/24")]) for i in range(8)]
    import ipaddress

    all_nets = [ipaddress.ip_network(n.pod) for n in nets] + \
               [ipaddress.ip_network(n.service) for n in nets]
    for i, a in enumerate(all_nets):
        for b in all_nets[i + 1:]:
            assert not a.overlaps(b), (a, b)
        for r in subnets.LIQO_RESERVED:
            assert not a.overlaps(ipaddress.ip_network(r))
    assert nets[0].pod == "10.100.0.0/20" and nets[1].pod == "10.100.16.0/20"
    assert nets[7].service == "10.104.112.0/20"


@pytest.mark.parametrize("pods,services,needle", [
    ("10.64.0.0/12", "10.104.0.0/14", "overlaps Liqo's reserved range 10.70.0.0/16"),
    ("10.80.0.0/14", "10.104.0.0/14", "overlaps Liqo's reserved range 10.80.0.0/16"),
    ("10.100.0.0/14", "10.100.0.0/14", "overlaps service_subnet_pool"),
    ("10.79.0.0/16", "10.104.0.0/14", "overlaps the node network 10.79.0.0/24"),
    ("10.100.0.0/22", "10.104.0.0/14", "smaller than one /20"),
    ("not-a-net", "10.104.0.0/14", "is not a network address"),
])
def test_subnet_layout_errors_are_config_errors(pods, services, needle):
    with pytest.raises(KsiError) as ei:
        subnets.for_node(pods, services, 1, 3, [("the node network", "10.79.0.0/24")])
    assert ei.value.code == Exit.CONFIG_INVALID
    assert needle in ei.value.line()


def test_pool_too_small_for_the_job():
    with pytest.raises(KsiError) as ei:
        subnets.for_node("10.100.0.0/18", "10.104.0.0/14", 0, 5)
    assert "room for 4 nodes" in ei.value.cause and ei.value.code == Exit.CONFIG_INVALID


def test_peer_health_from_liqoctl_info():
    info = {"peerings": {"peers": [
        {"clusterID": "a", "networkingStatus": "Healthy", "authenticationStatus": "Healthy",
         "offloadingStatus": "Healthy"},
        {"clusterID": "b", "networkingStatus": "Unhealthy", "authenticationStatus": "Healthy",
         "offloadingStatus": "Healthy"}]}}
    assert unhealthy(info, ["a"]) == {}
    assert unhealthy(info, ["a", "b", "c"]) == {"b": "networkingStatus=Unhealthy",
                                               "c": "no peering"}


def test_peer_health_as_real_liqo_reports_it():
    """Real liqoctl 1.0.1 (seen here): without the networking module its status is
    Disabled; the offloading status may lag behind a Ready virtual node for a minute: KSI
    waits for the virtual node itself, not for that."""
    peer = {"clusterID": "m1", "role": "Provider", "networkingStatus": "Disabled",
            "authenticationStatus": "Healthy", "offloadingStatus": "Unhealthy"}
    info = {"health": {}, "local": {}, "peerings": {"peers": [peer]}}
    assert unhealthy(info, ["m1"], networking=False) == {}
    assert unhealthy(info, ["m1"]) == {"m1": "networkingStatus=Disabled"}
    peer["authenticationStatus"] = "Unhealthy"
    assert unhealthy(info, ["m1"], networking=False) == {
        "m1": "authenticationStatus=Unhealthy"}

# ---------------------------------------------------------------- the directory


def test_job_dir_is_private_and_writes_are_atomic(tmp_path):
    jd = JobDir(tmp_path, "77", "0")
    jd.create()
    assert stat.S_IMODE(os.stat(jd.path).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(jd.path.parent).st_mode) == 0o700
    kc = tmp_path / "kc"
    kc.write_text("secret")
    p = jd.copy_private(kc, "kubeconfig-1")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600 and p.read_text() == "secret"
    jd.write("ready-1.json", {"a": 1})
    assert jd.read("ready-1.json") == {"a": 1}
    assert not [n for n in os.listdir(jd.path) if n.endswith(".tmp")]
    assert jd.read("missing.json") is None
    jd.remove_all()
    assert not jd.path.exists() and not jd.path.parent.exists()


def test_job_dir_refuses_a_symlink(tmp_path):
    (tmp_path / ".ksi").mkdir(mode=0o700)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / ".ksi" / "77.0")
    with pytest.raises(KsiError) as ei:
        JobDir(tmp_path, "77", "0").create()
    assert "not a directory" in ei.value.cause


def test_restarted_job_gets_a_fresh_directory(tmp_path):
    assert JobDir(tmp_path, "7", "0", "2").path.name == "7.0.r2"
    assert JobDir(tmp_path, "7", "0", "0").path.name == "7.0"

# ---------------------------------------------------------------- the watcher


def _watch(jd: JobDir, me: int, n: int = 2, **kw) -> Watch:
    return Watch(jd, me, n, ["node1", "node2"], interval=0.1, timeout=0.6, **kw)


def test_watch_reports_a_failed_node_once(tmp_path):
    jd = JobDir(tmp_path, "1", "0")
    jd.create()
    seen = []
    w = _watch(jd, 0, on_failure=seen.append)
    jd.write("failed-1.json", {"cause": "kind could not create the cluster", "code": 79})
    w.scan()
    w.scan()
    assert len(seen) == 1 and seen[0].name == "node2" and seen[0].code == 79
    assert "kind could not create" in seen[0].cause


class _Clock:
    """A monotonic clock the test moves (stands in for rendezvous' `time` module)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return time.time()

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    from ksi.federate import rendezvous

    c = _Clock()
    monkeypatch.setattr(rendezvous, "time", c)
    return c


def test_watch_times_heartbeats_by_its_clock(tmp_path, clock):
    """Beats keep a node alive for longer than the timeout (0.6 s); once they stop, it is
    dead after more than the timeout, not before."""
    jd = JobDir(tmp_path, "1", "0")
    jd.create()
    seen = []
    member = _watch(jd, 1)
    head = _watch(jd, 0, on_failure=seen.append)
    for _ in range(4):       # 2 s of beats every 0.5 s
        member.beat()
        head.scan()
        clock.advance(0.5)
    assert not seen and not head.dead
    head.scan()              # 0.5 s after the last beat
    assert not seen
    clock.advance(0.2)       # 0.7 s > 0.6 s
    head.scan()
    assert seen and seen[0].dead and seen[0].name == "node2" and "no heartbeat" in seen[0].cause
    assert 1 in head.dead


def test_watch_detects_stopped_heartbeats(tmp_path):
    """The same with the threads: alive while beating for longer than the timeout (the
    member's own counter says how long), reported once the member stops."""
    jd = JobDir(tmp_path, "1", "0")
    jd.create()
    seen = []
    member = _watch(jd, 1)
    head = _watch(jd, 0, on_failure=seen.append)
    member.start()
    head.start()
    try:
        # 8 beats 0.1 s apart: the member has beaten for longer than the 0.6 s timeout
        assert wait_for(lambda: member.counter >= 8, 10.0), "the member does not beat"
        assert not seen  # beating: alive
        member.stop()    # the member process "dies": no more heartbeats
        assert wait_for(lambda: seen, 5.0), "no failure reported"
    finally:
        head.stop()
        member.stop()
    assert seen[0].dead and seen[0].name == "node2" and "no heartbeat" in seen[0].cause
    assert 1 in head.dead


def test_a_node_that_left_is_not_dead(tmp_path, clock):
    jd = JobDir(tmp_path, "1", "0")
    jd.create()
    seen = []
    head = _watch(jd, 0, on_failure=seen.append)
    jd.write_text("hb-1", "1 0\n")
    head.scan()
    jd.write_text("left-1", "")
    clock.advance(0.8)       # > the 0.6 s timeout without a beat
    head.scan()
    assert not seen and 1 in head.left
    jd.write_text("hb-2", "1 0\n")  # control: without left-N the same silence is death
    head2 = _watch(jd, 0, n=3, on_failure=seen.append)
    head2.left.add(1)
    head2.scan()
    clock.advance(0.8)
    head2.scan()
    assert seen and seen[0].name == "node 2" and 2 in head2.dead

# ---------------------------------------------------------------- nodes as threads


def _federation(shared: Path, node: int, n: int, tmp: Path, **settings) -> Federation:
    values: dict[str, object] = dict(
        heartbeat_interval=0.1, heartbeat_timeout=2.0, shared_check_timeout=1.5,
        api_address=f"10.79.0.{11 + node}", pod_subnet_pool="10.100.0.0/14",
        service_subnet_pool="10.104.0.0/14", systemd_scope=False, peer_concurrency=2,
        rendezvous_timeout=5.0)
    values.update(settings)
    env = SimpleNamespace(node_id=node, num_nodes=n, nodes=[f"node{i + 1}" for i in range(n)],
                          hostname=f"node{node + 1}", job_id="99", step_id="0", environ={},
                          local_id=0, proc_id=node, is_slurm=False)
    plan = Plan(
        env=env, settings=Settings.defaults().replace(**values),
        workload=None, shared_dir=shared, workdir=tmp, cluster=f"ksi-99-0-{node}-abcd",
        provider="nerdctl", image="", k8s_port=None, api_address="127.0.0.1",
        state_root=tmp / f"state{node}", report_path=tmp / f"report{node}.json",
        log_dir=tmp / "logs")
    console = SimpleNamespace(info=lambda *a: None, warn=lambda *a: None)
    return Federation(plan, console, runner=_Runner())


class _Runner:
    def which(self, program):
        return str(EMU_BIN / program) if (EMU_BIN / program).exists() else None

    def run(self, argv, **kw):  # `ip -j addr` for the LAN: pretend there is none
        return SimpleNamespace(returncode=1, stdout="", stderr="")


def _prepare_all(feds: list[Federation]) -> dict[int, object]:
    results: dict[int, object] = {}

    def go(i: int, f: Federation) -> None:
        try:
            results[i] = f.prepare()
        except KsiError as exc:
            results[i] = exc

    threads = [threading.Thread(target=go, args=(i, f)) for i, f in enumerate(feds)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_three_nodes_meet_and_get_disjoint_subnets(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    feds = [_federation(shared, i, 3, tmp_path) for i in range(3)]
    try:
        res = _prepare_all(feds)
        assert all(isinstance(r, str) for r in res.values()), res
        assert [f.plan.api_address for f in feds] == ["10.79.0.11", "10.79.0.12", "10.79.0.13"]
        assert len({f.plan.pod_subnet for f in feds}) == 3
        assert {f.plan.gateway_nodeport for f in feds} == {32767}
        roster = feds[0].jobdir.read("roster.json")
        assert set(roster["nonces"]) == {"0", "1", "2"}
        assert stat.S_IMODE(os.stat(feds[0].jobdir.path).st_mode) == 0o700
    finally:
        for f in reversed(feds):  # the head (the closer) waits for the members to leave
            f.close()
    assert not (shared / ".ksi").exists()  # the head removed it once everyone left


def test_not_shared_directory_is_named_on_every_node(tmp_path):
    feds = []
    for i in range(3):
        d = tmp_path / f"node{i + 1}-only"
        d.mkdir()
        feds.append(_federation(d, i, 3, tmp_path))
    try:
        start = time.monotonic()
        res = _prepare_all(feds)
        assert time.monotonic() - start < 15
    finally:
        for f in feds:
            f.close()
    head = res[0]
    assert isinstance(head, KsiError) and head.code == Exit.RENDEZVOUS_FAILED
    assert "SHARED_DIR is not shared between nodes: node2 and node3 did not appear in" \
        in head.cause
    assert "pass a directory on a shared filesystem" in head.fix
    for i in (1, 2):
        assert isinstance(res[i], KsiError) and "is not shared" in res[i].cause
        assert "the head node1 did not see" in res[i].cause
    for i in range(3):
        assert not list((tmp_path / f"node{i + 1}-only").glob(".ksi/*"))


def test_a_member_failure_before_the_clusters_reaches_the_head(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    head = _federation(shared, 0, 2, tmp_path)
    member = _federation(shared, 1, 2, tmp_path, api_address="not-an-ip")
    try:
        res = _prepare_all([head, member])
        assert isinstance(res[1], KsiError) and "api_address" in res[1].cause
        member.publish_failure(res[1])  # what the rendezvous step does when it fails
        assert wait_for(lambda: head.abort_error, 5.0)
        assert head.abort_error.code == Exit.MEMBER_FAILED
        assert head.abort_error.cause.startswith("node2 failed: api_address")
    finally:
        member.close()
        head.close()


def test_ready_virtual_nodes_are_read_from_one_get():
    """The head's wait counts a member only when its virtual node is Ready (a registered but
    NotReady node does not count); kubectl's error line is kept for the timeout message."""
    import json

    from ksi.access.kubectl import Kubectl

    def node(cid: str, status: str) -> dict:
        return {"metadata": {"labels": {"liqo.io/type": "virtual-node",
                                        "liqo.io/remote-cluster-id": cid}},
                "status": {"conditions": [{"type": "MemoryPressure", "status": "False"},
                                          {"type": "Ready", "status": status}]}}

    class OneAnswer:
        def __init__(self, code: int, out: str, err: str = "") -> None:
            self.answer = SimpleNamespace(returncode=code, stdout=out, stderr=err)
            self.argv: list[str] = []

        def run(self, argv, **_kw):
            self.argv = argv
            return self.answer

    listing = json.dumps({"kind": "List", "items": [node("a", "True"), node("b", "False"),
                                                      node("c", "Unknown")]})
    runner = OneAnswer(0, listing)
    kc = Kubectl(runner, Path("/nonexistent"), "ctx")  # type: ignore[arg-type]
    assert kc.ready_node_labels("liqo.io/type=virtual-node",
                                "liqo.io/remote-cluster-id") == ({"a"}, "")
    assert runner.argv[-6:] == ["get", "nodes", "-l", "liqo.io/type=virtual-node",
                                "-o", "json"]
    down = Kubectl(OneAnswer(1, "", "error: the server doesn't have a resource type\n"
                                    "Unable to connect to the server: EOF\n"),  # type: ignore[arg-type]
                   Path("/nonexistent"), "ctx")
    assert down.ready_node_labels("x=y", "z") == (set(), "Unable to connect to the server: EOF")
