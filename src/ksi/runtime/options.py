"""`ksi run` flags of issue 6, added by one decorator so that cli.py's signature stays as is.

Values land in the click context (meta["ksi_runtime_flags"]); cli.run merges them into the
settings flags: --runtime-mode, --image-archive, --preload (repeatable), --bypass4netns,
--gpus (issue 17: the `gpus` setting).
"""

from __future__ import annotations

from typing import Any, Callable

import click

META_KEY = "ksi_runtime_flags"


def _store(name: str, join: bool = False) -> Callable[[click.Context, Any, Any], None]:
    def callback(ctx: click.Context, _param: Any, value: Any) -> None:
        if join:
            value = ",".join(value) if value else None
        if value is not None:
            ctx.meta.setdefault(META_KEY, {})[name] = value

    return callback


def runtime_options(f: Callable[..., Any]) -> Callable[..., Any]:
    opts = [
        click.option("--runtime-mode", type=click.Choice(("user", "job")), default=None,
                     expose_value=False, callback=_store("runtime_mode"),
                     help="job: a private rootless runtime inside the job's cgroup, stopped "
                     "with the job (needs the site's cgroup delegation; docs/runtime.md)."),
        click.option("--image-archive", default=None, metavar="PATH", expose_value=False,
                     callback=_store("image_archive"),
                     help="Node image archive, loaded only when the runtime lacks the image."),
        click.option("--preload", multiple=True, metavar="ARCHIVE", expose_value=False,
                     callback=_store("preload", join=True),
                     help="Image archive loaded into the new cluster (repeatable)."),
        click.option("--bypass4netns", type=click.Choice(("auto", "on", "off")), default=None,
                     expose_value=False, callback=_store("bypass4netns"),
                     help="Near line-rate pod networking for nerdctl (auto: where "
                     "bypass4netnsd runs)."),
        click.option("--gpus", type=click.Choice(("auto", "none", "required")), default=None,
                     expose_value=False, callback=_store("gpus"),
                     help="The job's GPUs in the cluster: auto (when Slurm gave the job "
                     "GPUs), none (never), required (fail, exit 97, without GPUs)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def flags() -> dict[str, Any]:
    """The values given on this command line (call inside the click command)."""
    return dict(click.get_current_context().meta.get(META_KEY, {}))
