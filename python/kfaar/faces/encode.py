"""SFace identity encoder (the frozen encoder E of DESIGN.md) through onnxruntime."""

from __future__ import annotations

import os

import cv2
import numpy as np

from kfaar._threads import check_threads
from kfaar.faces.align import TEMPLATE_SIZE
from kfaar.faces.models import SFACE, cpu_session, ort_model_path

EMBEDDING_DIM = 128


class SFaceEncoder:
    """Batched SFace embeddings, L2-normalised, equal to OpenCV's ``FaceRecognizerSF.feature``.

    The network takes RGB float 0..255 NCHW at 112 px (it normalises inside the graph), so
    crops are only resized and transposed here. One ORT session per object, built at
    construction; ``threads`` sets ORT's intra-op threads (None = ORT's default, all cores).
    ``batch_size`` bounds one ORT run: on one core 1-16 cost the same per face, 64 ~20% more.

    >>> with SFaceEncoder(threads=1) as enc:
    ...     z = enc.encode(crops)           # (N, 128) float32, unit rows
    """

    def __init__(self, model_path: str | os.PathLike | None = None, *, threads: int | None = None,
                 batch_size: int = 16, cache_dir: str | os.PathLike | None = None) -> None:
        threads = check_threads(threads)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: got {batch_size!r}, expected an int >= 1")
        self.threads = threads
        self.batch_size = batch_size
        self._onnx = str(ort_model_path(SFACE, model_path, cache_dir))
        self._session = None
        self._closed = False
        self._session_or_open()  # created once, here, so a broken install fails early

    def _session_or_open(self):
        if self._closed:
            raise RuntimeError("SFaceEncoder is closed; create a new one")
        if self._session is None:
            self._session = cpu_session(self._onnx, self.threads)
            self._input = self._session.get_inputs()[0].name
        return self._session

    def close(self) -> None:
        self._session = None
        self._closed = True

    def __enter__(self) -> SFaceEncoder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict:  # pickles for process pools: the session is rebuilt
        return {k: v for k, v in self.__dict__.items() if k != "_session"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._session = None

    def encode(self, crops: np.ndarray) -> np.ndarray:
        """Embed aligned crops: ``(N, S, S, 3)`` (or one ``(S, S, 3)``) uint8 RGB -> ``(N, 128)`` float32.

        Crops must be aligned to ``CANONICAL_TEMPLATE`` scaled to S (what :func:`align_face`
        returns); any S works, they are resized to 112.
        """
        if not isinstance(crops, np.ndarray):
            raise TypeError(f"crops: got {type(crops).__name__}, expected a uint8 ndarray (N, S, S, 3)")
        if crops.ndim == 3:
            crops = crops[None]
        if crops.ndim != 4 or crops.shape[3] != 3 or crops.shape[1] != crops.shape[2] or crops.shape[1] < 16:
            raise ValueError(f"crops: got shape {crops.shape}, expected (N, S, S, 3) square RGB crops")
        if crops.dtype != np.uint8:
            raise ValueError(f"crops: got dtype {crops.dtype}, expected uint8 RGB")
        n = crops.shape[0]
        out = np.empty((n, EMBEDDING_DIM), np.float32)
        if n == 0:
            return out
        sess = self._session_or_open()
        for i in range(0, n, self.batch_size):
            blob = _to_blob(crops[i : i + self.batch_size])
            out[i : i + len(blob)] = sess.run(None, {self._input: blob})[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


def _to_blob(crops: np.ndarray) -> np.ndarray:
    """(B, S, S, 3) uint8 -> (B, 3, 112, 112) float32, as cv2.dnn.blobFromImage(swapRB) gives."""
    s = crops.shape[1]
    if s != TEMPLATE_SIZE:
        interp = cv2.INTER_AREA if s > TEMPLATE_SIZE else cv2.INTER_LINEAR
        crops = np.stack([cv2.resize(c, (TEMPLATE_SIZE, TEMPLATE_SIZE), interpolation=interp) for c in crops])
    return np.ascontiguousarray(crops.transpose(0, 3, 1, 2), dtype=np.float32)
