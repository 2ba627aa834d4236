"""Export a :class:`~kfaar.models.bundle.ModelBundle` to the ONNX model set the runtime loads.

    bundle ─► generator.onnx (crop, w_plus[, code][, offset] -> virtual)   dynamic batch, opset 18
           ─► reader.onnx    (crop -> code)              dynamic batch, opset 18 (the KVFA read-out)
           ─► pilot_match.onnx (small crop -> match)     the code carrier's pilots, for realign
           ─► params.safetensors (identity space, mapping weights, paste mask: numpy side)
           ─► parity: ORT vs torch on real crops, max abs diff <= 1e-4 or ExportParityError
           ─► [--int8] *.int8.onnx, calibrated on train crops, measured against fp32
           ─► manifest.json, written last: a folder without one is no model set

The keyed projection and mapping are *not* exported: they run in our kernels, so no graph
file ever depends on a key.

Exporter: ``torch.export`` + torch.onnx's dynamo path (needs ``onnxscript``, in the train
extra). It sees every shape but the batch as an int, so the models' size-keyed caches (face
mask, carrier inverse) become constants, and it handles adaptive pooling to sizes that do not
divide the input (the code carrier's 24 x 24 cells on 128 px). Without onnxscript the
TorchScript exporter is the fallback, with two symbolics of ours — antialiased bilinear
downscaling (ONNX ``Resize(antialias=1)`` differs from torch at the borders by up to 0.03)
and adaptive average pooling, both as two matrix products with weights torch itself
computes; it cannot export the current carrier (its caches are keyed by traced sizes), and
the parity check says so. Whatever the path, parity on real crops decides.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kfaar._atomic import atomic_write
from kfaar.errors import KfaarError
from kfaar.keys import Key
from kfaar.models.bundle import ModelBundle, sha256_bytes
from kfaar.models.generator import face_mask
from kfaar.runtime.manifest import FORMAT, MANIFEST

log = logging.getLogger(__name__)

__all__ = ["ExportParityError", "ExportResult", "INT8_TOLERANCE", "ReferenceFaces", "export_bundle",
           "export_shipped", "reference_faces"]

OPSET = 18
ATOL = 1e-4  # fp32 parity: max abs diff of the float outputs, ORT vs torch
# int8 against fp32 (both ORT) on real crops; an int8 export outside these fails loudly.
# Ops quantized per generator kind and network. The styled decoder's work is its
# convolutions (quantizing its style products too costs more than it saves); the eigenface
# generator's is two matrix products with the face model's basis and, with a detail
# refiner, its convolutions (95% of its FLOPs: int8 Conv took the generator from 1.05x to
# 1.85x fp32 at batch 32). ORT's pre-processing fuses the render product and the mean into
# a Gemm, which is left out of the static quantization: its activation is the 256 face-model
# coefficients, whose ranges differ by component, and one uint8 scale for all of them doubled
# the int8 error (0.48 -> 0.86 grey levels). Its 9.4 MB basis is instead stored int8 weight-only
# (INT8_WEIGHT_ONLY: the product runs in float): before that, the int8 file kept it in float
# and was larger than the fp32 one (13.3 MB vs 11.8). The reader stays fp32: its one small
# product decides KVFA and costs ~1 MFLOP.
INT8_OPS = {"styled": {"generator": ("Conv",), "reader": ("Conv",)},
            "eigen": {"generator": ("MatMul", "Conv"), "reader": ("Conv",)}}
INT8_WEIGHT_ONLY = {"eigen": {"generator": ("Gemm", "MatMul")}}
INT8_TOLERANCE = {
    "generator_mean_abs_levels": 2.0,  # mean |int8 - fp32| of the uint8 virtual crops, in grey levels
    "generator_p99_abs_levels": 12.0,  # 99th percentile of the same
    "reader_min_cosine": 0.98,  # cosine of the int8 and fp32 code directions, worst face
}


class ExportParityError(KfaarError):
    """The exported graph does not reproduce torch (or int8 misses its tolerance); nothing was shipped."""


@dataclass(frozen=True)
class ReferenceFaces:
    crops: np.ndarray  # (N, S, S, 3) uint8 aligned crops
    z: np.ndarray  # (N, 128) their SFace embeddings
    source: str  # where they came from, for the manifest


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    manifest_sha256: str  # pin this (kfaar.runtime.engine.SHIPPED) for a shipped set
    manifest: dict


# ---------------------------------------------------------------------------- real crops
def _cache_dirs() -> list[Path]:
    from kfaar.data.paths import _repo_roots

    return [Path.cwd() / "cache" / "lfw"] + [r / "cache" / "lfw" for r in _repo_roots()]


def reference_faces(split: str = "dev", n: int = 16, cache_dir: str | os.PathLike | None = None,
                    seed: int = 0) -> ReferenceFaces:
    """``n`` aligned crops from the LFW cache's ``split`` (spread over it, seeded), else the sample photo.

    The fallback is matplotlib's grace_hopper.jpg aligned with kfaar.faces, with its mirror
    image and small shifts so a batch has more than one crop.
    """
    dirs = [Path(cache_dir)] if cache_dir is not None else _cache_dirs()
    for d in dirs:
        if (d / "manifest.json").is_file():
            from kfaar.data import load_split

            s = load_split(d, split)
            if len(s.crops):
                idx = np.sort(np.random.default_rng(seed).choice(len(s.crops), min(n, len(s.crops)), replace=False))
                return ReferenceFaces(s.crops[idx], s.embeddings[idx].astype(np.float32), f"{d}:{split}[{len(idx)}]")
    log.warning("no LFW cache found (looked in %s); using matplotlib's grace_hopper.jpg", [str(d) for d in dirs])
    return _sample_photo_faces(n)


def _sample_photo_faces(n: int) -> ReferenceFaces:
    from matplotlib import cbook

    from kfaar.faces import FaceDetector, SFaceEncoder, align_face, load_image, main_face

    rgb = load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    with FaceDetector() as det:
        face = main_face(det.detect(rgb), rgb.shape)
    crops = []
    for i in range(n):
        lm = face.landmarks + np.array([(i % 3) - 1, (i // 3 % 3) - 1], np.float32) * 2.0
        c = align_face(rgb, lm, size=128).crop
        crops.append(c[:, ::-1] if i % 2 else c)
    crops = np.ascontiguousarray(np.stack(crops))
    with SFaceEncoder(threads=1) as enc:
        z = enc.encode(crops)
    return ReferenceFaces(crops, z, f"grace_hopper.jpg[{n} variants]")


# ---------------------------------------------------------------------------- graph export
def _resample_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in): torch's own antialiased bilinear weights along one axis."""
    # Resize an identity image along its height only: row o of the result holds output o's weights.
    eye = torch.eye(n_in)[None, None]  # (1, 1, n_in, n_in)
    out = F.interpolate(eye, size=(n_out, n_in), mode="bilinear", align_corners=False, antialias=True)
    return out[0, 0].contiguous()


def _upsample_bilinear2d_aa(g, x, output_size, align_corners, scale_factors):
    from torch.onnx import symbolic_helper as sh

    sizes = sh._get_tensor_sizes(x)
    size = sh._maybe_get_const(output_size, "is")
    if sizes is None or len(sizes) != 4 or None in sizes[2:] or sh._is_value(size) or sh._maybe_get_const(
            align_corners, "b"):
        raise ExportParityError("antialiased resize: only static spatial sizes and align_corners=False export")
    a_h = _resample_matrix(sizes[2], size[0])  # (h, H)
    a_w = _resample_matrix(sizes[3], size[1]).T.contiguous()  # (W, w)
    y = g.op("MatMul", g.op("Constant", value_t=a_h), x)  # (N, C, h, W)
    return g.op("MatMul", y, g.op("Constant", value_t=a_w))  # (N, C, h, w)


def _pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in): torch's adaptive average pooling weights along one axis (1 / cell size)."""
    eye = torch.eye(n_in)[None, None]  # pool the height only: row o holds output o's weights
    return F.adaptive_avg_pool2d(eye, (n_out, n_in))[0, 0].contiguous()


def _adaptive_avg_pool2d(g, x, output_size):
    """Any output size (the TorchScript exporter only takes divisors of the input), as two matmuls."""
    from torch.onnx import symbolic_helper as sh

    sizes = sh._get_tensor_sizes(x)
    size = sh._maybe_get_const(output_size, "is")
    if sizes is None or len(sizes) != 4 or None in sizes[2:] or sh._is_value(size):
        raise ExportParityError("adaptive average pooling: only static spatial sizes export")
    p_h = _pool_matrix(sizes[2], size[0])  # (h, H)
    p_w = _pool_matrix(sizes[3], size[1]).T.contiguous()  # (W, w)
    return g.op("MatMul", g.op("MatMul", g.op("Constant", value_t=p_h), x), g.op("Constant", value_t=p_w))


