"""The edge runtime: export round trip and parity, torch-free loading, int8, tampering, threads."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from kfaar.errors import ModelIntegrityError
from kfaar.keys import Key

KEY = Key.from_bytes(bytes(range(32)))


def _engine(folder, **kw):
    from kfaar.runtime.engine import OrtEngine, OrtEngineOptions

    return OrtEngine(OrtEngineOptions(model=folder, threads=1, **kw))


# ---------------------------------------------------------------------------- export
def test_export_writes_a_manifest_that_pins_every_file(exported):
    folder, res = exported
    m = json.loads((folder / "manifest.json").read_text())
    assert m == res.manifest and m["format"] == "kfaar-onnx/1" and m["crop_size"] == 128
    assert m["threshold"] == pytest.approx(0.42)
    files = {"generator.onnx", "reader.onnx", "params.safetensors", "generator.int8.onnx"}
    if m["realign"] is not None:  # a generator whose code carrier has pilots
        files.add("pilot_match.onnx")
    if "int8" in m["networks"]["reader"]["files"]:  # a reader network (a linear read-out has nothing to quantize)
        files.add("reader.int8.onnx")
    assert set(m["sha256"]) == files
    g_in = {i["name"]: i["shape"] for i in m["networks"]["generator"]["inputs"]}
    assert g_in["crop"] == ["batch", 3, 128, 128] and g_in["w_plus"][0] == "batch"
    assert m["networks"]["reader"]["outputs"][0]["shape"] == ["batch", 128]
    assert m["opset"] >= 17
    for net in m["networks"]:
        assert m["parity"][net]["max_abs_diff"] <= 1e-4


def test_exported_graphs_carry_no_source_paths(exported):
    """No exporter debug record (stack traces naming this machine's files) ships in a graph."""
    folder, _ = exported
    repo = str(Path(__file__).resolve().parents[2]).encode()
    for f in sorted(folder.glob("*.onnx")):
        data = f.read_bytes()
        assert b"stack_trace" not in data and repo not in data, f.name


def test_no_graph_file_holds_a_key_dependent_step(exported):
    """The keyed projection and mapping stay in the kernels: graphs take W+, never a key or z."""
    folder, res = exported
    names = {i["name"] for net in res.manifest["networks"].values() for i in net["inputs"]}
    assert names <= {"crop", "w_plus", "code"}


def test_ort_engine_reproduces_the_torch_engine(exported, tiny_bundle, faces):
    from kfaar.models.engine import KfaarEngine

    folder, _ = exported
    te, oe = KfaarEngine(tiny_bundle), _engine(folder)
    u = te.keyed_code(faces.z, KEY)
    np.testing.assert_array_equal(oe.keyed_code(faces.z, KEY), u)
    np.testing.assert_array_equal(oe.w_plus(u), te.w_plus(u))
    np.testing.assert_array_equal(oe.virtual_identity(faces.z, KEY), te.virtual_identity(faces.z, KEY))
    v_t, v_o = te.generate(faces.crops, faces.z, KEY), oe.generate(faces.crops, faces.z, KEY)
    assert v_o.shape == v_t.shape and v_o.dtype == np.uint8
    assert np.abs(v_t.astype(int) - v_o).max() <= 1  # float parity 1e-4 -> at most one rounding step
    np.testing.assert_allclose(oe.read(v_t), te.read(v_t), atol=1e-5)
    np.testing.assert_allclose(oe.recover(v_t, KEY), te.recover(v_t, KEY), atol=1e-4)
    np.testing.assert_allclose(oe.scores(faces.z, faces.z), te.scores(faces.z, faces.z), atol=1e-6)
    assert oe.crop_size == te.crop_size and oe.threshold == pytest.approx(tiny_bundle.threshold)


def test_ort_engine_has_every_public_method_of_the_torch_engine():
    pytest.importorskip("torch")
    from kfaar.models.engine import KfaarEngine
    from kfaar.runtime.engine import OrtEngine

    public = {n for n in vars(KfaarEngine) if not n.startswith("_")}
    assert public - set(dir(OrtEngine)) == set(), "OrtEngine must stay a drop-in for KfaarEngine"


def test_realign_matches_the_torch_engine(exported, tiny_bundle, grace_hopper):
    """The pilot-match graph + the numpy search find the alignment the torch engine finds."""
    from kfaar.faces import FaceDetector, SFaceEncoder, align_face, main_face, paste_back
    from kfaar.models.engine import KfaarEngine

    if exported[1].manifest["realign"] is None:
        pytest.skip("this architecture's generator has no code-carrier pilots")
    te, oe = KfaarEngine(tiny_bundle), _engine(exported[0])
    with FaceDetector() as det, SFaceEncoder(threads=1) as enc:
        face = main_face(det.detect(grace_hopper), grace_hopper.shape)
        a = align_face(grace_hopper, face.landmarks, size=128)
        v = te.generate(a.crop[None], enc.encode(a.crop[None]), KEY)[0]
    photo = paste_back(grace_hopper, v, a.matrix, mask=oe.paste_mask)
    start = a.matrix.copy()
    start[:, 2] += (2.0, -1.0)  # re-detected landmarks a little off
    (m_t, s_t), (m_o, s_o) = te.realign(photo, start), oe.realign(photo, start)
    np.testing.assert_allclose(m_o, m_t, atol=1e-9)
    assert s_o == pytest.approx(s_t, abs=1e-4)


def test_paste_mask_is_the_generators_face_mask(exported, tiny_bundle):
    from kfaar.models.generator import face_mask

    folder, _ = exported
    np.testing.assert_array_equal(_engine(folder).paste_mask, face_mask(tiny_bundle.generator.cfg, 128)[0, 0].numpy())


def test_dynamic_batch_and_empty_batch(exported, faces):
    eng = _engine(exported[0])
    full = eng.generate(faces.crops, faces.z, KEY)
    one = eng.generate(faces.crops[3:4], faces.z[3:4], KEY)
    assert np.abs(one.astype(int) - full[3:4]).max() <= 1  # batch size may change float rounding, not more
    assert eng.generate(faces.crops[:0], faces.z[:0], KEY).shape == (0, 128, 128, 3)
    assert eng.recover(faces.crops[:0], KEY).shape == (0, 128)


def test_bad_input_is_named(exported, faces):
    eng = _engine(exported[0])
    with pytest.raises(ValueError, match="crops: .*expected \\(N, 128, 128, 3\\) uint8"):
        eng.read(faces.crops.astype(np.float32))
    with pytest.raises(ValueError, match="z: got shape"):
        eng.generate(faces.crops, faces.z[:2], KEY)
    with pytest.raises(ValueError, match="offsets: got shape"):
        eng.generate(faces.crops, faces.z, KEY, np.zeros(2))
    with pytest.raises(TypeError, match="key: expected kfaar.Key"):
        eng.recover(faces.crops, b"not a key")
    with pytest.raises(ValueError, match="precision"):
        _engine(exported[0], precision="fp16")


def test_parity_check_fails_loudly_when_ort_and_torch_differ(faces, tmp_path):
    """An op whose ONNX form differs from torch's (here: +1e-3 only while being exported) is caught."""
    import torch

    from kfaar.runtime import export as ex

    class ExportsDifferently(torch.nn.Module):
        def forward(self, x):
            out = torch.nn.functional.avg_pool2d(x, 4)
            return out + 1e-3 if torch.compiler.is_exporting() or torch.jit.is_tracing() else out

    feeds = {"crop": ex._to_input(faces.crops).numpy()}
    m, x = ExportsDifferently(), (torch.from_numpy(feeds["crop"]),)
    ex._export_graph(m, tuple(a[:2] for a in x), tmp_path / "m.onnx", ["crop"], ["out"], ex.OPSET)
    with pytest.raises(ex.ExportParityError, match="m: ONNX Runtime differs from torch by 0.001"):
        ex._parity("m", m, x, tmp_path / "m.onnx", feeds, ex.ATOL)


def test_a_failed_export_leaves_no_manifest(tiny_bundle, faces, tmp_path, monkeypatch):
    from kfaar.runtime import export as ex

    out = tmp_path / "set"
    out.mkdir()
    (out / "manifest.json").write_text("{}")  # a previous export's

    def fail(*args, **kw):
        raise ex.ExportParityError("generator: ONNX Runtime differs from torch")

    monkeypatch.setattr(ex, "_export_graph", fail)
    with pytest.raises(ex.ExportParityError):
        ex.export_bundle(tiny_bundle, out, faces=faces)
    assert not (out / "manifest.json").exists()


# ---------------------------------------------------------------------------- torch-free
_NO_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"torch is hidden in this test ({name})")
sys.meta_path.insert(0, _NoTorch())
"""


def test_runtime_runs_with_torch_hidden(exported, faces, tmp_path):
    folder, _ = exported
    np.save(tmp_path / "crops.npy", faces.crops)
    np.save(tmp_path / "z.npy", faces.z)
    script = _NO_TORCH + textwrap.dedent(f"""
        import numpy as np
        from kfaar.keys import Key
        from kfaar.runtime.engine import OrtEngine, OrtEngineOptions
        eng = OrtEngine(OrtEngineOptions(model={str(folder)!r}, threads=1))
        key = Key.from_bytes(bytes(range(32)))
        crops, z = np.load({str(tmp_path / 'crops.npy')!r}), np.load({str(tmp_path / 'z.npy')!r})
        v = eng.generate(crops, z, key)
        np.save({str(tmp_path / 'v.npy')!r}, v)
        np.save({str(tmp_path / 'e.npy')!r}, eng.recover(v, key))
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules), "torch was imported"
        try:
            import torch  # noqa: F401
        except ImportError:
            pass
        else:
            raise SystemExit("the torch blocker did not work")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    eng = _engine(folder)
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), eng.generate(faces.crops, faces.z, KEY))
    np.testing.assert_array_equal(np.load(tmp_path / "e.npy"), eng.recover(np.load(tmp_path / "v.npy"), KEY))


