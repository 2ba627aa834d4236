"""The ``kfaar`` command line.

Each subcommand lives beside the code it drives and is imported only when it runs, so
``kfaar --help`` stays fast and a runtime install never imports training code.
To add a command: write a ``click.Command`` in its area's module and list it below.
"""

from __future__ import annotations

import importlib
import logging

import click

# name -> "module:attribute" of a click.Command (or Group)
_COMMANDS = {
    "keygen": "kfaar.keys_cli:keygen",
    "key": "kfaar.keys_cli:key_group",
    "info": "kfaar.info:info",
    "bench": "kfaar.bench:bench",
    "data": "kfaar.data.cli:data",
    "eval": "kfaar.eval.cli:eval_command",
    "train": "kfaar.train.cli:train",
    "export": "kfaar.runtime.cli:export",
    "train-export": "kfaar.train.cli:export",
    "train-eigen": "kfaar.train.cli:train_eigen",
    "anonymize": "kfaar.pipeline_cli:anonymize",
    "enroll": "kfaar.pipeline_cli:enroll",
    "verify": "kfaar.pipeline_cli:verify",
    "demo": "kfaar.demo:demo",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented lazy pattern)."""

    def __init__(self, *args, lazy_subcommands: dict[str, str] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_subcommands = dict(lazy_subcommands or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_subcommands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy_subcommands.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(module_name), attr)


class _Main(LazyGroup):
    """The top-level group: a kfaar error (wrong passphrase, no face, unreadable photo, model
    checksum...) or a file that cannot be read or written ends the command with its message and
    exit code 2, not a traceback (``-vv`` logs the traceback). 2 keeps it apart from ``kfaar verify``'s 1 for "no match"."""

    def invoke(self, ctx: click.Context):
        from kfaar.errors import KfaarError

        try:
            return super().invoke(ctx)
        except (KfaarError, OSError) as err:  # OSError: a file that cannot be read or written
            logging.getLogger("kfaar.cli").debug("the command failed", exc_info=True)
            if isinstance(err, OSError) and err.filename is not None and err.strerror:
                err = f"{err.filename}: {err.strerror}"
            click.echo(f"Error: {err}", err=True)
            ctx.exit(2)


# Photos up to this many megapixels are read: a 200-megapixel phone photo (16,320 x 12,240)
# included, where Pillow's own guard against decompression bombs refuses anything over 179
# megapixels and warns from 89.
MAX_MEGAPIXELS = 250


@click.group(cls=_Main, lazy_subcommands=_COMMANDS)
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
@click.option("--max-megapixels", type=click.IntRange(1), default=MAX_MEGAPIXELS, show_default=True,
              help="Refuse photos over this size (a guard against decompression bombs: a small file that "
                   "decodes to gigabytes). Anonymizing a photo takes ~12 bytes a pixel at its peak: 2.4 GB at "
                   "200 megapixels.")
@click.version_option(package_name="kfaar")
def main(verbose: int, max_megapixels: int) -> None:
    """kfaar: key-driven, identity-preserving face anonymization.

    Exit codes: 0 done (for verify: a match), 1 verify found no match, 2 an error (its message
    on stderr)."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    _pixel_limit(max_megapixels)


def _pixel_limit(megapixels: int) -> None:
    """Pillow's decompression-bomb guard, for this process (the CLI's own; the library leaves
    Pillow's settings to the application): photos over ``megapixels`` are refused, and the
    warning Pillow prints from half that is silenced."""
    import warnings

    from PIL import Image

    Image.MAX_IMAGE_PIXELS = megapixels * 1_000_000 // 2  # Pillow refuses above twice this
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


if __name__ == "__main__":  # pragma: no cover
    main()
