"""Providers: typed info, ps, inspect and network records parsed from the runtimes' JSON, the
auto choice."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ksi.errors import Exit, KsiError
from ksi.provision import providers
from ksi.provision.providers.base import parse_ps, sbin_path
from ksi.runner import Runner


def _emu(env: dict[str, str], *argv: str) -> None:
    subprocess.run(list(argv), env=env, check=True, capture_output=True, timeout=60)


@pytest.mark.parametrize("name", ["nerdctl", "podman"])
@pytest.mark.parametrize("rootless", ["1", "0"])
def test_info_is_typed_and_asked_once(emu_env: dict, monkeypatch: pytest.MonkeyPatch,
                                      name: str, rootless: str) -> None:
    for k, v in {**emu_env, "KSI_EMU_ROOTLESS": rootless, "KSI_EMU_CGROUP_DRIVER": "cgroupfs"
                 }.items():
        monkeypatch.setenv(k, v)
    runner = Runner()
    calls: list[list[str]] = []
    real_run = runner.run
    runner.run = lambda argv, **kw: calls.append(list(argv)) or real_run(argv, **kw)  # type: ignore[method-assign]
    prov = providers.get(name, runner)
    info = prov.info()
    assert info.rootless is (rootless == "1")
    assert info.cgroup_version == 2 and info.cgroup_manager == "cgroupfs"
    assert info.version
    assert prov.info() is info and len(calls) == 1
    assert calls[0] == [name, "info", "--format", "json" if name == "podman" else "{{json .}}"]


def test_info_of_a_daemon_that_is_down_is_runtime_unavailable(emu_env: dict,
                                                              monkeypatch) -> None:
    for k, v in {**emu_env, "KSI_EMU_FAIL": "runtime:daemon"}.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(KsiError) as exc:
        providers.get("nerdctl", Runner()).check_daemon()
    assert exc.value.code == Exit.RUNTIME_UNAVAILABLE
    assert "rootless containerd not running" in exc.value.line()


@pytest.mark.parametrize("name", ["nerdctl", "podman"])
def test_ps_json_finds_the_kind_nodes(emu_env: dict, monkeypatch, name: str) -> None:
    for k, v in emu_env.items():
        monkeypatch.setenv(k, v)
    for node, cluster in (("a-control-plane", "a"), ("b-control-plane", "b")):
        _emu(emu_env, name, "run", "-d", "--name", node, "--label",
             f"io.x-k8s.kind.cluster={cluster}", "--label", "io.x-k8s.kind.role=control-plane",
             "kindest/node:v1.31.0")
    _emu(emu_env, name, "run", "-d", "--name", "other", "busybox")
    prov = providers.get(name, Runner())
    assert prov.node_containers("a") == ["a-control-plane"]
    assert sorted(prov.all_kind_containers()) == [("a-control-plane", "a"),
                                                  ("b-control-plane", "b")]
    _emu(emu_env, name, "stop", "b-control-plane")
    assert prov.all_kind_containers(running=True) == [("a-control-plane", "a")]
    pid = prov.container_pid("a-control-plane")   # from inspect's JSON
    assert isinstance(pid, int) and pid > 0
    assert prov.container_pid("b-control-plane") is None   # stopped: State.Pid 0
    assert prov.container_pid("nope") is None


@pytest.mark.parametrize("name", ["nerdctl", "podman"])
def test_network_subnets_from_inspect_json(emu_env: dict, monkeypatch, name: str) -> None:
    for k, v in emu_env.items():
        monkeypatch.setenv(k, v)
    prov = providers.get(name, Runner())
    assert prov.network_subnets("kind") == []          # no such network
    _emu(emu_env, name, "network", "create", "kind")
    [subnet] = prov.network_subnets("kind")
    assert subnet.endswith(".0/24")


def test_parse_ps_shapes() -> None:
    podman = json.dumps([{"Names": ["n1"], "Labels": {"io.x-k8s.kind.cluster": "c"}}])
    assert [(c.name, c.cluster) for c in parse_ps(podman)] == [("n1", "c")]
    # nerdctl/docker: an object a line; labels "k=v,..." whose values may hold commas
    ports = 'nerdctl/ports=[{"HostPort":1,"ContainerPort":6443},{"HostPort":2}]'
    line = json.dumps({"Names": "n2", "Labels": f"{ports},io.x-k8s.kind.cluster=c2,x=1"})
    [c] = parse_ps(line + "\n")
    assert c.name == "n2" and c.cluster == "c2" and c.labels["x"] == "1"
    assert c.labels["nerdctl/ports"] == ports.partition("=")[2]
    assert parse_ps("") == []


def test_auto_is_the_first_runtime_on_path() -> None:
    assert providers.resolve("auto", {"podman": "/bin/podman"}.get) == "podman"
    assert providers.resolve("auto", {"podman": "/p", "nerdctl": "/n"}.get) == "nerdctl"
    assert providers.resolve("docker", {}.get) == "docker"
    with pytest.raises(KsiError) as exc:
        providers.resolve("auto", {}.get)
    assert exc.value.code == Exit.PROVIDER_MISSING
    with pytest.raises(KsiError) as exc:
        providers.resolve("lxc", {}.get)
    assert exc.value.code == Exit.PROVIDER_UNKNOWN


@pytest.mark.parametrize("name", ["nerdctl", "podman"])
def test_versions_from_json(emu_env: dict, monkeypatch, name: str) -> None:
    for k, v in emu_env.items():
        monkeypatch.setenv(k, v)
    v = providers.get(name, Runner()).versions()
    assert v is not None and v.client.lstrip("v")[:1].isdigit()
    if name == "nerdctl":
        assert "containerd" in v.server
        monkeypatch.setenv("KSI_EMU_FAIL", "runtime:daemon")   # client only, exit 0
        down = providers.get(name, Runner()).versions()
        assert down is not None and down.client == v.client and down.server == {}


def test_versions_of_a_missing_runtime(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert providers.get("podman", Runner()).versions() is None


@pytest.mark.parametrize(("path", "want"), [
    ("/usr/local/bin:/usr/bin:/bin", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"),
    ("/usr/bin:/sbin:/bin", "/usr/bin:/sbin:/bin:/usr/sbin"),
    ("/usr/sbin:/usr/bin:/sbin", "/usr/sbin:/usr/bin:/sbin"),
])
def test_sbin_path_appends_only_what_is_missing(path: str, want: str) -> None:
    assert sbin_path(path) == want


def test_the_runtime_and_kind_get_sbin_on_path(monkeypatch, tmp_path: Path) -> None:
    """A Debian user's PATH (no sbin): nerdctl's CNI bridge plugin needs ip6tables from
    /usr/sbin. The runner's PATH (the bypass4netns shim first) is kept in front."""
    fake = tmp_path / "nerdctl"   # prints the PATH it was given as its client version
    fake.write_text('#!/bin/sh\nprintf \'{"Client": {"Version": "%s"}}\' "$PATH"\n')
    fake.chmod(0o755)
    user_path = f"{tmp_path}:/usr/local/bin:/usr/bin:/bin"
    monkeypatch.setenv("PATH", user_path)
    runner = Runner()
    prov = providers.get("nerdctl", runner, env={"XDG_RUNTIME_DIR": "/run/user/1"})
    assert prov.env == {"XDG_RUNTIME_DIR": "/run/user/1", "PATH": user_path + ":/usr/sbin:/sbin"}
    v = prov.versions()
    assert v is not None and v.client == user_path + ":/usr/sbin:/sbin"
    runner.extra_env["PATH"] = "/shim:" + user_path
    assert prov.kind_env() == {"KIND_EXPERIMENTAL_PROVIDER": "nerdctl",
                               "PATH": "/shim:" + user_path + ":/usr/sbin:/sbin"}
