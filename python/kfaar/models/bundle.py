"""The shipped model file: one safetensors bundle, SHA-256 pinned, verified before use.

Contents (tensor names by prefix): ``generator.*`` (the eigenface model of models/eigen.py,
or the attribute encoder and styled decoder, and the code carrier that KVFA reads), ``mapping.*``, ``space.*`` (mean, whiten, color, radius); metadata holds the
architecture configs and the operating threshold chosen on the train split.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from kfaar._atomic import atomic_write
from kfaar.errors import ModelIntegrityError
from kfaar.models.eigen import EigenConfig, EigenGenerator
from kfaar.models.generator import Generator, GeneratorConfig
from kfaar.models.identity_space import IdentitySpace
from kfaar.models.mapping import MappingNetwork

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "kfaar-v2"
# name -> (file under WEIGHTS_DIR, SHA-256). A mismatch refuses to load.
SHIPPED = {
    "kfaar-v2": ("kfaar-v2.safetensors", "f74a247027d23d78d64a1c35c60e304c7ccd70682cbf568da76f8f2e31203eda"),
}
FORMAT = "kfaar-bundle/2"


@dataclass
class ModelBundle:
    generator: Generator | EigenGenerator
    mapping: MappingNetwork
    space: IdentitySpace
    threshold: float  # Authenticator's operating threshold (whitened cosine)
    info: dict  # provenance: run, steps, data, measured numbers

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"generator": self.generator, "mapping": self.mapping, "space": self.space}

    def eval(self) -> ModelBundle:
        for m in self.modules().values():
            m.eval().requires_grad_(False)
        return self


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_bundle(bundle: ModelBundle, path: str | os.PathLike) -> str:
    """Write the bundle; returns its SHA-256 (to pin in ``SHIPPED``)."""
    from safetensors.torch import save

    tensors = {f"{prefix}.{k}": v.detach().float().contiguous().clone()
               for prefix, mod in bundle.modules().items() for k, v in mod.state_dict().items()}
    meta = {
        "format": FORMAT,
        "generator": json.dumps(asdict(bundle.generator.cfg)),
        "mapping": json.dumps({"n_layers": len(bundle.mapping.layers), "hidden": bundle.mapping.styles[0].weight.shape[1]}),
        "threshold": repr(float(bundle.threshold)),
        "info": json.dumps(bundle.info),
    }
    data = _sorted_metadata(save(tensors, metadata=meta))
    with atomic_write(path) as f:
        f.write(data)
    return sha256_bytes(data)


def _sorted_metadata(data: bytes) -> bytes:
    """The same safetensors file with its ``__metadata__`` keys in sorted order.

    safetensors writes the metadata from a Rust HashMap, in an order that differs per call
    (safetensors/safetensors#584, open), so one bundle saved twice hashed differently; a pin
    must name the content. The tensors' entries, their offsets and the data are untouched.
    """
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    text += b" " * (-len(text) % 8)  # safetensors aligns the data to 8 bytes
    return len(text).to_bytes(8, "little") + text + data[8 + n:]


def _resolve(model: str | os.PathLike | bytes | None, sha256: str | None) -> tuple[bytes, str, str | None]:
    """(file bytes, a name for messages, the hash it must have or None)."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), "<bytes>", sha256
    if model is None or (isinstance(model, str) and model in SHIPPED):
        name = model or DEFAULT_MODEL
        fname, pinned = SHIPPED[name]
        path = WEIGHTS_DIR / fname
        if not path.exists():
            raise ModelIntegrityError(f"model {name!r}: weights file {path} is missing; reinstall kfaar")
        return path.read_bytes(), str(path), sha256 or pinned
    path = Path(model)
    if not path.exists():
        raise ModelIntegrityError(
            f"model: {str(model)!r} is neither a file nor a shipped model name (valid names: {sorted(SHIPPED)})")
    if sha256 is None:  # a shipped file named by its path is held to its pin all the same
        sha256 = next((pin for fname, pin in SHIPPED.values()
                       if path.resolve() == (WEIGHTS_DIR / fname).resolve()), None)
    return path.read_bytes(), str(path), sha256


def load_bundle(model: str | os.PathLike | bytes | None = None, sha256: str | None = None) -> ModelBundle:
    """Load a bundle from a shipped name (default), a path or bytes; verify its SHA-256 first.

    Shipped names are always checked against the pinned hash; for your own files pass
    ``sha256`` to have them checked too (unpinned files are loaded with a warning).
    """
    from safetensors import safe_open  # noqa: F401  (import check: clear error if missing)
    from safetensors.torch import load as st_load

    data, where, expected = _resolve(model, sha256)
    actual = sha256_bytes(data)
    if expected is None:
        log.warning("model %s: no pinned SHA-256, loading unverified weights (%s)", where, actual)
    elif actual != expected.lower():
        raise ModelIntegrityError(
            f"model {where}: SHA-256 {actual} does not match the pinned {expected}; the file is corrupt "
            "or was replaced. Reinstall kfaar, or pass the right sha256 for your own weights.")
    meta = _metadata(data, where)
    tensors = st_load(data)
    generator = generator_from_config(json.loads(meta["generator"]))
    gcfg = generator.cfg
    mcfg = json.loads(meta["mapping"])
    bundle = ModelBundle(
        generator=generator,
        mapping=MappingNetwork(hidden=mcfg["hidden"], n_layers=mcfg["n_layers"], n_styles=gcfg.n_styles,
                               style_dim=gcfg.style_dim),
        space=IdentitySpace(),
        threshold=float(meta["threshold"]),
        info=json.loads(meta.get("info", "{}")),
    )
    for prefix, mod in bundle.modules().items():
        sub = {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
        try:
            mod.load_state_dict(sub)
        except RuntimeError as err:
            raise ModelIntegrityError(f"model {where}: {prefix} weights do not fit the architecture: {err}") from None
    return bundle.eval()


def generator_from_config(cfg: dict) -> Generator | EigenGenerator:
    """A generator from its saved config: ``kind`` "eigen" (models/eigen.py) or the styled decoder."""
    cfg = {k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}
    if cfg.get("kind") == "eigen":
        return EigenGenerator(EigenConfig(**cfg))
    cfg.pop("kind", None)
    return Generator(GeneratorConfig(**cfg))


def _metadata(data: bytes, where: str) -> dict[str, str]:
    n = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError):
        raise ModelIntegrityError(f"model {where}: not a safetensors file") from None
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise ModelIntegrityError(f"model {where}: format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta
