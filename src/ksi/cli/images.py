"""`ksi images`: the offline image cache (archives on a shared filesystem; ksi.images)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import click

from ksi.cli.common import die, load_settings, runner


def _cache_dir(option: Optional[str]) -> Path:
    directory = option or load_settings().image_archive_dir
    if not directory:
        raise click.UsageError("no archive directory: pass --dir or set image_archive_dir "
                               "(KSI_IMAGE_ARCHIVE_DIR or the config file)")
    return Path(directory)


@click.group("images")
def command() -> None:
    """The offline image cache (archives on a shared filesystem)."""


@command.command("save")
@click.argument("image", nargs=-1)
@click.option("--dir", "directory", default=None, help="Archive directory (default: "
              "image_archive_dir).")
@click.option("--liqo", "liqo_version", default=None, metavar="VERSION",
              help="Also save Liqo's images of VERSION (e.g. the liqo_version setting's).")
@click.option("--gpu", is_flag=True, help="Also save the GPU images (the NVIDIA device "
              "plugin).")
@click.option("--provider", default=None, help="Runtime to save from (default: setting).")
def images_save(image: tuple[str, ...], directory: Optional[str], liqo_version: Optional[str],
                gpu: bool, provider: Optional[str]) -> None:
    """Save IMAGE... (and Liqo's, the GPU images) as archives into the cache directory."""
    from ksi.errors import KsiError
    from ksi.images import gpu_images, liqo_images, save
    from ksi.provision import providers

    images = list(image) + (liqo_images(liqo_version) if liqo_version else []) \
        + (gpu_images() if gpu else [])
    if not images:
        raise click.UsageError("name at least one IMAGE, --liqo VERSION or --gpu")
    try:
        cfg = load_settings({"provider": provider})
        prov = providers.get(cfg.provider, runner())
        for img, path, what in save(prov, images, _cache_dir(directory)):
            click.echo(f"{what}: {img} -> {path}")
    except KsiError as exc:
        die(exc)


@command.command("ls")
@click.option("--dir", "directory", default=None, help="Archive directory (default: "
              "image_archive_dir).")
def images_ls(directory: Optional[str]) -> None:
    """List the archives of the cache directory and the images inside them."""
    from ksi.images import listing

    d = _cache_dir(directory)
    rows = listing(d)
    if not rows:
        click.echo(f"no image archives in {d}")
        return
    for path, size, tags in rows:
        click.echo(f"{path.name}\t{size / 1e6:.1f} MB\t{', '.join(tags)}")
