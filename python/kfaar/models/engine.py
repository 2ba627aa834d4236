"""Inference on aligned crops: the keyed projection and mapping kernels around the torch networks.

    anonymize:  z ─► projection kernel (key, Whitening) ─► z'_K ─► u' = whiten (z'_K - mean)
                u' ─► mapping kernel ─► W+ ─► G(crop, W+) ─► virtual crop
    recover:    virtual crop ─► reader (code carrier) ─► radius · û' ─► inverse projection kernel ─► ẑ
    score:      cosine of the whitened, centred embeddings (wrong keys centre on 0)
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import torch

from kfaar.keys import Key
from kfaar.models.bundle import ModelBundle
from kfaar.models.generator import face_mask
from kfaar.runtime.codes import CodesMixin, IdentityCodes, check_offsets


def _u8_to_tensor(crops: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 127.5 - 1


def _tensor_to_u8(x: torch.Tensor) -> np.ndarray:
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


class KfaarEngine(CodesMixin):
    """The shipped networks plus the kernels' parameter objects; stateless per call, deterministic."""

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        sp = bundle.space
        kw = bundle.mapping.kernel_weights()
        n = len(bundle.mapping.layers)
        arrays = {"space.mean": sp.mean, "space.whiten": sp.whiten, "space.color": sp.color,
                  "space.radius": torch.as_tensor(float(sp.radius)),
                  **{f"mapping.{name}": w for name, w in kw.items()}}
        # The numpy side (projection and mapping kernels) is the runtime's, so both engines share it.
        self.codes = IdentityCodes({k: v.numpy() for k, v in arrays.items()}, n)
        self.crop_size = 128
        self.threshold = float(bundle.threshold)  # the operating point, as OrtEngine has it
        self.paste_mask = face_mask(bundle.generator.cfg, self.crop_size)[0, 0].numpy()  # (S, S) paste-back mask

    # -------------------------------------------------------------- networks
    @torch.inference_mode()
    def generate(self, crops: np.ndarray, z: np.ndarray, key: Key, offsets: np.ndarray | None = None) -> np.ndarray:
        """crops (N, S, S, 3) uint8 aligned, z (N, 128) their SFace embeddings -> virtual crops, same shape.
        ``offsets``: as ``OrtEngine.generate`` (the faces' nose offsets for the pose warp, NaN: read)."""
        offsets = check_offsets(offsets, len(crops))
        if len(crops) == 0:
            return np.asarray(crops).copy()
        u = self.keyed_code(z, key)
        gen = self.bundle.generator
        inputs = {"crop": _u8_to_tensor(crops), "w_plus": torch.from_numpy(self.w_plus(u)), "code": torch.from_numpy(u),
                  "offset": torch.from_numpy(offsets)}
        return _tensor_to_u8(gen(*(inputs[n] for n in gen.input_names)))

    @torch.inference_mode()
    def read(self, crops: np.ndarray) -> np.ndarray:
        """Virtual crops (N, S, S, 3) uint8 -> (N, 128) unit estimates of the keyed code direction."""
        return self.bundle.generator.read_code(_u8_to_tensor(crops)).numpy().astype(np.float32)

    def recover(self, crops: np.ndarray, key: Key) -> np.ndarray:
        """Virtual crops -> (N, 128) recovered identity embeddings in SFace space (not normalised)."""
        return self.codes.from_read(self.read(crops), key)

    # Alignment search for recovery: (shifts px, scales, rotations deg) grids, coarse to fine.
    # Landmarks re-detected on a virtual face can be tens of pixels off (YuNet reads the new
    # interior), so the first stage is wide (kfaar.runtime.realign.search keeps a beam of the
    # best candidates from stage to stage). The export writes it into the ONNX set's manifest.
    _SEARCH = (
        (list(range(-24, 25, 4)), [0.84, 0.92, 1.0, 1.08, 1.16], [-12.0, -6.0, 0.0, 6.0, 12.0]),
        ([-2, 0, 2], [0.96, 1.0, 1.04], [-3.0, 0.0, 3.0]),
        ([-1, 0, 1], [0.98, 1.0, 1.02], [-1.5, 0.0, 1.5]),
        ([-0.5, 0, 0.5], [1.0], [0.0]),
    )

    @torch.inference_mode()
    def realign(self, rgb: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, float]:
        """Refine a photo->crop alignment of a *virtual* face so the carrier's pilots line up.

        The pilot rows of the code carrier are a known signal, so the alignment that reads
        them best is the one the code was written in (``kfaar.runtime.realign.search``).
        Returns the refined (2, 3) matrix and its pilot match (cosine; ~1 when found, well
        below for a face carrying no code)."""
        from kfaar.runtime.realign import search

        carrier = self.bundle.generator.code_carrier
        # search at 2 px per carrier cell: the read only averages cells
        size = 2 * carrier.res
        mask = self.bundle.generator.mask(size, "cpu")
        score = self._pilot or (lambda c: carrier.pilot_match(_u8_to_tensor(c), mask).numpy())
        return search(rgb, matrix, self.crop_size, size, self._SEARCH, score)

    @cached_property
    def _pilot(self):
        """The carrier's pilot rows as the ONNX set's params carry them (``realign.PilotRows``;
        None where the mask does not allow them): both engines score candidates alike."""
        from kfaar.runtime.realign import PilotRows

        carrier = self.bundle.generator.code_carrier
        rows = carrier.pilot_rows(self.bundle.generator.mask(2 * carrier.res, "cpu"))
        return None if rows is None else PilotRows.from_arrays({k: v.numpy() for k, v in rows.items()}, carrier.res)

