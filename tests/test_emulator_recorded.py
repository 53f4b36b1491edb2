"""The emulator against recordings of the real tools (tests/emulator/recorded/).

Every recorded case (tests/emulator/cases.py) is replayed, in the recorded order, against the
emulator in one fresh KSI_EMU_STATE configured like the recording machine (ENVIRONMENT.json:
versions, rootless, cgroup version and driver). Compared: the exit code, then what the case
declares KSI reads (lines, JSON keys and values, the error line: ksi.errors.last_line).
The recordings are text, so this runs always. The `realkind` test re-records with the real
tools (tests/emulator/record.py) and fails on a difference with the committed recordings.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from ksi.errors import Exit, last_line
from ksi.provision.kind import classify

ROOT = Path(__file__).resolve().parents[1]
EMU = ROOT / "tests" / "emulator"
RECORDED = EMU / "recorded"
sys.path.insert(0, str(EMU))
import cases  # noqa: E402

MISSING = object()


def recordings(directory: Path = RECORDED) -> dict[str, dict[str, Any]]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))
            if p.stem != "ENVIRONMENT"}


def environment(directory: Path = RECORDED) -> dict[str, Any]:
    p = directory / "ENVIRONMENT.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def emulator_env(facts: dict[str, Any], state: Path, home: Path) -> dict[str, str]:
    """The emulator configured as the recording machine was."""
    env = {"PATH": os.pathsep.join([str(EMU / "bin"), os.path.dirname(sys.executable),
                                    "/usr/bin", "/bin"]),
           "HOME": str(home), "LANG": "C.UTF-8", "KSI_EMU_STATE": str(state),
           "KIND_EXPERIMENTAL_PROVIDER": "podman"}
    for tool in ("kind", "kubectl", "podman", "liqoctl"):
        if facts.get(tool):
            env[f"KSI_EMU_VERSION_{tool.upper()}"] = str(facts[tool])
    if facts.get("node_image"):
        env["KSI_EMU_VERSION_K8S"] = str(facts["node_image"]).rsplit(":v", 1)[-1]
    if "rootless" in facts:
        env["KSI_EMU_ROOTLESS"] = "1" if facts["rootless"] else "0"
    if facts.get("cgroup_version"):
        env["KSI_EMU_CGROUP_VERSION"] = str(facts["cgroup_version"]).lstrip("v")
    if facts.get("cgroup_manager"):
        env["KSI_EMU_CGROUP_DRIVER"] = str(facts["cgroup_manager"])
    return env


def replay(recorded: dict[str, dict[str, Any]], facts: dict[str, Any], tmp: Path
           ) -> dict[str, dict[str, Any]]:
    """Run the recorded cases against the emulator, in the cases' order."""
    (tmp / "home").mkdir(parents=True, exist_ok=True)
    (tmp / "emu").mkdir(exist_ok=True)
    for name, text in cases.FILES.items():
        (tmp / name).write_text(text)
    env = emulator_env(facts, tmp / "emu", tmp / "home")
    out: dict[str, dict[str, Any]] = {}
    for case in cases.CASES:
        if case.name not in recorded:
            continue
        p = subprocess.run(cases.expand(case.argv, str(tmp)), input=case.stdin, env=env,
                           capture_output=True, text=True, timeout=120, cwd=str(tmp))
        out[case.name] = {"exit": p.returncode, "stdout": cases.normalise(p.stdout, str(tmp)),
                          "stderr": cases.normalise(p.stderr, str(tmp))}
    return out


def _lines(text: str, patterns: list[str]) -> list[str]:
    return [ln for ln in text.splitlines() if any(re.search(p, ln) for p in patterns)]


def _pick(data: Any, path: tuple[str, ...]) -> Any:
    """The values at a key path; "*" maps over a list (a list of results)."""
    if not path:
        return data
    head, rest = path[0], path[1:]
    if head == "*":
        return [_pick(x, rest) for x in data] if isinstance(data, list) else MISSING
    if isinstance(data, dict) and head in data:
        return _pick(data[head], rest)
    return MISSING


def _shape(v: Any) -> Any:
    if isinstance(v, list):
        return ["list", *[_shape(x) for x in v]] if v and isinstance(v[0], list) else "list"
    return "missing" if v is MISSING else type(v).__name__