_SYMBOLICS = {"aten::_upsample_bilinear2d_aa": _upsample_bilinear2d_aa,
              "aten::adaptive_avg_pool2d": _adaptive_avg_pool2d}


@contextlib.contextmanager
def _symbolics(opset: int):
    for name, fn in _SYMBOLICS.items():
        torch.onnx.register_custom_op_symbolic(name, fn, opset)
    try:
        yield
    finally:
        for name in _SYMBOLICS:
            torch.onnx.unregister_custom_op_symbolic(name, opset)


def exporter_name() -> str:
    """"dynamo" (torch.export + onnxscript, preferred) when onnxscript is installed, else "torchscript"."""
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return "torchscript"
    return "dynamo"


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's libraries log every optimisation pass at INFO; keep them to warnings meanwhile."""
    loggers = [logging.getLogger(n) for n in ("onnxscript", "onnx_ir", "torch.onnx", "torch.export")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.level, logging.WARNING))
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _export_graph(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                  opset: int) -> None:
    with torch.no_grad():
        module(*args)  # fills the modules' per-size caches (masks, carrier inverse): constants in the graph
    with warnings.catch_warnings(), _quiet_exporter():
        warnings.simplefilter("ignore")  # tracer warnings about the fixed crop size: the manifest states it
        if exporter_name() == "dynamo":
            _export_dynamo(module, args, path, inputs, outputs, opset)
        else:
            with _symbolics(opset):
                torch.onnx.export(module, args, str(path), dynamo=False, opset_version=opset, input_names=inputs,
                                  output_names=outputs, dynamic_axes={n: {0: "batch"} for n in inputs + outputs},
                                  do_constant_folding=True)


def _export_dynamo(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], outputs: list[str],
                   opset: int) -> None:
    """torch.export with a symbolic batch, then ONNX.

    torch.export sees the spatial sizes as ints, so size-keyed caches hit and every shape but
    the batch is static. Non-strict mode first (plain Python, fast); where the code
    specialises the batch there (``len(x)`` becomes an int), strict mode (dynamo) keeps it
    symbolic.
    """
    import onnx

    batch = torch.export.Dim("batch", max=4096)
    shapes = tuple({0: batch} for _ in args)
    errors = []
    for strict in (False, True):
        try:
            program = torch.export.export(module, args, dynamic_shapes=shapes, strict=strict)
            break
        except Exception as err:  # noqa: BLE001 — both modes are tried; the error names each failure
            errors.append(f"strict={strict}: {type(err).__name__}: {str(err).strip().splitlines()[0][:300]}")
    else:
        raise ExportParityError(f"torch.export failed with a dynamic batch: {'; '.join(errors)}")
    torch.onnx.export(program, args, str(path), dynamo=True, opset_version=opset, input_names=inputs,
                      output_names=outputs, external_data=False, verbose=False)
    model = onnx.load(str(path))  # name the symbolic batch "batch" (torch calls it s0, s27, ...)
    io = list(model.graph.input) + list(model.graph.output)
    old = {v.type.tensor_type.shape.dim[0].dim_param for v in io if v.type.tensor_type.shape.dim} - {""}
    for v in io + list(model.graph.value_info):
        for d in v.type.tensor_type.shape.dim:
            if d.dim_param in old:
                d.dim_param = "batch"
    # The exporter's debug records (source stack traces with this machine's paths, fx node
    # reprs) would ship in the files and change their bytes whenever the source moves.
    for holder in [*model.graph.node, *model.graph.value_info, *(n for f in model.functions for n in f.node)]:
        del holder.metadata_props[:]
        holder.doc_string = ""
    onnx.save(model, str(path))


