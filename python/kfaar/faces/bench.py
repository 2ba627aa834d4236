"""``kfaar bench faces``: photos/s for detect + align + encode, at LFW size and at 1920x1080.

Two numbers per scene, both medians over repeats:
- one core: each photo timed alone in this process (OpenCV and ORT on one thread), wall and
  CPU time; CPU time is what a busy machine cannot inflate;
- N cores: ``--workers`` processes with one thread each share the photos (how
  ``kfaar data prepare`` runs), photos/s of wall time.
The last column, ``workers * 1000 / cpu ms``, is what idle cores would give; on a shared
machine it is the figure to quote (the wall-time columns are printed beside it).
A second table times detection alone on one thread, YuNet through onnxruntime (what kfaar
runs) against OpenCV's ``FaceDetectorYN`` (its reference), alternating photo by photo, with
the faces each found.
Photos are decoded beforehand: decoding is not part of the face pipeline being measured.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import click
import numpy as np


def _scenes(data_dir: Path | None, n250: int) -> dict[str, list[np.ndarray]]:
    """Two scenes: LFW-like 250 px portraits and 1920x1080 photos with six faces each."""
    import cv2

    from kfaar.faces.image import load_image

    try:
        from matplotlib import cbook
    except ImportError:
        raise click.UsageError("the benchmark's sample photo ships with matplotlib: pip install 'kfaar[eval]'") from None
    gh = load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    portraits: list[np.ndarray] = []
    lfw = (data_dir / "lfw") if data_dir is not None else None
    if lfw is not None and lfw.is_dir():
        files = sorted(lfw.glob("*/*_0001.jpg"))[:n250]
        portraits = [load_image(f) for f in files]
    source = "lfw" if portraits else "grace_hopper"
    if not portraits:  # LFW-like crop of the sample photo, a little varied
        base = cv2.resize(gh[40:500, 40:472], (250, 250), interpolation=cv2.INTER_AREA)
        portraits = [np.clip(base * (0.7 + 0.6 * i / n250), 0, 255).astype(np.uint8) for i in range(n250)]

    rng = np.random.default_rng(0)
    crowd = []
    for k in range(4):
        ramp = np.linspace(40, 200, 1920, dtype=np.float32)
        canvas = np.dstack([np.tile(ramp, (1080, 1)), np.full((1080, 1920), 90.0), np.tile(ramp[::-1], (1080, 1))])
        canvas = canvas.astype(np.uint8)
        for j in range(6):  # a 3x2 grid of people, 180-330 px tall, jittered
            h = int(rng.integers(180, 330))
            w = int(h * gh.shape[1] / gh.shape[0])
            face = cv2.resize(gh if (j + k) % 2 == 0 else gh[:, ::-1], (w, h), interpolation=cv2.INTER_AREA)
            x = 60 + (j % 3) * 620 + int(rng.integers(0, 560 - w + 1))
            y = 40 + (j // 3) * 520 + int(rng.integers(0, 500 - h + 1))
            canvas[y : y + h, x : x + w] = face
        crowd.append(canvas)
    return {f"250x250 ({source})": portraits, "1920x1080, 6 faces": crowd}


class _Pipeline:
    """detect -> align -> encode, one thread; returns the number of faces."""

    def __init__(self) -> None:
        from kfaar.faces.detect import FaceDetector
        from kfaar.faces.encode import SFaceEncoder

        self.det = FaceDetector(threads=1)
        self.enc = SFaceEncoder(threads=1)

    def __call__(self, rgb: np.ndarray, stages: dict[str, list[float]] | None = None) -> int:
        from kfaar.faces.align import align_face

        t0 = time.perf_counter()
        faces = self.det.detect(rgb)
        t1 = time.perf_counter()
        crops = np.stack([align_face(rgb, f.landmarks, 128).crop for f in faces]) if faces else None
        t2 = time.perf_counter()
        if crops is not None:
            self.enc.encode(crops)
        t3 = time.perf_counter()
        if stages is not None:
            for k, v in (("detect", t1 - t0), ("align", t2 - t1), ("encode", t3 - t2)):
                stages[k].append(v)
        return len(faces)


_WORKER: dict = {}


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)
    _WORKER["pipe"] = _Pipeline()


def _run_many(photos: list[np.ndarray]) -> int:
    return sum(_WORKER["pipe"](p) for p in photos)


def _one_core(pipe: _Pipeline, photos: list[np.ndarray], repeats: int) -> dict:
    stages: dict[str, list[float]] = {"detect": [], "align": [], "encode": []}
    wall, cpu, faces = [], [], []
    pipe(photos[0])  # warm-up (first ORT run allocates)
    for _ in range(repeats):
        for p in photos:
            w0, c0 = time.perf_counter(), time.process_time()
            faces.append(pipe(p, stages))
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
    med = statistics.median
    return {
        "faces_per_photo": float(np.mean(faces)),
        "ms_per_photo": 1000 * med(wall),
        "cpu_ms_per_photo": 1000 * med(cpu),
        "stage_ms": {k: 1000 * med(v) for k, v in stages.items()},
        "photos_per_s_1core": 1.0 / med(wall),
    }


def _detect_ab(photos: list[np.ndarray], repeats: int) -> dict:
    """Median ms per photo of ``FaceDetector.detect`` on one thread with YuNet through
    onnxruntime and through OpenCV, alternated photo by photo, and the faces each found."""
    from kfaar.faces.detect import FaceDetector, with_opencv_network

    ort_det = FaceDetector(threads=1)
    cv_det = with_opencv_network(FaceDetector())
    times: dict[str, list[float]] = {"onnxruntime": [], "opencv": []}
    found = {k: 0 for k in times}
    for det in (ort_det, cv_det):
        det.detect(photos[0])  # warm-up
    for _ in range(repeats):
        for p in photos:
            for name, det in (("onnxruntime", ort_det), ("opencv", cv_det)):
                t0 = time.perf_counter()
                found[name] += len(det.detect(p))
                times[name].append(time.perf_counter() - t0)
    return {f"{k}_ms": 1000 * statistics.median(v) for k, v in times.items()} | {f"{k}_faces": found[k] for k in found}


def _n_cores(pool, workers: int, photos: list[np.ndarray], repeats: int) -> float:
    shares = [photos[i::workers] for i in range(workers)]
    pool.map(_run_many, [s[:1] for s in shares])  # warm every worker
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pool.map(_run_many, shares)
        rates.append(len(photos) / (time.perf_counter() - t0))
    return statistics.median(rates)


@click.command()
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True, help="Cores (processes).")
@click.option("--repeats", type=click.IntRange(1), default=5, show_default=True)
@click.option("--photos", "n250", type=click.IntRange(2), default=32, show_default=True,
              help="250 px photos per repeat.")
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding lfw/ for real 250 px photos (default: $KFAAR_DATA or ../shared/data).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results here.")
def faces(workers: int, repeats: int, n250: int, data_dir: Path | None, json_path: Path | None) -> None:
    """photos/s for detect + align (128 px) + SFace encode, on one core and on WORKERS cores."""
    import multiprocessing as mp
    import os

    import cv2

    from kfaar.data.paths import default_data_dir

    scenes = _scenes(data_dir if data_dir is not None else default_data_dir(), n250)
    cv2.setNumThreads(1)  # this command's process is the one-core measurement
    pipe = _Pipeline()
    results = {}
    with mp.get_context("spawn").Pool(workers, _init_worker) as pool:
        for name, photos in scenes.items():
            click.echo(f"timing {name} ...", err=True)
            r = _one_core(pipe, photos, repeats)
            r[f"photos_per_s_{workers}cores"] = _n_cores(pool, workers, photos, repeats)
            # what N idle cores would do: N photos per CPU-time of one photo
            r[f"cpu_est_photos_per_s_{workers}cores"] = workers * 1000.0 / r["cpu_ms_per_photo"]
            r["photos"] = len(photos)
            r["detect_ab"] = _detect_ab(photos, repeats)
            results[name] = r

    head = f"{'scene':<28}{'faces':>6}{'ms/photo':>10}{'cpu ms':>8}{'detect':>8}{'align':>7}{'encode':>8}" \
           f"{'1 core/s':>10}{f'{workers} cores/s':>12}{f'CPU-est {workers}c/s':>16}"
    click.echo(head)
    click.echo("-" * len(head))
    for name, r in results.items():
        s = r["stage_ms"]
        click.echo(f"{name:<28}{r['faces_per_photo']:>6.1f}{r['ms_per_photo']:>10.1f}{r['cpu_ms_per_photo']:>8.1f}"
                   f"{s['detect']:>8.1f}{s['align']:>7.1f}{s['encode']:>8.1f}{r['photos_per_s_1core']:>10.1f}"
                   f"{r[f'photos_per_s_{workers}cores']:>12.1f}{r[f'cpu_est_photos_per_s_{workers}cores']:>16.1f}")
    click.echo(f"\n{'detect only, one thread':<28}{'onnxruntime ms':>16}{'OpenCV ms':>11}{'ratio':>7}{'faces (ort / cv)':>18}")
    for name, r in results.items():
        ab = r["detect_ab"]
        click.echo(f"{name:<28}{ab['onnxruntime_ms']:>16.1f}{ab['opencv_ms']:>11.1f}"
                   f"{ab['opencv_ms'] / ab['onnxruntime_ms']:>7.2f}{ab['onnxruntime_faces']:>10} / {ab['opencv_faces']}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    click.echo(f"medians over {repeats} repeats; {os.cpu_count()} CPUs visible, load average {load:.1f} "
               "(a busy machine inflates wall times, not CPU ms)")
    if json_path is not None:
        import onnxruntime

        meta = {"workers": workers, "repeats": repeats, "cpu_count": os.cpu_count(), "load_avg_1m": load,
                "opencv": cv2.__version__, "onnxruntime": onnxruntime.__version__,
                "machine": platform.machine(), "python": platform.python_version()}
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps({"meta": meta, "scenes": results}, indent=2))
        click.echo(f"wrote {json_path}")
