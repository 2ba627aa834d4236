import pickle

import cv2
import numpy as np
import pytest

from kfaar.faces import EMBEDDING_DIM, FaceDetector, SFaceEncoder, align_face, load_image
from kfaar.faces.models import source_model_path


@pytest.fixture(scope="module")
def encoder():
    with SFaceEncoder(threads=1) as enc:
        yield enc


@pytest.fixture(scope="module")
def opencv_sface():
    rec = cv2.FaceRecognizerSF.create(str(source_model_path("sface")), "")
    try:  # OpenCV 5.0's DNN refuses this file unnamed (its weights are listed as graph inputs too)
        rec.feature(np.zeros((112, 112, 3), np.uint8))
    except cv2.error as e:
        pytest.skip(f"OpenCV {cv2.__version__}'s FaceRecognizerSF cannot run the SFace file: "
                    f"{str(e).strip().splitlines()[-1][:160]}")
    return rec


def _variants(rgb):
    """A few different photos of the face: the original, mirrored, darker, rotated, smaller."""
    h, w = rgb.shape[:2]
    rot = cv2.warpAffine(rgb, cv2.getRotationMatrix2D((w / 2, h / 2), 12, 1.0), (w, h))
    return [rgb, rgb[:, ::-1].copy(), (rgb * 0.6).astype(np.uint8), rot, cv2.resize(rgb, (256, 300))]


def _crops_both_ways(rgb_list, rec):
    """Our 112 crops and OpenCV's alignCrop ones (BGR), from the same detections."""
    ours, theirs = [], []
    with FaceDetector() as det:
        for rgb in rgb_list:
            f = det.detect(rgb)[0]
            row = np.concatenate([f.bbox, f.landmarks.ravel(), [f.score]]).astype(np.float32)[None]
            theirs.append(rec.alignCrop(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), row))
            ours.append(align_face(rgb, f.landmarks, 112).crop)
    return np.stack(ours), theirs


def _opencv_embeddings(rec, bgr_crops):
    z = np.stack([rec.feature(c).ravel() for c in bgr_crops])
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_matches_opencv_face_recognizer(encoder, opencv_sface, grace_hopper):
    ours, theirs = _crops_both_ways(_variants(np.array(grace_hopper)), opencv_sface)
    ref = _opencv_embeddings(opencv_sface, theirs)
    # same crops: the ORT conversion must reproduce OpenCV's network
    same = encoder.encode(np.stack([c[:, :, ::-1] for c in theirs]))
    assert np.all(np.sum(same * ref, axis=1) > 0.9999)
    # our own alignment too
    z = encoder.encode(ours)
    assert np.all(np.sum(z * ref, axis=1) > 0.9999)


@pytest.mark.data
def test_matches_opencv_on_lfw(encoder, opencv_sface, data_dir):
    files = sorted((data_dir / "lfw").glob("A*/*_0001.jpg"))[:12]
    ours, theirs = _crops_both_ways([load_image(f) for f in files], opencv_sface)
    ref = _opencv_embeddings(opencv_sface, theirs)
    assert np.all(np.sum(encoder.encode(ours) * ref, axis=1) > 0.9999)


def test_output_contract_and_batching(encoder, grace_hopper):
    with FaceDetector() as det:
        f = det.detect(grace_hopper)[0]
    crops = np.stack([align_face(v, f.landmarks, 128).crop for v in (np.array(grace_hopper), grace_hopper // 2)] * 5)
    z = encoder.encode(crops)
    assert z.shape == (10, EMBEDDING_DIM) and z.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    with SFaceEncoder(threads=1, batch_size=3) as small_batches:
        np.testing.assert_allclose(small_batches.encode(crops), z, atol=1e-5)
    np.testing.assert_allclose(encoder.encode(crops[0]), z[:1], atol=1e-5)  # one (S, S, 3) crop
    assert encoder.encode(np.zeros((0, 128, 128, 3), np.uint8)).shape == (0, EMBEDDING_DIM)
    # any crop size: 128 and 160 crops embed the same face as the 112 one
    z112 = encoder.encode(align_face(grace_hopper, f.landmarks, 112).crop)
    z160 = encoder.encode(align_face(grace_hopper, f.landmarks, 160).crop)
    assert float(z112[0] @ z[0]) > 0.98 and float(z112[0] @ z160[0]) > 0.98


def test_bad_crops(encoder):
    with pytest.raises(ValueError, match=r"crops: got shape \(2, 128, 100, 3\)"):
        encoder.encode(np.zeros((2, 128, 100, 3), np.uint8))
    with pytest.raises(ValueError, match="crops: got dtype float32"):
        encoder.encode(np.zeros((2, 112, 112, 3), np.float32))
    with pytest.raises(TypeError, match="crops: got list"):
        encoder.encode([np.zeros((112, 112, 3), np.uint8)])
    with pytest.raises(ValueError, match="threads"):
        SFaceEncoder(threads=0)


def test_close_and_pickle(grace_hopper):
    crop = cv2.resize(np.array(grace_hopper), (112, 112))
    enc = SFaceEncoder(threads=1)
    clone = pickle.loads(pickle.dumps(enc))
    np.testing.assert_allclose(clone.encode(crop), enc.encode(crop), atol=1e-6)
    enc.close()
    with pytest.raises(RuntimeError, match="closed"):
        enc.encode(crop)