# ---------------------------------------------------------------------------- the set
def _params(bundle: ModelBundle, size: int) -> dict[str, np.ndarray]:
    sp = bundle.space
    out = {"space.mean": sp.mean, "space.whiten": sp.whiten, "space.color": sp.color, "space.radius": sp.radius.reshape(1),
           "paste_mask": face_mask(bundle.generator.cfg, size)[0, 0]}
    out |= {f"mapping.{k}": v for k, v in bundle.mapping.kernel_weights().items()}
    arrays = {k: np.ascontiguousarray(v.detach().float().numpy()) for k, v in out.items()}
    carrier = getattr(bundle.generator, "code_carrier", None)
    if _realign_spec(bundle) is not None:  # realign scores its candidates from the pilot rows where it can
        pilot = carrier.pilot_rows(bundle.generator.mask(2 * carrier.res, "cpu"))
        if pilot is not None:
            arrays |= {k: np.ascontiguousarray(v.detach().numpy()) for k, v in pilot.items()}
    return arrays


def _to_input(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _session(path: Path):
    """A session of ``path`` as the engine opens it (weight-only int8 weights folded at load)."""
    import onnxruntime as ort

    from kfaar.runtime.quantize import fold_weight_only

    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(fold_weight_only(Path(path).read_bytes()), so, providers=["CPUExecutionProvider"])


def _codes(bundle: ModelBundle, faces: ReferenceFaces, seed: int) -> dict[str, np.ndarray]:
    """Every generator input for ``faces`` under a seeded key per face, computed the runtime's way
    (IdentityCodes on the arrays written to params.safetensors): {"crop", "w_plus", "code",
    "offset"} — offsets for a pose warp: every other face NaN (read from the face), the others
    seeded in +-8 px, so both paths are checked."""
    from kfaar.runtime.codes import IdentityCodes

    codes = IdentityCodes(_params(bundle, faces.crops.shape[1]), len(bundle.mapping.layers))
    rng = np.random.default_rng(seed)
    u = np.concatenate([codes.keyed_code(faces.z[i : i + 1], Key.from_bytes(rng.bytes(32))) for i in range(len(faces.z))])
    offset = np.where(np.arange(len(u)) % 2 == 0, np.nan, rng.uniform(-8, 8, len(u))).astype(np.float32)
    return {"crop": _to_input(faces.crops).numpy(), "w_plus": codes.w_plus(u), "code": u, "offset": offset}


class _ReadCode(nn.Module):
    """The KVFA reader when it is the generator's own code read-out (``generator.read_code``)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        return self.generator.read_code(v)


class _PilotMatch(nn.Module):
    """The carrier's pilot match on small re-aligned candidates (KfaarEngine.realign's inner step)."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        g = self.generator
        return g.code_carrier.pilot_match(v, g.mask(v.shape[-1], v.device))


