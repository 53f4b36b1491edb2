"""`ksi --version`: KSI's version and those of the tools it drives (ksi.tools)."""

from __future__ import annotations

import click

from ksi import __version__
from ksi.cli.common import runner


def show() -> None:
    from ksi.tools import tool_versions

    click.echo(f"ksi, version {__version__}")
    tools = tool_versions(runner())
    for t in tools:
        click.echo(t.line())
    missing = [t.name for t in tools if t.path is None]
    if missing:
        click.echo(f"missing: {', '.join(missing)}")
