"""`ksi run --dry-run` prints the commands of the very steps a run executes: for a one-node
plan and a federated plan, the programs and subcommands it lists are those an emulated run
calls (the emulator's call log), in the same order. Values decided at run time (ports) are
not compared, repeated polls count once, and the commands of a step that runs in the
background (marked '&': the Liqo install) may interleave with the next steps'."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import NOTHING, leftovers, run_ksi

EMULATED = {"kind", "kubectl", "nerdctl", "podman", "liqoctl"}
VALUE_FLAGS = {"--kubeconfig", "--context", "-n", "--namespace"}


def pair(argv: list[str]) -> tuple[str, str]:
    """(program, subcommand): the first word after the program that is no flag (nor a
    flag's value)."""
    skip = False
    for a in argv[1:]:
        if skip:
            skip = False
        elif a in VALUE_FLAGS:
            skip = True
        elif not a.startswith("-"):
            return argv[0], a
    return argv[0], ""


def planned(stdout: str) -> list[tuple[tuple[str, str], bool]]:
    """The dry run's commands of emulated programs: (pair, in the background)."""
    lines = stdout.split("commands:\n", 1)[1].splitlines()
    out = []
    for ln in lines:
        argv = shlex.split(ln.strip().split(". ", 1)[1])
        bg = argv[-1] == "&"
        if bg:
            argv = argv[:-1]
        if argv[0] in EMULATED:
            out.append((pair(argv), bg))
    return out


def executed(env: dict[str, str], pid: int = 0) -> list[tuple[str, str]]:
    """The pairs of the commands KSI itself ran (not those the emulated tools ran); of the
    KSI process pid when given."""
    path = Path(env["KSI_EMU_STATE"]) / "calls.jsonl"
    calls = [json.loads(x) for x in path.read_text().splitlines()]
    calls.sort(key=lambda c: c["start"])
    pids = {c["pid"] for c in calls}
    return [pair([c["tool"], *c["argv"]]) for c in calls
            if c["ppid"] not in pids and (not pid or c["ppid"] == pid)]


def collapse(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for p in pairs:
        if not out or out[-1] != p:
            out.append(p)
    return out


def matches(plan: list[tuple[tuple[str, str], bool]], ran: list[tuple[str, str]]) -> bool:
    """ran is the planned main sequence interleaved with the planned background one; a
    repeat of the command just matched (a poll) is allowed."""
    main = collapse([p for p, bg in plan if not bg])
    back = collapse([p for p, bg in plan if bg])
    i = j = 0
    last_back = None
    for p in ran:
        if i < len(main) and p == main[i]:
            i += 1
        elif j < len(back) and p == back[j] and i > 0:
            j, last_back = j + 1, p
        elif p in (*main[max(0, i - 2):i], last_back):  # a poll (of one or two commands)
            continue
        else:
            return False
    return i == len(main) and j == len(back)


def test_the_matcher_refuses_other_orders() -> None:
    plan = [(("kind", "create"), False), (("kubectl", "wait"), False),
            (("liqoctl", "install"), True), (("kind", "delete"), False)]
    good = [("kind", "create"), ("kubectl", "wait"), ("liqoctl", "install"),
            ("kubectl", "wait"), ("kind", "delete")]
    assert matches(plan, good)
    assert not matches(plan, [("kubectl", "wait"), ("kind", "create"), ("liqoctl", "install"),
                              ("kind", "delete")])
    assert not matches(plan, good[:-1])                              # teardown missing
    assert not matches(plan, [*good[:2], ("kind", "delete")])        # background missing
    assert not matches(plan, [*good, ("nerdctl", "rm")])              # not planned


@pytest.mark.parametrize("args", [[], ["--federate"]], ids=["single", "federated"])
def test_dry_run_lists_what_the_run_executes(emu_env: dict, workdir: Path,
                                             args: list[str]) -> None:
    (workdir / "wl.sh").write_text("true\n")
    dry = run_ksi(["run", "--dry-run", *args, "wl.sh"], emu_env, workdir)
    assert dry.returncode == 0, dry.stderr
    plan = planned(dry.stdout)
    assert (("liqoctl", "install"), True) in plan if args else \
        all(p[0] != "liqoctl" for p, _ in plan)
    res = run_ksi(["run", *args, "wl.sh"], emu_env, workdir)
    assert res.returncode == 0, res.stderr
    ran = executed(emu_env)
    assert matches(plan, ran), (plan, ran)
    assert leftovers(emu_env) == NOTHING


def test_two_nodes_list_what_they_execute(emu_env: dict, workdir: Path,
                                          tmp_path: Path) -> None:
    """A two-node federated job without Slurm (its variables set by hand; both nodes on one
    emulated machine): each node's dry run lists what that node's run executes, the head's
    peering and the member's serving included."""
    (workdir / "wl.sh").write_text('echo "$KSI_NODE_COUNT $KSI_VIRTUAL_NODES" > nodes\n')
    shared = tmp_path / "shared"
    shared.mkdir()
    job = {**emu_env, "SLURM_JOB_ID": "555", "SLURM_STEP_ID": "0", "SLURM_STEP_NUM_NODES": "2",
           "SLURM_STEP_NODELIST": "n[1-2]", "KSI_API_ADDRESS": "127.0.0.1",
           "KSI_EMU_HOSTNAME": "n1"}
    envs = [{**job, "SLURM_NODEID": str(i), "SLURM_PROCID": str(i), "SLURM_LOCALID": "0"}
            for i in (0, 1)]
    plans = []
    for env in envs:
        dry = run_ksi(["run", "--dry-run", "wl.sh", str(shared)], env, workdir)
        assert dry.returncode == 0, dry.stderr
        plans.append(planned(dry.stdout))
    assert (("liqoctl", "peer"), False) in plans[0]
    assert all(p != ("liqoctl", "peer") for p, _ in plans[1])
    procs = [subprocess.Popen([sys.executable, "-m", "ksi", "run", "wl.sh", str(shared)],
                              env=env, cwd=str(workdir), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for env in envs]
    outs = [p.communicate(timeout=240) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert "phase peer: ok" in outs[0][1] and "phase serve: ok" in outs[1][1]
    assert (workdir / "nodes").read_text().startswith("2 ksi-555-0-1-")
    for plan, proc in zip(plans, procs):
        ran = executed(emu_env, proc.pid)
        assert matches(plan, ran), (plan, ran)
    assert leftovers(emu_env) == NOTHING and not (shared / ".ksi").exists()
