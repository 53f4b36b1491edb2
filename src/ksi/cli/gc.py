"""`ksi gc`: remove the leftovers of runs that ended (ksi.ops.gc)."""

from __future__ import annotations

import json
import os
import sys
from typing import Optional

import click

from ksi.cli.common import load_settings, quiet_logs, runner


@click.command("gc")
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
def command(dry_run: bool, job: Optional[str], user: Optional[str], all_users: bool,
            as_json: bool, provider: Optional[str], verbose: bool) -> None:
    """Remove clusters, node containers, stale port locks and state of runs that ended
    (a killed 'ksi run', a cancelled job). Running runs are never touched."""
    import pwd

    from ksi.errors import Exit
    from ksi.ops import gc as g

    quiet_logs(verbose)
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
    s = load_settings(flags, verbose=verbose)
    actions, problems = g.collect(s, runner(), dict(os.environ), dry_run=dry_run, job=job)
    warm_lines: list[str] = []
    if job is None:  # stale or half-made warm templates (ksi warm)
        from ksi.errors import KsiError
        from ksi.ops.warm import remove

        try:
            warm_lines, warm_problems = remove(s, runner(), only_stale=True, dry_run=dry_run)
        except KsiError as exc:
            warm_problems = [f"warm templates: {exc.cause}"]
        problems = [*problems, *warm_problems]
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, "actions": [a.as_dict() for a in actions],
                               "templates": warm_lines, "problems": problems}, indent=2))
    else:
        for a in actions:
            click.echo(a.line(dry_run))
        for line in warm_lines:
            click.echo(line)
        if not actions and not warm_lines:
            click.echo("nothing to clean up" + (f" for job {job}" if job else ""))
    for p in problems:
        click.echo(f"ksi: warning: {p}", err=True)
    incomplete = problems or any(a.problems for a in actions)
    sys.exit(int(Exit.TEARDOWN_INCOMPLETE) if incomplete else 0)


def _gc_all_users(dry_run: bool, job: Optional[str], as_json: bool, verbose: bool) -> int:
    import pwd

    from ksi.ops import gc as g

    s = load_settings()
    run = runner()
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
        res = run.run(argv, timeout=900, check=False,
                         env={k: v for k, v in env.items() if uid == 0})
        click.echo(f"# user {pw.pw_name}" if not as_json else "", nl=not as_json)
        click.echo(res.stdout, nl=False)
        if res.stderr:
            click.echo(res.stderr, nl=False, err=True)
        code = max(code, res.returncode)
    return code
