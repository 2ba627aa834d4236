import pickle

import cv2
import numpy as np
import pytest

from kfaar.faces import DetectorOptions, Face, FaceDetector, main_face


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as det:
        yield det


def _plausible(face: Face) -> None:
    x, y, w, h = face.bbox
    lm = face.landmarks
    assert lm.shape == (5, 2) and lm.dtype == np.float32
    reye, leye, nose, rmouth, lmouth = lm
    assert reye[0] < nose[0] < leye[0]            # subject's right eye is on the image left
    assert rmouth[0] < lmouth[0]
    assert max(reye[1], leye[1]) < nose[1] < min(rmouth[1], lmouth[1])  # eyes, nose, mouth top to bottom
    assert np.all(lm[:, 0] > x) and np.all(lm[:, 0] < x + w)
    assert np.all(lm[:, 1] > y) and np.all(lm[:, 1] < y + h)


def test_grace_hopper_has_exactly_one_face(detector, grace_hopper):
    faces = detector.detect(grace_hopper)
    assert len(faces) == 1
    f = faces[0]
    assert f.score > 0.9
    _plausible(f)
    x, y, w, h = f.bbox
    assert 120 < w < 260 and 150 < h < 300           # the face is ~ 170x210 px in a 512x600 photo
    assert 150 < f.center[0] < 370 and 150 < f.center[1] < 320


def test_detect_accepts_a_path(detector, grace_hopper_path):
    assert len(detector.detect(grace_hopper_path)) == 1


@pytest.mark.parametrize("kind", ["noise", "gradient", "flat"])
def test_no_face_in_synthetic_images(detector, kind):
    rng = np.random.default_rng(0)
    if kind == "noise":
        img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    elif kind == "gradient":
        ramp = np.linspace(0, 255, 640, dtype=np.float32)
        img = np.dstack([np.tile(ramp, (480, 1)), np.tile(ramp[::-1], (480, 1)), np.full((480, 640), 90.0)])
        img = img.astype(np.uint8)
    else:
        img = np.full((200, 300, 3), 200, np.uint8)
    assert detector.detect(img) == []


@pytest.mark.parametrize("shape", [(1, 5000, 3), (3, 20000, 3), (8, 3000, 3)])
def test_a_photo_a_few_pixels_high_has_no_face(shape):
    """YuNet itself reports a box 0 wide and 1e11 high far outside such a photo, at score 1.0
    (which the Anonymizer, taking faces of any size, then tried to replace)."""
    photo = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    with FaceDetector(DetectorOptions(min_face_size=0, score_threshold=0.5)) as det:
        assert det.detect(photo) == []


@pytest.mark.parametrize("quarter_turns", [1, 2, 3])
def test_rotations_find_a_face_lying_on_its_side_where_it_lies(grace_hopper, quarter_turns):
    """The photo turned by 90/180/270 degrees: with ``rotations`` the face is found, its box and
    five points where the upright face's land (each point still the subject's own)."""
    h, w = grace_hopper.shape[:2]
    with FaceDetector(DetectorOptions(min_face_size=0, score_threshold=0.5)) as det:
        (upright,) = det.detect(grace_hopper)
    turned = np.ascontiguousarray(np.rot90(grace_hopper, quarter_turns))  # counter-clockwise
    lm = upright.landmarks.astype(np.float64)
    expect = {1: np.stack([lm[:, 1], w - 1 - lm[:, 0]], 1), 2: np.stack([w - 1 - lm[:, 0], h - 1 - lm[:, 1]], 1),
              3: np.stack([h - 1 - lm[:, 1], lm[:, 0]], 1)}[quarter_turns]
    with FaceDetector(DetectorOptions(min_face_size=0, score_threshold=0.5, rotations=(0, 90, 180, 270))) as det:
        faces = det.detect(turned)
    assert len(faces) == 1 and faces[0].score == pytest.approx(upright.score, abs=0.02)
    np.testing.assert_allclose(faces[0].landmarks, expect, atol=0.5)
    assert faces[0].size == pytest.approx(upright.size, abs=0.5)
    if quarter_turns != 2:  # YuNet alone misses the face on its side
        with FaceDetector(DetectorOptions(min_face_size=0, score_threshold=0.5)) as det:
            assert det.detect(turned) == []


