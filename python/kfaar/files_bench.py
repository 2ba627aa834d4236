"""``kfaar bench files``: photos/s of ``kfaar anonymize`` on a folder, as it runs and as it ran.

The folder is made from the sample photo (matplotlib's ``grace_hopper.jpg``, one face): the
photo as it is (512 x 600) and the photo enlarged to a 12-megapixel phone picture (3024 x
4032, bicubic), each file with its own seeded sensor-like noise (s.d. 3 grey levels: no two
files alike, and PNG results not unrealistically compressible), saved as a JPEG of quality 90. Every repeat runs the four ways in turn
on the same files, into fresh output folders:

- ``one at a time, PNG 6``: read, anonymize, write each photo in turn at zlib level 6
  (Pillow's default): ``kfaar anonymize`` before 2026-11-27;
- ``one at a time, PNG 1``: the same at level 1 (the default since);
- ``overlapped, PNG 1``: the next photo read and the last result written on two threads
  while a photo is anonymized (``kfaar anonymize`` as it runs now);
- ``overlapped, JPEG 95``: the same, writing JPEG results (``--format jpeg``, quality 95, 4:4:4).

Figures are medians over the repeats; ratios are against the first way, from this one run.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import click
import numpy as np

WAYS = {  # name -> (overlapped, ResultFormat's arguments)
    "one at a time, PNG 6": (False, {"png_compression": 6}),
    "one at a time, PNG 1": (False, {"png_compression": 1}),
    "overlapped, PNG 1": (True, {"png_compression": 1}),
    "overlapped, JPEG 95": (True, {"kind": "jpeg", "jpeg_quality": 95}),
}
SIZES = {"sample": None, "12mp": (3024, 4032)}  # (width, height) or None: the sample photo as it is


def _photos(folder: Path, size: tuple[int, int] | None, n: int) -> list[Path]:
    """``n`` JPEG files of the sample photo at ``size`` (distinct noise each: no two files alike)."""
    from PIL import Image

    from kfaar.demo import sample_photo_path
    from kfaar.faces import load_image

    base = load_image(sample_photo_path())
    if size is not None:
        base = np.asarray(Image.fromarray(base).resize(size, Image.BICUBIC))
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        noise = np.random.default_rng(i).normal(0.0, 3.0, base.shape)
        pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
        paths.append(folder / f"p{i:03d}.jpg")
        Image.fromarray(pixels).save(paths[-1], quality=90)
    return paths


@click.command("files")
@click.option("--size", "sizes", type=click.Choice(sorted(SIZES)), multiple=True,
              help="Photo sizes to run (repeatable; default: both).")
@click.option("--photos", type=int, default=None, help="Photos per folder (default: 24 sample-size, 6 at 12 MP).")
@click.option("--repeats", type=int, default=3, show_default=True, help="Timed runs per way (median).")
@click.option("--threads", type=int, default=2, show_default=True, help="ORT intra-op threads (SFace too).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write every figure here.")
def files(sizes: tuple[str, ...], photos: int | None, repeats: int, threads: int, json_path: str | None) -> None:
    """photos/s of `kfaar anonymize` on a folder: overlapped reading and writing vs one at a time."""
    from kfaar.keys import Key
    from kfaar.pipeline import Anonymizer, AnonymizerOptions
    from kfaar.pipeline_bench import KEY_SEED
    from kfaar.files import ResultFormat, anonymize_files

    if repeats < 1 or (photos is not None and photos < 1):
        raise click.BadParameter("--photos and --repeats take a count >= 1")
    key = Key.from_bytes(KEY_SEED)
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Anonymizer(AnonymizerOptions(threads=threads)) as anon:
        for size in sizes or tuple(SIZES):
            n = photos or (24 if SIZES[size] is None else 6)
            sources = _photos(Path(tmp) / size, SIZES[size], n)
            anon.anonymize(str(sources[0]), key)  # warm-up
            times: dict[str, list[float]] = {w: [] for w in WAYS}
            out_mb: dict[str, float] = {}
            for r in range(repeats):
                for i, (way, (overlapped, fmt)) in enumerate(WAYS.items()):
                    out = Path(tmp) / f"out-{size}-{r}-{i}"
                    fmt = ResultFormat(**fmt)
                    targets = [(s, out / (s.stem + fmt.suffix)) for s in sources]
                    t = time.perf_counter()
                    report = anonymize_files(targets, anon, key, fmt, overlapped=overlapped, progress=False).report
                    times[way].append(time.perf_counter() - t)
                    if report.failed:
                        raise click.ClickException(f"{way}: {report.failed[0][0]}: {report.failed[0][1]}")
                    out_mb[way] = sum(p.stat().st_size for _, p in targets) / n / 1e6
            first = statistics.median(times[next(iter(WAYS))])
            for way, ts in times.items():
                rows.append({"size": size, "photos": n, "way": way, "photos_s": n / statistics.median(ts),
                             "ratio": first / statistics.median(ts), "mb_per_result": out_mb[way]})
    if json_path:
        Path(json_path).write_text(json.dumps({"repeats": repeats, "threads": threads, "rows": rows}, indent=1) + "\n")
    click.echo(f"kfaar anonymize on a folder (median of {repeats}, {threads} threads)")
    click.echo(f"{'photos':<22}{'way':<24}{'photos/s':>10}{'x':>7}{'MB/result':>11}")
    for r in rows:
        label = f"{r['photos']} x {r['size']}"
        click.echo(f"{label:<22}{r['way']:<24}{r['photos_s']:>10.2f}{r['ratio']:>7.2f}{r['mb_per_result']:>11.2f}")
