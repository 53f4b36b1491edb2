"""The operating subcommands: doctor, ls, gc, shell, submit, config (click; heavy imports lazy)."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Optional

import click


def _settings(flags: Optional[dict[str, Any]] = None) -> Any:
    """Effective settings; a config error ends the command with its one line (exit 77)."""
    from ksi import settings
    from ksi.errors import KsiError

    try:
        return settings.load(flags or {})
    except KsiError as exc:
        _die(exc)


def _die(exc: Any) -> None:
    click.echo(exc.line(), err=True)
    sys.exit(int(exc.code))


def _runner() -> Any:
    from ksi.runner import Runner

    return Runner()


def _quiet_logs(verbose: bool = False) -> None:
    import logging

    from ksi.output import Console

    Console(verbose=verbose)  # installs the masking "ksi:" log handler on stderr
    if not verbose:
        logging.getLogger("ksi").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- doctor
@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
@click.option("--clusters", type=click.IntRange(1, 1000), default=1, show_default=True,
              help="How many clusters you want on this node at once (inotify, ports).")
@click.option("--shared-dir", default=None, help="Check that this shared directory is "
              "writable.")
@click.option("--provider", default=None, help="Runtime to check (default: the setting).")
@click.option("--root", default=None, envvar="KSI_DOCTOR_ROOT",
              help="Read /sys, /proc and /etc under this root (tests; default /).")
@click.option("--admin-script", "admin", is_flag=True, help="Print the admin commands for "
              "what fails or warns here, as a bash script to review (never run; exit 0).")
def doctor(as_json: bool, clusters: int, shared_dir: Optional[str], provider: Optional[str],
           root: Optional[str], admin: bool) -> None:
    """Check this node for what KSI needs; name each problem's cause and the fix.

    Exit 0: all pass; 96: warnings only; 93: something fails.
    """
    from ksi.checks.doctor import main

    _quiet_logs()
    sys.exit(main(_settings(), _runner(), as_json_out=as_json, admin=admin,
                  clusters=clusters, shared_dir=shared_dir, provider=provider, root=root))


# --------------------------------------------------------------------------- ls
def _age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 172800:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


@click.command(name="ls")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all-nodes", is_flag=True, help="Also clusters on other nodes (needs the "
              "registry_dir setting: a directory every node shares).")
@click.option("--provider", default=None, help="Runtime to look in (default: the setting).")
def ls_cmd(as_json: bool, all_nodes: bool, provider: Optional[str]) -> None:
    """List your KSI clusters: job, job state, node, age, ports."""
    from ksi.ops.inventory import inventory

    _quiet_logs()
    s = _settings()
    if all_nodes and not s.registry_dir:
        click.echo("ksi: error: --all-nodes needs the shared registry -- fix: set registry_dir"
                   " (KSI_REGISTRY_DIR) to a directory all nodes share, e.g. on NFS", err=True)
        sys.exit(64)
    items, problems = inventory(s, _runner(), dict(os.environ), registry=all_nodes,
                                provider_name=provider, all_jobs=True)
    for p in problems:
        click.echo(f"ksi: warning: {p}", err=True)
    rows = [i.as_dict() for i in items]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        click.echo("no KSI clusters", err=True)
        return
    table = [("CLUSTER", "JOB", "JOB STATE", "STATUS", "NODE", "AGE", "PORTS")]
    for r in rows:
        ports = ",".join(f"{k}={v}" for k, v in (r["ports"] or {}).items() if v)
        table.append((r["cluster"], r["job"] or "-", r["job_state"] or "-", r["status"],
                      r["node"] or "-", _age(r["age_seconds"]), ports or "-"))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip())


# --------------------------------------------------------------------------- gc
@click.command()
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@click.option("--job", "job", default=None, help="Only leftovers of this Slurm job id "
              "('local' for runs outside Slurm).")
@click.option("--user", "user", default=None, help="Act for this user (must be you; the "
              "epilog runs 'ksi gc' as the job's user).")
@click.option("--all-users", is_flag=True, help="Root only: run the gc as every user with "
              "KSI state on this node.")
@click.option("--json", "as_json", is_flag=True, help="Print the actions as JSON.")
@click.option("--provider", default=None, help="Runtime to look in (default: the setting).")
@click.option("-v", "--verbose", is_flag=True, help="Show every command.")
def gc(dry_run: bool, job: Optional[str], user: Optional[str], all_users: bool,
       as_json: bool, provider: Optional[str], verbose: bool) -> None:
    """Remove clusters, node containers, stale port locks and state of runs that ended
    (a killed 'ksi run', a cancelled job). Running runs are never touched."""
    import pwd

    from ksi.errors import Exit
    from ksi.ops import gc as g

    _quiet_logs(verbose)
    me = pwd.getpwuid(os.getuid()).pw_name
    if all_users:
        if os.geteuid() != 0:
            click.echo("ksi: error: --all-users is for root -- fix: run 'ksi gc' as "
                       "yourself, or ask an admin", err=True)
            sys.exit(int(Exit.USAGE))
        sys.exit(_gc_all_users(dry_run, job, as_json, verbose))
    if user is not None and user != me:
        click.echo(f"ksi: error: 'ksi gc --user {user}' runs as {me}: a rootless runtime is "
                   f"only reachable as its user -- fix: runuser -u {user} -- ksi gc --user "
                   f"{user}", err=True)
        sys.exit(int(Exit.USAGE))
    flags = {"provider": provider} if provider else {}
    s = _settings(flags)
    actions, problems = g.collect(s, _runner(), dict(os.environ), dry_run=dry_run, job=job)
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "actions": [a.as_dict() for a in actions],
                               "problems": problems}, indent=2))
    else:
        for a in actions:
            click.echo(a.line(dry_run))
        if not actions:
            click.echo("nothing to clean up" + (f" for job {job}" if job else ""))
    for p in problems:
        click.echo(f"ksi: warning: {p}", err=True)
    incomplete = problems or any(a.problems for a in actions)
    sys.exit(int(Exit.TEARDOWN_INCOMPLETE) if incomplete else 0)


def _gc_all_users(dry_run: bool, job: Optional[str], as_json: bool, verbose: bool) -> int:
    import pwd

    from ksi.ops import gc as g

    s = _settings()
    runner = _runner()
    code = 0
    for uid in sorted(g.user_state_roots(s)):
        try:
            pw = pwd.getpwuid(uid)
        except KeyError:
            click.echo(f"ksi: warning: uid {uid} has KSI state but no account", err=True)
            continue
        args = [sys.executable, "-m", "ksi", "gc", "--user", pw.pw_name]
        args += ["--dry-run"] if dry_run else []
        args += ["--job", job] if job else []
        args += ["--json"] if as_json else []
        args += ["-v"] if verbose else []
        env = {"HOME": pw.pw_dir, "USER": pw.pw_name, "LOGNAME": pw.pw_name,
               "XDG_RUNTIME_DIR": f"/run/user/{uid}"}
        if uid == 0:
            argv = args
        else:
            argv = ["runuser", "-u", pw.pw_name, "--", "env",
                    *[f"{k}={v}" for k, v in env.items()], *args]
        res = runner.run(argv, timeout=900, check=False,
                         env={k: v for k, v in env.items() if uid == 0})
        click.echo(f"# user {pw.pw_name}" if not as_json else "", nl=not as_json)
        click.echo(res.stdout, nl=False)
        if res.stderr:
            click.echo(res.stderr, nl=False, err=True)
        code = max(code, res.returncode)
    return code


# --------------------------------------------------------------------------- shell
@click.command()
@click.option("--provider", default=None, help="Container runtime kind uses.")
@click.option("--image", default=None, help="kind node image.")
@click.option("--state-dir", default=None, help="Private node-local state directory.")
@click.option("--shell", "shell", default="bash", show_default=True, help="Shell to start.")
@click.option("-v", "--verbose", is_flag=True, help="Show every command (secrets masked).")
def shell(provider: Optional[str], image: Optional[str], state_dir: Optional[str],
          shell: str, verbose: bool) -> None:
    """Bring up a cluster and open an interactive shell on it (inside salloc or locally).

    The prompt shows (ksi:<cluster>); K8S_CLUSTER_NAME, KUBECONFIG, K8S_PORT, ... are set.
    The cluster is deleted when the shell exits or the allocation ends; the exit status is
    the shell's.
    """
    from ksi.ops.shell import run_shell
    from ksi.output import Console

    flags = {"provider": provider, "image": image, "state_dir": state_dir}
    sys.exit(run_shell(flags, Console(verbose=verbose), _runner(), shell=shell))


# --------------------------------------------------------------------------- submit
@click.command(context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": True})
@click.option("--dry-run", is_flag=True, help="Print the batch script; submit nothing.")
@click.option("--signal-margin", type=int, default=None,
              help="Seconds before the time limit at which Slurm sends TERM to the batch "
              "shell (default: teardown_margin + 60).")
@click.option("--each", is_flag=True, help="Several nodes, each with its own cluster.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def submit(dry_run: bool, signal_margin: Optional[int], each: bool, args: tuple[str, ...]
           ) -> None:
    """Submit WORKLOAD as a batch job: ksi submit [SBATCH OPTIONS] WORKLOAD [SHARED_DIR].

    Writes a batch script with '#SBATCH --signal=B:TERM@<margin>' that runs 'ksi run'
    (directly on one node; as an srun step with TERM forwarded on several) and prints the
    job id. Put ksi run's arguments after '--' when they are ambiguous.
    """
    from ksi.errors import KsiError
    from ksi.ops.submit import submit as do_submit

    s = _settings()
    margin = signal_margin if signal_margin is not None else int(s.teardown_margin) + 60
    try:
        sys.exit(do_submit(list(args), _runner(), margin=margin, dry_run=dry_run, each=each))
    except KsiError as exc:
        _die(exc)


# --------------------------------------------------------------------------- config
@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def config(as_json: bool) -> None:
    """Print the effective settings and where each value comes from
    (default < /etc/ksi/config.toml < ~/.config/ksi/config.toml < KSI_* < flags)."""
    from ksi import settings as st

    s = _settings()
    rows = [{"name": n, "value": v, "origin": o, "help": st.BY_NAME[n].help}
            for n, v, o in s.table()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    w = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{w}} = {json.dumps(r['value'])}  # {r['origin']}")


COMMANDS = (doctor, ls_cmd, gc, shell, submit, config)

__all__ = ["COMMANDS"]