@contextlib.contextmanager
def _lean_carrier(generator: nn.Module):
    """Export the code carrier's write in its linear-equivalent form (parity decides whether it is).

    ``CodeCarrier.write`` adds Σ_i α_i (up(B_i) · mask) with the upsampled patterns cached as
    one (n, 3, S, S) tensor — 31 MB of constant in a graph. Bilinear upsampling is linear, so
    the same sum is up(Σ_i α_i B_i) · mask: a (B, n) x (n, 3·r·r) product and one small
    upsample, no big constant. Patched on the instance for the export only; if the carrier
    lacks the attributes this needs, nothing is patched.
    """
    c = getattr(generator, "code_carrier", None)
    if c is None or not all(hasattr(c, a) for a in ("basis", "pilot", "res", "amplitude", "read_all", "_inverse")):
        yield False
        return

    def write(y: torch.Tensor, code: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        size = y.shape[-1]
        target = torch.cat([c.amplitude * F.normalize(code, dim=1), c.pilot.expand(code.shape[0], -1)], 1)
        alpha = (target - c.read_all(y, mask)) @ c._inverse(size, mask)  # (B, n)
        field = (alpha @ c.basis).view(-1, 3, c.res, c.res)  # (B, 3, r, r)
        return y + F.interpolate(field, size=(size, size), mode="bilinear", align_corners=False) * mask, alpha

    c.write = write
    try:
        yield True
    finally:
        del c.write


def _realign_spec(bundle: ModelBundle) -> dict | None:
    """Size and search grid of KfaarEngine.realign, when the generator's carrier has pilots."""
    carrier = getattr(bundle.generator, "code_carrier", None)
    if carrier is None or not hasattr(carrier, "pilot_match"):
        return None
    from kfaar.models.engine import KfaarEngine

    search = getattr(KfaarEngine, "_SEARCH", None)
    if search is None:
        return None
    return {"size": 2 * int(carrier.res), "search": [[list(map(float, axis)) for axis in level] for level in search]}


def _small(crops_u8: np.ndarray, size: int) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, 3, size, size) float input, resized as realign's warp does (INTER_AREA)."""
    import cv2

    small = np.stack([cv2.resize(c, (size, size), interpolation=cv2.INTER_AREA) for c in crops_u8])
    return _to_input(small).numpy()


def reader_module(bundle: ModelBundle) -> nn.Module:
    """What ``KfaarEngine.read`` runs: a separate reader network, or the generator's carrier read-out."""
    reader = getattr(bundle, "reader", None)
    return reader if reader is not None else _ReadCode(bundle.generator).eval()


def _generator_args(bundle: ModelBundle, feeds: dict[str, np.ndarray]) -> tuple[list[str], tuple[torch.Tensor, ...]]:
    """The generator's inputs by name (``MaskedEditor.input_names``) and their tensors from ``feeds``."""
    names = list(bundle.generator.input_names)
    return names, tuple(torch.from_numpy(feeds[n]) for n in names)


def _feeds(sess, feeds: dict[str, np.ndarray], n: int | None = None) -> dict[str, np.ndarray]:
    """The arrays the graph declares as inputs (the exporter drops inputs a network never reads)."""
    return {i.name: feeds[i.name][:n] for i in sess.get_inputs()}


def _check_dynamic_batch(net: str, sess) -> None:
    fixed = [(a.name, a.shape) for a in list(sess.get_inputs()) + list(sess.get_outputs()) if not isinstance(a.shape[0], str)]
    if fixed:
        raise ExportParityError(
            f"{net}: the exported graph has a fixed batch size ({fixed}): the model's code specialised the batch "
            "while being traced — e.g. len(x) or a Python int taken from x.shape[0] used in a shape (use x.shape[0] "
            "in tensor ops, or tensor.expand(x.shape[0], ...)) — not writing a manifest")


def _parity(net: str, module: nn.Module, args: tuple, path: Path, feeds: dict[str, np.ndarray],
            atol: float) -> dict:
    """Max abs diff ORT vs torch on the whole batch and on batch 1 (the dynamic axis)."""
    with torch.inference_mode():
        ref = module(*args).numpy()
    sess = _session(path)
    _check_dynamic_batch(net, sess)
    full = sess.run(None, _feeds(sess, feeds))[0]
    one = sess.run(None, _feeds(sess, feeds, 1))[0]
    diff = float(max(np.abs(full - ref).max(), np.abs(one - ref[:1]).max()))
    if not diff <= atol:
        raise ExportParityError(
            f"{net}: ONNX Runtime differs from torch by {diff:.3g} (> {atol:g}) on {len(ref)} real crops; the "
            "export is wrong (an op exported differently) — not writing a manifest")
    return {"max_abs_diff": diff, "n_faces": len(ref), "atol": atol}


