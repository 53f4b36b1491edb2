"""What the command modules share: settings with the one-line config error, the runner."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, NoReturn, Optional

import click

if TYPE_CHECKING:
    from ksi.errors import KsiError
    from ksi.output import Console
    from ksi.runner import Runner
    from ksi.settings import Settings


def load_settings(flags: Optional[dict[str, Any]] = None, *, verbose: bool = False
                  ) -> Settings:
    """Effective settings; a config error ends the command with its one line (exit 77)."""
    from ksi import settings
    from ksi.errors import KsiError

    try:
        return settings.load(flags or {})
    except KsiError as exc:
        die(exc, verbose=verbose)


def die(exc: KsiError, *, verbose: bool = False) -> NoReturn:
    """End the command with the error's one line and its exit code (verbose: first what it
    was raised from)."""
    from ksi.runner import mask

    why = exc.caused_by() if verbose else ""
    if why:
        click.echo(mask(f"ksi: {why}"), err=True)
    click.echo(exc.line(), err=True)
    sys.exit(int(exc.code))


def runner() -> Runner:
    from ksi.runner import Runner

    return Runner()


def console(verbose: bool) -> Console:
    from ksi.output import Console

    return Console(verbose=verbose)


def quiet_logs(verbose: bool = False) -> None:
    """The masking "ksi:" log handler on stderr; warnings only unless verbose."""
    import logging

    console(verbose)
    if not verbose:
        logging.getLogger("ksi").setLevel(logging.WARNING)
