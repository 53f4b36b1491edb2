"""End-to-end prerequisites: a real node (real kind, a reachable rootless runtime, kubectl,
cgroup v2), or - opted in with KSI_E2E_PROVIDER=podman - root podman with the locally built
kind cache (tests/e2e/build/build-cache.sh: kind in $KSI_E2E_CACHE/bin, the node image
localhost/ksi-kind-node:<version> in root podman).

`real_stack_missing()` returns None when the stack is there, else one string naming exactly
what is missing; e2e tests skip with it. `real_stack()` describes the stack found.

Environment:
  KSI_E2E_PROVIDER     unset: rootless nerdctl (KSI's default), else rootless podman;
                       "podman": root podman + the kind cache (cgroup v1 is accepted there)
  KSI_E2E_CACHE        the kind cache (default /var/cache/ksi-e2e)
  KSI_E2E_NODE_IMAGE   node image in root podman (default localhost/ksi-kind-node:v1.34.4)
  KSI_E2E_IMAGE_ARCHIVES  directory of workload image archives (`ksi images save`) that
                       are preloaded into the cluster in podman mode (default
                       $KSI_E2E_CACHE/example-images)
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parents[2]
EMULATOR = ROOT / "tests" / "emulator"
DEFAULT_CACHE = "/var/cache/ksi-e2e"
DEFAULT_NODE_IMAGE = "localhost/ksi-kind-node:v1.34.4"
CGROUP = "/sys/fs/cgroup"


@dataclass
class Stack:
    """What the e2e tests run on."""

    provider: str                      # nerdctl | podman (KSI_PROVIDER)
    rootless: bool
    env: dict[str, str] = field(default_factory=dict)   # added to the test environment
    # Images the node has without pulling (None: the node pulls from registries).
    preloaded: Optional[set[str]] = None
    archive_dir: Optional[Path] = None  # workload image archives (podman mode)


def _run(cmd: list[str], env: Optional[dict[str, str]] = None,
         timeout: float = 60) -> tuple[int, str, str]:
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, **(env or {})})
    except FileNotFoundError:
        return 127, "", f"{cmd[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{' '.join(cmd)} timed out after {timeout:.0f}s"
    return r.returncode, r.stdout, r.stderr


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.strip().splitlines() if x.strip()]
    return lines[-1][:200] if lines else "no output"


def _under_emulator(path: str) -> bool:
    real = Path(os.path.realpath(path))
    return real == EMULATOR or EMULATOR in real.parents


def _real_binary(name: str, path: str) -> tuple[Optional[str], Optional[str]]:
    """(binary, None) or (None, what is wrong): the emulator's stand-ins do not count."""
    found = shutil.which(name, path=path)
    if not found:
        return None, f"{name} (not on PATH)"
    if _under_emulator(found):
        return None, (f"a real {name} ({found} is the test emulator; put the real {name} "
                      "first on PATH)")
    return found, None


def cgroup_fs() -> str:
    code, out, _ = _run(["stat", "-f", "-c", "%T", CGROUP], timeout=10)
    return out.strip() if code == 0 else "unknown"


def _cgroup_v2_problem() -> Optional[str]:
    fs = cgroup_fs()
    if fs != "cgroup2fs":
        return f"cgroup v2 ({CGROUP} is {fs}, not cgroup2fs)"
    return None


def _nerdctl_rootless(binary: str) -> Optional[str]:
    code, out, err = _run([binary, "info", "--format", "{{json .}}"])
    if code != 0:
        return f"nerdctl info failed: {_last_line(err or out)}"
    try:
        opts = json.loads(out).get("SecurityOptions") or []
    except (ValueError, AttributeError):
        return "nerdctl info --format '{{json .}}' printed no JSON"
    if not any("rootless" in str(o) for o in opts):
        return "nerdctl info works but containerd is not rootless"
    return None


def _podman_info(binary: str) -> tuple[Optional[dict], Optional[str]]:
    code, out, err = _run([binary, "info", "--format", "json"])
    if code != 0:
        return None, f"podman info failed: {_last_line(err or out)}"
    try:
        return json.loads(out), None
    except ValueError:
        return None, "podman info --format json printed no JSON"


def _podman_rootless(info: dict) -> bool:
    return bool(info.get("host", {}).get("security", {}).get("rootless"))


def archive_tags(path: Path) -> list[str]:
    """Image names inside a docker-archive tarball (manifest.json RepoTags)."""
    try:
        with tarfile.open(path) as tf:
            member = tf.extractfile("manifest.json")
            data = json.load(member) if member else []
    except (OSError, KeyError, ValueError, tarfile.TarError):
        return []
    return [t for entry in data for t in (entry.get("RepoTags") or [])]


def normalize_image(name: str) -> str:
    """docker.io/library/busybox:1.36 == busybox:1.36 == library/busybox:1.36."""
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name or ("." not in first and ":" not in first and first != "localhost"):
        name = "docker.io/" + name
    if name.startswith("docker.io/") and name.count("/") == 1:
        name = "docker.io/library/" + name[len("docker.io/"):]
    return name


