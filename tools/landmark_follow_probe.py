"""Probe: move each virtual face's nose tip to the input's (YuNet on both), then run a kfaar CLI.

The shipped pose warp shifts a frontal keyed face sideways by the input's nose offset; the
keyed face's own nose (its identity) stays where the key put it, and nothing follows the
input's head tilt. This probe renders each face twice: once as shipped, then again with the
rendered face moved (before the colour shift, the seamless paste and the code, so the code is
written as usual) by GAIN x (the input's nose tip minus the first rendering's), both measured
by YuNet on the 128-px crops at twice their size, from the midpoint of the eye and mouth
centres, tapering as 1 - r^2 from the centre of the face ellipse to nothing at its edge. With
``--input-landmarks photo`` the input's nose comes from the landmarks the pipeline detected
on the full photo instead (cheaper, but YuNet places the nose's height differently there:
on dev crops the two agree at correlation 0.31 vertically, 0.96 horizontally).

It patches the torch engine's generator and ``Anonymizer.anonymize_crops`` in this process
only, so give the CLI a bundle (``--kfaar-model``: the torch engine):

    python tools/landmark_follow_probe.py --gain 1 1.5 -- eval --methods kfaar --limit 100 --quiet \\
        --out runs/follow --kfaar-model python/kfaar/models/weights/kfaar-v2.safetensors

Measured 2026-11-27 (docs/MODEL_CARD.md, "Tried in the session of 2026-11-27, fifteenth"):
pitch and yaw a little closer, diversity and SFace linkability worse; not shipped.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import kfaar.pipeline as pipeline
from kfaar.faces.align import nose_position
from kfaar.models.eigen import EigenGenerator


def follow_warp(cfg, face: torch.Tensor, shift: np.ndarray) -> torch.Tensor:
    """Move (B, 3, S, S) ``face`` by ``shift`` (B, 2) 128-px pixels at the ellipse's centre, tapering to its edge."""
    s = face.shape[-1]
    (cx, cy), (rx, ry) = cfg.mask_center, cfg.mask_radii
    t = (torch.arange(s, dtype=torch.float32) + 0.5) / s
    taper = (1 - ((t - cx)[None, :] / rx) ** 2 - ((t - cy)[:, None] / ry) ** 2).clamp_min(0)
    g = t * 2 - 1
    grid = torch.stack([g.expand(s, s), g[:, None].expand(s, s)], -1)
    d = torch.from_numpy(shift.astype(np.float32)) * (2.0 / 128)
    return F.grid_sample(face, grid - d[:, None, None, :] * taper[..., None], mode="bilinear",
                         padding_mode="border", align_corners=False)


def install(gain: tuple[float, float], input_landmarks: str) -> None:
    state: dict[str, np.ndarray | None] = {"shift": None}
    render = EigenGenerator.face

    def face(self, x, w_plus, offset=None):
        out = render(self, x, w_plus, offset)
        return out if state["shift"] is None else follow_warp(self.cfg, out, state["shift"])

    def found(detector, crops: np.ndarray) -> np.ndarray:
        out = np.full((len(crops), 5, 2), np.nan)
        for i, crop in enumerate(crops):
            s = 2 * crop.shape[0]
            faces = detector.detect(np.asarray(Image.fromarray(crop).resize((s, s), Image.BICUBIC)))
            if faces:
                out[i] = np.asarray(max(faces, key=lambda f: f.size).landmarks) / 2
        return out

    anonymize_crops = pipeline.Anonymizer.anonymize_crops

    def two_passes(self, crops, key, landmarks=None):
        first = anonymize_crops(self, crops, key, landmarks)
        if landmarks is None or len(crops) == 0:
            return first
        if len(crops) > self.options.batch_size:
            raise SystemExit("the probe renders one batch at a time: raise the batch size")
        source = found(self._detector, crops) if input_landmarks == "crop" else landmarks
        state["shift"] = np.nan_to_num((nose_position(source) - nose_position(found(self._detector, first))) * gain)
        try:
            return anonymize_crops(self, crops, key, landmarks)
        finally:
            state["shift"] = None

    EigenGenerator.face = face
    pipeline.Anonymizer.anonymize_crops = two_passes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gain", type=float, nargs=2, default=(1.0, 1.5), metavar=("X", "Y"),
                    help="fractions of the nose gap moved, horizontally and vertically (default 1 1.5)")
    ap.add_argument("--input-landmarks", choices=["crop", "photo"], default="crop",
                    help="the input's nose from YuNet on its crop (default) or the photo's landmarks")
    ap.add_argument("cli", nargs=argparse.REMAINDER, help="-- then the kfaar command line to run")
    args = ap.parse_args()
    install(tuple(args.gain), args.input_landmarks)
    from kfaar.cli import main as kfaar_main

    sys.argv = ["kfaar", *(a for a in args.cli if a != "--")]
    kfaar_main()


if __name__ == "__main__":
    main()
