"""The ONNX model set on disk: ``manifest.json`` beside the graph files, every file SHA-256 pinned.

A set is a folder::

    manifest.json          format, crop size, threshold, input/output names and shapes,
                           the SHA-256 of every file below, parity and int8 figures
    generator.onnx         G(crop, W+, u') -> virtual crop (eigenface edit or styled decoder, + code carrier)
    reader.onnx            R(virtual crop) -> unit code direction (KVFA)
    *.int8.onnx            the quantized twins (optional)
    params.safetensors     the numpy side: identity space (mean, whiten, color, radius),
                           mapping weights in the kernel's layout, the paste-back mask

The keyed projection and the mapping run in our kernels; no graph file ever sees a key.
Loading reads each file's bytes once, hashes them, and hands *those bytes* on, so what was
verified is what runs. Nothing here imports torch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kfaar.errors import ModelIntegrityError

log = logging.getLogger(__name__)

FORMAT = "kfaar-onnx/1"
MANIFEST = "manifest.json"
PRECISIONS = ("fp32", "int8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class ModelSet:
    """A verified model set: the parsed manifest and the verified bytes of every file it names."""

    where: str  # folder, for messages
    manifest: dict
    manifest_sha256: str
    files: dict[str, bytes]  # file name -> verified bytes

    @property
    def crop_size(self) -> int:
        return int(self.manifest["crop_size"])

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    def precisions(self, network: str) -> tuple[str, ...]:
        return tuple(p for p in PRECISIONS if p in self.manifest["networks"][network]["files"])

    def graph(self, network: str, precision: str = "fp32") -> bytes:
        """The verified ONNX bytes of ``network`` ("generator" / "reader") at ``precision``."""
        net = self.manifest["networks"].get(network)
        if net is None:
            raise ModelIntegrityError(f"model set {self.where}: no network {network!r} in {MANIFEST}")
        fname = net["files"].get(precision)
        if fname is None:
            raise ValueError(f"precision: {network} has no {precision!r} graph in {self.where} "
                             f"(available: {list(self.precisions(network))}); export it with --int8")
        return self.files[fname]


def load_model_set(folder: str | os.PathLike, manifest_sha256: str | None = None, *,
                   precisions: tuple[str, ...] = PRECISIONS) -> ModelSet:
    """Read and verify a model set folder.

    ``manifest_sha256`` pins the manifest itself (shipped sets are always pinned); each file
    the manifest names is then checked against its own hash. Files of precisions not in
    ``precisions`` are neither read nor verified (an int8-free deployment may delete them).
    Raises :class:`~kfaar.errors.ModelIntegrityError` on a missing, altered or foreign file.
    """
    folder = Path(folder)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise ModelIntegrityError(f"model set {folder}: {MANIFEST} is missing (export one with `kfaar export --out DIR`)")
    raw = mpath.read_bytes()
    actual = sha256_bytes(raw)
    if manifest_sha256 is None:
        log.warning("model set %s: no pinned SHA-256 for %s, trusting it as is (%s)", folder, MANIFEST, actual)
    elif actual != manifest_sha256.lower():
        raise ModelIntegrityError(
            f"model set {folder}: {MANIFEST} has SHA-256 {actual}, not the pinned {manifest_sha256}; the set "
            "was edited or replaced. Reinstall kfaar, or pin the hash of your own export.")
    try:
        manifest = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ModelIntegrityError(f"model set {folder}: {MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise ModelIntegrityError(f"model set {folder}: format {got!r}, expected {FORMAT!r}")
    wanted = {manifest["params"]}
    for net in manifest["networks"].values():
        wanted |= {f for p, f in net["files"].items() if p in precisions}
    files = {}
    for fname in sorted(wanted):
        expected = manifest["sha256"].get(fname)
        if expected is None:
            raise ModelIntegrityError(f"model set {folder}: {MANIFEST} names {fname} but gives no SHA-256 for it")
        path = folder / fname
        if not path.is_file():
            raise ModelIntegrityError(f"model set {folder}: {fname} is missing (the manifest lists it); reinstall "
                                      "or re-export the set")
        data = path.read_bytes()
        got = sha256_bytes(data)
        if got != expected:
            raise ModelIntegrityError(
                f"model set {folder}: {fname} has SHA-256 {got}, but {MANIFEST} says {expected}; the file is "
                "corrupt or was replaced. Reinstall kfaar or re-export the set.")
        files[fname] = data
    return ModelSet(str(folder), manifest, actual, files)
