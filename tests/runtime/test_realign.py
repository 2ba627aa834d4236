"""Re-alignment candidates warped a canvas at a time equal warping each one alone."""

from __future__ import annotations

import numpy as np
import pytest

from kfaar.ops import warp_affine
from kfaar.runtime.realign import candidate_matrix, search, warp_candidates

SEARCH = (  # the shipped manifest's grid: shift steps of 4 / 2 / 1 / 0.5 crop pixels
    (list(range(-24, 25, 4)), [0.84, 1.0, 1.16], [-12.0, 0.0, 12.0]),
    ([-2, 0, 2], [0.96, 1.0, 1.04], [-3.0, 0.0, 3.0]),
    ([-1, 0, 1], [1.0], [0.0]),
    ([-0.5, 0, 0.5], [1.0], [0.0]),
)


def _one_by_one(rgb, base, params, size):
    down = np.diag([size / 128, size / 128, 1.0])
    return np.stack([warp_affine(rgb, (down @ candidate_matrix(base, p, 128))[:2], (size, size)) for p in params])


@pytest.fixture(scope="module")
def photo_and_alignment(grace_hopper):
    from kfaar.faces import FaceDetector, align_face, main_face

    with FaceDetector() as det:
        face = main_face(det.detect(grace_hopper), grace_hopper.shape)
    return grace_hopper, align_face(grace_hopper, face.landmarks, size=128).matrix


@pytest.mark.parametrize("stage", range(len(SEARCH)))
def test_canvas_windows_are_the_candidates_own_warps(photo_and_alignment, stage):
    rgb, base = photo_and_alignment
    shifts, scales, angles = SEARCH[stage]
    best = (0.0, 0.0, 1.0, 0.0) if stage == 0 else (1.5, -0.5, 1.02, 0.7)
    params = [(best[0] + dx, best[1] + dy, best[2] * sc, best[3] + ang)
              for dy in shifts for dx in shifts for sc in scales for ang in angles]
    ref = _one_by_one(rgb, base, params, 48)
    got = warp_candidates(rgb, base, params, 128, 48)
    assert got.shape == ref.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - ref)
    # the same bilinear samples: only the warp's fixed-point coordinate rounding (1/32 px) may differ
    assert (diff > 0).mean() < 0.01 and diff.max() <= 16


def test_channels_first_is_the_same_crops_transposed(photo_and_alignment):
    rgb, base = photo_and_alignment
    params = [(dx, dy, 1.0, 0.0) for dy in (-4.0, 0.0, 4.0) for dx in (-4.0, 0.0, 4.0)] + [(0.25, 0.0, 0.9, 3.0)]
    nhwc = warp_candidates(rgb, base, params, 128, 48)
    nchw = warp_candidates(rgb, base, params, 128, 48, channels_first=True)
    np.testing.assert_array_equal(nchw, nhwc.transpose(0, 3, 1, 2))


def test_no_candidates_no_crops(photo_and_alignment):
    rgb, base = photo_and_alignment
    assert warp_candidates(rgb, base, [], 128, 48).shape == (0, 48, 48, 3)


def test_shifted_candidates_are_shifted_windows(photo_and_alignment):
    """At 48 px a 4-px crop shift is 1.5 px: every second candidate is a whole-pixel move of the first."""
    rgb, base = photo_and_alignment
    got = warp_candidates(rgb, base, [(0.0, 0.0, 1.0, 0.0), (8.0, 0.0, 1.0, 0.0)], 128, 48)
    np.testing.assert_array_equal(got[1][:, 3:], got[0][:, :-3])


def test_search_finds_the_alignment_a_crop_was_taken_at(photo_and_alignment):
    """Scored by closeness to a crop taken 8 px right, 4 px up, 6 degrees turned, the search
    (from the detector's alignment) returns exactly that alignment."""
    rgb, base = photo_and_alignment
    target = (8.0, -4.0, 1.0, 6.0)
    ref = warp_candidates(rgb, base, [target], 128, 48)[0].astype(np.float32)

    def score(crops):
        return -np.abs(crops.astype(np.float32) - ref).mean((1, 2, 3))

    grid = ((list(range(-24, 25, 4)), [0.92, 1.0, 1.08], [-6.0, 0.0, 6.0]), ([-1, 0, 1], [1.0], [0.0]))
    matrix, best = search(rgb, base, 128, 48, grid, score)
    np.testing.assert_allclose(matrix, candidate_matrix(base, target, 128)[:2], atol=1e-9)
    assert best == 0.0


