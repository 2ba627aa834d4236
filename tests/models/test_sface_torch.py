"""The torch SFace used by the identity losses equals the ONNX network kfaar runs at inference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def sface():
    from kfaar.models.sface_torch import SFaceTorch

    return SFaceTorch().eval()


def test_matches_opencv_dnn_on_the_same_onnx(sface):
    import cv2
    import onnx

    from kfaar.models.sface_torch import default_sface_onnx_path

    x = np.random.default_rng(0).integers(0, 256, (3, 112, 112, 3), dtype=np.uint8)
    net = cv2.dnn.readNet(str(default_sface_onnx_path()))
    # the file lists its weights as graph inputs too (older ONNX): OpenCV 5 needs the image's named
    name = onnx.load(str(default_sface_onnx_path()), load_external_data=False).graph.input[0].name
    ref = []
    for img in x:  # the graph's batch is fixed at 1: one image per call
        net.setInput(cv2.dnn.blobFromImage(img, 1.0, (112, 112), (0, 0, 0), swapRB=False, crop=False), name)
        ref.append(net.forward().copy())
    ref = np.concatenate(ref)
    with torch.no_grad():
        out = sface.forward_raw(torch.from_numpy(x).permute(0, 3, 1, 2).float()).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-3, rtol=1e-3)


def test_matches_the_pipeline_encoder_on_a_real_face(sface, grace_hopper):
    from kfaar.faces import FaceDetector, SFaceEncoder, align_face, main_face

    with FaceDetector() as det, SFaceEncoder() as enc:
        crop = align_face(grace_hopper, main_face(det.detect(grace_hopper), grace_hopper.shape).landmarks).crop
        ref = enc.encode(crop[None])[0]
    with torch.no_grad():
        out = sface(torch.from_numpy(crop[None]).permute(0, 3, 1, 2).float() / 127.5 - 1)[0].numpy()
    assert float(out @ ref) > 0.97  # resize differs (antialiased bilinear vs INTER_AREA), identity does not


def test_gradients_reach_the_input_and_weights_stay_frozen(sface):
    x = torch.zeros(1, 3, 128, 128, requires_grad=True)
    sface(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in sface.parameters())


def test_unknown_ops_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from kfaar.models.sface_torch import SFaceTorch

    g = helper.make_graph([helper.make_node("Softmax", ["data"], ["y"])], "g",
                          [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(g), path)
    with pytest.raises(ValueError, match="unsupported op 'Softmax'"):
        SFaceTorch(path)
