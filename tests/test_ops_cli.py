"""`ksi shell`, `ksi config`, `ksi submit --dry-run` and the subcommands' --help."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.conftest import NOTHING, leftovers, run_ksi


@pytest.mark.parametrize("cmd", ["doctor", "ls", "gc", "shell", "submit", "config"])
def test_help(emu_env, workdir, cmd):
    r = run_ksi([cmd, "--help"], emu_env, workdir)
    assert r.returncode == 0 and "Usage: ksi " + cmd in r.stdout


def test_shell_fed_by_stdin(emu_env, workdir):
    r = run_ksi(["shell"], emu_env, workdir,
                input='echo "name=$K8S_CLUSTER_NAME shell=$KSI_SHELL"; exit 3\n')
    assert r.returncode == 3, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith("name="))
    ctx = line.split()[0].removeprefix("name=")
    assert ctx.startswith("kind-ksi-local-")
    assert line.endswith(" shell=1")
    assert leftovers(emu_env) == NOTHING


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_shell_interactive_under_tmux(emu_env, workdir, tmp_path):
    sock = str(tmp_path / "tmux.sock")
    env = dict(emu_env, HOME=str(tmp_path / "home"), TERM="xterm")
    (workdir / "go.sh").write_text(f"cd {workdir} && {sys.executable} -m ksi shell; "
                                   f"echo rc=$? > {workdir}/rc\n")
    envargs = [f"{k}={v}" for k, v in env.items()]
    subprocess.run(["tmux", "-S", sock, "new-session", "-d", "-x", "200", "-y", "50",
                    "env", "-i", *envargs, "bash", "--norc", str(workdir / "go.sh")],
                   check=True, timeout=30)
    try:
        def screen() -> str:
            return subprocess.run(["tmux", "-S", sock, "capture-pane", "-p"], text=True,
                                  capture_output=True, timeout=10).stdout

        deadline = time.monotonic() + 40
        while "(ksi:ksi-local-" not in screen():
            assert time.monotonic() < deadline, screen()
            time.sleep(0.05)
        subprocess.run(["tmux", "-S", sock, "send-keys", "exit 5", "Enter"], check=True)
        rc = workdir / "rc"
        while not rc.exists():
            assert time.monotonic() < deadline + 30, screen()
            time.sleep(0.05)
        # the wrapper wrote rc after ksi returned: the teardown is done
        assert rc.read_text().strip() == "rc=5"
    finally:
        subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)
    assert leftovers(emu_env) == NOTHING


def test_config_origins_and_json(emu_env, workdir, tmp_path):
    user = Path(emu_env["KSI_USER_CONFIG"])
    user.write_text('[ksi]\nteardown_margin = 90\n')
    env = dict(emu_env, KSI_CREATE_RETRIES="5")
    r = run_ksi(["config", "--json"], env, workdir)
    assert r.returncode == 0, r.stderr
    rows = {x["name"]: x for x in json.loads(r.stdout)}
    assert rows["teardown_margin"]["value"] == 90
    assert rows["teardown_margin"]["origin"] == f"user file {user}"
    assert rows["create_retries"] == {**rows["create_retries"], "value": 5,
                                      "origin": "environment KSI_CREATE_RETRIES"}
    assert rows["registry_dir"]["origin"] == "default"
    plain = run_ksi(["config"], env, workdir).stdout
    line = next(ln for ln in plain.splitlines() if ln.startswith("teardown_margin "))
    assert line.split() == ["teardown_margin", "=", "90", "#", "user", "file", str(user)]


@pytest.mark.parametrize("text,words", [
    ("[ksi]\nno_such_key = 1\n", "unknown setting 'no_such_key'"),
    ("[ksi]\ncreate_retries = \"many\"\n", "create_retries='many' is invalid"),
    ("[ksi]\nbypass4netns = \"maybe\"\n", "bypass4netns='maybe' is not one of auto, on, off"),
    ("[ksi\n", "is not valid TOML"),
])
@pytest.mark.parametrize("cmd", [["config"], ["ls"], ["run", "x.sh"]])
def test_config_errors_are_one_line_exit_77(emu_env, workdir, text, words, cmd):
    user = Path(emu_env["KSI_USER_CONFIG"])
    user.write_text(text)
    (workdir / "x.sh").write_text("exit 0\n")
    r = run_ksi(cmd, emu_env, workdir)
    assert r.returncode == 77, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("ksi: error: ") and words in last and str(user) in last


def test_submit_dry_run_one_node(emu_env, workdir):
    (workdir / "w.sh").write_text("echo hi\n")
    r = run_ksi(["submit", "--dry-run", "-t", "10:00", "w.sh"], emu_env, workdir)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "# sbatch --parsable -t 10:00 < script"
    assert "#SBATCH --signal=B:TERM@120" in lines
    assert lines[-1].startswith("exec ") and lines[-1].endswith(f" run {workdir}/w.sh")
    assert "srun" not in r.stdout


def test_submit_dry_run_several_nodes_forwards_term(emu_env, workdir):
    (workdir / "w.sh").write_text("echo hi\n")
    (workdir / "shared").mkdir()
    r = run_ksi(["submit", "--dry-run", "--signal-margin", "300", "-N", "3", "--exclusive",
                 "w.sh", "shared"], emu_env, workdir)
    assert r.returncode == 0, r.stderr
    assert "# sbatch --parsable -N 3 --exclusive < script" in r.stdout
    assert "#SBATCH --signal=B:TERM@300" in r.stdout
    assert "trap forward TERM" in r.stdout
    assert 'scancel --signal=TERM "$SLURM_JOB_ID"' in r.stdout
    assert f"run {workdir}/w.sh {workdir}/shared &" in r.stdout


def test_submit_without_workload_is_a_usage_error(emu_env, workdir):
    r = run_ksi(["submit", "--dry-run", "-N", "2"], emu_env, workdir)
    assert r.returncode == 64 and "no WORKLOAD given" in r.stderr
