"""`kfaar anonymize` on a folder as it runs now and as it ran before 2026-11-27 20:50, alternated
in one process on the same files: photos/s, and whether the results are the same.

Now: YuNet through onnxruntime, and the face networks' onnxruntime sessions (YuNet, SFace)
without spin-waiting. Before: YuNet through OpenCV's FaceDetectorYN, SFace's session spinning
(onnxruntime's default). `--only detector` / `--only sessions` changes one of the two.
`--detect-only`: instead, the Anonymizer's detector alone on the 12-megapixel photo, with and
without the small-face search (median of 5, alternated).

    python tools/detect_speed_ab.py [--repeats 3] [--size 12mp --size sample]

The folders are `kfaar bench files`'s (the sample photo, and the photo enlarged to 12
megapixels, each file with its own noise); each repeat runs both detectors, overlapped
reading/writing, PNG level 1 and JPEG 95. Results are compared pixel for pixel between the
two (the landmarks differ by ~1e-4 px, which moves a few pixels of the paste by a level or two).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import click
import numpy as np


@click.command()
@click.option("--size", "sizes", type=click.Choice(["sample", "12mp"]), multiple=True)
@click.option("--repeats", type=int, default=3, show_default=True)
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--only", type=click.Choice(["detector", "sessions"]), default=None,
              help="'Before' differs from now only in the detector, or only in the sessions' spinning.")
@click.option("--detect-only", is_flag=True, help="Time the Anonymizer's detector alone on a 12-MP photo.")
def main(sizes: tuple[str, ...], repeats: int, threads: int, only: str | None, detect_only: bool) -> None:
    if detect_only:
        return _detect_12mp()
    import functools

    from PIL import Image

    import kfaar.faces.encode as encode
    from kfaar.faces.detect import FaceDetector, with_opencv_network
    from kfaar.files import ResultFormat, anonymize_files
    from kfaar.files_bench import SIZES, _photos
    from kfaar.keys import Key
    from kfaar.pipeline import Anonymizer, AnonymizerOptions
    from kfaar.pipeline_bench import KEY_SEED

    key = Key.from_bytes(KEY_SEED)
    ours = FaceDetector._network

    def opencv(self):
        if self._net is None:
            with_opencv_network(self)
        return self._net

    quiet = encode.cpu_session
    spinning = functools.partial(quiet, spin=True)  # cpu_session as it was: onnxruntime's default

    ways = {"now": (ours, quiet), "before": (opencv if only != "sessions" else ours,
                                             spinning if only != "detector" else quiet)}

    click.echo(f"{'photos':<14}{'format':<8}{'now /s':>9}{'before /s':>11}{'x':>6}{'max |diff|':>12}{'pixels differing':>18}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes or ("sample", "12mp"):
            n = 24 if SIZES[size] is None else 6
            sources = _photos(Path(tmp) / size, SIZES[size], n)
            for fmt in (ResultFormat(png_compression=1), ResultFormat(kind="jpeg", jpeg_quality=95)):
                times: dict[str, list[float]] = {w: [] for w in ways}
                outs: dict[str, Path] = {}
                for r in range(repeats):
                    for name, (network, session) in ways.items():
                        FaceDetector._network, encode.cpu_session = network, session
                        try:
                            with Anonymizer(AnonymizerOptions(threads=threads)) as anon:
                                anon.anonymize(str(sources[0]), key)  # warm-up
                                out = Path(tmp) / f"{size}-{fmt.kind}-{name}-{r}"
                                targets = [(s, out / (s.stem + fmt.suffix)) for s in sources]
                                t = time.perf_counter()
                                report = anonymize_files(targets, anon, key, fmt, progress=False).report
                                times[name].append(time.perf_counter() - t)
                                assert not report.failed, report.failed
                                outs[name] = out
                        finally:
                            FaceDetector._network, encode.cpu_session = ours, quiet
                diff, differing = 0, 0
                for s in sources:
                    a = np.asarray(Image.open(outs["now"] / (s.stem + fmt.suffix)), np.int16)
                    b = np.asarray(Image.open(outs["before"] / (s.stem + fmt.suffix)), np.int16)
                    diff = max(diff, int(np.abs(a - b).max()))
                    differing += int((a != b).any(axis=-1).sum())
                rate = {k: n / statistics.median(v) for k, v in times.items()}
                click.echo(f"{f'{n} x {size}':<14}{fmt.kind:<8}{rate['now']:>9.2f}{rate['before']:>11.2f}"
                           f"{rate['now'] / rate['before']:>6.2f}{diff:>12}{differing / n:>18.0f}")
    click.echo(f"median of {repeats}, {threads} threads; pixels differing: per photo")


def _detect_12mp() -> None:
    import dataclasses

    from PIL import Image

    from kfaar.demo import sample_photo_path
    from kfaar.faces import load_image
    from kfaar.faces.detect import FaceDetector, with_opencv_network
    from kfaar.files_bench import SIZES
    from kfaar.pipeline import _anonymizer_detector_options

    big = np.asarray(Image.fromarray(load_image(sample_photo_path())).resize(SIZES["12mp"], Image.BICUBIC))
    opts = _anonymizer_detector_options()
    for fine in (opts.fine_max_side, None):
        o = dataclasses.replace(opts, fine_max_side=fine)
        dets = {"onnxruntime": FaceDetector(o), "opencv": with_opencv_network(FaceDetector(o))}
        for det in dets.values():
            det.detect(big)  # warm-up
        times: dict[str, list[float]] = {k: [] for k in dets}
        faces = {}
        for _ in range(5):
            for k, det in dets.items():
                t0 = time.perf_counter()
                faces[k] = len(det.detect(big))
                times[k].append(time.perf_counter() - t0)
        ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
        click.echo(f"12 MP, {'with' if fine else 'without'} the small-face search: onnxruntime {ms['onnxruntime']:.0f} ms "
                   f"({faces['onnxruntime']} face), OpenCV {ms['opencv']:.0f} ms ({faces['opencv']} face)")


if __name__ == "__main__":
    main()
