"""Model shapes, the compute/size budget, and each piece against its reference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kfaar.models.generator import Generator, GeneratorConfig, face_mask  # noqa: E402
from kfaar.models.identity_space import IdentitySpace  # noqa: E402
from kfaar.models.mapping import MappingNetwork  # noqa: E402


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def test_generator_output_shape_and_exterior_is_the_input():
    g, m = Generator(), MappingNetwork(n_styles=GeneratorConfig().n_styles)
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        u = torch.randn(2, 128)
        v = g(x, m(u), u)
    assert v.shape == x.shape
    outside = face_mask(g.cfg, 128)[0, 0] == 0  # background, hair: kept by construction
    assert torch.equal(v[:, :, outside], x[:, :, outside])


def test_generator_flops_within_budget_per_128px_face():
    g, m = Generator(), MappingNetwork(n_styles=GeneratorConfig().n_styles)
    w = m(torch.randn(1, 128))
    flops = _flops(lambda: g(torch.zeros(1, 3, 128, 128), w, torch.randn(1, 128)))
    assert flops <= 2e9, f"generator: {flops / 1e9:.2f} GFLOPs per 128-px face, budget 2"


def test_code_carrier_reads_back_what_it_wrote_and_survives_realignment():
    from kfaar.train.losses import jitter

    g = Generator()
    x = torch.rand(4, 3, 128, 128) * 2 - 1
    code = torch.randn(4, 128)
    m = g.mask(128, x.device)
    y, alpha = g.code_carrier.write(x, code, m)
    assert alpha.shape == (4, 128 + 32)  # code rows + pilot rows
    assert g.code_carrier.pilot_match(y, m).min() > 0.99
    cos = torch.nn.functional.cosine_similarity(g.read_code(y), code)
    assert cos.min() > 0.99
    q = torch.round((y.clamp(-1, 1) + 1) * 127.5) / 127.5 - 1  # uint8 round trip
    cos_j = torch.nn.functional.cosine_similarity(g.read_code(jitter(q, torch.Generator().manual_seed(0))), code)
    assert cos_j.mean() > 0.6
    outside = m[0, 0] == 0
    assert torch.equal(y[:, :, outside], x[:, :, outside])  # the carrier stays inside the face


def test_generator_needs_the_code_when_it_carries_one():
    g = Generator()
    w = MappingNetwork(n_styles=g.cfg.n_styles)(torch.randn(1, 128))
    with pytest.raises(ValueError, match="pass code="):
        g(torch.zeros(1, 3, 64, 64), w)


def test_shipped_parameters_fit_40_mb():
    g = Generator()
    parts = [g, MappingNetwork(n_styles=g.cfg.n_styles), IdentitySpace()]
    n_bytes = 4 * sum(t.numel() for p in parts for t in p.state_dict().values())
    assert n_bytes <= 40e6


def test_mapping_matches_the_fused_kernel_reference():
    from kfaar.ops.mapping import MappingWeights, map_latent

    m = MappingNetwork(n_styles=5, style_dim=32, hidden=64).eval()
    kw = m.kernel_weights()
    w = MappingWeights(tuple(kw[f"layer{i}.weight"].numpy() for i in range(4)),
                       tuple(kw[f"layer{i}.bias"].numpy() for i in range(4)),
                       kw["style.weight"].numpy(), kw["style.bias"].numpy())
    u = torch.randn(4, 128)
    pn = u * torch.rsqrt(u.pow(2).mean(1, keepdim=True) + 1e-8)
    ref = map_latent(pn.numpy(), w, backend="ref")
    with torch.no_grad():
        out = m(u).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-4)


def test_identity_space_round_trip_and_kernel_whitening():
    from kfaar.ops.projection import Whitening

    rng = np.random.default_rng(0)
    z = (rng.normal(size=(500, 128)) * np.linspace(0.2, 2, 128) + 0.3).astype(np.float32)
    sp = IdentitySpace().fit(z, eps=1e-6)
    Whitening(sp.mean.numpy(), sp.whiten.numpy(), sp.color.numpy())  # accepted by the kernel: color = whiten^-1
    t = torch.from_numpy(z[:4])
    torch.testing.assert_close(sp.from_code(sp.to_code(t)), t, atol=1e-4, rtol=1e-4)
    u = sp.to_code(torch.from_numpy(z)).numpy()
    cov = np.cov(u, rowvar=False)
    assert np.abs(np.diag(cov) - 1).max() < 0.1  # whitened (up to the eps regulariser)
