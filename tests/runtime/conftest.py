"""A tiny random bundle of the shipped architecture's kind, exported once per session.

Tests never depend on the shipped weights (one extra test uses them when they exist):
the bundle is built from the model configs with narrow channels, so exporting it (fp32 and
int8) takes a few seconds.
"""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="session")
def faces(torch):
    """8 real aligned crops: LFW dev crops when the cache exists, else the sample photo's face."""
    from kfaar.runtime.export import reference_faces

    return reference_faces("dev", 8)


@pytest.fixture(scope="session")
def tiny_bundle(torch, faces):
    import dataclasses

    from kfaar.models.bundle import ModelBundle
    from kfaar.models.generator import Generator, GeneratorConfig
    from kfaar.models.identity_space import IdentitySpace
    from kfaar.models.mapping import MappingNetwork

    torch.manual_seed(0)
    g = Generator(GeneratorConfig(enc_channels=(8, 8, 12, 12, 16), dec_channels=(12, 12, 8, 8), style_dim=32))
    space = IdentitySpace()
    rng = np.random.default_rng(0)  # a non-trivial identity space: centred off zero, anisotropic
    z = rng.standard_normal((512, 128)) * np.linspace(0.5, 1.5, 128) + 0.3 / np.sqrt(128)
    space.fit(z / np.linalg.norm(z, axis=1, keepdims=True))
    parts = dict(generator=g, mapping=MappingNetwork(hidden=32, n_layers=2, n_styles=g.cfg.n_styles, style_dim=32),
                 space=space, threshold=0.42, info={"run": "tests/runtime tiny"})
    if "reader" in {f.name for f in dataclasses.fields(ModelBundle)}:  # a separate reader network
        from kfaar.models.reader import Reader, ReaderConfig

        parts["reader"] = Reader(ReaderConfig(channels=(8, 12, 16, 16)))
    return ModelBundle(**parts).eval()


@pytest.fixture(scope="session")
def exported(tiny_bundle, faces, tmp_path_factory):
    """(folder, ExportResult) of the tiny bundle with int8, calibrated on the same crops."""
    pytest.importorskip("onnxscript", reason="kfaar export needs onnxscript (pip install 'kfaar[train]')")
    from kfaar.runtime.export import export_bundle

    out = tmp_path_factory.mktemp("onnx") / "tiny"
    res = export_bundle(tiny_bundle, out, name="tiny", int8=True, faces=faces, calibration=faces)
    return out, res