def test_pilot_rows_score_as_the_pilot_match_graph(exported, photo_and_alignment):
    """The ONNX set's pilot rows give the pilot-match graph's scores (from the canvases' cells)."""
    from kfaar.runtime.engine import OrtEngine, OrtEngineOptions, _u8_to_input
    from kfaar.runtime.realign import pilot_scores

    rgb, base = photo_and_alignment
    eng = OrtEngine(OrtEngineOptions(model=exported[0], threads=1))
    assert eng._pilot is not None, "the export writes the carrier's pilot rows into params.safetensors"
    params = [(dx, dy, sc, ang) for dy in (-8.0, -4.0, 0.0, 4.0) for dx in (-4.0, 0.0, 4.0, 8.0)
              for sc in (0.92, 1.0) for ang in (-6.0, 0.0)] + [(0.5, -1.0, 1.02, 1.5)]
    size = int(eng._realign["size"])
    graph = eng._run("pilot_match", {"crop": _u8_to_input(warp_candidates(rgb, base, params, 128, size))})
    np.testing.assert_allclose(pilot_scores(rgb, base, params, 128, eng._pilot), graph, atol=1e-5)


def test_realign_is_the_same_with_the_graph_or_the_rows(exported, photo_and_alignment):
    from kfaar.runtime.engine import OrtEngine, OrtEngineOptions

    rgb, base = photo_and_alignment
    eng = OrtEngine(OrtEngineOptions(model=exported[0], threads=1))
    start = base.copy()
    start[:, 2] += (3.0, -2.0)
    with_rows = eng.realign(rgb, start)
    eng._pilot = None  # a set exported before the rows: the pilot-match graph scores
    with_graph = eng.realign(rgb, start)
    np.testing.assert_allclose(with_rows[0], with_graph[0], atol=1e-9)
    assert with_rows[1] == pytest.approx(with_graph[1], abs=1e-5)


def test_pilot_rows_need_a_whole_mask_under_the_rows(torch):
    from kfaar.models.carrier import CodeCarrier

    interior = torch.zeros(8, 8)
    interior[1:7, 1:7] = 1  # 36 cells, 2 chroma directions: room for 16 code + 32 pilot rows
    carrier = CodeCarrier(interior, 16, 8, 2, 0.5)
    full = torch.ones(1, 1, 16, 16)
    rows = carrier.pilot_rows(full)
    assert set(rows["pilot_cells"].tolist()) <= {i * 8 + j for i in range(1, 7) for j in range(1, 7)}
    assert rows["pilot_rows"].shape == (32, 3, len(rows["pilot_cells"]))
    faded = full.clone()
    faded[..., 5, 5] = 0.5  # a pixel of cell (2, 2), inside the interior the rows use
    assert carrier.pilot_rows(faded) is None
    with pytest.raises(ValueError, match="16 px"):
        carrier.pilot_rows(torch.ones(1, 1, 32, 32))


def test_pilot_scores_read_each_candidate_as_its_own_warp(photo_and_alignment):
    """Few candidates to a canvas: sampled from the photo as their own warps, exactly; many:
    windows of the shared canvas, as ``warp_candidates`` gives them."""
    from kfaar.runtime.realign import CANVAS_MIN_MEMBERS, PilotRows, pilot_scores

    rgb, base = photo_and_alignment
    rng = np.random.default_rng(0)
    res = 24
    cells = np.sort(rng.choice(res * res, 200, replace=False))
    pilot = PilotRows(rng.standard_normal((8, 3, 200)), cells, rng.standard_normal(8), res)
    alone = [(0.5, -1.0, 1.02, 1.5), (1.0, 2.0, 0.97, -2.0), (-3.25, 0.75, 1.0, 0.5)]
    shared = [(dx, dy, 0.92, 6.0) for dy in (-8.0, 0.0, 8.0) for dx in (-8.0, 0.0, 8.0, 16.0)]  # one canvas
    assert len(shared) >= CANVAS_MIN_MEMBERS

    def scored(crops):
        c = crops.astype(np.float32)
        blocks = c[:, 0::2, 0::2] + c[:, 1::2, 0::2] + c[:, 0::2, 1::2] + c[:, 1::2, 1::2]
        return pilot.match(blocks.reshape(len(c), -1, 3)[:, cells] / 510 - 1)

    got = pilot_scores(rgb, base, alone + shared, 128, pilot)
    np.testing.assert_allclose(got[:3], scored(_one_by_one(rgb, base, alone, 48)), rtol=0, atol=1e-6)
    np.testing.assert_allclose(got[3:], scored(warp_candidates(rgb, base, shared, 128, 48)), rtol=0, atol=1e-6)
