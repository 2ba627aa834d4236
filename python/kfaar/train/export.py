"""Export a training checkpoint to the shipped bundle and choose the operating threshold.

The threshold is set on the *train* split: each face is anonymized under a random key and
recovered with the right key and with a wrong one; the threshold is the larger of the
99.5th percentiles of wrong-key scores (against the face's own template: the worst case)
and of right-key impostor scores (against other identities' templates), so wrong-key
acceptance stays <= 0.5% there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from kfaar.keys import Key
from kfaar.models.bundle import ModelBundle, save_bundle
from kfaar.models.engine import KfaarEngine
from kfaar.train.data import FaceSet

log = logging.getLogger(__name__)


def bundle_from_checkpoint(path: str | os.PathLike) -> ModelBundle:
    from kfaar.train.loop import KfaarModel

    from kfaar.models.generator import GeneratorConfig

    st = torch.load(path, map_location="cpu", weights_only=False)
    over = st["config"].get("generator", {})
    m = KfaarModel(GeneratorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in over.items()}))
    m.load_state_dict({k: v for k, v in st["model"].items() if "code_carrier." not in k}, strict=False)
    info = {"step": int(st["step"]), "config": st["config"]}
    return ModelBundle(m.generator, m.mapping, m.space, threshold=0.0, info=info).eval()


# Operating threshold: the larger of the wrong-key and impostor score quantiles on train faces.
# 0.998 aims at ~0.2% wrong-key acceptance, under issue 4's 0.5% with room for sampling
# error (0.995 gave 0.5% fp32 / 0.7% int8 on 2,000 dev trials: on the line).
THRESHOLD_QUANTILE = 0.998
WRONG_KEYS_PER_FACE = 8  # the read does not depend on the key: more wrong keys cost little


def operating_point(bundle: ModelBundle, faces: FaceSet, n: int = 512, seed: int = 0,
                    quantile: float = THRESHOLD_QUANTILE, wrong_keys: int = WRONG_KEYS_PER_FACE) -> dict:
    """Score distributions on ``n`` train faces; returns the threshold and the measured rates."""
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(faces.labels), min(n, len(faces.labels)), replace=False))
    crops, z, labels = faces.crops[idx], faces.embeddings[idx], faces.labels[idx]
    eng = KfaarEngine(bundle)
    right, wrong = np.zeros_like(z), np.zeros((wrong_keys, *z.shape), z.dtype)
    for i in range(0, len(idx), 32):  # one key per chunk of 32 faces (keys are per user)
        k = Key.from_bytes(rng.bytes(32))
        v = eng.generate(crops[i : i + 32], z[i : i + 32], k)
        read = eng.read(v)
        right[i : i + 32] = eng.codes.from_read(read, k)
        for j in range(wrong_keys):
            wrong[j, i : i + 32] = eng.codes.from_read(read, Key.from_bytes(rng.bytes(32)))
    s_right = eng.scores(right, z)  # (n, n)
    genuine = np.diag(s_right)
    impostor = s_right[labels[:, None] != labels[None, :]]
    wrong_own = np.concatenate([np.diag(eng.scores(w, z)) for w in wrong])
    thr = float(max(np.quantile(wrong_own, quantile), np.quantile(impostor, quantile)))
    return {
        "threshold": thr,
        "n": int(len(idx)),
        "quantile": quantile,
        "wrong_key_trials": int(len(wrong_own)),
        "genuine_same_photo_accept": float((genuine >= thr).mean()),
        "wrong_key_accept": float((wrong_own >= thr).mean()),
        "impostor_accept": float((impostor >= thr).mean()),
        "genuine_mean": float(genuine.mean()),
        "wrong_mean": float(wrong_own.mean()),
    }


def export_checkpoint(ckpt: str | os.PathLike, out: str | os.PathLike, faces: FaceSet, n: int = 512) -> tuple[str, dict]:
    bundle = bundle_from_checkpoint(ckpt)
    op = operating_point(bundle, faces, n)
    bundle.threshold = op["threshold"]
    bundle.info["operating_point_train"] = op
    sha = save_bundle(bundle, out)
    log.info("exported %s (%.1f MB) sha256=%s threshold=%.4f", out, Path(out).stat().st_size / 1e6, sha, op["threshold"])
    return sha, op
