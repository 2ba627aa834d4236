"""Torch-free inference: the exported networks in onnxruntime, the keyed steps in our kernels.

:class:`OrtEngine` has the public methods of :class:`kfaar.models.engine.KfaarEngine` and
gives the same numbers (the export's parity check holds the graphs to torch within 1e-4;
the numpy side is the same code on the same arrays):

    anonymize:  z ─► projection kernel (key) ─► u' ─► mapping kernel ─► W+ ─► generator.onnx (crop, W+, u')
    recover:    virtual crop ─► reader.onnx ─► radius · û' ─► inverse projection kernel ─► ẑ

It imports numpy, onnxruntime, safetensors.numpy and kfaar's kernels — never torch — so a
runtime install (``pip install kfaar``) runs it. One ORT session per network, created once
and reused; ``InferenceSession.run`` is thread-safe, and nothing else here mutates state
after construction, so one engine may serve several threads.

>>> eng = default_engine()                       # the shipped ONNX set, SHA-256 pinned
>>> v = eng.generate(crops, z, key)             # (N, 128, 128, 3) uint8 virtual crops
>>> e = eng.recover(v, key)                     # (N, 128) recovered identity embeddings
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kfaar._threads import check_threads
from kfaar.errors import ModelIntegrityError
from kfaar.keys import Key
from kfaar.runtime.codes import PASTE_MASK, CodesMixin, IdentityCodes, check_offsets
from kfaar.runtime.manifest import PRECISIONS, ModelSet, load_model_set
from kfaar.runtime.quantize import fold_weight_only

log = logging.getLogger(__name__)

__all__ = ["BACKENDS", "SHIPPED", "WEIGHTS_DIR", "OrtEngine", "OrtEngineOptions", "default_engine", "load_engine"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "kfaar-v2"
# name -> SHA-256 of WEIGHTS_DIR/<name>/manifest.json (which pins every file of the set).
# Written by kfaar.runtime.export.export_shipped; "PENDING" until the set is exported.
SHIPPED = {
    "kfaar-v2": "c984044e4dcce98f3821da8ab30903f07a05c0f594287396203b7a4fe1cb9515",
}


@dataclass(frozen=True)
class OrtEngineOptions:
    model: str | os.PathLike | None = None  # shipped name (default "kfaar-v2") or a folder with manifest.json
    model_sha256: str | None = None  # SHA-256 of your own set's manifest.json; shipped sets are pinned
    precision: str = "fp32"  # "fp32" or "int8" (the quantized graphs `kfaar export --int8` wrote)
    threads: int | None = None  # ORT intra-op threads per session; None = ORT's default (all cores)
    providers: tuple[str, ...] | None = None  # None: CUDA EP when this onnxruntime has it, then CPU
    # Idle ORT worker threads spin-wait for the next task by default. With other busy processes
    # (or the pipeline's other sessions: SFace, YuNet) they steal each other's cores; off by
    # default here — on the 2 shared cores the generator ran 15 ms/face instead of 26.
    spin: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision: got {self.precision!r}, expected one of {PRECISIONS}")
        object.__setattr__(self, "threads", check_threads(self.threads))  # frozen: a numpy int stored as int


def _resolve(model: str | os.PathLike | None, sha256: str | None) -> tuple[Path, str | None]:
    """(folder, the manifest hash it must have, or None)."""
    if model is None or (isinstance(model, str) and model in SHIPPED):
        name = model or DEFAULT_MODEL
        pinned = SHIPPED[name]
        if pinned == "PENDING":
            raise ModelIntegrityError(
                f"model {name!r}: the shipped ONNX set is not exported yet (no pinned SHA-256). Run "
                f"kfaar.runtime.export.export_shipped({name!r}) and pin the hash it returns in "
                "kfaar.runtime.engine.SHIPPED, or pass a folder from `kfaar export --out DIR`.")
        return WEIGHTS_DIR / name, sha256 or pinned
    path = Path(model)
    if path.is_file() and path.name == "manifest.json":
        path = path.parent
    if not path.is_dir():
        raise ModelIntegrityError(
            f"model: {str(model)!r} is neither a model-set folder nor a shipped name (valid names: {sorted(SHIPPED)})")
    if sha256 is None:  # a shipped set named by its folder is held to its pin all the same
        sha256 = next((pin for name, pin in SHIPPED.items()
                       if pin != "PENDING" and path.resolve() == (WEIGHTS_DIR / name).resolve()), None)
    return path, sha256


def _providers(requested: tuple[str, ...] | None) -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if requested is None:
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        raise ValueError(f"providers: {missing} not available in this onnxruntime (available: {available})")
    return list(requested)


def _u8_to_input(crops: np.ndarray, channels_first: bool = False) -> np.ndarray:
    """(N, S, S, 3) uint8 (or (N, 3, S, S) with ``channels_first``) -> (N, 3, S, S) float32 in
    [-1, 1], the arithmetic torch's engine uses."""
    x = np.ascontiguousarray(crops if channels_first else crops.transpose(0, 3, 1, 2), np.float32)
    np.divide(x, np.float32(127.5), out=x)
    return np.subtract(x, np.float32(1), out=x)


