#!/usr/bin/env python3
"""Record the real tools' outputs for tests/emulator/cases.py into tests/emulator/recorded/.

Runs the REAL kind, kubectl and liqoctl of the real-kind cache (tests/e2e/build/build-cache.sh,
default /var/cache/ksi-e2e) and root podman (provider podman, as tests/e2e does), one case
after another under nice -n 10, with at most one small kind cluster (`ksi-rec`), deleted at
the end whatever happens. Each case becomes `<name>.json` {name, argv, stdin, exit, stdout,
stderr} with run-time values normalised (cases.normalise); ENVIRONMENT.json holds the tool
versions and the podman facts the emulator is configured with when it replays them.

    sudo python3 tests/emulator/record.py [--out DIR] [--no-cluster]

--no-cluster records only the cases that need no cluster (kind's own checks, podman info).
Needs root (root podman). Exit 0 when every case ran; 2 when the cache is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import cases  # noqa: E402

ROOT = HERE.parents[1]
CACHE = Path(os.environ.get("KSI_E2E_CACHE", "/var/cache/ksi-e2e"))


def tool_path(cache: Path) -> str:
    dirs = [cache / "bin", cache / "k8s-bin", cache / "liqo-bin"]
    return os.pathsep.join([*(str(d) for d in dirs if d.is_dir()),
                            "/usr/sbin", "/usr/bin", "/sbin", "/bin"])


def real_tools(cache: Path) -> dict[str, str]:
    """The real binaries: the cache's kind, kubectl, liqoctl (never another one on PATH) and
    the system's podman."""
    tools = {"kind": cache / "bin" / "kind", "kubectl": cache / "k8s-bin" / "kubectl",
             "liqoctl": cache / "liqo-bin" / "liqoctl"}
    found = {k: str(v) for k, v in tools.items() if os.access(v, os.X_OK)}
    podman = shutil.which("podman", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if podman:
        found["podman"] = podman
    return found


TOOLS: dict[str, str] = {}


def run(argv: list[str], env: dict[str, str], stdin: str | None, timeout: float
        ) -> tuple[int, str, str]:
    if argv[0] not in TOOLS:
        return 127, "", f"{argv[0]}: not in the cache"
    argv = [TOOLS[argv[0]], *argv[1:]]
    try:
        p = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = e.stdout or ""
        err = e.stderr or ""
        return 124, out if isinstance(out, str) else out.decode(), \
            (err if isinstance(err, str) else err.decode()) + f"\n(timed out after {timeout}s)"
    return p.returncode, p.stdout, p.stderr


def environment(env: dict[str, str]) -> dict[str, object]:
    """Tool versions and the podman facts (rootless, cgroup version/driver)."""
    facts: dict[str, object] = {}
    rc, out, _ = run(["kind", "version"], env, None, 30)
    facts["kind"] = out.split()[1].lstrip("v") if rc == 0 and out.split() else ""
    rc, out, _ = run(["kubectl", "version", "--client", "-o", "json"], env, None, 30)
    facts["kubectl"] = json.loads(out)["clientVersion"]["gitVersion"].lstrip("v") if rc == 0 \
        else ""
    rc, out, _ = run(["podman", "info", "--format", "json"], env, None, 60)
    if rc == 0:
        info = json.loads(out)
        facts["podman"] = info["version"]["Version"]
        facts["rootless"] = bool(info["host"]["security"]["rootless"])
        facts["cgroup_version"] = info["host"]["cgroupVersion"]
        facts["cgroup_manager"] = info["host"]["cgroupManager"]
    if "liqoctl" in TOOLS:
        rc, out, _ = run(["liqoctl", "version", "--client"], env, None, 30)
        facts["liqoctl"] = out.split()[-1].lstrip("v") if rc == 0 and out.split() else ""
    facts["node_image"] = cases.NODE_IMAGE
    return facts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "recorded")
    ap.add_argument("--no-cluster", action="store_true")
    ap.add_argument("--cache", type=Path, default=CACHE)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("record.py: needs root (root podman, as tests/e2e)", file=sys.stderr)
        return 2
    if not (args.cache / "bin" / "kind").is_file():
        print(f"record.py: no real kind in {args.cache}/bin (tests/e2e/build/build-cache.sh)",
              file=sys.stderr)
        return 2
    if not args.no_cluster:
        chk = subprocess.run([str(ROOT / "tests/e2e/build/check-cache.sh")], capture_output=True,
                             text=True, env={**os.environ, "KSI_E2E_CACHE": str(args.cache)})
        if chk.returncode != 0:
            print(chk.stdout + chk.stderr + "record.py: use --no-cluster until it is complete",
                  file=sys.stderr)
            return 2
    Path("/lib/modules").mkdir(exist_ok=True)  # kind bind-mounts it (tests/e2e kind-smoke.sh)
    os.nice(10)
    TOOLS.update(real_tools(args.cache))
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="ksi-rec-")
    for name, text in cases.FILES.items():
        Path(tmp, name).write_text(text)
    (Path(tmp) / "home").mkdir()
    env = {"PATH": tool_path(args.cache), "HOME": f"{tmp}/home", "LANG": "C.UTF-8",
           "KIND_EXPERIMENTAL_PROVIDER": "podman",
           "CONTAINERS_CONF": str(ROOT / "tests/e2e/build/containers.conf")}
    facts = environment(env)
    (args.out / "ENVIRONMENT.json").write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    created = False
    failed = 0
    try:
        for case in cases.CASES:
            if case.cluster and args.no_cluster:
                continue
            if case.argv[0] not in TOOLS:
                print(f"skip {case.name}: no {case.argv[0]} in the cache", file=sys.stderr)
                continue
            if case.cluster and case.name != "kind-create-ok" and not created:
                print(f"skip {case.name}: no cluster", file=sys.stderr)
                failed += 1
                continue
            rc, out, err = run(cases.expand(case.argv, tmp), env, case.stdin, case.timeout)
            if case.name == "kind-create-ok":
                created = rc == 0
                if created:  # the token cases need kube-system/default, which the service
                    # account controller makes a moment after create: wait (bounded) for it
                    for _ in range(60):
                        if run(["kubectl", "--kubeconfig", cases.expand([cases.KUBECONFIG],
                                                                         tmp)[0],
                                "-n", "kube-system", "get", "serviceaccount", "default"],
                               env, None, 20)[0] == 0:
                            break
                        time.sleep(1)
            if case.name == "kind-delete" and rc == 0:
                created = False
            rec = {"name": case.name, "argv": case.argv, "stdin": case.stdin, "exit": rc,
                   "stdout": cases.normalise(out, tmp), "stderr": cases.normalise(err, tmp)}
            (args.out / f"{case.name}.json").write_text(json.dumps(rec, indent=1) + "\n")
            print(f"{case.name}: exit {rc}", file=sys.stderr)
    finally:
        if created:
            run(["kind", "delete", "cluster", "--name", cases.CLUSTER], env, None, 300)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
