"""Warm start with fakes (the real thing: tests/e2e/test_realkind_warm.py): the template key,
the record and its checksum, the store, the /var digest, the clone's podman run, the clone's
wait, a build that fails leaving nothing, and the provision step's fallback to cold."""

from __future__ import annotations

import io
import json
import os
import shlex
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Sequence

import pytest

from ksi.errors import Exit, KsiError
from ksi.provision.providers import noderun
from ksi.provision.providers.podman import PodmanProvider
from ksi.runner import Result, Runner
from ksi.warm import template as t
from ksi.warm.template import Inputs, Record, Store, TemplateProblem


class FakePodman(Runner):
    """A podman (and kind, kubectl) that keeps images and volumes in memory (volumes are
    directories under root); `fail` maps a command prefix to the stderr it fails with."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root
        self.images: dict[str, str] = {"node:1": "sha256:node1"}
        self.volumes: dict[str, Path] = {}
        self.calls: list[list[str]] = []
        self.fail: dict[str, str] = {}
        self.exports_before_ok = 0
        self.rootless = False

    def which(self, program: str, env: Any = None) -> Optional[str]:
        return f"/usr/bin/{program}"

    def run(self, argv: Sequence[str], **kw: Any) -> Result:  # type: ignore[override]
        argv = [str(a) for a in argv]
        self.calls.append(argv)
        line = " ".join(argv)
        for prefix, err in self.fail.items():
            if line.startswith(prefix):
                return self._done(argv, 1, "", err, kw)
        out, rc = self._answer(argv)
        return self._done(argv, rc, out, "" if rc == 0 else "Error: no such object", kw)

    def _done(self, argv: list[str], rc: int, out: str, err: str, kw: dict) -> Result:
        from ksi.errors import CommandFailed

        if rc != 0 and kw.get("check", True):
            raise CommandFailed(f"{kw.get('what') or argv[0]} failed: {err}", kw.get("fix", ""),
                                code=kw.get("code", Exit.INTERNAL), argv=argv, stdout=out,
                                stderr=err)
        return Result(argv, rc, out, err, 0.0)

    def _answer(self, argv: list[str]) -> tuple[str, int]:
        a = argv[1:]
        if argv[0] == "podman":
            if a[:1] == ["info"]:
                return json.dumps({"host": {"security": {"rootless": self.rootless}},
                                   "store": {"graphDriverName": "overlay"}}), 0
            if a[:2] == ["image", "inspect"]:
                i = self.images.get(a[2])
                return (json.dumps([{"Id": i, "Config": {"Entrypoint": ["/e"],
                                                         "Cmd": ["/sbin/init"]}}]), 0) \
                    if i else ("", 125)
            if a[:2] == ["volume", "inspect"]:
                v = self.volumes.get(a[2])
                return (json.dumps([{"Mountpoint": str(v)}]), 0) if v else ("", 125)
            if a[:2] == ["volume", "create"]:
                name = a[-1] if not a[-1].startswith("--") else f"anon{len(self.volumes)}"
                self.volumes[name] = self.root / "vols" / name
                self.volumes[name].mkdir(parents=True)
                return name + "\n", 0
            if a[:1] == ["commit"]:
                self.images[a[-1]] = f"sha256:{a[-1]}"
                return self.images[a[-1]] + "\n", 0
            if a[:1] == ["images"]:   # --filter label=io.ksi.warm --format json
                return json.dumps([{"Names": [n], "Labels": {t.LABEL: n.rsplit(":", 1)[1]}}
                                   for n in self.images if n.startswith("localhost/ksi-warm:")
                                   ]), 0
            if a[:2] == ["image", "rm"]:
                return ("", 0) if self.images.pop(a[-1], None) else ("", 1)
            if a[:2] == ["volume", "ls"] and "--quiet" in a:
                node = a[a.index("--filter") + 1].removeprefix("label=")
                return "\n".join(n for n in self.volumes if n == f"{node}-var"), 0
            if a[:2] == ["volume", "rm"]:
                for n in a[3:]:
                    self.volumes.pop(n, None)
            return "", 0
        if argv[0] == "kubectl" and "namespaces" in a:
            return "namespace/default\nnamespace/kube-system\n", 0
        if argv[0] == "kubectl" and "pods" in a and "json" in a:
            return json.dumps({"items": [
                {"metadata": {"namespace": "kube-system", "name": "kube-proxy-x"}},
                {"metadata": {"namespace": "kube-system", "name": "etcd-n", "annotations": {
                    "kubernetes.io/config.mirror": "1"}}}]}), 0
        if argv[0] == "kind" and a[:2] == ["create", "cluster"]:   # kind's anonymous /var
            name = f"{a[a.index('--name') + 1]}-control-plane-var"
            self.volumes[name] = self.root / "vols" / name
            self.volumes[name].mkdir(parents=True)
        if argv[0] == "kind" and a[:2] == ["export", "kubeconfig"]:
            self.exports_before_ok -= 1
            if self.exports_before_ok >= 0:
                return "", 1
            Path(a[a.index("--kubeconfig") + 1]).write_text("apiVersion: v1\n")
            return "", 0
        return "", 0

    def ran(self, *words: str) -> list[list[str]]:
        return [c for c in self.calls if all(w in c for w in words)]


def inputs(**changes: Any) -> Inputs:
    base = dict(image="node:1", image_id="sha256:node1", provider="podman", ksi_version="0.1.0",
                node_config={"networking": {"apiServerPort": 0}})
    return Inputs(**{**base, **changes})


def record(inp: Inputs, **changes: Any) -> Record:
    base = dict(key=inp.key, uid=os.getuid(), inputs=asdict(inp),
                template_image_id=f"sha256:{inp.names().image}", volume=inp.names().volume,
                var_digest="", entrypoint=["/kind/ksi-clone-entrypoint", "/e"],
                cmd=["/sbin/init"])
    return Record(**{**base, **changes})


# ------------------------------------------------------------------ key and config
def _plan(tmp_path: Path, **settings_: Any):  # noqa: ANN202
    from ksi import settings
    from ksi.jobenv import LocalEnvironment
    from ksi.plan.plan import make_plan

    s = settings.load(settings_, environ={"KSI_SITE_CONFIG": "/nonexistent",
                                          "KSI_USER_CONFIG": "/nonexistent"})
    return make_plan(LocalEnvironment({}), s, workload=None, shared_dir=None, environ={},
                     workdir=tmp_path)


def test_the_key_ignores_what_each_run_sets_and_follows_what_goes_into_the_node(
        tmp_path: Path) -> None:
    from ksi.warm.build import config_for

    a = (tmp_path / "a")
    b = (tmp_path / "b")
    a.mkdir()
    b.mkdir()
    one = t.node_config(_plan(a).kind_config(30001, 41001))
    two = t.node_config(_plan(b).kind_config(30002, 41002))
    assert one == two == config_for(_plan(a).settings)   # what `ksi warm` makes fits a run
    mirrored = t.node_config(_plan(a, registry_mirrors="docker.io=http://m").kind_config(1, 2))
    assert mirrored != one
    assert inputs(node_config=one).key == inputs(node_config=two).key
    for change in ({"node_config": mirrored}, {"image_id": "sha256:other"},
                   {"ksi_version": "0.2.0"}, {"liqo": "v1.0.1"}, {"store": "/other"}):
        assert inputs(**{"node_config": one, **change}).key != inputs(node_config=one).key, change


@pytest.mark.parametrize(("config", "provider", "mode", "why"), [
    ({"nodes": [{}]}, "podman", "federated", "single-node only"),
    ({"nodes": [{}]}, "nerdctl", "single", "podman only"),
    ({"nodes": [{}, {"role": "worker"}]}, "podman", "single", "2 nodes"),
    ({"nodes": [{"extraMounts": [{"containerPath": "/dev/nvidia0"}]}]}, "podman", "single",
     "/dev/nvidia0"),
    ({"nodes": [{"extraMounts": [{"containerPath": "/app"}]}]}, "podman", "single", None),
])
def test_runs_warm_start_is_not_for_are_named(config: dict, provider: str, mode: str,
                                             why: Optional[str]) -> None:
    got = t.unsupported(config, provider, mode)
    assert (got is None) if why is None else (why in (got or "")), got


# ------------------------------------------------------------------ record and store
def test_a_record_changed_after_it_was_written_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path / "warm")
    inp = inputs()
    store.write(record(inp))
    assert store.read(inp).key == inp.key
    assert os.stat(store.path(inp.key)).st_mode & 0o777 == 0o600
    assert os.stat(store.dir).st_mode & 0o777 == 0o700
    data = json.loads(store.path(inp.key).read_text())
    data["volume"] = "someone-elses-volume"
    store.path(inp.key).write_text(json.dumps(data))
    with pytest.raises(TemplateProblem, match="changed since it was written"):
        store.read(inp)
    store.path(inp.key).write_text("{not json")
    with pytest.raises(TemplateProblem, match="unreadable"):
        store.read(inp)


def test_a_record_others_can_read_is_not_used(tmp_path: Path) -> None:
    store = Store(tmp_path / "warm")
    inp = inputs()
    store.write(record(inp))
    os.chmod(store.path(inp.key), 0o644)
    with pytest.raises(TemplateProblem, match="not private"):
        store.read(inp)


def test_a_missing_template_says_whether_one_exists_for_other_inputs(tmp_path: Path) -> None:
    store = Store(tmp_path / "warm")
    with pytest.raises(TemplateProblem, match="no warm template yet"):
        store.read(inputs())
    store.write(record(inputs(image_id="sha256:old")))
    with pytest.raises(TemplateProblem, match="stale: image_id changed"):
        store.read(inputs())


def test_the_var_digest_sees_a_changed_truncated_or_added_file(tmp_path: Path) -> None:
    var = tmp_path / "var"
    (var / "lib" / "etcd").mkdir(parents=True)
    db = var / "lib" / "etcd" / "db"
    db.write_bytes(b"x" * 100)
    first = t.var_digest(var)
    assert t.var_digest(var) == first
    os.truncate(db, 10)
    assert t.var_digest(var) != first
    db.write_bytes(b"x" * 100)
    os.utime(db, ns=(1, 1))
    assert t.var_digest(var) != first
    second = t.var_digest(var)
    (var / "lib" / "new").write_text("")
    assert t.var_digest(var) != second


# ------------------------------------------------------------------ the clone's podman run
def test_the_clone_runs_as_kind_runs_a_node_with_this_runs_name_ports_and_app(
        tmp_path: Path) -> None:
    p = PodmanProvider(Runner())
    node = {"role": "control-plane", "extraMounts": [{"hostPath": str(tmp_path),
                                                       "containerPath": "/app"}],
            "extraPortMappings": [{"containerPort": 30123, "hostPort": 30123,
                                   "listenAddress": "0.0.0.0", "protocol": "TCP"}]}
    argv = noderun.run_argv(p, name="ksi-local-abc123-control-plane",
                            hostname="ksiwarm-0123456789-control-plane",
                            cluster="ksi-local-abc123", image="localhost/ksi-warm:0123",
                            volume="vol1", node=node, api_address="127.0.0.1", api_port=41007,
                            rootless=False)
    line = shlex.join(argv)
    assert argv[:4] == ["podman", "run", "--name", "ksi-local-abc123-control-plane"]
    assert "--hostname ksiwarm-0123456789-control-plane" in line
    assert "--label io.x-k8s.kind.cluster=ksi-local-abc123" in line
    assert "--label io.x-k8s.kind.role=control-plane" in line
    assert "--volume vol1:/var:suid,exec,dev" in line and "--privileged" in line
    assert f"--volume={tmp_path}:/app" in argv
    assert "--publish=0.0.0.0:30123:30123/tcp" in argv
    assert "--publish=127.0.0.1:41007:6443/tcp" in argv
    assert argv[-1] == "localhost/ksi-warm:0123" and "/dev/fuse" not in argv
    rootless = noderun.run_argv(p, name="n", hostname="h", cluster="c", image="i",
                                volume="v", node={}, api_address="127.0.0.1", api_port=1,
                                rootless=True)
    assert "/dev/fuse" in rootless
    assert noderun.copy_argv(p, "/a", "/b", True)[:3] == ["podman", "unshare", "bash"]
    assert noderun.copy_argv(p, "/a/", "/b", False, link_all=True) == ["cp", "-al", "/a/.",
                                                                       "/b/"]


def test_the_copy_links_the_content_store_and_copies_the_rest(tmp_path: Path) -> None:
    """A clone writing its copy never changes the template; blobs are shared inodes."""
    src, dst = tmp_path / "src", tmp_path / "dst"
    blob = src / noderun.SHARED / "blobs" / "sha256" / "abc"
    blob.parent.mkdir(parents=True)
    blob.write_text("layer")
    (src / "lib" / "etcd").mkdir(parents=True)
    (src / "lib" / "etcd" / "db").write_text("etcd")
    (src / ".hidden").write_text("")
    os.chmod(src / "lib", 0o711)
    dst.mkdir()
    Runner().run(noderun.copy_argv(PodmanProvider(Runner()), str(src), str(dst), False))
    copied_blob = dst / noderun.SHARED / "blobs" / "sha256" / "abc"
    assert copied_blob.stat().st_ino == blob.stat().st_ino
    assert (dst / "lib/etcd/db").stat().st_ino != (src / "lib/etcd/db").stat().st_ino
    assert (dst / ".hidden").exists() and (dst / "lib").stat().st_mode & 0o777 == 0o711
    assert t.var_digest(dst) == t.var_digest(src)
    (dst / "lib/etcd/db").write_text("changed by the clone")
    copied_blob.unlink()
    assert (src / "lib/etcd/db").read_text() == "etcd" and blob.read_text() == "layer"


# ------------------------------------------------------------------ check, start, build
def _template(tmp_path: Path) -> tuple[FakePodman, PodmanProvider, Store, Inputs, Record]:
    from ksi.warm.build import tree_digest

    fake = FakePodman(tmp_path)
    prov = PodmanProvider(fake)
    inp = inputs()
    names = inp.names()
    fake.images[names.image] = f"sha256:{names.image}"
    fake.volumes[names.volume] = tmp_path / "tvar"
    (tmp_path / "tvar" / "lib").mkdir(parents=True)
    (tmp_path / "tvar" / "lib" / "f").write_text("data")
    rec = record(inp, var_digest=tree_digest(prov, str(tmp_path / "tvar"), False))
    store = Store(tmp_path / "warm")
    store.write(rec)
    return fake, prov, store, inp, rec


def test_check_finds_a_replaced_image_a_missing_volume_and_a_changed_var(
        tmp_path: Path) -> None:
    from ksi.warm import clone

    fake, prov, store, inp, rec = _template(tmp_path)
    assert clone.check(prov, store, inp).key == rec.key
    (tmp_path / "tvar" / "lib" / "f").write_text("changed!")
    with pytest.raises(TemplateProblem, match="changed since it was made"):
        clone.check(prov, store, inp)
    del fake.volumes[rec.volume]
    with pytest.raises(TemplateProblem, match="volume .* is missing"):
        clone.check(prov, store, inp)
    fake.images[rec.names.image] = "sha256:replaced"
    with pytest.raises(TemplateProblem, match="was replaced"):
        clone.check(prov, store, inp)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def pause(self, s: float) -> None:
        self.now += s


def test_a_clone_waits_for_its_fresh_admin_kubeconfig_then_its_api(tmp_path: Path) -> None:
    from ksi.provision.kind import Kind
    from ksi.warm import clone

    fake, prov, _store, _inp, rec = _template(tmp_path)
    fake.exports_before_ok = 3     # the clone entrypoint has not moved admin.conf in yet
    clock = Clock()
    kubeconfig = tmp_path / "kubeconfig"
    config = {"nodes": [{"extraMounts": [{"hostPath": str(tmp_path), "containerPath": "/app"}]}]}
    clone.start(prov, Kind(fake, prov), rec, cluster="ksi-local-aaaaaa", config=config,
                api_address="127.0.0.1", api_port=41000, kubeconfig=kubeconfig, timeout=30,
                clock=clock, pause=clock.pause)
    assert len(fake.ran("export", "kubeconfig")) == 4 and clock.now == pytest.approx(0.6)
    assert os.stat(kubeconfig).st_mode & 0o777 == 0o600
    run = fake.ran("podman", "run")[0]
    assert run[run.index("--name") + 1] == "ksi-local-aaaaaa-control-plane"
    created = fake.ran("volume", "create")[0]
    assert "--label=ksi-local-aaaaaa-control-plane=true" in created   # kind's volume label
    assert fake.ran("bash", noderun.SHARED) and fake.ran("get", "--raw", "/livez")
    # the template's pods go (they hold its CA), the node's static pods stay
    assert fake.ran("kubectl", "apply") and fake.ran("delete", "pod", "kube-proxy-x")
    assert not fake.ran("delete", "pod", "etcd-n")


def test_a_clone_that_does_not_come_up_in_time_is_a_template_problem(tmp_path: Path) -> None:
    from ksi.provision.kind import Kind
    from ksi.warm import clone

    fake, prov, _store, _inp, rec = _template(tmp_path)
    fake.fail["kubectl"] = "connection refused"
    clock = Clock()
    with pytest.raises(TemplateProblem, match="too slow: the clone's API server"):
        clone.start(prov, Kind(fake, prov), rec, cluster="c", config={}, api_address="x",
                    api_port=1, kubeconfig=tmp_path / "kc", timeout=5, clock=clock,
                    pause=clock.pause)
    assert clock.now == pytest.approx(5.0, abs=0.3)


def test_a_failed_build_leaves_no_half_template(tmp_path: Path) -> None:
    from ksi.provision.kind import Kind
    from ksi.warm.build import build

    fake = FakePodman(tmp_path)
    prov = PodmanProvider(fake)
    store = Store(tmp_path / "warm")
    inp = inputs(node_config={"nodes": [{"role": "control-plane"}]})
    fake.fail["cp -al"] = "cp: No space left on device"   # after the commit, the volume
    with pytest.raises(KsiError) as exc:
        build(prov, Kind(fake, prov), store, inp, inp.node_config)
    assert "No space left" in exc.value.line() and exc.value.code == Exit.WARM_FAILED
    assert fake.ran("commit")                     # it got that far
    assert inp.names().image not in fake.images   # and took it all back
    assert inp.names().volume not in fake.volumes
    assert not store.path(inp.key).exists()
    assert fake.ran("kind", "delete", "cluster")


def test_only_one_build_of_a_template_at_a_time(tmp_path: Path) -> None:
    from ksi.warm.build import build_lock

    store = Store(tmp_path / "warm")
    with build_lock(store, "k"), pytest.raises(KsiError, match="another 'ksi warm'"), \
            build_lock(store, "k"):
        pass
    with build_lock(store, "k"):
        pass


# ------------------------------------------------------------------ the step
@pytest.fixture
def ctx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    from ksi import settings
    from ksi.jobenv import LocalEnvironment
    from ksi.output import Console
    from ksi.plan.plan import make_plan
    from ksi.run.context import RunContext
    from ksi.run.options import RunOptions

    for k in list(os.environ):
        if k.startswith(("KSI_", "SLURM_", "K8S_")):
            monkeypatch.delenv(k)
    c = RunContext(RunOptions(workload=None, shared_dir=None), Console(stream=io.StringIO()),
                   FakePodman(tmp_path))
    s = settings.load({"provider": "podman", "image": "node:1",
                       "warm_dir": str(tmp_path / "warm")},
                      environ={"KSI_SITE_CONFIG": "/nonexistent",
                               "KSI_USER_CONFIG": "/nonexistent"})
    c.plan = make_plan(LocalEnvironment({}), s, workload=None, shared_dir=None, environ={},
                       workdir=tmp_path)
    c.state.k8s_port, c.state.api_port = 30100, 41100
    return c


def _cold(log: list[str]):  # noqa: ANN202
    def run(self, ctx) -> str:  # noqa: ANN001
        log.append("cold")
        return "kind cluster"
    return run


def test_the_step_warns_once_and_creates_cold_when_the_template_is_stale(
        ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ksi.run.steps.provision import Provision
    from ksi.run.steps.warmstart import WarmStart
    from ksi.warm.build import config_for

    log: list[str] = []
    monkeypatch.setattr(Provision, "run", _cold(log))
    old = inputs(image_id="sha256:old", node_config=config_for(ctx.plan.settings),
                 store=str(tmp_path / "warm"))
    Store(tmp_path / "warm").write(record(old))   # opted in
    detail = WarmStart().run(ctx)
    out = ctx.console.stream.getvalue()
    assert log == ["cold"] and ctx.state.start == "cold"
    assert out.count("warning:") == 1 and "warm template stale: image_id changed" in out
    assert "creating the cluster cold" in out and "(cold: warm template stale" in detail


def test_without_any_template_the_step_is_quietly_cold_and_cold_never_looks(
        ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from ksi.run.steps.provision import Provision
    from ksi.run.steps.warmstart import WarmStart

    log: list[str] = []
    monkeypatch.setattr(Provision, "run", _cold(log))
    detail = WarmStart().run(ctx)
    assert "warning" not in ctx.console.stream.getvalue()
    assert "(cold: no warm template yet" in detail and ctx.state.warm_reason
    ctx.runner.calls.clear()
    ctx.plan = dataclasses.replace(ctx.plan, settings=ctx.plan.settings.replace(warm="off"))
    ctx.state.warm_reason = ""
    assert WarmStart().run(ctx) == "kind cluster" and ctx.runner.calls == []


def test_the_step_clones_a_valid_template(ctx, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from ksi.run.steps.warmstart import WarmStart
    from ksi.warm import clone
    from ksi.warm.build import config_for

    fake: FakePodman = ctx.runner
    inp = inputs(node_config=config_for(ctx.plan.settings), store=str(tmp_path / "warm"))
    fake.images[inp.names().image] = f"sha256:{inp.names().image}"
    Store(tmp_path / "warm").write(record(inp))
    monkeypatch.setattr(clone, "check", lambda prov, store, i: store.read(i))
    started: list[dict] = []
    monkeypatch.setattr(clone, "start", lambda *a, **kw: started.append(kw) or 2.5)
    monkeypatch.setattr(type(ctx.rt), "after_create", lambda self, cluster: None)
    detail = WarmStart().run(ctx)
    assert detail.startswith(f"warm clone of template {inp.key[:12]}") and "2.5s" in detail
    assert ctx.state.start == "warm" and ctx.state.created
    assert started[0]["cluster"] == ctx.plan.cluster and started[0]["api_port"] == 41100


def test_gc_removes_its_own_half_made_template_never_another_stores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ksi import settings
    from ksi.ops import warm

    fake = FakePodman(tmp_path)
    mine, theirs = "a" * 64, "b" * 64
    for key in (mine, theirs):   # built, then killed before the record: image only
        fake.images[f"localhost/ksi-warm:{key}"] = f"sha256:{key}"
    store = Store(tmp_path / "warm")
    store.ensure()
    store.lock_path(mine).touch()   # this store started building it
    s = settings.load({"provider": "podman", "warm_dir": str(store.dir)},
                      environ={"KSI_SITE_CONFIG": "/x", "KSI_USER_CONFIG": "/x"})
    monkeypatch.setattr(noderun, "volume_mountpoint", lambda p, n: None)
    lines, problems = warm.remove(s, fake, only_stale=True, dry_run=True)
    assert lines == [f"would remove template {mine[:12]} (half made)"] and problems == []
    lines, problems = warm.remove(s, fake, only_stale=True)
    assert lines == [f"removed template {mine[:12]} (half made)"]
    assert fake.ran("image", "rm", "--force", f"localhost/ksi-warm:{mine[:12]}")
    assert not fake.ran("image", "rm", "--force", f"localhost/ksi-warm:{theirs[:12]}")


def test_warm_build_makes_the_missing_template_then_clones_it(
        ctx, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from ksi.run.steps.warmstart import WarmStart
    from ksi.warm import build as b
    from ksi.warm import clone

    ctx.plan = dataclasses.replace(ctx.plan, settings=ctx.plan.settings.replace(warm="build"))
    made: list[Inputs] = []

    def fake_build(prov, kind, store, inp, config, timeout):  # noqa: ANN001, ANN202
        made.append(inp)
        return record(inp)

    monkeypatch.setattr(b, "build", fake_build)
    monkeypatch.setattr(clone, "start", lambda *a, **kw: 3.0)
    monkeypatch.setattr(type(ctx.rt), "after_create", lambda self, cluster: None)
    detail = WarmStart().run(ctx)
    assert len(made) == 1 and made[0].store == str(tmp_path / "warm")
    assert ctx.state.start == "warm" and detail.startswith("warm clone of template")
    assert "making this user's warm template first" in ctx.console.stream.getvalue()


def test_nothing_labelled_is_an_empty_list_not_an_error(tmp_path: Path) -> None:
    """podman prints `[]` when no image carries the label (after `ksi warm --rm`, say)."""
    fake = FakePodman(tmp_path)
    prov = PodmanProvider(fake)
    assert noderun.labelled(prov, "image", t.LABEL) == []
    fake.images["localhost/ksi-warm:abc"] = "sha256:abc"
    assert noderun.labelled(prov, "image", t.LABEL) == [("localhost/ksi-warm:abc", "abc")]
