"""``kfaar bench pipeline``: torch eager vs ONNX Runtime fp32 vs int8, one table from one run.

Every throughput is faces/s from the median wall time of ``--repeats`` runs after a warm-up,
the backends taking turns within each repeat, measured in this process on the same crops (32 LFW dev crops when the cache exists, else
the sample photo's face with small shifts). Rows:

- generator / reader: the networks alone, inputs prepared (torch under ``inference_mode``);
- anonymize aligned: SFace (ORT) + keyed projection + mapping (kernels) + generator + uint8;
- recover aligned: reader + inverse projection;
- full photo (pipeline): ``Anonymizer`` / ``Authenticator`` as shipped (whichever engine they use).

Batch 1 runs the faces one call each; batch 32 runs them in one call. Cold start (import +
load) and peak RSS are measured in fresh subprocesses (peak RSS as the kernel's VmHWM of the
process: ``ru_maxrss`` of a child forked from this large process would report our size). FLOPs per face are
counted (torch ``FlopCounterMode`` for our networks, ONNX shapes for SFace); the machine's
peak is the best of large fp32 matmuls in numpy and torch with the same thread count.

Without shipped weights the torch side is a seeded random bundle of the shipped
architecture and the ONNX set is exported from it into a temporary folder: speed and
memory figures hold, accuracy-dependent ones (int8 tolerance) are those of random weights.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

log = logging.getLogger(__name__)

KEY_SEED = bytes(range(32))
BACKENDS = ("torch", "fp32", "int8")


def _median_s(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


# ---------------------------------------------------------------------------- what is measured
def _setup(model: str | None, bundle: str | None, workdir: Path):
    """(torch bundle, bundle file + sha for subprocesses, ONNX folder, description)."""
    from kfaar.errors import ModelIntegrityError
    from kfaar.models.bundle import load_bundle, save_bundle

    try:
        b = load_bundle(bundle)
        src = f"bundle {bundle or 'kfaar-v2 (shipped)'}"
    except ModelIntegrityError as err:
        if bundle is not None:
            raise
        log.warning("no shipped bundle (%s): benchmarking a random bundle of the shipped architecture", err)
        b, src = _random_bundle(), "RANDOM bundle of the shipped architecture (no shipped weights yet)"
    bfile = workdir / "bundle.safetensors"
    bsha = save_bundle(b, bfile)
    if model is None:
        from kfaar.runtime.engine import SHIPPED, WEIGHTS_DIR

        if SHIPPED.get("kfaar-v2", "PENDING") != "PENDING" and bundle is None:
            model = str(WEIGHTS_DIR / "kfaar-v2")
        else:
            from kfaar.runtime.export import export_bundle, reference_faces

            model = str(workdir / "onnx")
            random = bundle is None and "RANDOM" in src  # int8 of random weights cannot meet a tolerance
            export_bundle(b, model, name="bench", int8=True, calibration=reference_faces("train", 64, seed=1),
                          int8_strict=not random)
            src += "; ONNX set exported from it for this run"
    return b, (str(bfile), bsha), model, src


def _random_bundle():
    import dataclasses

    import torch

    from kfaar.models.bundle import ModelBundle
    from kfaar.models.generator import Generator
    from kfaar.models.identity_space import IdentitySpace
    from kfaar.models.mapping import MappingNetwork

    torch.manual_seed(0)
    g = Generator()
    parts = dict(generator=g, mapping=MappingNetwork(n_styles=g.cfg.n_styles, style_dim=g.cfg.style_dim),
                 space=IdentitySpace(), threshold=0.3, info={"run": "bench: random weights"})
    if "reader" in {f.name for f in dataclasses.fields(ModelBundle)}:  # a separate reader network
        from kfaar.models.reader import Reader

        parts["reader"] = Reader()
    return ModelBundle(**parts).eval()


def _compare(fns: dict, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median seconds per backend; the backends take turns within each repeat (in alternating
    order), so load that drifts during the run hits them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(repeats):
        for k in (list(fns) if r % 2 == 0 else list(fns)[::-1]):
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def _throughput(bundle, engines: dict, enc, crops: np.ndarray, key, batch: int, repeats: int) -> list[dict]:
    """faces/s per stage, batch and backend; batch 1 runs every crop in its own call."""
    import torch

    from kfaar.models.engine import KfaarEngine
    from kfaar.runtime.export import _generator_args, _to_input, reader_module

    def inference(fn):
        def run():
            with torch.inference_mode():
                return fn()
        return run

    all_engines = {"torch": KfaarEngine(bundle), **engines}
    ort = engines["fp32"]
    u = ort.keyed_code(enc.encode(crops), key)
    feeds = ort.generator_feeds(crops, u)  # no landmarks, as aligned crops come: the warp reads them
    _, gargs = _generator_args(bundle, feeds)
    virtual = ort.generate(crops, enc.encode(crops), key)
    fr = _to_input(virtual).numpy()
    g, r = bundle.generator, reader_module(bundle)
    rows = []
    for b in (1, batch):
        n = len(crops) if b == 1 else min(b, len(crops))
        chunks = [slice(i, i + 1) for i in range(n)] if b == 1 else [slice(0, n)]

        def each(fn):  # run fn on every chunk: n faces in total
            return lambda: [fn(c) for c in chunks]

        stages = {
            "generator": {"torch": inference(each(lambda c: g(*(a[c] for a in gargs))))} | {
                p: each(lambda c, s=e._sessions["generator"]: s.run(
                    None, {i.name: feeds[i.name][c] for i in s.get_inputs()})) for p, e in engines.items()},
            "reader": {"torch": inference(each(lambda c: r(torch.from_numpy(fr[c]))))} | {
                p: each(lambda c, s=e._sessions["reader"]: s.run(None, {"crop": fr[c]})) for p, e in engines.items()},
            "anonymize aligned": {p: each(lambda c, e=e: e.generate(crops[c], enc.encode(crops[c]), key))
                                  for p, e in all_engines.items()},
            "recover aligned": {p: each(lambda c, e=e: e.recover(virtual[c], key)) for p, e in all_engines.items()},
            "sface": {"sface": each(lambda c: enc.encode(crops[c]))},
        }
        sface = n / _compare(stages.pop("sface"), repeats)["sface"]
        for stage, fns in stages.items():
            rows.append({"stage": stage, "batch": b, "faces": n, "sface": sface,
                         **{k: n / v for k, v in _compare(fns, repeats).items()}})
    order = ("generator", "reader", "anonymize aligned", "recover aligned")
    rows.sort(key=lambda x: (order.index(x["stage"]), x["batch"]))
    return rows


WRONG_KEYS_PER_FACE = 20


def _int8_quality(model: str, threads: int, n_ids: int) -> dict | None:
    """fp32 vs int8 on ``n_ids`` dev identities, judged by SFace (kfaar's own encoder; ``kfaar eval``
    runs the independent judges): anonymity, KVFA acceptance against another photo's template at
    the operating threshold, wrong-key acceptance. None without an LFW dev cache."""
    from kfaar.faces import SFaceEncoder
    from kfaar.keys import Key
    from kfaar.runtime.engine import OrtEngine, OrtEngineOptions
    from kfaar.runtime.export import _cache_dirs

    cache = next((d for d in _cache_dirs() if (d / "manifest.json").is_file()), None)
    if cache is None or n_ids <= 0:
        return None
    from kfaar.data import load_split

    dev = load_split(cache, "dev")
    labels = np.asarray(dev.labels)
    pairs = [np.flatnonzero(labels == lab)[:2] for lab in np.unique(labels)]
    pairs = np.array([p for p in pairs if len(p) == 2][:n_ids])
    crops, z, templates = dev.crops[pairs[:, 0]], dev.embeddings[pairs[:, 0]], dev.embeddings[pairs[:, 1]]
    rng = np.random.default_rng(0)
    keys = [Key.from_bytes(rng.bytes(32)) for _ in pairs]  # one right key per face
    # The read does not depend on the key, so each virtual face is read once and scored under
    # WRONG_KEYS_PER_FACE wrong keys: a wrong-key rate of a few 0.1% needs thousands of trials.
    wrong_keys = [Key.from_bytes(rng.bytes(32)) for _ in range(WRONG_KEYS_PER_FACE)]
    out = {}
    with SFaceEncoder(threads=threads) as enc:
        for prec in ("fp32", "int8"):
            e = OrtEngine(OrtEngineOptions(model=model, precision=prec, threads=threads))
            v = np.concatenate([e.generate(crops[i : i + 1], z[i : i + 1], k) for i, k in enumerate(keys)])
            zv = enc.encode(v)
            read = [e.read(v[i : i + 1]) for i in range(len(v))]
            score = lambda i, k: e.scores(e.codes.from_read(read[i], k), templates[i : i + 1])[0, 0]  # noqa: E731
            right = np.array([score(i, k) for i, k in enumerate(keys)])
            wrong = np.array([score(i, w) for i in range(len(v)) for w in wrong_keys])
            out[prec] = {"anonymity vs original (SFace)": float(np.mean(np.sum(zv * z, 1) < 0.363)),
                         "anonymity vs other photo (SFace)": float(np.mean(np.sum(zv * templates, 1) < 0.363)),
                         "KVFA accept, right key, other photo": float(np.mean(right >= e.threshold)),
                         "wrong-key accept": float(np.mean(wrong >= e.threshold))}
            out[prec + "_v"] = v
    d = np.abs(out.pop("fp32_v").astype(np.int16) - out.pop("int8_v"))
    return {"identities": int(len(pairs)), "wrong_key_trials": int(len(pairs)) * WRONG_KEYS_PER_FACE,
            "source": f"{cache}:dev", "virtual_mean_abs_levels": float(d.mean()), **out}


def _full_photo(threads: int, key, repeats: int) -> list[dict]:
    """The pipeline as shipped on the sample photo (one face); empty if it cannot load its model."""
    from kfaar.demo import sample_photo_path
    from kfaar.errors import KfaarError
    from kfaar.faces import load_image

    try:
        from kfaar.pipeline import Anonymizer, AnonymizerOptions, Authenticator, AuthenticatorOptions

        anon, auth = Anonymizer(AnonymizerOptions(threads=threads)), Authenticator(AuthenticatorOptions(threads=threads))
    except (KfaarError, ImportError) as err:
        log.warning("full-photo rows skipped: the pipeline cannot load its default model (%s)", err)
        return []
    rgb = load_image(sample_photo_path())
    size = f"{rgb.shape[1]}x{rgb.shape[0]}"
    rows = []
    with anon, auth:
        engine = type(anon._engine).__name__
        v = anon.anonymize(rgb, key)
        for stage, fn in (("anonymize", lambda: anon.anonymize(rgb, key)), ("recover", lambda: auth.recover(v, key))):
            try:
                rows.append({"stage": f"{stage} full photo {size}", "engine": engine,
                             "photos_s": 1 / _median_s(fn, repeats)})
            except KfaarError as err:  # e.g. the virtual face is not re-detected: say so, keep the run
                log.warning("%s full photo failed: %s", stage, err)
                rows.append({"stage": f"{stage} full photo {size}", "engine": engine, "photos_s": None,
                             "error": str(err)})
    return rows


_COLD = {
    "torch": ("import torch\nfrom kfaar.models.bundle import load_bundle\nfrom kfaar.models.engine import KfaarEngine\n"
              "torch.set_num_threads({threads})\neng = KfaarEngine(load_bundle({bundle!r}, {bsha!r}))"),
    "fp32": ("from kfaar.runtime.engine import OrtEngine, OrtEngineOptions\n"
             "eng = OrtEngine(OrtEngineOptions(model={model!r}, precision='fp32', threads={threads}))"),
    "int8": ("from kfaar.runtime.engine import OrtEngine, OrtEngineOptions\n"
             "eng = OrtEngine(OrtEngineOptions(model={model!r}, precision='int8', threads={threads}))"),
}
_STACK = "from kfaar.faces import FaceDetector, SFaceEncoder\ndet, enc = FaceDetector(), SFaceEncoder(threads={threads})"
_WORK = """
import numpy as np
from kfaar.keys import Key
crops = np.load({crops!r})
key = Key.from_bytes(bytes(range(32)))
v = eng.generate(crops, enc.encode(crops), key)
eng.recover(v, key)
"""


_PEAK = """
def _peak_mb():
    # VmHWM: this process image's own peak. ru_maxrss is not: on Linux a child forked from a big
    # parent starts from the parent's resident size and keeps that high-water mark across exec.
    try:
        for line in open('/proc/self/status'):
            if line.startswith('VmHWM:'):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""