def differences(case: cases.Case, real: dict[str, Any], emu: dict[str, Any]) -> list[str]:
    """What differs in the parts of the output that the case declares KSI reads."""
    c = case.compare
    diffs = []
    if real["exit"] != emu["exit"]:
        diffs.append(f"exit {emu['exit']} (real {real['exit']})")
    for stream in ("stdout", "stderr"):
        if c.get(stream) == "exact" and real[stream] != emu[stream]:
            diffs.append(f"{stream} {emu[stream]!r} (real {real[stream]!r})")
        if c.get(stream) == "empty" and emu[stream].strip():
            diffs.append(f"{stream} not empty: {emu[stream]!r}")
        pats = c.get(f"{stream}_lines")
        if pats and _lines(real[stream], pats) != _lines(emu[stream], pats):
            diffs.append(f"{stream} lines {_lines(emu[stream], pats)!r} "
                         f"(real {_lines(real[stream], pats)!r})")
    if c.get("error_line") and last_line(real["stderr"]) != last_line(emu["stderr"]):
        diffs.append(f"error line {last_line(emu['stderr'])!r} "
                     f"(real {last_line(real['stderr'])!r})")
    if c.get("json_keys") or c.get("json_values"):
        try:
            rj, ej = json.loads(real["stdout"]), json.loads(emu["stdout"])
        except ValueError as exc:
            return [*diffs, f"stdout is not JSON: {exc}"]
        for path in c.get("json_keys", []):
            if _shape(_pick(rj, path)) != _shape(_pick(ej, path)):
                diffs.append(f"JSON {'.'.join(path)}: {_shape(_pick(ej, path))} "
                             f"(real {_shape(_pick(rj, path))})")
        for path in c.get("json_values", []):
            if _pick(rj, path) != _pick(ej, path):
                diffs.append(f"JSON {'.'.join(path)} = {_pick(ej, path)!r} "
                             f"(real {_pick(rj, path)!r})")
    return diffs


RECORDS = recordings()
FACTS = environment()


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    return replay(RECORDS, FACTS, tmp_path_factory.mktemp("replay"))


@pytest.mark.parametrize("case", cases.CASES, ids=[c.name for c in cases.CASES])
def test_emulator_matches_recording(case: cases.Case, replayed: dict) -> None:
    if case.name not in RECORDS:
        pytest.skip(f"not recorded ({case.argv[0]} was not in the cache when recorded)")
    assert differences(case, RECORDS[case.name], replayed[case.name]) == []


def test_recordings_are_those_of_the_cases() -> None:
    """No stale recording: each is of a case with the same argv and stdin, and every case
    is recorded (liqoctl's only when the cache had liqoctl)."""
    by_name = cases.by_name()
    for name, rec in RECORDS.items():
        assert name in by_name, f"{name}.json is of no case"
        assert (rec["argv"], rec["stdin"]) == (by_name[name].argv, by_name[name].stdin), name
    missing = [c.name for c in cases.CASES if c.name not in RECORDS
               and (c.argv[0] != "liqoctl" or FACTS.get("liqoctl"))]
    assert missing == []


def test_recorded_errors_classify() -> None:
    """KSI's classify() on the real kind's recorded errors."""
    checked = [c for c in cases.CASES if c.compare.get("classify") and c.name in RECORDS]
    assert checked
    for c in checked:
        assert classify(RECORDS[c.name]["stderr"])[0] == Exit[c.compare["classify"]], c.name


def test_differences_sees_a_difference() -> None:
    """The comparison itself can fail."""
    case = cases.by_name()["kind-create-invalid-pod-subnet"]
    real = {"exit": 1, "stdout": "", "stderr": "ERROR: failed to create cluster: invalid pod"}
    assert differences(case, real, dict(real)) == []
    assert differences(case, real, {**real, "exit": 0})
    assert differences(case, real, {**real, "stderr": "ERROR: x"})
    json_case = cases.by_name()["podman-info-json"]
    info = {"exit": 0, "stderr": "", "stdout": json.dumps(
        {"host": {"security": {"rootless": False}, "cgroupVersion": "v1", "cgroupManager": "x",
                  "cgroupControllers": []}, "version": {"Version": "4.3.1"}})}
    assert differences(json_case, info, dict(info)) == []
    broken = json.loads(info["stdout"])
    del broken["host"]["cgroupControllers"]
    assert differences(json_case, info, {**info, "stdout": json.dumps(broken)})


def _cache_problem() -> Optional[str]:
    cache = Path(os.environ.get("KSI_E2E_CACHE", "/var/cache/ksi-e2e"))
    if os.geteuid() != 0:
        return "needs root (root podman with the real-kind cache)"
    chk = subprocess.run([str(ROOT / "tests/e2e/build/check-cache.sh")], capture_output=True,
                         text=True, env={**os.environ, "KSI_E2E_CACHE": str(cache)})
    return None if chk.returncode == 0 else f"real-kind cache incomplete: {chk.stdout.strip()}"


@pytest.mark.realkind
@pytest.mark.timeout(900)
def test_rerecording_matches_the_committed_recordings(tmp_path: Path) -> None:
    problem = _cache_problem()
    if problem:
        pytest.skip(problem)
    res = subprocess.run([sys.executable, str(EMU / "record.py"), "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=880)
    assert res.returncode == 0, res.stderr
    fresh = recordings(tmp_path)
    diffs = {c.name: differences(c, RECORDS[c.name], fresh[c.name]) for c in cases.CASES
             if c.name in RECORDS and c.name in fresh}
    assert {k: v for k, v in diffs.items() if v} == {}
    assert sorted(fresh) == sorted(RECORDS)
