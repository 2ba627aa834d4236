"""``kfaar bench``: benchmarks that print medians and ratios measured in one run.

Speed targets are judged from these printed figures, never from timed tests.
"""

from __future__ import annotations

from kfaar.cli import LazyGroup

import click

_BENCHES = {
    "kernels": "kfaar.ops.bench:kernels",
    "faces": "kfaar.faces.bench:faces",
    "pipeline": "kfaar.pipeline_bench:pipeline",
    "files": "kfaar.files_bench:files",
}


@click.group(cls=LazyGroup, lazy_subcommands=_BENCHES)
def bench() -> None:
    """Benchmarks (kernels, faces, pipeline, files)."""
