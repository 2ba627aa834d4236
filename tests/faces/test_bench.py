import numpy as np

from kfaar.faces import FaceDetector
from kfaar.faces.bench import _Pipeline, _scenes


def test_bench_scenes_without_lfw(tmp_path):
    scenes = _scenes(tmp_path, n250=2)  # no lfw/ there: falls back to the sample photo
    (small_name, small), (big_name, big) = scenes.items()
    assert "grace_hopper" in small_name and small[0].shape == (250, 250, 3)
    assert big[0].shape == (1080, 1920, 3) and big[0].dtype == np.uint8
    with FaceDetector() as det:
        assert len(det.detect(big[0])) == 6  # every placed face is found after the downscale
    assert _Pipeline()(small[0]) == 1
