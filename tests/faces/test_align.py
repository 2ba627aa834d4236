import cv2
import numpy as np
import pytest

from kfaar.faces import (
    CANONICAL_TEMPLATE,
    FaceDetector,
    align_face,
    canonical_template,
    face_mask,
    paste_back,
    transform_points,
)
from kfaar.faces.align import similarity_transform
from kfaar.faces.models import source_model_path


@pytest.fixture(scope="module")
def face(grace_hopper):
    with FaceDetector() as det:
        return det.detect(grace_hopper)[0]


def test_template():
    assert CANONICAL_TEMPLATE.shape == (5, 2)
    np.testing.assert_allclose(canonical_template(224), CANONICAL_TEMPLATE * 2, rtol=1e-6)
    with pytest.raises(ValueError):
        CANONICAL_TEMPLATE[0, 0] = 0


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(1)
    src = rng.uniform(0, 300, (5, 2))
    a, s, t = 0.3, 1.7, np.array([12.0, -40.0])
    m = np.array([[s * np.cos(a), -s * np.sin(a), t[0]], [s * np.sin(a), s * np.cos(a), t[1]]])
    dst = transform_points(m, src)
    np.testing.assert_allclose(similarity_transform(src, dst), m, atol=1e-4)


def test_landmarks_land_on_template(grace_hopper, face):
    al = align_face(grace_hopper, face.landmarks, 128)
    assert al.crop.shape == (128, 128, 3) and al.crop.dtype == np.uint8 and al.size == 128
    assert al.matrix.shape == (2, 3) and al.matrix.dtype == np.float64
    # 5 points, 4 dof: a least-squares fit, close but not exact
    err = np.linalg.norm(transform_points(al.matrix, face.landmarks) - canonical_template(128), axis=1)
    assert err.max() < 6.0
    np.testing.assert_allclose(transform_points(al.inverse_matrix, transform_points(al.matrix, face.landmarks)),
                               face.landmarks, atol=1e-3)


def test_matches_opencv_align_crop(grace_hopper, face):
    bgr = cv2.cvtColor(grace_hopper, cv2.COLOR_RGB2BGR)
    rec = cv2.FaceRecognizerSF.create(str(source_model_path("sface")), "")
    row = np.concatenate([face.bbox, face.landmarks.ravel(), [face.score]]).astype(np.float32)[None]
    theirs = rec.alignCrop(bgr, row)[:, :, ::-1]
    ours = align_face(grace_hopper, face.landmarks, 112).crop
    diff = np.abs(theirs.astype(int) - ours.astype(int))
    assert diff.mean() < 0.5 and np.percentile(diff, 99.9) <= 3