def _rootless_stack(path: str) -> tuple[Optional[Stack], list[str]]:
    missing: list[str] = []
    for name in ("kind", "kubectl"):
        problem = _real_binary(name, path)[1]
        if problem:
            missing.append(problem)
    problems = []
    stack = None
    nerdctl = shutil.which("nerdctl", path=path)
    if nerdctl and not _under_emulator(nerdctl):
        p = _nerdctl_rootless(nerdctl)
        if p is None:
            stack = Stack("nerdctl", True, {"KSI_PROVIDER": "nerdctl",
                                            "KIND_EXPERIMENTAL_PROVIDER": "nerdctl"})
        else:
            problems.append(p)
    else:
        problems.append("nerdctl not on PATH" if not nerdctl else "nerdctl is the emulator")
    podman = shutil.which("podman", path=path)
    if stack is None and podman and not _under_emulator(podman):
        info, p = _podman_info(podman)
        if info is not None and _podman_rootless(info):
            stack = Stack("podman", True, {"KSI_PROVIDER": "podman",
                                           "KIND_EXPERIMENTAL_PROVIDER": "podman"})
        else:
            problems.append(p or "podman info works but podman is not rootless (root "
                            "podman: set KSI_E2E_PROVIDER=podman with the kind cache)")
    elif stack is None:
        problems.append("podman not on PATH" if not podman else "podman is the emulator")
    if stack is None:
        missing.append(f"a reachable rootless runtime ({'; '.join(problems)})")
    p = _cgroup_v2_problem()
    if p:
        missing.append(p)
    return (stack if not missing else None), missing


def _root_podman_stack(path: str) -> tuple[Optional[Stack], list[str]]:
    cache = Path(os.environ.get("KSI_E2E_CACHE", DEFAULT_CACHE))
    image = os.environ.get("KSI_E2E_NODE_IMAGE", DEFAULT_NODE_IMAGE)
    missing: list[str] = []
    kind = cache / "bin" / "kind"
    if not os.access(kind, os.X_OK):
        missing.append(f"kind in the cache ({kind} is missing: tests/e2e/build/build-cache.sh "
                       "kind)")
    elif _under_emulator(str(kind)):
        missing.append(f"a real kind ({kind} is the test emulator)")
    k8s_bin = cache / "k8s-bin"
    kpath = f"{cache / 'bin'}{os.pathsep}{k8s_bin}{os.pathsep}{path}"
    problem = _real_binary("kubectl", kpath)[1]
    if problem:
        missing.append(problem)
    podman = shutil.which("podman", path=path)
    if not podman or _under_emulator(podman):
        missing.append("root podman (podman not on PATH)" if not podman
                       else "a real podman (podman on PATH is the test emulator)")
    else:
        info, p = _podman_info(podman)
        if info is None:
            missing.append(f"root podman ({p})")
        elif _podman_rootless(info):
            missing.append("root podman (podman info says rootless: run the podman e2e "
                           "tests as root)")
        else:
            code, _, _ = _run([podman, "image", "exists", image])
            if code != 0:
                missing.append(f"the node image {image} in root podman "
                               "(tests/e2e/build/build-cache.sh nodeimage)")
    if missing:
        return None, missing
    preloaded = {normalize_image(t) for tar in sorted((cache / "images").glob("*.tar"))
                 for t in archive_tags(tar)}
    archives = Path(os.environ.get("KSI_E2E_IMAGE_ARCHIVES", str(cache / "example-images")))
    env = {"PATH": kpath, "KSI_PROVIDER": "podman", "KSI_IMAGE": image,
           "KIND_EXPERIMENTAL_PROVIDER": "podman",
           # root podman on this kind of machine needs the ulimit and runc fixes
           "CONTAINERS_CONF": os.environ.get(
               "CONTAINERS_CONF", str(Path(__file__).resolve().parent / "build" /
                                      "containers.conf"))}
    return Stack("podman", False, env, preloaded,
                 archives if archives.is_dir() else None), []


@functools.cache
def _detect() -> tuple[Optional[Stack], Optional[str]]:
    path = os.environ.get("PATH", os.defpath)
    mode = os.environ.get("KSI_E2E_PROVIDER", "").strip()
    missing: list[str] = []
    if mode == "podman":
        stack, missing = _root_podman_stack(path)
    elif mode in ("", "rootless"):
        stack, missing = _rootless_stack(path)
    else:
        return None, (f"KSI_E2E_PROVIDER={mode!r} is not supported (unset for a rootless "
                      "runtime, or 'podman' for root podman with the kind cache)")
    ksi = shutil.which("ksi", path=path)
    if not ksi:
        missing.append("the ksi command (pip install -e .)")
    if missing:
        return None, "real e2e stack missing: " + "; ".join(missing)
    return stack, None


def real_stack_missing() -> str | None:
    """None when the e2e tests can run here, else what is missing (one string)."""
    return _detect()[1]


def real_stack() -> Stack:
    stack, reason = _detect()
    if stack is None:
        pytest.skip(reason or "real e2e stack missing")
    return stack


@pytest.fixture(scope="session")
def e2e_stack() -> Stack:
    """The real stack, or a skip naming what is missing."""
    return real_stack()


def e2e_environ(stack: Stack) -> dict[str, str]:
    """The test process's environment without job/cluster variables, plus the stack's."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLURM_", "K8S_", "SBATCH_", "SRUN_", "KSI_E2E_"))
           and k != "KUBECONFIG"}
    env.update(stack.env)
    return env


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """e2e-marked tests skip with the precise reason when the stack is missing."""
    e2e = [i for i in items if i.get_closest_marker("e2e")]
    if not e2e:
        return
    reason = real_stack_missing()
    if reason:
        for item in e2e:
            item.add_marker(pytest.mark.skip(reason=reason))
