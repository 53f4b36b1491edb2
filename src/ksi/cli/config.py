"""`ksi config`: the effective settings and where each value comes from."""

from __future__ import annotations

import json

import click

from ksi.cli.common import load_settings


@click.command("config")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def command(as_json: bool) -> None:
    """Print the effective settings and where each value comes from
    (default < /etc/ksi/config.toml < ~/.config/ksi/config.toml < KSI_* < flags)."""
    from ksi import settings as st

    s = load_settings()
    rows = [{"name": n, "value": v, "origin": o, "help": st.BY_NAME[n].help}
            for n, v, o in s.table()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    w = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name']:<{w}} = {json.dumps(r['value'])}  # {r['origin']}")