def test_large_photo_is_downscaled_and_mapped_back(grace_hopper):
    big = cv2.resize(grace_hopper, None, fx=3, fy=3, interpolation=cv2.INTER_LINEAR)  # 1536x1800
    with FaceDetector(DetectorOptions(max_side=600)) as det:
        ref = det.detect(grace_hopper)[0]
        f = det.detect(big)
    assert len(f) == 1
    # same detection, three times larger, in the big photo's pixels
    np.testing.assert_allclose(f[0].landmarks, ref.landmarks * 3, atol=6)
    np.testing.assert_allclose(f[0].bbox, np.array(ref.bbox) * 3, atol=12)


def _crowd(grace_hopper, face_px: int, spots: list[tuple[int, int]],
           size: tuple[int, int] = (4032, 3024)) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A 12-megapixel photo (4032 x 3024, or ``size``) holding the sample photo shrunk so its face
    is about ``face_px`` wide, with its top-left corner at each of ``spots``; the faces' expected
    centres."""
    with FaceDetector() as det:
        ref = det.detect(grace_hopper)[0]
    s = face_px / ref.bbox[2]
    small = cv2.resize(grace_hopper, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    canvas = np.full((size[1], size[0], 3), 90, np.uint8)
    for x, y in spots:
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
    return canvas, [(x + ref.center[0] * s, y + ref.center[1] * s) for x, y in spots]


def test_small_faces_of_a_large_photo_are_found_by_the_fine_pass_each_once(grace_hopper):
    # tiles start every 896 px and overlap by 128: spots across a tile's edge, in an overlap,
    # in the overlap of four tiles, and at the photo's edges
    spots = [(100, 100), (990, 300), (2000, 860), (1770, 1760), (3900, 2900), (0, 2500), (2650, 40)]
    canvas, centres = _crowd(grace_hopper, 28, spots)
    with FaceDetector(DetectorOptions(min_face_size=0, score_threshold=0.5)) as det:
        assert det.detect(canvas) == []  # at 1280 px these faces are ~9 px: below YuNet
    with FaceDetector(DetectorOptions(min_face_size=0, score_threshold=0.5, fine_max_side=4096)) as det:
        faces = det.detect(canvas)
    assert len(faces) == len(spots)
    for cx, cy in centres:
        near = [f for f in faces if abs(f.center[0] - cx) < 8 and abs(f.center[1] - cy) < 8]
        assert len(near) == 1, (cx, cy, [f.center for f in faces])
        _plausible(near[0])


def test_the_anonymizer_searches_a_48_megapixel_photo_at_full_resolution(grace_hopper):
    """At 4,096 px (the search's reach until 2026-11-27) a 48-MP photo's faces under ~26 px
    fell below YuNet's floor; the Anonymizer's search reaches 8,192 px."""
    from kfaar.pipeline import _anonymizer_detector_options

    spots = [(300, 500), (4100, 2900), (7700, 5600)]
    canvas, centres = _crowd(grace_hopper, 22, spots, size=(8064, 6048))
    options = _anonymizer_detector_options()
    assert options.fine_max_side >= 8064
    with FaceDetector(options) as det:
        faces = det.detect(canvas)
    for cx, cy in centres:
        assert len([f for f in faces if abs(f.center[0] - cx) < 8 and abs(f.center[1] - cy) < 8]) == 1
    with FaceDetector(DetectorOptions(min_face_size=0, score_threshold=0.5, fine_max_side=4096)) as det:
        assert len(det.detect(canvas)) < len(spots)


def test_the_fine_pass_runs_only_where_the_first_misses_faces_over_20_px(grace_hopper, monkeypatch):
    calls = []
    real = FaceDetector._pass
    monkeypatch.setattr(FaceDetector, "_pass", lambda self, rgb, side, tiled: calls.append(tiled) or
                        real(self, rgb, side, tiled))
    with FaceDetector(DetectorOptions(fine_max_side=4096)) as det:
        for longer, tiles in ((1280, []), (1900, []), (1940, [True])):  # over 1.5 x 1,280: searched again
            calls.clear()
            det.detect(np.zeros((longer * 3 // 4, longer, 3), np.uint8))
            assert calls == [False] + tiles, longer


def test_a_large_face_is_found_once_with_the_fine_pass(grace_hopper):
    canvas = np.full((3024, 4032, 3), 90, np.uint8)
    big = cv2.resize(grace_hopper, (2560, 3000), interpolation=cv2.INTER_LINEAR)  # the face ~900 px
    canvas[:3000, 700:3260] = big
    with FaceDetector(DetectorOptions(min_face_size=0, score_threshold=0.5)) as one, \
            FaceDetector(DetectorOptions(min_face_size=0, score_threshold=0.5, fine_max_side=4096)) as two:
        a, b = one.detect(canvas), two.detect(canvas)
    assert len(a) == 1 and len(b) == 1  # no part of the big face taken for a small one
    np.testing.assert_array_equal(a[0].landmarks, b[0].landmarks)


def test_min_face_size_filters(grace_hopper):
    with FaceDetector(DetectorOptions(min_face_size=400)) as det:
        assert det.detect(grace_hopper) == []


def test_several_faces_sorted_by_score(detector, grace_hopper):
    canvas = np.full((700, 1400, 3), 30, np.uint8)
    canvas[50:650, 50:562] = grace_hopper
    canvas[150:450, 800:1056] = cv2.resize(grace_hopper, (256, 300))
    faces = detector.detect(canvas)
    assert len(faces) == 2
    assert faces[0].score >= faces[1].score
    for f in faces:
        _plausible(f)
    big = main_face(faces, canvas.shape)
    assert big.center[0] < 700  # the larger one wins


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"score_threshold": 1.5}, "score_threshold: got 1.5"),
        ({"nms_threshold": -0.1}, "nms_threshold"),
        ({"min_face_size": -1}, "min_face_size"),
        ({"max_side": 8}, "max_side: got 8"),
        ({"fine_max_side": 1280}, r"fine_max_side: got 1280, expected None or an int above max_side \(1280\)"),
        ({"fine_max_side": True}, "fine_max_side: got True"),
        ({"rotations": (0, 45)}, "rotations: got"),
        ({"rotations": ()}, "rotations: got"),
        ({"rotations": (90, 90)}, "rotations: got"),
        ({"rotations": [0, 90]}, "rotations: got"),
    ],
)
def test_options_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DetectorOptions(**kwargs)


def test_create_from_options_fails_with_invalid_model_path(tmp_path):
    from kfaar.errors import ModelIntegrityError

    with pytest.raises(ModelIntegrityError, match="does not exist"):
        FaceDetector.create_from_options(DetectorOptions(model_path=str(tmp_path / "none.onnx")))


def test_closed_detector_refuses(grace_hopper):
    det = FaceDetector()
    det.close()
    with pytest.raises(RuntimeError, match="closed"):
        det.detect(grace_hopper)


def test_detector_pickles(detector, grace_hopper):
    clone = pickle.loads(pickle.dumps(detector))
    a, b = detector.detect(grace_hopper), clone.detect(grace_hopper)
    np.testing.assert_allclose(a[0].landmarks, b[0].landmarks)
    with pytest.raises(Exception):
        a[0].landmarks[0, 0] = 1  # results are read-only like the frozen Face holding them


def test_threads_choose_the_sessions_threads_not_the_faces(detector, grace_hopper):
    one = FaceDetector(threads=1)
    assert one.detect(grace_hopper)[0].bbox == pytest.approx(detector.detect(grace_hopper)[0].bbox, abs=1e-3)
    assert one._network()._session.get_session_options().intra_op_num_threads == 1
    clone = pickle.loads(pickle.dumps(one))  # a pool's worker keeps its one thread
    assert clone._network()._session.get_session_options().intra_op_num_threads == 1
    for bad in (0, -1, True, 1.5, "2"):
        with pytest.raises(ValueError, match="threads"):
            FaceDetector(threads=bad)