def _subprocess(code: str) -> dict:
    script = ("import json, resource, sys, time\nt0 = time.perf_counter()\n" + code + "\n" + _PEAK +
              "\nout = {'load_s': time.perf_counter() - t0, 'maxrss_mb': _peak_mb(), "
              "'torch_imported': 'torch' in sys.modules}\nprint(json.dumps(out))")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"benchmark subprocess failed:\n{r.stderr[-3000:]}")
    return {**json.loads(r.stdout.strip().splitlines()[-1]), "process_s": wall}


def _fresh(model: str, bundle: tuple[str, str], threads: int, crops_file: str, repeats: int) -> dict:
    out = {}
    for name, code in _COLD.items():
        fill = {"threads": threads, "model": model, "bundle": bundle[0], "bsha": bundle[1], "crops": crops_file}
        engine = code.format(**fill)
        cold = [_subprocess(engine) for _ in range(max(1, min(repeats, 3)))]
        stack = _subprocess(engine + "\n" + _STACK.format(**fill))
        rss = _subprocess(engine + "\n" + _STACK.format(**fill) + _WORK.format(**fill))
        out[name] = {"cold_load_s": statistics.median(c["load_s"] for c in cold),
                     "cold_process_s": statistics.median(c["process_s"] for c in cold),
                     "cold_stack_s": stack["load_s"], "torch_imported": cold[0]["torch_imported"],
                     "peak_rss_mb": rss["maxrss_mb"]}
    return out


