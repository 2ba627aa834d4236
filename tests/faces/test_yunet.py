"""kfaar.faces.yunet.YuNet against its reference, OpenCV's cv2.FaceDetectorYN on the same file:
the same rows, in the same order, to a few 1e-4 px (onnxruntime and OpenCV sum the
convolutions in different orders)."""

import cv2
import numpy as np
import pytest

from kfaar.faces.models import YUNET, verified_model_path
from kfaar.faces.yunet import OpenCvYuNet, YuNet

TOL = 0.01  # px (and score units); measured: 1.8e-4 px over 53 photos


def _opencv(bgr, thr=0.7, nms=0.3, top_k=5000):
    return OpenCvYuNet(str(verified_model_path(YUNET)), thr, nms, top_k).detect(bgr)


def _same(bgr, thr=0.7, nms=0.3, top_k=5000) -> int:
    ref = _opencv(bgr, thr, nms, top_k)
    got = YuNet(str(verified_model_path(YUNET)), thr, nms, top_k).detect(bgr)
    if ref is None:
        assert got is None
        return 0
    assert got is not None and got.shape == ref.shape and got.dtype == np.float32, (ref, got)
    np.testing.assert_allclose(got, ref, atol=TOL, rtol=0)
    return len(ref)


def _crowd(photo_bgr, seed: int, size=(1280, 960), n=14) -> np.ndarray:
    """Faces of 24-220 px pasted at random, some overlapping, on a mid-grey canvas."""
    rng = np.random.default_rng(seed)
    canvas = np.full((size[1], size[0], 3), 110, np.uint8)
    for _ in range(n):
        s = int(rng.integers(24, 220))
        y, x = int(rng.integers(0, size[1] - s)), int(rng.integers(0, size[0] - s))
        canvas[y:y + s, x:x + s] = cv2.resize(photo_bgr, (s, s), interpolation=cv2.INTER_AREA)
    return canvas


def test_the_same_faces_as_opencv_on_a_photo_and_crowds(grace_hopper):
    bgr = cv2.cvtColor(grace_hopper, cv2.COLOR_RGB2BGR)
    assert _same(bgr) == 1  # one row: OpenCV runs no NMS there
    found = [_same(_crowd(bgr, seed)) for seed in range(3)]
    assert min(found) >= 5  # several faces, and the NMS among overlapping boxes, compared
    assert _same(_crowd(bgr, 0), thr=0.3, nms=0.5) > found[0]  # other thresholds, more rows
    assert _same(_crowd(bgr, 0), thr=0.3, top_k=3) <= 3


# Not at a padded side of 32 px (a photo at most 32 px high or wide): there OpenCV's DNN
# mis-reads the one-cell stride-32 map (boxes of width 0 or height inf at score 1.0, the faces
# missed), which onnxruntime does not: test_a_face_filling_a_photo_32_px_high_is_found.
@pytest.mark.parametrize("shape", [(333, 517), (33, 700), (40, 700), (65, 97), (1000, 64)])
def test_sizes_that_are_not_multiples_of_32(grace_hopper, shape):
    bgr = cv2.cvtColor(grace_hopper, cv2.COLOR_RGB2BGR)
    _same(cv2.resize(bgr, (shape[1], shape[0]), interpolation=cv2.INTER_AREA))


@pytest.mark.parametrize("fill", [0, 128, 255])
def test_nothing_in_a_flat_image(fill):
    assert _same(np.full((240, 320, 3), fill, np.uint8)) == 0


@pytest.mark.data
def test_the_same_faces_as_opencv_on_lfw_photos(data_dir):
    photos = sorted((data_dir / "lfw").rglob("*.jpg"))[:400:8]
    assert len(photos) == 50
    assert sum(_same(cv2.imread(str(p))) for p in photos) >= 50


@pytest.mark.parametrize("size", [(28, 28), (32, 32), (28, 300), (32, 300)])
def test_a_face_filling_a_photo_32_px_high_is_found(grace_hopper, size):
    """Where OpenCV's FaceDetectorYN found nothing, or a box of width 0 and height inf (kfaar
    dropped those as implausible, so such a thumbnail's face was left in place)."""
    bgr = cv2.cvtColor(grace_hopper, cv2.COLOR_RGB2BGR)
    x, y, w, h = YuNet(str(verified_model_path(YUNET)), 0.7, 0.3, 5000).detect(bgr)[0, :4].astype(int)
    face = bgr[y - h // 4:y + h + h // 4, x - w // 4:x + w + w // 4]
    side, width = size
    photo = np.full((side, width, 3), 110, np.uint8)
    photo[:, :side] = cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA)
    (row,) = YuNet(str(verified_model_path(YUNET)), 0.7, 0.3, 5000).detect(photo)
    assert 0.6 * side < row[2] < side and 0.6 * side < row[3] < side and row[14] > 0.75
    assert 0 <= row[4] < row[6] < side  # the eyes inside the face, right eye (image left) first