def _virtual(sess, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The fp32 generator's virtual crops, rounded to uint8 as the engine does, back as reader input."""
    v = np.concatenate([sess.run(None, {k: a[i : i + 8] for k, a in _feeds(sess, feeds).items()})[0]
                        for i in range(0, len(feeds["crop"]), 8)])
    return (np.rint((np.clip(v, -1, 1) + 1) * np.float32(127.5)) / np.float32(127.5) - 1).astype(np.float32)


def _int8(bundle: ModelBundle, out: Path, paths: dict[str, Path], faces: ReferenceFaces, calib: ReferenceFaces,
          seed: int, strict: bool) -> dict:
    """Quantize both graphs; measure int8 against fp32 (both ORT) on ``faces``; raise outside INT8_TOLERANCE.

    The generator is calibrated on real crops with keyed W+; the reader on what it reads in
    use — the fp32 generator's virtual crops of the same faces — and is measured on those too.
    """
    from kfaar.runtime.quantize import quantize_graph

    gen = _session(paths["generator"])
    cal, test = _codes(bundle, calib, seed + 1), _codes(bundle, faces, seed)
    inputs = {"generator": (cal, test),
              "reader": ({"crop": _virtual(gen, cal)}, {"crop": _virtual(gen, test)})}
    report = {"calibration": calib.source, "evaluation": faces.source, "tolerance": INT8_TOLERANCE}
    kind = getattr(bundle.generator.cfg, "kind", "styled")
    ops = INT8_OPS[kind]
    for net in ("generator", "reader"):
        dst = out / f"{net}.int8.onnx"
        f32 = _session(paths[net])
        cal_in, test_in = inputs[net]
        batches = [{k: v[i : i + 8] for k, v in _feeds(f32, cal_in).items()} for i in range(0, len(calib.crops), 8)]
        method = quantize_graph(paths[net], dst, batches, op_types=ops[net],
                                weight_only=INT8_WEIGHT_ONLY.get(kind, {}).get(net, ()))
        if not _quantized(dst):  # e.g. a linear read-out: nothing to gain, and the rewritten graph is slower
            dst.unlink()
            report[net] = {"method": "none: no quantizable op, int8 engines run the fp32 graph"}
            continue
        paths[f"{net}.int8"] = dst
        i8 = _session(dst)
        a, b = f32.run(None, _feeds(f32, test_in))[0], i8.run(None, _feeds(i8, test_in))[0]
        if net == "generator":
            to_u8 = lambda v: np.rint((np.clip(v, -1, 1) + 1) * 127.5)  # noqa: E731
            d = np.abs(to_u8(a) - to_u8(b))
            report[net] = {"method": method, "mean_abs_levels": float(d.mean()),
                           "p99_abs_levels": float(np.quantile(d, 0.99)), "max_abs_levels": float(d.max()),
                           **_identity_agreement(to_u8(a), to_u8(b))}
        else:
            cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
            report[net] = {"method": method, "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean())}
    g, r, tol = report["generator"], report["reader"], INT8_TOLERANCE
    checks = []
    if "mean_abs_levels" in g:
        checks += [("generator mean abs", g["mean_abs_levels"], g["mean_abs_levels"] <= tol["generator_mean_abs_levels"]),
                   ("generator p99 abs", g["p99_abs_levels"], g["p99_abs_levels"] <= tol["generator_p99_abs_levels"])]
    if "min_cosine" in r:
        checks.append(("reader min cosine", r["min_cosine"], r["min_cosine"] >= tol["reader_min_cosine"]))
    fails = [f"{k} {v:.4g}" for k, v, ok in checks if not ok]
    report["within_tolerance"] = not fails
    if fails:
        msg = f"int8 misses its tolerance {tol}: {', '.join(fails)} on {faces.source}"
        if strict:
            raise ExportParityError(msg + "; export without --int8 (fp32 is unaffected)")
        log.warning("%s; kept because int8_strict=False (benchmarks of random weights)", msg)
    return report


def _identity_agreement(a: np.ndarray, b: np.ndarray) -> dict:
    """SFace cosine between the fp32 and int8 virtual faces (N, 3, S, S) in 0..255: same virtual person?"""
    from kfaar.faces import SFaceEncoder

    to_crops = lambda v: np.ascontiguousarray(v.transpose(0, 2, 3, 1).astype(np.uint8))  # noqa: E731
    with SFaceEncoder(threads=1) as enc:
        cos = np.sum(enc.encode(to_crops(a)) * enc.encode(to_crops(b)), axis=1)
    return {"virtual_sface_cosine_min": float(cos.min()), "virtual_sface_cosine_mean": float(cos.mean())}


def _quantized(path: Path) -> bool:
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    return bool(ops & {"QuantizeLinear", "QLinearConv", "ConvInteger", "MatMulInteger", "QLinearMatMul"})


def _io(sess) -> dict:
    return {"inputs": [{"name": i.name, "shape": i.shape, "dtype": "float32"} for i in sess.get_inputs()],
            "outputs": [{"name": o.name, "shape": o.shape, "dtype": "float32"} for o in sess.get_outputs()]}


def export_bundle(bundle: ModelBundle, out_dir: str | os.PathLike, *, name: str = "custom", int8: bool = False,
                  faces: ReferenceFaces | None = None, calibration: ReferenceFaces | None = None,
                  opset: int = OPSET, atol: float = ATOL, seed: int = 0, int8_strict: bool = True) -> ExportResult:
    """Write the model set for ``bundle`` into ``out_dir``; see the module docstring.

    ``faces``: the real crops for the parity check (default: 16 dev crops of the LFW cache, else
    the sample photo); ``calibration``: int8 calibration crops (default: 64 train crops).
    Raises :class:`ExportParityError` (and writes no manifest) when parity or int8 tolerance
    fails; ``int8_strict=False`` keeps an int8 graph outside its tolerance (recorded as such).
    """
    if opset < 17:
        raise ValueError(f"opset: got {opset}, expected >= 17")
    bundle = bundle.eval()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)  # the folder is a model set again only when we finish
    faces = faces or reference_faces("dev", 16)
    size = int(faces.crops.shape[1])
    feeds = _codes(bundle, faces, seed)
    paths = {"generator": out / "generator.onnx", "reader": out / "reader.onnx"}
    names, args = _generator_args(bundle, feeds)
    x = (torch.from_numpy(feeds["crop"]),)
    jobs = [("generator", bundle.generator, names, ["virtual"], args, feeds),
            ("reader", reader_module(bundle), ["crop"], ["code"], x, feeds)]
    realign = _realign_spec(bundle)
    if realign is not None:  # pilot match on the virtual crops, shrunk as realign's candidates are
        with torch.inference_mode():
            v = ((bundle.generator(*args).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        small = {"crop": _small(v.permute(0, 2, 3, 1).contiguous().numpy(), realign["size"])}
        paths["pilot_match"] = out / "pilot_match.onnx"
        jobs.append(("pilot_match", _PilotMatch(bundle.generator).eval(), ["crop"], ["match"],
                     (torch.from_numpy(small["crop"]),), small))
    parity = {}
    for net, module, ins, outs, full, net_feeds in jobs:
        if net == "generator":
            with _lean_carrier(bundle.generator) as lean:
                _export_graph(module, tuple(a[:2] for a in full), paths[net], ins, outs, opset)
            try:
                parity[net] = _parity(net, module, full, paths[net], net_feeds, atol)
                continue
            except ExportParityError as err:
                if not lean:
                    raise
                log.warning("the lean carrier write does not reproduce this carrier (%s); exporting it as is", err)
        _export_graph(module, tuple(a[:2] for a in full), paths[net], ins, outs, opset)
        parity[net] = _parity(net, module, full, paths[net], net_feeds, atol)  # each checked before the next export
    log.info("parity: %s", {k: f"{v['max_abs_diff']:.2g}" for k, v in parity.items()})

    from safetensors.numpy import save

    (out / "params.safetensors").write_bytes(save(_params(bundle, size)))
    int8_report = None
    if int8:
        int8_report = _int8(bundle, out, paths, faces, calibration or reference_faces("train", 64, seed=seed + 1), seed,
                            int8_strict)
    else:
        for net in ("generator", "reader"):
            (out / f"{net}.int8.onnx").unlink(missing_ok=True)
    if realign is None:
        (out / "pilot_match.onnx").unlink(missing_ok=True)

    files = sorted(["params.safetensors"] + [p.name for p in paths.values()])
    for stale in out.glob("*.onnx"):  # graphs of an earlier export into this folder that this one did not write
        if stale.name not in files and stale.name.split(".")[0] in ("generator", "reader", "pilot_match"):
            stale.unlink()
    networks = {}
    for net in paths:
        if net.endswith(".int8"):
            continue
        networks[net] = {"files": {"fp32": f"{net}.onnx"}, **_io(_session(paths[net]))}
        if f"{net}.int8" in paths:  # quantized (the pilot match is tiny and stays fp32)
            networks[net]["files"]["int8"] = f"{net}.int8.onnx"
    g = bundle.generator.cfg
    manifest = {
        "format": FORMAT,
        "name": name,
        "crop_size": size,
        "crop_input": "aligned RGB crop as float32 NCHW in [-1, 1] (uint8 / 127.5 - 1)",
        "threshold": float(bundle.threshold),
        "networks": networks,
        "params": "params.safetensors",
        "mapping": {"n_layers": len(bundle.mapping.layers), "n_styles": g.n_styles, "style_dim": g.style_dim},
        "generator_config": asdict(g),
        "reader_config": asdict(bundle.reader.cfg) if getattr(bundle, "reader", None) is not None else
        {"kind": "generator.read_code (code carrier)"},
        "realign": realign,  # KfaarEngine.realign's candidate size and search grid (None: no pilots)
        "opset": opset,
        "exporter": f"torch.onnx ({exporter_name()}), torch {torch.__version__}",
        "parity": {"faces": faces.source, **parity},
        "int8": int8_report,
        "source": bundle.info,
        "sha256": {f: sha256_bytes((out / f).read_bytes()) for f in files},
    }
    data = (json.dumps(manifest, indent=1, sort_keys=True, default=float) + "\n").encode()
    with atomic_write(out / MANIFEST) as f:
        f.write(data)
    return ExportResult(out, sha256_bytes(data), json.loads(data))


def export_shipped(bundle: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None, *,
                   name: str | None = None, int8: bool = True) -> ExportResult:
    """Export the shipped bundle (default "kfaar-v2", SHA-256 verified) to the shipped ONNX set.

    Writes ``kfaar/runtime/weights/<name>/`` unless ``out_dir`` is given; pin the returned
    ``manifest_sha256`` in ``kfaar.runtime.engine.SHIPPED[name]`` (the log prints the line).
    """
    from kfaar.models.bundle import DEFAULT_MODEL, SHIPPED, load_bundle
    from kfaar.runtime.engine import WEIGHTS_DIR

    if name is None:
        name = bundle if isinstance(bundle, str) and bundle in SHIPPED else DEFAULT_MODEL
    b = load_bundle(bundle)
    res = export_bundle(b, out_dir or WEIGHTS_DIR / name, name=name, int8=int8)
    log.warning("pin it: in kfaar/runtime/engine.py set SHIPPED[%r] = %r", name, res.manifest_sha256)
    return res