@pytest.mark.parametrize("scale", [1.0, 0.6])
def test_round_trip_reproduces_the_face_region(grace_hopper, scale):
    photo = cv2.resize(grace_hopper, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    with FaceDetector() as det:
        f = det.detect(photo)[0]
    # crop at about the face's own resolution (eye distance ~ the template's), as the pipeline does
    eye = float(np.linalg.norm(f.landmarks[0] - f.landmarks[1]))
    size = int(round(112 * eye / (73.5318 - 38.2946) / 8)) * 8
    al = align_face(photo, f.landmarks, size)
    out = paste_back(photo, al.crop, al.matrix)
    assert out.shape == photo.shape and out is not photo
    x, y, w, h = (int(v) for v in f.bbox)
    region = (slice(y, y + h), slice(x, x + w))
    diff = np.abs(out[region].astype(float) - photo[region].astype(float))
    psnr = 10 * np.log10(255.0**2 / np.mean(diff**2))
    assert diff.mean() < 3.0 and psnr > 32, (diff.mean(), psnr)  # JPEG q~90 territory
    # far from the face nothing changes at all
    np.testing.assert_array_equal(out[:20], photo[:20])


def test_paste_back_replaces_the_face_softly(grace_hopper, face):
    al = align_face(grace_hopper, face.landmarks, 128)
    white = np.full_like(al.crop, 255)
    out = paste_back(grace_hopper, white, al.matrix)
    nose = face.landmarks[2].astype(int)
    assert np.all(out[nose[1], nose[0]] == 255)
    changed = np.any(out != grace_hopper, axis=2)
    ys, xs = np.nonzero(changed)
    # changes stay inside the crop's footprint
    corners = transform_points(al.inverse_matrix, np.array([[0, 0], [128, 0], [0, 128], [128, 128]]))
    assert xs.min() >= corners[:, 0].min() - 1 and xs.max() <= corners[:, 0].max() + 1
    # and the edge is feathered: intermediate values between photo and white exist
    row = out[nose[1], :, 0].astype(int)
    assert len(np.unique(row[(row > grace_hopper[nose[1], :, 0]) & (row < 255)])) > 3


@pytest.mark.parametrize("scale", [1, 4])
def test_paste_back_is_the_blend_written_out(grace_hopper, face, scale):
    """paste_back blends a strip of rows at a time to save memory; the bytes are those of the
    formula over the whole box (at scale 4 the box spans several strips)."""
    from kfaar.faces.align import _BLEND_ROWS
    from kfaar.ops import warp_affine

    rng = np.random.default_rng(3)
    photo = cv2.resize(grace_hopper, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    al = align_face(photo, face.landmarks * scale, 128)
    crop = rng.integers(0, 256, al.crop.shape, dtype=np.uint8)
    mask = rng.uniform(-0.2, 1.2, (128, 128)).astype(np.float32)  # clipped to [0, 1] on the way
    out = paste_back(photo, crop, al.matrix, mask=mask)
    m = al.matrix
    inv = cv2.invertAffineTransform(m)
    corners = transform_points(inv, np.array([[0, 0], [128, 0], [0, 128], [128, 128]]))
    x0, y0 = (max(0, int(np.floor(corners[:, i].min())) - 1) for i in (0, 1))
    x1 = min(photo.shape[1], int(np.ceil(corners[:, 0].max())) + 2)
    y1 = min(photo.shape[0], int(np.ceil(corners[:, 1].max())) + 2)
    assert (y1 - y0 > 3 * _BLEND_ROWS) == (scale == 4)
    shifted = m.copy()
    shifted[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)
    size = (x1 - x0, y1 - y0)
    # kfaar's warps (OpenCV 4's arithmetic, tests/ops/test_warp_affine.py), whatever OpenCV is installed
    f = warp_affine(crop, shifted, size, interpolation="cubic", inverse=True)
    a = np.clip(warp_affine(mask, shifted, size, border="constant", inverse=True), 0.0, 1.0)[:, :, None]
    expect = photo.copy()
    region = photo[y0:y1, x0:x1].astype(np.float32)
    expect[y0:y1, x0:x1] = np.clip(np.rint(a * f + (1.0 - a) * region), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(out, expect)


def test_paste_into_is_paste_back_in_place(grace_hopper, face):
    from kfaar.faces.align import paste_into

    rng = np.random.default_rng(4)
    al = align_face(grace_hopper, face.landmarks, 128)
    crops = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    moved = al.matrix.copy()
    moved[:, 2] += (20.0, -10.0)  # a second face overlapping the first: pasted over it
    expect = paste_back(paste_back(grace_hopper, crops[0], al.matrix), crops[1], moved)
    out = grace_hopper.copy()
    assert paste_into(out, crops[0], al.matrix) is None
    paste_into(out, crops[1], moved)
    np.testing.assert_array_equal(out, expect)
    frozen = grace_hopper.copy()
    frozen.setflags(write=False)
    with pytest.raises(ValueError, match="read-only"):
        paste_into(frozen, crops[0], al.matrix)


def test_face_mask_shape():
    m = face_mask(128)
    assert m.shape == (128, 128) and m.dtype == np.float32
    assert m[72, 64] == pytest.approx(1.0) and m[0].max() == 0.0 and m[:, -1].max() == 0.0


def test_bad_inputs(grace_hopper, face):
    with pytest.raises(ValueError, match="landmarks: got shape"):
        align_face(grace_hopper, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"rgb: got float32"):
        align_face(grace_hopper.astype(np.float32), face.landmarks)
    with pytest.raises(ValueError, match="size: got 4"):
        align_face(grace_hopper, face.landmarks, 4)
    al = align_face(grace_hopper, face.landmarks)
    with pytest.raises(ValueError, match="matrix"):
        paste_back(grace_hopper, al.crop, np.eye(3))
    with pytest.raises(ValueError, match="crop: got"):
        paste_back(grace_hopper, al.crop[:, :100], al.matrix)
    with pytest.raises(ValueError, match="mask: got shape"):
        paste_back(grace_hopper, al.crop, al.matrix, mask=np.ones((5, 5)))