# ---------------------------------------------------------------------------- int8
def test_int8_loads_and_meets_its_stated_tolerance(exported, faces):
    folder, res = exported
    tol = res.manifest["int8"]["tolerance"]
    f32, i8 = _engine(folder), _engine(folder, precision="int8")
    a, b = f32.generate(faces.crops, faces.z, KEY), i8.generate(faces.crops, faces.z, KEY)
    d = np.abs(a.astype(np.float64) - b)
    assert d.mean() <= tol["generator_mean_abs_levels"]
    assert np.quantile(d, 0.99) <= tol["generator_p99_abs_levels"]
    ra, rb = f32.read(a), i8.read(a)
    assert (np.sum(ra * rb, axis=1) / np.linalg.norm(ra, axis=1) / np.linalg.norm(rb, axis=1)).min() \
        >= tol["reader_min_cosine"]


def _gemm_graph(w: np.ndarray, trans_b: int):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    k = w.shape[1] if trans_b else w.shape[0]
    n = w.shape[0] if trans_b else w.shape[1]
    node = helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="g", transB=trans_b)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", n])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.full(n, 0.5, np.float32), "b")])
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("trans_b", [0, 1])
def test_weight_only_int8_stores_one_byte_a_weight_and_folds_back_exactly(trans_b):
    """store_weights_int8: the float weight becomes int8 + per-output-column scales behind a
    DequantizeLinear (outputs within the int8 rounding); fold_weight_only at load gives a graph
    with no DequantizeLinear and the very same outputs."""
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from kfaar.runtime.quantize import fold_weight_only, store_weights_int8

    rng = np.random.default_rng(0)
    w = (rng.standard_normal((96, 80)) * np.linspace(0.01, 3, 80)).astype(np.float32)  # columns of very different size
    w = w.T.copy() if trans_b else w
    model = _gemm_graph(w, trans_b)
    x = rng.standard_normal((5, 96)).astype(np.float32)
    run = lambda g: ort.InferenceSession(g, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]  # noqa: E731
    ref = run(model.SerializeToString())
    assert store_weights_int8(model, min_elements=1) == ["w"]
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert inits["w_int8"].dtype == np.int8
    scale = inits["w_int8_scale"]  # one per output column
    w_dq = inits["w_int8"].astype(np.float32) * (scale[:, None] if trans_b else scale[None, :])
    expected = x @ (w_dq.T if trans_b else w_dq) + 0.5
    assert np.all(np.abs(expected - ref) <= np.abs(x).sum(1, keepdims=True) * scale / 2 + 1e-5)  # int8 rounding only
    # What the stored graph means (ORT without graph optimisations), and what the engine runs:
    # the folded graph. (With ORT's optimisations on, the DequantizeLinear(axis=1) -> Gemm pair
    # itself was computed up to 0.4 off here: one more reason to fold at load.)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    stored = model.SerializeToString()
    np.testing.assert_allclose(ort.InferenceSession(stored, so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0],
                               expected, rtol=1e-6, atol=1e-5)
    folded = fold_weight_only(stored)
    assert b"DequantizeLinear" not in folded
    np.testing.assert_allclose(run(folded), expected, rtol=1e-6, atol=1e-5)


def test_shipped_int8_generator_keeps_no_large_float_weight():
    """The shipped int8 generator stores every large weight in int8 (statically quantized
    products and the weight-only render product); before, the render product's 9.4 MB basis
    stayed float and the int8 file was larger than the fp32 one."""
    onnx = pytest.importorskip("onnx")
    from kfaar.runtime.engine import WEIGHTS_DIR
    from kfaar.runtime.quantize import WEIGHT_ONLY_SUFFIX

    folder = WEIGHTS_DIR / "kfaar-v2"
    if not (folder / "generator.int8.onnx").exists():
        pytest.skip("the shipped int8 set is not exported")
    model = onnx.load(str(folder / "generator.int8.onnx"))
    big = [t.name for t in model.graph.initializer
           if t.data_type == onnx.TensorProto.FLOAT and int(np.prod(t.dims)) >= 1 << 18]
    assert big == []
    assert any(n.name.endswith(WEIGHT_ONLY_SUFFIX) for n in model.graph.node)
    assert (folder / "generator.int8.onnx").stat().st_size < 0.6 * (folder / "generator.onnx").stat().st_size


def test_fp32_only_deployment_needs_no_int8_files(exported, tmp_path):
    folder = tmp_path / "fp32only"
    shutil.copytree(exported[0], folder)
    for f in folder.glob("*.int8.onnx"):
        f.unlink()
    _engine(folder)  # int8 files are neither read nor verified for an fp32 engine
    with pytest.raises(ModelIntegrityError, match="generator.int8.onnx is missing"):
        _engine(folder, precision="int8")


