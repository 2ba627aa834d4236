"""``kfaar data``: build the face-data caches the models train and evaluate on."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def data() -> None:
    """Face data caches (LFW)."""


@data.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding lfw/ (default: $KFAAR_DATA or ../shared/data next to the repo).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("cache/lfw"),
              show_default=True, help="Cache folder (keep it outside git).")
@click.option("--size", type=click.IntRange(16, 1024), default=128, show_default=True,
              help="Aligned crop side in pixels.")
@click.option("--split", type=click.Choice(["train", "dev", "all"]), default="all", show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N images of each split.")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="Worker processes (one core each).")
def prepare(data_dir: Path | None, out: Path, size: int, split: str, limit: int | None, workers: int) -> None:
    """Detect, align (SIZE px) and SFace-encode LFW per lfw/splits.json into OUT; resumable."""
    from kfaar.data.lfw import SPLITS, PrepareOptions
    from kfaar.data.lfw import prepare as run_prepare
    from kfaar.data.paths import require_data_dir

    try:
        lfw = require_data_dir("lfw", data_dir)
    except FileNotFoundError as e:
        raise click.UsageError(str(e)) from None
    splits = SPLITS if split == "all" else (split,)
    try:
        res = run_prepare(lfw, out, splits, PrepareOptions(size=size, workers=workers, limit=limit))
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    for s in splits:
        click.echo(f"{s}: {res.faces[s]} faces cached, {res.skipped[s]} skipped, of {res.images[s]} images")
    if res.processed:
        click.echo(f"processed {res.processed} images in {res.seconds:.1f} s ({res.rate:.1f} images/s, "
                   f"{workers} workers)")
    else:
        click.echo("nothing to do: every shard was already in the cache")
    click.echo(f"cache: {res.out}")
