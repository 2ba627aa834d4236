"""``kfaar bench kernels``: the C++ (and CUDA) kernels against their baselines (torch twins, or a reference), in one run.

Every figure is the median wall time of ``--repeats`` calls measured in this process on the
same inputs, in blocks ordered baseline, C++, (CUDA,) then back, each block after a warm-up;
the speed-ups are ratios of those medians. The C++ and CUDA times go through the public ops
(argument checks and dispatch included), the torch baselines through torch eager under
``inference_mode`` with weights already held as tensors. The host-only ops on uint8 images,
which have no torch twin, are measured against OpenCV: the affine warp against
``cv2.warpAffine`` (whose bytes it reproduces), the cell sums of warped crops against each
crop warped whole by OpenCV, then its cells summed.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import click
import numpy as np

from kfaar.ops import _dispatch
from kfaar.ops.mapping import MappingWeights, map_latent, torch_mapping
from kfaar.ops.projection import ProjectionParams, Whitening, project, project_torch
from kfaar.ops.scoring import cosine_scores, cosine_scores_torch
from kfaar.ops.warp_affine import warp_affine
from kfaar.ops.warp_cells import _warp_cell_sums_ref, warp_cell_sums

WARMUP = 5
BENCH_SEED = bytes(range(32))  # fixed projection seed: the benchmark needs no real key


@dataclass(frozen=True)
class Row:
    kernel: str
    batch: int
    baseline: str  # what the baseline column ran
    baseline_ms: float
    cpu_ms: float
    cuda_ms: float | None
    target: float | None  # required C++ speed-up over the baseline column, if any

    @property
    def cpu_speedup(self) -> float:
        return self.baseline_ms / self.cpu_ms

    @property
    def cuda_speedup(self) -> float | None:
        return None if self.cuda_ms is None else self.baseline_ms / self.cuda_ms


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    return medians_ms([fn], repeats)[0]


def medians_ms(fns: list[Callable[[], object]], repeats: int) -> list[float]:
    """Median ms of each of ``fns`` over ``repeats`` calls, timed in blocks in A B … B A order:
    each function keeps its caches warm within a block (as in a real inference loop), and
    load that drifts during the run hits every function alike. Each block starts with a warm-up."""
    times: list[list[float]] = [[] for _ in fns]
    order = list(range(len(fns))) + list(reversed(range(len(fns))))
    for n, i in enumerate(order):
        fn = fns[i]
        for _ in range(WARMUP):
            fn()
        for _ in range(repeats // 2 if n < len(fns) else repeats - repeats // 2):
            start = time.perf_counter()
            fn()
            times[i].append(time.perf_counter() - start)
    return [1e3 * statistics.median(ts) for ts in times]


def _opencv_crop(photo: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The cell sums' baseline warp: OpenCV's (``_warp_cell_sums_ref`` sums its cells)."""
    import cv2

    return cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _cases(repeats: int, with_cuda: bool) -> list[Row]:
    import cv2
    import torch

    rng = np.random.default_rng(0)
    rows: list[Row] = []

    def measure(kernel, batch, baseline, torch_fn, native_fn, target):
        fns = [torch_fn, lambda: native_fn("cpu")] + ([lambda: native_fn("cuda")] if with_cuda else [])
        with torch.inference_mode():  # numpy calls are unaffected
            baseline_ms, cpu_ms, *cuda = medians_ms(fns, repeats)
        rows.append(Row(kernel, batch, baseline, baseline_ms, cpu_ms, cuda[0] if cuda else None, target))

    params = ProjectionParams.from_seed(BENCH_SEED, dim=128, rounds=4)
    q = torch.from_numpy(params.as_matrix().astype(np.float32))
    real = rng.standard_normal((4096, 128)) * np.linspace(0.5, 1.5, 128) + 0.1
    whitening = Whitening.from_samples(real)
    for batch, target in ((1, 20.0), (4096, 3.0)):
        z = rng.standard_normal((batch, 128)).astype(np.float32)
        zt = torch.from_numpy(z)
        run = lambda b, z=z: project(z, params, backend=b)  # noqa: E731
        measure("keyed projection d=128 R=4", batch, "torch twin", lambda zt=zt: project_torch(zt, params), run, target)
        measure("keyed projection d=128 R=4", batch, "torch dense z@Qᵀ", lambda zt=zt: zt @ q.T, run, None)
    z = rng.standard_normal((4096, 128)).astype(np.float32)
    zt = torch.from_numpy(z)
    measure(
        "projection + whitening",
        4096,
        "torch twin",
        lambda: project_torch(zt, params, whitening=whitening),
        lambda b: project(z, params, whitening=whitening, backend=b),
        None,
    )

    weights = MappingWeights.random(in_dim=128, hidden=512, layers=4, n_styles=8, style_dim=512)
    module = torch_mapping(weights)
    alpha = np.linspace(0.0, 1.0, 8).astype(np.float32)
    for batch, target in ((1, 5.0), (256, 1.0)):
        x = rng.standard_normal((batch, 128)).astype(np.float32)
        mix = rng.standard_normal((batch, 8, 512)).astype(np.float32)
        xt, mixt, alphat = torch.from_numpy(x), torch.from_numpy(mix), torch.from_numpy(alpha)
        measure(
            "fused mapping 4×512 → 8×512 W+",
            batch,
            "torch eager",
            lambda xt=xt, mixt=mixt: module(xt, mixt, alphat),
            lambda b, x=x, mix=mix: map_latent(x, weights, mix=mix, alpha=alpha, backend=b),
            target,
        )

    templates = rng.standard_normal((10000, 128)).astype(np.float32)
    tt = torch.from_numpy(templates)
    for batch in (1, 256):
        probes = rng.standard_normal((batch, 128)).astype(np.float32)
        pt = torch.from_numpy(probes)
        measure(
            "cosine scoring vs 10000 templates",
            batch,
            "torch twin",
            lambda pt=pt: cosine_scores_torch(pt, tt),
            lambda b, probes=probes: cosine_scores(probes, templates, backend=b),
            None,
        )

    # the face's crop (128 px) and a search's canvas-sized and a large output, from a 512 x 600
    # photo; host only (no CUDA column)
    photo = rng.integers(0, 256, (600, 512, 3), np.uint8)
    for out_size, s in ((128, 0.5), (256, 1.0), (1024, 2.0)):
        m = np.array([[s * 0.98, s * 0.17, -40.0], [-s * 0.17, s * 0.98, -60.0]])
        cv_ms, cpu_ms = medians_ms([lambda m=m, o=out_size: cv2.warpAffine(photo, m, (o, o), flags=cv2.INTER_LINEAR,
                                                                          borderMode=cv2.BORDER_REPLICATE),
                                    lambda m=m, o=out_size: warp_affine(photo, m, (o, o), backend="cpu")], repeats)
        rows.append(Row(f"affine warp to {out_size}x{out_size} RGB", 1, f"OpenCV {cv2.__version__} warpAffine", cv_ms,
                        cpu_ms, None, None))

    # recovery's re-alignment: a 512 x 600 photo, 48-px candidates (262 of their 576 cells),
    # turned and scaled as the search's first stage turns them; host only (no CUDA column)
    photo = rng.integers(0, 256, (600, 512, 3), np.uint8)
    cells = np.sort(rng.choice(576, 262, replace=False)).astype(np.int32)
    for batch in (1, 512):
        turn = np.deg2rad(rng.uniform(-12, 12, batch))
        scale = 0.35 * rng.uniform(0.84, 1.16, batch)
        m = np.empty((batch, 2, 3))
        m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = (scale * np.cos(turn), scale * np.sin(turn),
                                                          -scale * np.sin(turn), scale * np.cos(turn))
        m[:, :, 2] = rng.uniform(-120, -60, (batch, 2))
        ref_ms, cpu_ms = medians_ms([lambda m=m: _warp_cell_sums_ref(photo, m, cells, 24, _opencv_crop),
                                     lambda m=m: warp_cell_sums(photo, m, cells, 24, backend="cpu")], repeats)
        rows.append(Row("cell sums of warped crops, 262 of 24x24", batch, "OpenCV warps + sums", ref_ms, cpu_ms,
                        None, None))
    return rows