def _sizes(model: str, bundle_file: str) -> dict:
    """MB on disk of what each backend loads (an int8 engine runs fp32 graphs where none was quantized)."""
    m = json.loads((Path(model) / "manifest.json").read_text())
    size = lambda f: (Path(model) / f).stat().st_size / 1e6  # noqa: E731
    nets = m["networks"].values()
    return {"torch": Path(bundle_file).stat().st_size / 1e6,
            "fp32": size(m["params"]) + sum(size(n["files"]["fp32"]) for n in nets),
            "int8": size(m["params"]) + sum(size(n["files"].get("int8", n["files"]["fp32"])) for n in nets)}


# ---------------------------------------------------------------------------- FLOPs
def _torch_flops(bundle, feeds) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from kfaar.runtime.export import _generator_args, reader_module

    _, gargs = _generator_args(bundle, {k: v[:1] for k, v in feeds.items()})
    out = {}
    with torch.inference_mode():
        for name, fn in (("generator", lambda: bundle.generator(*gargs)),
                         ("reader", lambda: reader_module(bundle)(torch.from_numpy(feeds["crop"][:1])))):
            with FlopCounterMode(display=False) as fc:
                fn()
            out[name] = float(fc.get_total_flops())
    return out


def _onnx_flops(path: str | os.PathLike, shape: tuple[int, ...]) -> float | None:
    """Conv + Gemm/MatMul FLOPs of one input of ``shape``, from ONNX shape inference (None if shapes are missing)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(str(path))
    inp = model.graph.input[0].type.tensor_type.shape
    for d, n in zip(inp.dim, shape):
        d.ClearField("dim_param")
        d.dim_value = n
    model = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)}
    shapes |= {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0.0
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        out, w = shapes.get(node.output[0]), shapes.get(node.input[1])
        if not out or not w or 0 in out or 0 in w:
            return None
        if node.op_type == "Conv":
            total += 2 * float(np.prod(out[1:])) * float(np.prod(w[1:]))  # (Cin/groups)*kh*kw per output
        else:
            total += 2 * float(np.prod(out)) * (w[0] if node.op_type == "Gemm" and _trans_b(node) else w[-2])
    return total


def _trans_b(node) -> bool:
    return any(a.name == "transB" and a.i == 1 for a in node.attribute)


def _peak_flops(threads: int) -> dict:
    import torch

    n = 2048
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    flops = 2.0 * n**3
    ta = torch.from_numpy(a)
    return {"numpy": flops / min(_median_s(lambda: a @ a, 3, 1) for _ in range(2)),
            "torch": flops / min(_median_s(lambda: ta @ ta, 3, 1) for _ in range(2))}


# ---------------------------------------------------------------------------- the command
@click.command("pipeline")
@click.option("--model", default=None, help="ONNX set folder (default: the shipped set; else exported from the bundle).")
@click.option("--bundle", default=None, help="torch bundle name or path (default: shipped; else random weights).")
@click.option("--threads", type=int, default=2, show_default=True, help="torch / ORT intra-op threads (SFace too).")
@click.option("--batch", type=int, default=32, show_default=True)
@click.option("--repeats", type=int, default=5, show_default=True, help="Timed runs per figure (median).")
@click.option("--quality", "n_ids", type=int, default=100, show_default=True,
              help="Dev identities for the int8-vs-fp32 accuracy rows (0 skips them).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write every figure here.")
def pipeline(model: str | None, bundle: str | None, threads: int, batch: int, repeats: int, n_ids: int,
             json_path: str | None) -> None:
    """faces/s for torch eager vs ORT fp32 vs ORT int8, cold start, peak RSS, sizes, FLOPs."""
    import torch

    from kfaar.faces import SFaceEncoder
    from kfaar.keys import Key
    from kfaar.runtime.engine import OrtEngine, OrtEngineOptions
    from kfaar.runtime.export import reference_faces

    torch.set_num_threads(threads)
    key = Key.from_bytes(KEY_SEED)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        b, bfile, model, source = _setup(model, bundle, work)
        faces = reference_faces("dev", batch)
        crops = faces.crops
        crops_file = str(work / "crops.npy")
        np.save(crops_file, crops)
        engines = {p: OrtEngine(OrtEngineOptions(model=model, precision=p, threads=threads)) for p in ("fp32", "int8")}
        with SFaceEncoder(threads=threads, batch_size=batch) as enc:
            rows = _throughput(b, engines, enc, crops, key, batch, repeats)
            u = engines["fp32"].keyed_code(faces.z[:1], key)
            feeds = engines["fp32"].generator_feeds(crops[:1], u)
        photo = _full_photo(threads, key, repeats)
        quality = _int8_quality(model, threads, n_ids)
        fresh = _fresh(model, bfile, threads, crops_file, repeats)
        sizes = _sizes(model, bfile[0])
    from kfaar.faces.models import SFACE, ort_model_path

    flops = _torch_flops(b, feeds)
    flops["sface"] = _onnx_flops(ort_model_path(SFACE), (1, 3, 112, 112))
    peak = _peak_flops(threads)
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "threads": threads, "python": platform.python_version(), "torch": torch.__version__,
                          "onnxruntime": __import__("onnxruntime").__version__},
              "source": source, "faces": faces.source, "repeats": repeats, "throughput": rows,
              "full_photo": photo, "int8_quality": quality, "fresh_process": fresh, "size_mb": sizes, "flops_per_face": flops,
              "peak_flops": peak, "rss_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=1) + "\n")
    for line in _table(report):
        click.echo(line)


def _table(r: dict) -> list[str]:
    rows, fresh, flops, peak = r["throughput"], r["fresh_process"], r["flops_per_face"], max(r["peak_flops"].values())
    m = r["machine"]
    out = [f"kfaar bench pipeline — {m['cores']} cores, {m['threads']} threads, torch {m['torch']}, "
           f"onnxruntime {m['onnxruntime']}, median of {r['repeats']}",
           f"weights: {r['source']}", f"crops: {r['faces']}", "",
           f"{'faces/s':<26}{'batch':>6}{'torch':>9}{'ORT fp32':>10}{'ORT int8':>10}{'fp32/torch':>12}{'int8/fp32':>11}"]
    for row in rows:
        out.append(f"{row['stage']:<26}{row['batch']:>6}{row['torch']:>9.1f}{row['fp32']:>10.1f}{row['int8']:>10.1f}"
                   f"{row['fp32'] / row['torch']:>11.2f}x{row['int8'] / row['fp32']:>10.2f}x")
    out.append("SFace encode alone (in anonymize, every backend): " + ", ".join(
        f"batch {x['batch']} {x['sface']:.1f}/s" for x in rows if x["stage"] == "generator"))
    for p in r["full_photo"]:
        rate = f"{p['photos_s']:>7.1f} photos/s" if p["photos_s"] else f"failed ({p['error']})"
        out.append(f"{p['stage']:<32} {rate}  (pipeline as shipped: {p['engine']})")
    out += ["", f"{'fresh process':<26}{'torch':>12}{'ORT fp32':>12}{'ORT int8':>12}"]
    for label, k, fmt in (("cold start: import+load s", "cold_load_s", "{:>12.2f}"),
                          ("  process wall s", "cold_process_s", "{:>12.2f}"),
                          ("  + YuNet + SFace s", "cold_stack_s", "{:>12.2f}"),
                          ("peak RSS MB (batch run)", "peak_rss_mb", "{:>12.0f}"),
                          ("torch imported", "torch_imported", "{!s:>12}")):
        out.append(f"{label:<26}" + "".join(fmt.format(fresh[b][k]) for b in BACKENDS))
    out.append(f"{'model size MB':<26}" + "".join(f"{r['size_mb'][b]:>12.1f}" for b in BACKENDS))
    g, rd, sf = flops["generator"], flops["reader"], flops.get("sface")
    anon = g + (sf or 0)
    out += ["", f"FLOPs per face: generator {g / 1e9:.2f} G, reader {rd / 1e9:.3f} G, SFace "
            + (f"{sf / 1e9:.2f} G" if sf else "n/a") + f"; peak measured {peak / 1e9:.0f} GFLOP/s "
            f"(fp32 matmul: numpy {r['peak_flops']['numpy'] / 1e9:.0f}, torch {r['peak_flops']['torch'] / 1e9:.0f})"]
    best = {s: max((x for x in rows if x["stage"] == s), key=lambda x: x["batch"]) for s in
            ("generator", "anonymize aligned", "recover aligned")}
    for s, f in (("generator", g), ("anonymize aligned", anon), ("recover aligned", rd)):
        x = best[s]
        out.append(f"share of peak (fp32-equivalent FLOPs), {s} batch {x['batch']}: " + ", ".join(
            f"{b} {100 * x[b] * f / peak:.0f}%" for b in BACKENDS))
    q = r.get("int8_quality")
    if q:
        judged = "RANDOM weights: meaningless" if "RANDOM" in r["source"] else "SFace-judged"
        out += ["", f"accuracy on {q['identities']} dev identities ({judged}); int8 virtual crops differ from fp32 "
                f"by {q['virtual_mean_abs_levels']:.2f} grey levels on average; wrong-key row: "
                f"{q['wrong_key_trials']} trials ({WRONG_KEYS_PER_FACE} wrong keys per face)",
                f"{'':<38}{'ORT fp32':>10}{'ORT int8':>10}"]
        for k in q["fp32"]:
            out.append(f"{k:<38}{100 * q['fp32'][k]:>9.1f}%{100 * q['int8'][k]:>9.1f}%")
    one = {s: next(x for x in rows if x["stage"] == s and x["batch"] == 1) for s in ("generator", "anonymize aligned")}
    verdict = lambda ok: "met" if ok else "MISSED"  # noqa: E731
    e2e = max(x[b] for x in rows if x["stage"] == "anonymize aligned" for b in ("fp32", "int8"))
    out += ["", "targets (issue 5):",
            f"  ORT fp32 >= 2x torch eager at batch 1: generator {one['generator']['fp32'] / one['generator']['torch']:.2f}x, "
            f"anonymize {one['anonymize aligned']['fp32'] / one['anonymize aligned']['torch']:.2f}x "
            f"-> {verdict(one['generator']['fp32'] >= 2 * one['generator']['torch'])}",
            f"  int8 >= 1.5x fp32: generator batch 1 {one['generator']['int8'] / one['generator']['fp32']:.2f}x, "
            f"batch {best['generator']['batch']} {best['generator']['int8'] / best['generator']['fp32']:.2f}x "
            f"-> {verdict(min(one['generator']['int8'] / one['generator']['fp32'], best['generator']['int8'] / best['generator']['fp32']) >= 1.5)}",
            f"  end-to-end anonymize >= 60 aligned faces/s: best ORT {e2e:.1f} -> {verdict(e2e >= 60)}",
            f"  cold start <= 1.5 s (ORT fp32 import+load): {fresh['fp32']['cold_load_s']:.2f} s "
            f"-> {verdict(fresh['fp32']['cold_load_s'] <= 1.5)}",
            f"  issue 4: anonymize >= 30/s, recover >= 100/s, peak RSS <= 1 GB (ORT fp32): "
            f"{best['anonymize aligned']['fp32']:.0f}/s, {best['recover aligned']['fp32']:.0f}/s, "
            f"{fresh['fp32']['peak_rss_mb']:.0f} MB"]
    return out