def test_int8_needs_int8_graphs(tiny_bundle, exported, tmp_path):
    m = json.loads((exported[0] / "manifest.json").read_text())
    folder = tmp_path / "fp32set"
    shutil.copytree(exported[0], folder)
    for net in m["networks"].values():
        net["files"].pop("int8", None)
    (folder / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ValueError, match="has no int8 graphs"):
        _engine(folder, precision="int8")


# ---------------------------------------------------------------------------- integrity
@pytest.fixture
def copy(exported, tmp_path):
    folder = tmp_path / "set"
    shutil.copytree(exported[0], folder)
    return folder


def test_a_changed_byte_is_detected(copy):
    data = bytearray((copy / "generator.onnx").read_bytes())
    data[len(data) // 2] ^= 1
    (copy / "generator.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="generator.onnx has SHA-256 .* but manifest.json says"):
        _engine(copy)


def test_a_changed_parameter_file_is_detected(copy):
    data = bytearray((copy / "params.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "params.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="params.safetensors has SHA-256"):
        _engine(copy)


def test_a_missing_file_is_detected(copy):
    (copy / "reader.onnx").unlink()
    with pytest.raises(ModelIntegrityError, match="reader.onnx is missing"):
        _engine(copy)
    (copy / "manifest.json").unlink()
    with pytest.raises(ModelIntegrityError, match="manifest.json is missing"):
        _engine(copy)


def test_an_edited_hash_is_detected(copy, exported):
    """Editing the manifest breaks its pin; re-hashing a swapped file in it is caught the same way."""
    from kfaar.runtime.engine import OrtEngine, OrtEngineOptions

    pin = exported[1].manifest_sha256
    OrtEngine(OrtEngineOptions(model=copy, model_sha256=pin, threads=1))  # the untouched copy loads
    m = json.loads((copy / "manifest.json").read_text())
    m["sha256"]["reader.onnx"] = "0" * 64
    (copy / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(ModelIntegrityError, match="reader.onnx has SHA-256"):
        _engine(copy)  # unpinned: the file no longer matches the edited hash
    with pytest.raises(ModelIntegrityError, match="manifest.json has SHA-256 .* not the pinned"):
        OrtEngine(OrtEngineOptions(model=copy, model_sha256=pin))


def test_shipped_set_is_pinned(exported, monkeypatch, tmp_path):
    from kfaar.runtime import engine as rt

    folder, res = exported
    monkeypatch.setitem(rt.SHIPPED, "kfaar-v2", "PENDING")
    with pytest.raises(ModelIntegrityError, match="not exported yet.*export_shipped"):
        rt.default_engine()
    monkeypatch.setattr(rt, "WEIGHTS_DIR", folder.parent)
    monkeypatch.setitem(rt.SHIPPED, "tiny", res.manifest_sha256)
    assert rt.default_engine("tiny", threads=1).threshold == pytest.approx(0.42)
    monkeypatch.setitem(rt.SHIPPED, "tiny", "f" * 64)
    with pytest.raises(ModelIntegrityError, match="not the pinned"):
        rt.default_engine("tiny")
    with pytest.raises(ModelIntegrityError, match="valid names"):
        rt.default_engine("no-such-model")
    # named by its folder, a shipped set is still held to its pin; any other folder is not
    with pytest.raises(ModelIntegrityError, match="not the pinned"):
        rt.OrtEngine(rt.OrtEngineOptions(model=str(folder)))
    copy = tmp_path / "copy-of-tiny"
    shutil.copytree(folder, copy)
    assert rt.OrtEngine(rt.OrtEngineOptions(model=str(copy), threads=1)).threshold == pytest.approx(0.42)


def test_load_engine_picks_the_backend_by_model(exported, tiny_bundle, tmp_path):
    from kfaar.models.bundle import save_bundle
    from kfaar.models.engine import KfaarEngine
    from kfaar.runtime.engine import OrtEngine, load_engine

    sha = save_bundle(tiny_bundle, tmp_path / "b.safetensors")
    assert isinstance(load_engine(exported[0], threads=1, precision="int8"), OrtEngine)
    assert isinstance(load_engine(str(tmp_path / "b.safetensors"), sha), KfaarEngine)
    assert isinstance(load_engine((tmp_path / "b.safetensors").read_bytes(), sha), KfaarEngine)
    with pytest.raises(ValueError, match="backend: got 'tflite'"):
        load_engine(exported[0], backend="tflite")
    with pytest.raises(ValueError, match="needs the onnx backend"):
        load_engine(str(tmp_path / "b.safetensors"), sha, precision="int8")


# ---------------------------------------------------------------------------- concurrency, lifecycle
def test_threads_give_the_serial_results(exported, faces):
    eng = _engine(exported[0])
    keys = [Key.from_bytes(bytes([i]) * 32) for i in range(6)]
    jobs = [(k, s) for k in keys for s in (slice(0, 3), slice(2, 8))]

    def job(ks):
        k, s = ks
        v = eng.generate(faces.crops[s], faces.z[s], k)
        return v, eng.recover(v, k)

    serial = [job(j) for j in jobs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(2):
            for (v1, e1), (v2, e2) in zip(serial, pool.map(job, jobs)):
                np.testing.assert_array_equal(v1, v2)
                np.testing.assert_array_equal(e1, e2)


def test_pickle_rebuilds_sessions_and_close_is_final(exported, faces):
    eng = _engine(exported[0])
    twin = pickle.loads(pickle.dumps(eng))
    np.testing.assert_array_equal(twin.read(faces.crops), eng.read(faces.crops))
    with eng:
        pass
    with pytest.raises(RuntimeError, match="closed"):
        eng.read(faces.crops)


# ---------------------------------------------------------------------------- CLI
def test_cli_export_loads_the_bundle_verified_and_reports(exported, tiny_bundle, tmp_path, monkeypatch):
    """The CLI layer only (the export itself is the fixture's): arguments, verification, output."""
    from click.testing import CliRunner

    from kfaar.cli import main
    from kfaar.models.bundle import save_bundle
    from kfaar.runtime import export as ex

    sha = save_bundle(tiny_bundle, tmp_path / "b.safetensors")
    calls = []
    monkeypatch.setattr(ex, "export_bundle", lambda b, out, **kw: calls.append((b, out, kw)) or exported[1])
    r = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "b.safetensors"), "--sha256", sha,
                                  "--out", str(tmp_path / "set"), "--int8"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    (b, out, kw), = calls
    assert out == str(tmp_path / "set") and kw == {"name": "b", "int8": True} and b.threshold == pytest.approx(0.42)
    assert "parity (max abs diff, ORT vs torch)" in r.output and "int8 vs fp32" in r.output
    assert f"manifest sha256={exported[1].manifest_sha256}" in r.output
    r = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "b.safetensors"), "--sha256", "0" * 64,
                                  "--out", str(tmp_path / "set")])
    assert r.exit_code == 2 and "does not match the pinned" in r.stderr  # a kfaar error: its message, no traceback
    r = CliRunner().invoke(main, ["export", str(tmp_path / "b.safetensors"), "--out", str(tmp_path / "x")])
    assert r.exit_code != 0 and "CHECKPOINT exports a training checkpoint" in r.output
    r = CliRunner().invoke(main, ["export", "--model", str(tmp_path / "b.safetensors")])
    assert r.exit_code != 0 and "exactly one of --out DIR and --shipped" in r.output


# ---------------------------------------------------------------------------- shipped weights (when present)
def test_shipped_onnx_set_matches_the_shipped_bundle():
    from kfaar.runtime.engine import SHIPPED, WEIGHTS_DIR

    if SHIPPED["kfaar-v2"] == "PENDING" or not (WEIGHTS_DIR / "kfaar-v2").is_dir():
        pytest.skip("the shipped ONNX set is not exported yet (kfaar.runtime.export.export_shipped)")
    pytest.importorskip("torch")
    from kfaar.models.bundle import load_bundle
    from kfaar.models.engine import KfaarEngine
    from kfaar.runtime.engine import default_engine
    from kfaar.runtime.export import reference_faces

    f = reference_faces("dev", 8)
    te, oe = KfaarEngine(load_bundle()), default_engine(threads=1)
    v = te.generate(f.crops, f.z, KEY)
    assert np.abs(oe.generate(f.crops, f.z, KEY).astype(int) - v).max() <= 1
    offsets = np.linspace(-6, 6, len(f.crops)).astype(np.float32)  # the detector's nose offsets, when given
    offsets[::3] = np.nan
    given = te.generate(f.crops, f.z, KEY, offsets)
    assert np.abs(oe.generate(f.crops, f.z, KEY, offsets).astype(int) - given).max() <= 1
    np.testing.assert_allclose(oe.recover(v, KEY), te.recover(v, KEY), atol=1e-4)
    assert oe.threshold == pytest.approx(te.bundle.threshold)


def test_generator_feeds_cover_every_input_of_the_shipped_generator():
    """`kfaar bench pipeline` feeds the generator graph itself (through the engine's
    generator_feeds); a new graph input (the pose warp's offsets) once made it fail with a KeyError."""
    from kfaar.runtime.engine import SHIPPED, WEIGHTS_DIR

    if SHIPPED["kfaar-v2"] == "PENDING" or not (WEIGHTS_DIR / "kfaar-v2").is_dir():
        pytest.skip("the shipped ONNX set is not exported yet")
    pytest.importorskip("torch")
    from kfaar.models.bundle import load_bundle
    from kfaar.runtime.engine import default_engine
    from kfaar.runtime.export import _generator_args, reference_faces

    f = reference_faces("dev", 2)
    eng = default_engine(threads=1)
    feeds = eng.generator_feeds(f.crops, eng.keyed_code(f.z, KEY))
    names, _ = _generator_args(load_bundle(), feeds)
    declared = {i.name for i in eng._sessions["generator"].get_inputs()}
    assert declared <= set(feeds) and set(names) == declared