def _fmt(v: float | None, spec: str) -> str:
    return "—" if v is None else format(v, spec)


def format_table(rows: list[Row]) -> str:
    header = ("kernel", "batch", "baseline", "baseline ms", "C++ ms", "CUDA ms", "C++ ×", "CUDA ×", "target", "ok")
    lines = [header]
    for r in rows:
        ok = "" if r.target is None else ("yes" if r.cpu_speedup >= r.target else "NO")
        lines.append(
            (
                r.kernel,
                str(r.batch),
                r.baseline,
                _fmt(r.baseline_ms, ".4f"),
                _fmt(r.cpu_ms, ".4f"),
                _fmt(r.cuda_ms, ".4f"),
                _fmt(r.cpu_speedup, ".1f"),
                _fmt(r.cuda_speedup, ".1f"),
                "" if r.target is None else f"≥ {r.target:g}×",
                ok,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        out.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def machine() -> dict:
    import torch

    info = _dispatch.native_module().build_info()
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "kfaar_omp_threads": info["omp_max_threads"],
        "kfaar_threads_now": _dispatch.native_module().cpu_threads(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda_devices": list(_dispatch.cuda_devices()),
    }


@click.command("kernels")
@click.option("--repeats", default=50, show_default=True, type=click.IntRange(min=3), help="Timed calls per figure.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Also write the rows here.")
def kernels(repeats: int, json_path: Path | None) -> None:
    """Keyed projection, fused mapping, scoring, the affine warp and the cell sums: C++ (and CUDA) against their
    baselines."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise click.ClickException("the torch baselines need torch: pip install 'kfaar[train]'") from exc
    if _dispatch.native_module() is None:
        raise click.ClickException(f"kfaar._C is not compiled; {_dispatch.BUILD_HINT}")
    with_cuda = bool(_dispatch.cuda_devices())
    env = machine()
    rows = _cases(repeats, with_cuda)
    click.echo(
        f"{env['cpu']}, {env['cores']} cores, load average {env['load_average'][0]:.2f}; "
        f"torch {env['torch']} ({env['torch_threads']} threads), kfaar C++ {env['kfaar_threads_now']} of "
        f"{env['kfaar_omp_threads']} OpenMP threads (one while load >= cores + 1); "
        f"CUDA: {', '.join(env['cuda_devices']) or 'no device'}; median of {repeats} calls"
    )
    click.echo(format_table(rows))
    if json_path is not None:
        doc = {"machine": env, "repeats": repeats, "rows": [asdict(r) | {"cpu_speedup": r.cpu_speedup} for r in rows]}
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