def _output_to_u8(x: np.ndarray) -> np.ndarray:
    """(N, 3, S, S) float32 -> (N, S, S, 3) uint8 (clamp, scale, round half to even)."""
    return np.ascontiguousarray(np.rint((np.clip(x, -1, 1) + 1) * np.float32(127.5)).astype(np.uint8).transpose(0, 2, 3, 1))


class OrtEngine(CodesMixin):
    """The shipped networks as ONNX Runtime sessions plus the kernels' parameter objects."""

    def __init__(self, options: OrtEngineOptions | None = None, *, model_set: ModelSet | None = None):
        self.options = opts = options or OrtEngineOptions()
        if model_set is None:
            folder, sha = _resolve(opts.model, opts.model_sha256)
            model_set = load_model_set(folder, sha, precisions=("fp32", opts.precision))
        self.model_set = model_set
        m = model_set.manifest
        self.crop_size = int(m["crop_size"])
        self.threshold = float(m["threshold"])
        self.providers = _providers(opts.providers)
        self._realign = m.get("realign")  # candidate size and search grid, or None (no pilots)
        self._load_params(model_set.files[m["params"]])
        self._io = {net: ([i["name"] for i in spec["inputs"]], [o["name"] for o in spec["outputs"]])
                    for net, spec in m["networks"].items()}
        if opts.precision != "fp32" and not any(opts.precision in model_set.precisions(n) for n in m["networks"]):
            raise ValueError(f"precision: {opts.precision!r} requested, but {model_set.where} has no {opts.precision} "
                             "graphs; export them with `kfaar export --int8`")
        self._sessions = self._open_sessions()

    @classmethod
    def create_from_options(cls, options: OrtEngineOptions) -> OrtEngine:
        return cls(options)

    def _open_sessions(self) -> dict:
        # int8 where the export quantized a network; networks with nothing to quantize are fp32 only
        ms, prec = self.model_set, self.options.precision
        return {net: self._session(ms.graph(net, prec if prec in ms.precisions(net) else "fp32"))
                for net in ms.manifest["networks"]}

    def _session(self, graph: bytes):
        import onnxruntime as ort

        so = ort.SessionOptions()
        if self.options.threads is not None:
            so.intra_op_num_threads = self.options.threads
            so.inter_op_num_threads = 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.options.spin else "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        # int8-stored weights of float products (weight-only int8) are dequantized once, here
        return ort.InferenceSession(fold_weight_only(graph), so, providers=self.providers)

    def _load_params(self, data: bytes) -> None:
        from safetensors.numpy import load

        p = load(data)
        self.codes = IdentityCodes(p, int(self.model_set.manifest["mapping"]["n_layers"]))
        c = self.codes
        self.mean, self.whiten, self.color, self.radius = c.mean, c.whiten, c.color, c.radius
        self.whitening, self.mapping = c.whitening, c.mapping
        self.paste_mask = p[PASTE_MASK].astype(np.float32)  # (S, S) the generator's face-interior mask
        self.paste_mask.setflags(write=False)
        self._pilot = None  # the carrier's pilot read on whole cells, where the set carries it (realign)
        if "pilot_rows" in p and self._realign is not None:
            from kfaar.runtime.realign import PilotRows

            self._pilot = PilotRows.from_arrays(p, int(self._realign["size"]) // 2)

    # -------------------------------------------------------------- lifecycle
    def close(self) -> None:
        self._sessions = {}

    def __enter__(self) -> OrtEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:  # pickles for process pools: sessions are rebuilt from the verified bytes
        return {k: v for k, v in self.__dict__.items() if k != "_sessions"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._sessions = self._open_sessions()

    def _run(self, net: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run ``net`` on the feeds its graph declares (a generator without the code carrier has no "code")."""
        sess = self._sessions.get(net)
        if sess is None:
            raise RuntimeError("OrtEngine is closed; create a new one")
        names, outs = self._io[net]
        return sess.run(outs[:1], {n: feeds[n] for n in names})[0]

    def _check_crops(self, crops: object) -> np.ndarray:
        c = np.asarray(crops)
        s = self.crop_size
        if c.dtype != np.uint8 or c.ndim != 4 or c.shape[1:] != (s, s, 3):
            raise ValueError(f"crops: got {c.dtype} array of shape {c.shape}, expected (N, {s}, {s}, 3) uint8 "
                             "aligned crops (kfaar.faces.align_face)")
        return c

    # -------------------------------------------------------------- networks
    def generate(self, crops: np.ndarray, z: np.ndarray, key: Key, offsets: np.ndarray | None = None) -> np.ndarray:
        """crops (N, S, S, 3) uint8 aligned, z (N, 128) their SFace embeddings -> virtual crops, same shape.

        ``offsets`` (N,): the faces' nose offsets in crop pixels where the detector's landmarks
        give them (``kfaar.faces.align.nose_offset``), NaN or None where not: the pose warp
        then reads them from the face. Models without a pose warp ignore them."""
        crops = self._check_crops(crops)
        z = np.asarray(z, np.float32)
        if z.shape != (len(crops), 128):
            raise ValueError(f"z: got shape {z.shape}, expected ({len(crops)}, 128) (one SFace embedding per crop)")
        offsets = check_offsets(offsets, len(crops))
        if len(crops) == 0:
            return crops.copy()
        return _output_to_u8(self._run("generator", self.generator_feeds(crops, self.keyed_code(z, key), offsets)))

    def generator_feeds(self, crops: np.ndarray, u: np.ndarray, offsets: np.ndarray | None = None
                        ) -> dict[str, np.ndarray]:
        """Every input a generator graph may declare, by name, for uint8 ``crops`` and their keyed
        codes ``u`` (``offsets``: as ``generate``; None: all read from the faces)."""
        return {"crop": _u8_to_input(crops), "w_plus": self.w_plus(u), "code": u,
                "offset": check_offsets(offsets, len(crops))}

    def read(self, crops: np.ndarray) -> np.ndarray:
        """Virtual crops (N, S, S, 3) uint8 -> (N, 128) unit estimates of the keyed code direction."""
        crops = self._check_crops(crops)
        if len(crops) == 0:
            return np.zeros((0, 128), np.float32)
        return self._run("reader", {"crop": _u8_to_input(crops)}).astype(np.float32)

    def recover(self, crops: np.ndarray, key: Key) -> np.ndarray:
        """Virtual crops -> (N, 128) recovered identity embeddings in SFace space (not normalised)."""
        return self.codes.from_read(self.read(crops), key)

    def realign(self, rgb: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, float]:
        """Refine a photo->crop alignment of a *virtual* face so the code carrier's pilots line up.

        The search ``KfaarEngine.realign`` runs (``kfaar.runtime.realign.search``, its grid from
        the manifest), each candidate alignment scored by the carrier's pilot rows from the
        params (sets exported before them: by the pilot-match graph). Returns the refined (2, 3)
        matrix and its pilot match (cosine, ~1 when found)."""
        from kfaar.runtime.realign import search

        if self._realign is None:
            raise ValueError(f"realign: model set {self.model_set.where} has no code-carrier pilots to align on")
        score = self._pilot or (lambda c: self._run("pilot_match", {"crop": _u8_to_input(c, channels_first=True)}))
        return search(rgb, matrix, self.crop_size, int(self._realign["size"]), self._realign["search"], score,
                      channels_first=True)


BACKENDS = ("onnx", "torch")


def resolve_backend(model: str | os.PathLike | bytes | None, backend: str | None = None) -> str:
    """``backend`` if given, else by what ``model`` is: a torch bundle (bytes, a .safetensors
    file, a name only the torch bundles ship) runs on "torch", anything else on "onnx"."""
    if backend is not None:
        if backend not in BACKENDS:
            raise ValueError(f"backend: got {backend!r}, expected one of {BACKENDS} or None (by model)")
        return backend
    if isinstance(model, (bytes, bytearray)):
        return "torch"
    if model is None or (isinstance(model, str) and model in SHIPPED):
        return "onnx"
    if Path(model).is_file() and Path(model).name != "manifest.json":
        return "torch"
    if isinstance(model, str) and not Path(model).exists():
        try:
            from kfaar.models.bundle import SHIPPED as BUNDLES
        except ImportError:
            return "onnx"
        return "torch" if model in BUNDLES else "onnx"
    return "onnx"


def load_engine(model: str | os.PathLike | bytes | None = None, model_sha256: str | None = None, *,
                backend: str | None = None, threads: int | None = None, precision: str = "fp32"):
    """The engine the pipeline runs: :class:`OrtEngine` (default; no torch) or, for a torch
    bundle or ``backend="torch"``, ``kfaar.models.engine.KfaarEngine`` (needs ``kfaar[train]``).

    Both have the same public methods (``generate``, ``recover``, ``realign``, ``scores``, …)
    plus ``threshold`` and ``paste_mask``."""
    chosen = resolve_backend(model, backend)
    if chosen == "onnx":
        return OrtEngine(OrtEngineOptions(model=model, model_sha256=model_sha256, precision=precision, threads=threads))
    if precision != "fp32":
        raise ValueError(f"precision: {precision!r} needs the onnx backend (torch runs fp32)")
    try:
        import torch
    except ImportError:
        raise ImportError("backend 'torch' (a .safetensors bundle) needs torch: pip install 'kfaar[train]', or "
                          "use the ONNX model set (the default)") from None
    from kfaar.models.bundle import load_bundle
    from kfaar.models.engine import KfaarEngine

    if threads is not None:
        torch.set_num_threads(int(threads))
    return KfaarEngine(load_bundle(model, model_sha256))


def default_engine(model: str | os.PathLike | None = None, **options) -> OrtEngine:
    """The shipped ONNX set (or ``model``: a shipped name or a folder), e.g. ``default_engine(threads=2)``."""
    return OrtEngine(OrtEngineOptions(model=model, **options))
