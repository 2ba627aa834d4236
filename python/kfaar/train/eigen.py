"""Fit the eigenface generator (models/eigen.py) and its mapping on the train split.

Minutes on two CPU cores, deterministic for a seed:

1. the identity space (whitening of SFace embeddings) — as for the styled model;
2. the face model: PCA of the 64-px face boxes (randomised SVD, K components);
3. the identity/attribute split: discriminant directions of the coefficients (between-
   vs within-identity scatter); the first ``n_identity`` are the identity modes the key
   replaces, the rest (pose, expression, lighting: what varies across one person's photos)
   are kept from the input;
4. the mapping network (run by the fused mapping kernel at inference): a regression from
   the whitened code u to the identity part of the person's coefficients, on 90% of the
   train identities, the held-out 10% choosing the step; then its output is re-scaled,
   per discriminant direction, to ``spread`` times the spread real identities have — a
   regression alone predicts faces close to the mean face, so two keys would give near-twins.

Then, as separate steps on a fitted bundle: :func:`tune_fidelity` (the mapping, through the
differentiable SFace) and :func:`fit_refiner` (the detail refiner that renders the 64-px
face at 128 px).

With the identity key the edit reconstructs (an estimate of) the person; with any other
key u' is a rotation of u with the same distribution, so the face is another plausible
identity. :func:`fit_eigen` returns a :class:`ModelBundle` (threshold still 0: set it with
:func:`kfaar.train.export.operating_point`).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F

from kfaar.models.bundle import ModelBundle
from kfaar.models.eigen import EigenConfig, EigenGenerator
from kfaar.models.generator import ellipse_radius, face_mask
from kfaar.models.identity_space import IdentitySpace
from kfaar.models.mapping import MappingNetwork
from kfaar.train.data import FaceSet, identity_groups

log = logging.getLogger(__name__)


def _boxes(gen: EigenGenerator, crops: np.ndarray, chunk: int = 512) -> torch.Tensor:
    """(N, S, S, 3) uint8 -> (N, D) float32 face boxes in [-1, 1]."""
    out = []
    for i in range(0, len(crops), chunk):
        x = torch.from_numpy(np.ascontiguousarray(crops[i : i + chunk])).permute(0, 3, 1, 2).float() / 127.5 - 1
        out.append(gen.face_box(x))
    return torch.cat(out)


def scatter(coeffs: torch.Tensor, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, K) coefficients, (N,) identity labels -> (within, between) scatter (K, K), float64.

    Within: pooled over identities with >= 2 photos; between: total minus within."""
    c = coeffs.double()
    _, inv = np.unique(labels, return_inverse=True)
    inv_t = torch.from_numpy(inv)
    n_id = int(inv.max()) + 1
    counts = torch.bincount(inv_t, minlength=n_id).double()
    sums = torch.zeros(n_id, c.shape[1], dtype=torch.float64).index_add_(0, inv_t, c)
    dev = c - (sums / counts[:, None])[inv_t]
    dof = float((counts[counts > 1] - 1).sum())
    if dof < c.shape[1]:
        raise ValueError(f"need more repeated identities to estimate within-person variation (dof {dof:.0f})")
    within = dev.T @ dev / dof
    total = torch.cov(c.T)
    return within, total - within


def discriminant_directions(within: torch.Tensor, between: torch.Tensor, eps: float = 1e-4
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised eigenvectors V (K, K) with Vᵀ within V = I, between-ratio λ descending."""
    k = within.shape[0]
    lam_w, q = torch.linalg.eigh(within + eps * torch.trace(within) / k * torch.eye(k, dtype=within.dtype))
    wh = q * lam_w.rsqrt()  # within^-1/2 (one side)
    lam, e = torch.linalg.eigh(wh.T @ between @ wh)
    order = torch.argsort(lam, descending=True)
    return wh @ e[:, order], lam[order]


def split_edit(v: torch.Tensor, n_identity: int, push: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Discriminant directions V (K, K), most identity-bearing first -> (removed, E), both (K, K)
    in the row-vector convention c E: ``removed`` keeps all but the first ``n_identity``
    directions (what of the input stays), E the same with those at -``push``."""
    keep = torch.ones(v.shape[0], dtype=torch.float64)
    keep[:n_identity] = 0
    inv = torch.linalg.inv(v)
    removed = v @ torch.diag(keep) @ inv
    keep[:n_identity] = -push
    return removed, v @ torch.diag(keep) @ inv


def _split_boxes(gen: EigenGenerator, train: FaceSet, mirror: bool) -> tuple[torch.Tensor, np.ndarray]:
    """The train face boxes the identity split is found on, and their people: with ``mirror``
    each face's left-right mirror image too, as another photo of the same person."""
    labels = np.asarray(train.labels)
    boxes = _boxes(gen, train.crops)
    if mirror:
        return torch.cat([boxes, _boxes(gen, train.crops[:, :, ::-1])]), np.concatenate([labels, labels])
    return boxes, labels


def set_identity_split(bundle: ModelBundle, train: FaceSet, n_identity: int) -> dict:
    """Replace ``n_identity`` discriminant directions of the bundle's own face model instead of
    the number it was fitted with: the directions are found again on ``train`` as ``fit_eigen``
    found them (its mirror setting included), so with the same train split and the bundle's own
    number the edit comes out unchanged. More replaced directions keep less of the input (its
    most person-like within-person modes first) and leave the rest to the keyed part; the
    mapping is not refitted: tune it, and refit a learned code read, after."""
    gen = bundle.generator
    if not isinstance(gen, EigenGenerator):
        raise TypeError("set_identity_split needs an eigen bundle")
    k = gen.cfg.n_components
    if not 0 < n_identity <= k:
        raise ValueError(f"n_identity must be in 1..n_components ({k}), got {n_identity}")
    mirror = bool(bundle.info.get("mirror", False))
    boxes, labels = _split_boxes(gen, train, mirror)
    with torch.no_grad():
        coeffs = gen.box_coefficients(boxes)
    del boxes
    v, lam = discriminant_directions(*scatter(coeffs, labels))
    _, edit = split_edit(v, n_identity, gen.cfg.push)
    out = _reconfigured(gen, n_identity=int(n_identity))
    out.edit.copy_(edit.float())
    bundle.generator = out
    info = {"n_identity": int(n_identity), "was": int(gen.cfg.n_identity), "mirror": mirror,
            "last_replaced_ratio": float(lam[n_identity - 1]),
            "first_kept_ratio": float(lam[n_identity]) if n_identity < k else None}
    bundle.info["identity_split"] = info
    return info


def _fit_mapping(u: torch.Tensor, target: torch.Tensor, labels: np.ndarray, cfg: EigenConfig, hidden: int,
                 n_layers: int, steps: int, seed: int) -> tuple[MappingNetwork, dict]:
    g = torch.Generator().manual_seed(seed)
    ids = np.unique(labels)
    held = set(ids[torch.randperm(len(ids), generator=g).numpy()[: max(1, len(ids) // 10)]].tolist())
    is_val = torch.from_numpy(np.array([lab in held for lab in labels]))
    tr, va = torch.nonzero(~is_val).squeeze(1), torch.nonzero(is_val).squeeze(1)
    torch.manual_seed(seed)
    hidden = hidden if n_layers else u.shape[1]  # no hidden layers: one affine map of u
    mapping = MappingNetwork(hidden=hidden, n_layers=n_layers, n_styles=cfg.n_styles, style_dim=cfg.style_dim)
    opt = torch.optim.AdamW(mapping.parameters(), lr=2e-3, weight_decay=1e-2)
    scale = target[tr].pow(2).mean()
    best = (float("inf"), 0, None)
    for step in range(1, steps + 1):
        b = tr[torch.randint(len(tr), (256,), generator=g)]
        loss = (mapping(u[b])[:, 0] - target[b]).pow(2).mean() / scale
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps:
            with torch.no_grad():
                val = float((mapping(u[va])[:, 0] - target[va]).pow(2).mean() / target[va].pow(2).mean())
            if val < best[0]:
                best = (val, step, {k: v.clone() for k, v in mapping.state_dict().items()})
    mapping.load_state_dict(best[2])
    log.info("mapping: held-out relative MSE %.4f at step %d", best[0], best[1])
    return mapping.eval().requires_grad_(False), {"heldout_rel_mse": best[0], "step": best[1], "steps": steps}


@torch.no_grad()
def _match_spread(mapping: MappingNetwork, u: torch.Tensor, target: torch.Tensor, v: torch.Tensor,
                  n_identity: int, spread: float = 1.0) -> list[float]:
    """Re-scale the mapping's output so each identity direction has the spread of real identities.

    In discriminant coordinates (c V) the prediction p and the target t have per-direction
    standard deviations; p is mapped to mean(t) + (p - mean(p)) g with g = std(t) / std(p),
    then back. The map is affine, so it is folded into the style affine the kernel runs."""
    p = mapping(u)[:, 0].double()
    t = target.double()
    vinv = torch.linalg.inv(v)
    py, ty = p @ v, t @ v
    gain = torch.zeros(v.shape[0], dtype=torch.float64)
    gain[:n_identity] = spread * ty[:, :n_identity].std(0) / py[:, :n_identity].std(0).clamp_min(1e-12)
    lin = v @ torch.diag(gain) @ vinv  # (K, K): p -> re-scaled p (row vectors)
    _fold_into_style(mapping, lin, t.mean(0) - p.mean(0) @ lin)
    return gain[:n_identity].tolist()


@torch.no_grad()
def _fold_into_style(mapping: MappingNetwork, lin: torch.Tensor, shift: torch.Tensor | None = None) -> None:
    """Make the (single) style affine output ``out @ lin + shift`` instead of ``out`` (row vectors)."""
    style = mapping.styles[0]
    w_eff, b_eff = (x.double() for x in style.effective())  # (K, hidden), (K,)
    lin = lin.double()
    bias = b_eff @ lin + (0 if shift is None else shift.double())
    style.weight.copy_(((w_eff.T @ lin).T / style.scale).float())
    style.bias.copy_((bias / style.lr_mul).float())


def fit_eigen(train: FaceSet, cfg: EigenConfig = EigenConfig(), *, seed: int = 20261126, hidden: int = 256,
              n_layers: int = 0, mapping_steps: int = 3000, spread: float = 1.2, mirror: bool = False) -> ModelBundle:
    """``n_layers`` 0: the mapping is one affine map of u (an MLP fitted no better — held-out
    relative MSE 0.90 — and made the same person's two photos less alike: SFace consistency
    54% vs 64% on 30 dev identities); ``spread``: identities a little more distinct than the
    train population (1.2: diversity and anonymity up, faces still plausible); ``mirror``: the
    face model and the within-person scatter also see every train face flipped left-right,
    as another photo of the same person — left-right asymmetry (yaw, roll, side light)
    then counts as within-person variation and is kept from the input, not replaced."""
    torch.manual_seed(seed)
    labels = np.asarray(train.labels)
    space = IdentitySpace().fit(train.embeddings)
    gen = EigenGenerator(cfg)
    # (N or 2N, D); the face box is symmetric about the crop's vertical midline
    boxes, box_labels = _split_boxes(gen, train, mirror)
    mean = boxes.mean(0)
    k = cfg.n_components
    if k > min(boxes.shape) - 1:
        raise ValueError(f"n_components {k} needs more than {k + 1} faces and pixels (have {tuple(boxes.shape)})")
    _, s, q = torch.svd_lowrank(boxes - mean, q=min(k + 16, min(boxes.shape)), niter=4)
    basis = q[:, :k].contiguous()
    explained = float(s[:k].pow(2).sum() / (boxes - mean).pow(2).sum())
    coeffs = (boxes - mean) @ basis
    del boxes
    within, between = scatter(coeffs, box_labels)
    coeffs = coeffs[: len(labels)]  # the mapping is regressed on the photos as they are
    v, lam = discriminant_directions(within, between)
    removed, edit = split_edit(v, cfg.n_identity, cfg.push)
    gen.mean.copy_(mean)
    gen.basis.copy_(basis)
    gen.edit.copy_(edit.float())
    target = (coeffs.double() - coeffs.double() @ removed).float()  # the identity part the key replaces
    u = space.to_code(torch.as_tensor(train.embeddings, dtype=torch.float32))
    mapping, fit_info = _fit_mapping(u, target, labels, cfg, hidden, n_layers, mapping_steps, seed)
    gains = _match_spread(mapping, u, target, v, cfg.n_identity, spread)
    info = {
        "kind": "eigen",
        "seed": seed,
        "mirror": mirror,
        "train_faces": int(len(labels)),
        "train_identities": int(len(np.unique(labels))),
        "config": asdict(cfg),
        "pca_explained_variance": explained,
        "discriminant_ratio": {"first": float(lam[0]), "last_replaced": float(lam[cfg.n_identity - 1]),
                               "first_kept": float(lam[cfg.n_identity]) if cfg.n_identity < k else None},
        "mapping": {**fit_info, "hidden": hidden if n_layers else None, "n_layers": n_layers, "spread": spread,
                    "spread_gain_median": float(np.median(gains)), "spread_gain_max": float(np.max(gains))},
    }
    log.info("eigen fit: %d faces, PCA %d comps explain %.1f%%, mapping held-out rel. MSE %.3f, spread gain median %.2f",
             len(labels), k, 100 * explained, fit_info["heldout_rel_mse"], info["mapping"]["spread_gain_median"])
    return ModelBundle(gen, mapping, space, threshold=0.0, info=info).eval()


def first_pairs(labels: np.ndarray) -> np.ndarray:
    """(P, 2) indices of the first two photos of every identity that has two or more."""
    return np.array([g[:2] for g in identity_groups(labels)], dtype=np.int64).reshape(-1, 2)


def detail_loss(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean L1 of (B, 3, h, w) ``pred`` vs ``target`` and of their horizontal and vertical
    differences (edges), each weighted per pixel by ``weight`` (1, 1, h, w): the refiner's loss."""
    pix = ((pred - target).abs() * weight).sum() / (weight.sum() * 3 * len(pred))
    d = pred - target
    edge = (((d[..., 1:, :] - d[..., :-1, :]).abs() * weight[..., 1:, :]).sum()
            + ((d[..., :, 1:] - d[..., :, :-1]).abs() * weight[..., :, 1:]).sum()) / (2 * weight.sum() * 3 * len(pred))
    return pix, edge


class _Crops:
    """The train crops as float batches on ``device``; on CUDA the uint8 array is uploaded once."""

    def __init__(self, crops: np.ndarray, device: torch.device):
        self.device = device
        self.crops = torch.from_numpy(np.ascontiguousarray(crops)).to(device) if device.type == "cuda" else crops

    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        if isinstance(self.crops, torch.Tensor):
            x = self.crops[torch.from_numpy(idx).to(self.device)]
        else:
            x = torch.from_numpy(np.ascontiguousarray(self.crops[idx]))
        return x.permute(0, 3, 1, 2).float() / 127.5 - 1


# The outline prior's ring, in radii of the face ellipse: from RIM_INNER (0) to RIM_OUTER (1),
# times the paste mask (which fades from 0.965 to 1.035 of the radii at the shipped feather).
RIM_INNER, RIM_OUTER = 0.85, 0.95


def rim_weight(cfg: EigenConfig, size: int, device=None) -> torch.Tensor:
    """(1, 1, size, size) the outline prior's weight: a smoothstep from ``RIM_INNER`` to
    ``RIM_OUTER`` of the face ellipse's radii, times the paste mask."""
    s = ((ellipse_radius(cfg, size, device) - RIM_INNER) / (RIM_OUTER - RIM_INNER)).clamp(0, 1)
    return (s * s * (3 - 2 * s))[None, None] * face_mask(cfg, size, device)


def rim_bias(v: torch.Tensor, x: torch.Tensor, ring: torch.Tensor) -> torch.Tensor:
    """The outline all faces of a batch share: the batch mean of ``v - x`` (B, 3, S, S) on the
    ring (:func:`rim_weight`), squared and averaged over the ring's weight and the channels."""
    common = (v - x).mean(0) * ring[0]
    return common.pow(2).sum() / (3 * ring.sum())


@torch.no_grad()
def drop_common_rim(gen: EigenGenerator, mapping: MappingNetwork, u: torch.Tensor, keep_proj: torch.Tensor) -> float:
    """Take the outline all keyed faces share out of the mapping's bias, in closed form: the
    keyed part's mean over the codes ``u`` (N, 128), rendered by the face model, times the
    ring (:func:`rim_weight` at the face model's resolution), projected back onto the face
    model's coefficients and the replaced directions, and subtracted. Returns the norm of
    what was subtracted (in coefficients)."""
    w_bar = (mapping(u)[:, 0] @ keep_proj).mean(0)
    ring = gen.cfg.crop_box(rim_weight(gen.cfg, gen.cfg.res, u.device)).expand(1, 3, -1, -1).flatten()
    delta = (((w_bar @ gen.basis.T) * ring) @ gen.basis) @ keep_proj
    _fold_into_style(mapping, torch.eye(len(delta), device=u.device), shift=-delta)
    return float(delta.norm())


def linkability_hinge(e: torch.Tensor, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``e`` (k * n, d) unit SFace embeddings of the virtual faces of n photos under k keys
    (key-major), ``z`` (n, d) the photos' own unit embeddings, ``labels`` (n,) their people:
    the mean over faces of max(0, cos(e, own z) - mean cos(e, z of the batch's other people))."""
    n = len(z)
    other = (labels[None, :] != labels[:, None]).repeat(len(e) // n, 1).to(e.dtype)  # (k * n, n)
    rest = (e @ z.T * other).sum(1) / other.sum(1).clamp_min(1)
    return torch.relu((e * z.repeat(len(e) // n, 1)).sum(1) - rest).mean()


def spread_frame(w0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The principal frame of the tuning's spread prior (``prior_frame`` "principal"): for
    the keyed part ``w0`` (N, k) the mapping gives the train codes at the start, its mean
    (k,), its principal directions (k, k, orthonormal columns) and its spread (standard
    deviation) along each (k,), the directions it does not span floored at the smallest
    spread along those it does.

    Why: the mapping is affine from the 128-d code, so the keyed part spans 128 of the
    replaced part's directions (kfaar-v2: 232 of 256) and has no spread along the rest. The
    shipped recipe's prior reads each face-model coefficient's batch RMS against its start
    spread, and coefficients that lie almost wholly outside what the code spans start with a
    spread near 0: kfaar-v2's prior reads 0.5 at its start and 10-240 after the sharpened-refiner
    tunings of 2026-11-27, while no spread the code spans moved by more than 2x. Measured here
    about the start mean, kfaar-v2's keyed faces (real codes' frame, 4 keys) read 0.11."""
    mean = w0.mean(0)
    _, sv, vh = torch.linalg.svd((w0 - mean).double(), full_matrices=True)
    sigma = torch.zeros(len(vh), dtype=torch.float64, device=w0.device)
    sigma[: len(sv)] = sv / max(1, len(w0) - 1) ** 0.5
    spanned = sigma > 1e-3 * sigma[0]
    floor = sigma[spanned].min() if bool(spanned.any()) else sigma.new_tensor(1e-6)  # else no spread at all
    return mean, vh.T.to(w0.dtype).contiguous(), sigma.clamp_min(floor).to(w0.dtype)


def _refiner_grad_weight(bundle: ModelBundle) -> float:
    """The edge term's weight the bundle's refiner was fitted with (:func:`fit_refiner`; 1.0
    where it does not say): what later training holds the refiner to its objective with."""
    return float((bundle.info.get("refiner") or {}).get("grad_weight", 1.0))


def check_refiner_tuning(refiner_lr: float, anchor: float, anchor_to: str) -> None:
    """:func:`tune_fidelity`'s refiner options that only mean something together; ValueError
    for a combination that would do nothing, silently (the command line checks it before it
    loads anything)."""
    if anchor > 0 and not refiner_lr > 0:
        raise ValueError("anchor regularises the refiner's tuning: give it a refiner_lr > 0")
    if anchor_to not in ("real", "self"):
        raise ValueError(f"anchor_to is 'real' or 'self', got {anchor_to!r}")
    if anchor_to == "self" and not anchor > 0:
        raise ValueError("anchor_to 'self' says what the anchor holds the refiner to: give it an anchor > 0")


def _train_device(device: str) -> torch.device:
    """The device a training step runs on; on CUDA with TF32 and cuDNN's autotuner on."""
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda': torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return dev


def tune_fidelity(bundle: ModelBundle, train: FaceSet, *, steps: int = 1000, batch: int = 16, lr: float = 1e-2,
                  prior: float = 0.1, anon: float = 1.0, anon_margin: float = 0.2, diversity: float = 0.0,
                  diversity_margin: float = 0.2, consistency: float = 0.0, consistency_margin: float = 0.5,
                  prior_frame: str = "coefficients", refiner_lr: float = 0.0, anchor: float = 0.0,
                  anchor_to: str = "real", adversarial: float = 0.0,
                  rim: float = 0.0, unlink: float = 0.0, landmark_offsets: bool = False,
                  max_seconds: float | None = None,
                  device: str = "cpu",
                  key_pool: int = 256, seed: int = 20261126, progress: bool = True) -> dict:
    """Fine-tune the mapping so the rendered face *is* the keyed identity to SFace.

    The regression of step 4 predicts what a person's face looks like on average; it does
    not make SFace(v) match z'_K (cosine ~0.3), so two photos of one person under one key
    look less alike than their virtual identities are (those agree for 98% of dev pairs).
    Here the mapping's affine map alone is trained on train faces under random keys with
    ``1 - cos(SFace(v), z'_K)`` through the differentiable SFace (``SFaceTorch``), the face
    model fixed. A prior keeps each replaced coordinate's batch RMS within the spread the
    mapping gave it at the start (``prior_frame`` "coefficients", the shipped recipe's: per
    face-model coefficient; "principal": about the start mean along the keyed part's
    principal directions, :func:`spread_frame`), so faces stay in the range real identities span; an anonymity hinge
    ``anon · max(0, cos(SFace(v), z) - anon_margin)`` pushes the few faces that still
    resemble their person away from them; optional hinges ask that two keys' faces of one
    photo be two people to SFace (``diversity``: cosine below ``diversity_margin``; each step
    then renders a second key) and that one person's two photos under one key be one
    (``consistency``: cosine above ``consistency_margin``; batches are then pairs of photos
    of train identities with two or more); the output is
    confined to the replaced directions (it is multiplied by I - E and folded back into the
    style affine), so pose, expression and lighting stay the input's.

    With ``refiner_lr`` > 0 the detail refiner is tuned by the same losses too (its own
    learning rate), ``anchor`` x its own objective (:func:`detail_loss` of the rendering of a
    real train face against that face, weighted as :func:`fit_refiner` weighted it) keeping it
    a detail renderer rather than a pattern SFace alone likes. ``anchor_to`` "self" anchors it
    to its own rendering at the start instead (the same loss against a frozen copy's output):
    a refiner sharpened by :func:`sharpen_refiner` keeps its detail, where the real faces' L1
    pulls it back to their blurred mean (measured on the GPU: 1,880 steps of anchor 20 took a
    sharpened refiner's held-out detail from 3.1 back to 1.7 grey levels, its L1 from 0.072 to
    kfaar-v2's 0.060); ``adversarial`` > 0 adds a
    patch discriminator's non-saturating loss on the rendered face box (before the code
    carrier, so it cannot learn to hide the code) against real train face boxes. ``rim`` > 0
    adds an outline prior: ``rim`` x the squared batch mean of (virtual minus input) on the
    mask's outer ring (:func:`rim_weight`). The tuned keyed part had learned a common dark
    outline just inside the ellipse (``tools/rim_profile.py``: -31 to -41 grey levels at 0.9-1.1 of its radii on 200 dev
    faces, which the colour shift turned into a face +8 to +38 brighter inside): the same for
    every key, so not identity, but the visible rim of the shipped model. Per-face
    differences there are left free: only what all faces share is penalised. With ``rim``
    the common outline is first taken out of the mapping's bias in closed form
    (:func:`drop_common_rim`, over 1,000 train faces under 4 keys of the pool); the prior
    then holds it off while the other losses adapt. Measured:
    the outline goes, but SFace links the faces to their originals more often (attacker AUC
    0.58 -> 0.64-0.65 in ``kfaar eval``), so the shipped recipe leaves it off
    (docs/MODEL_CARD.md, "Tried in the session after step 12").
    ``unlink`` > 0 adds a linkability hinge: each face's SFace cosine to its own person minus
    its mean cosine to the batch's other people, above 0, so that it is no closer to the
    one than to the others (what an attacker ranking originals by SFace exploits; the
    anonymity hinge only bounds the cosine itself). Measured with the rim prior: it did not
    bring SFace's AUC back (0.640).
    ``landmark_offsets``: the pose warp is fed the train crops' landmark nose offsets, as the
    full-photo pipeline feeds the detector's (default: the warp reads them from the face, as
    step 10 was tuned). ``max_seconds`` stops early (the steps
    run are recorded: pass them as ``steps`` to repeat the run); ``device`` "cuda" keeps the crops and every
    network on the GPU — the GPU recipe (docs/MODEL_CARD.md). The bundle comes back on the CPU."""
    import time

    from tqdm import tqdm

    from kfaar.models.sface_torch import SFaceTorch
    from kfaar.ops.projection import ProjectionParams, Whitening, project
    from kfaar.train import losses as L

    dev = _train_device(device)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    gen, mapping, space = bundle.generator, bundle.mapping, bundle.space
    tune_refiner = refiner_lr > 0
    if (tune_refiner or anchor > 0) and getattr(gen, "refiner", None) is None:
        raise ValueError("refiner_lr and anchor tune the detail refiner; this bundle's generator has none")
    check_refiner_tuning(refiner_lr, anchor, anchor_to)
    if prior_frame not in ("coefficients", "principal"):
        raise ValueError(f"prior_frame is 'coefficients' or 'principal', got {prior_frame!r}")
    grad_weight = _refiner_grad_weight(bundle)
    for m in (gen, mapping, space):
        m.to(dev)
    k = gen.cfg.n_components
    keep_proj = (torch.eye(k, dtype=torch.float64, device=dev) - gen.edit.double()).float()  # onto the replaced part
    whitening = Whitening(*(t.cpu().numpy().astype(np.float32) for t in (space.mean, space.whiten, space.color)))
    rng = np.random.default_rng(seed)
    keys = [ProjectionParams.from_seed(rng.bytes(32)) for _ in range(key_pool)]
    sface = SFaceTorch().to(dev).eval().requires_grad_(False)
    z_all = np.ascontiguousarray(train.embeddings, np.float32)

    def keyed(rows: np.ndarray, picks) -> torch.Tensor:
        """z'_K of the train photos ``rows`` under each of the pool's keys ``picks``, key-major."""
        return torch.cat([torch.from_numpy(project(np.ascontiguousarray(z_all[rows]), keys[i], whitening=whitening))
                          for i in picks]).to(dev)

    crops = _Crops(train.crops, dev)
    offsets = None
    if landmark_offsets:
        from kfaar.faces.align import nose_offset

        if not gen.takes_offset:
            raise ValueError("landmark_offsets feed the pose warp; this bundle's generator has none")
        if train.landmarks is None:
            raise ValueError("landmark_offsets: these train faces carry no landmarks (the faces cache has them)")
        offsets = torch.from_numpy(nose_offset(train.landmarks).astype(np.float32)).to(dev)
    if consistency > 0:
        pairs = first_pairs(train.labels)
        if len(pairs) == 0 or batch < 2:
            raise ValueError("consistency needs identities with two photos and a batch of at least 2")
    with torch.no_grad():  # the prior's scale: the spread the mapping gives the replaced part at the start
        u0 = space.to_code(torch.from_numpy(z_all).to(dev))
        w0 = mapping(u0)[:, 0] @ keep_proj
        if prior_frame == "principal":
            origin, frame, ref = spread_frame(w0)
        else:  # per coefficient, about 0
            frame, ref = None, w0.std(0).clamp_min(1e-6)
    style = mapping.styles[0]
    gen.requires_grad_(False)
    for p in mapping.parameters():
        p.requires_grad_(False)
    style.weight.requires_grad_(True)
    style.bias.requires_grad_(True)
    groups = [{"params": [style.weight, style.bias], "lr": lr}]
    start = None  # the refiner as it was, where the anchor holds it to itself
    if tune_refiner:
        gen.refiner.requires_grad_(True).train()
        groups.append({"params": list(gen.refiner.parameters()), "lr": refiner_lr})
        anchor_pairs = _RefinerPairs(gen, crops)  # the anchor's real faces
        if anchor_to == "self":
            start = copy.deepcopy(gen.refiner).requires_grad_(False).eval()
    if rim > 0:
        ring = rim_weight(gen.cfg, train.crops.shape[1], dev)
        pick = np.random.default_rng(seed).choice(len(z_all), min(1000, len(z_all)), replace=False)
        rim_dropped = drop_common_rim(gen, mapping, space.to_code(keyed(pick, range(min(4, key_pool)))), keep_proj)
    opt = torch.optim.Adam(groups)
    if adversarial > 0:
        from kfaar.models.discriminator import Discriminator

        disc = Discriminator().to(dev).train()
        d_opt = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.0, 0.99))
    log_rows, t0 = [], time.monotonic()
    bar = tqdm(range(steps), desc="fidelity", disable=not progress, mininterval=1.0 if dev.type == "cpu" else 15.0)
    for step in bar:
        if max_seconds is not None and time.monotonic() - t0 > max_seconds:
            log.info("fidelity tuning: stopped by max_seconds after %d steps", step)
            break
        if consistency > 0:  # batch // 2 people, two photos each: [first photos | second photos]
            people = pairs[torch.randint(len(pairs), (batch // 2,), generator=g).numpy()]
            idx = np.concatenate([people[:, 0], people[:, 1]])
        else:
            idx = torch.randint(len(z_all), (batch,), generator=g).numpy()
        n = len(idx)
        n_keys = 2 if diversity > 0 else 1  # the diversity term compares two keys on the same photos
        picks = ([int(torch.randint(key_pool, (1,), generator=g))] if n_keys == 1  # the shipped recipe's draws
                 else torch.randperm(key_pool, generator=g)[:n_keys].tolist())
        zk_t = keyed(idx, picks)
        u = space.to_code(zk_t)  # u' = whiten (z'_K - mean)
        x = crops(idx).repeat(n_keys, 1, 1, 1)
        w = mapping(u)[:, 0] @ keep_proj
        off = None if offsets is None else offsets[torch.from_numpy(idx).to(dev)].repeat(n_keys)
        v = gen(x, w[:, None], u if gen.code_carrier is not None else None, off)
        e = F.normalize(sface(v), dim=1)
        fid = 1 - (e * F.normalize(zk_t, dim=1)).sum(1).mean()
        spread = w if frame is None else (w - origin) @ frame
        spread_loss = torch.relu((spread / ref).pow(2).mean(0) - 1).mean()
        z_own = F.normalize(torch.from_numpy(z_all[idx]).to(dev), dim=1).repeat(n_keys, 1)
        anon_loss = torch.relu((e * z_own).sum(1) - anon_margin).mean()
        loss = fid + prior * spread_loss + anon * anon_loss
        row = dict.fromkeys(("div", "cons", "anchor", "adv", "d", "rim", "unlink"), 0.0)
        if diversity > 0:  # two keys' faces of one photo should be two people
            div_loss = torch.relu((e[:n] * e[n:]).sum(1) - diversity_margin).mean()
            loss = loss + diversity * div_loss
            row["div"] = div_loss.item()
        if consistency > 0:  # one person's two photos under one key should be one virtual person
            photo1, photo2 = (torch.cat([e[k * n + j * (n // 2): k * n + (j + 1) * (n // 2)] for k in range(n_keys)])
                              for j in (0, 1))
            cons_loss = torch.relu(consistency_margin - (photo1 * photo2).sum(1)).mean()
            loss = loss + consistency * cons_loss
            row["cons"] = cons_loss.item()
        if unlink > 0:  # no closer to its own person than to the batch's other people
            unlink_loss = linkability_hinge(e, z_own[:n], torch.from_numpy(np.asarray(train.labels)[idx]).to(dev))
            loss = loss + unlink * unlink_loss
            row["unlink"] = unlink_loss.item()
        if rim > 0:  # no outline all faces share
            rim_loss = rim_bias(v, x, ring)
            loss = loss + rim * rim_loss
            row["rim"] = rim_loss.item()
        if anchor > 0:  # the refiner still renders real faces' detail
            real_idx = torch.randint(len(z_all), (batch,), generator=g).numpy()
            face, target = anchor_pairs(real_idx)
            if start is not None:  # its own detail at the start, not the real face's
                with torch.no_grad():
                    target = start(face)
            pix, edge = detail_loss(gen.refiner(face), target, anchor_pairs.weight)
            loss = loss + anchor * (pix + grad_weight * edge)
            row["anchor"] = pix.item()
        if adversarial > 0:  # realism of the rendered face box, judged before the carrier writes
            fake = gen.cfg.crop_box(gen.face(x, w[:, None], off))
            disc.requires_grad_(False)
            adv_loss = L.g_adv(disc(fake))
            loss = loss + adversarial * adv_loss
            row["adv"] = adv_loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if adversarial > 0:
            disc.requires_grad_(True)
            d = L.d_loss(disc(gen.cfg.crop_box(x[:n])), disc(fake.detach()))
            d_opt.zero_grad()
            d.backward()
            d_opt.step()
            row["d"] = d.item()
        log_rows.append((fid.item(), spread_loss.item(), anon_loss.item(), row["div"], row["cons"], row["anchor"],
                         row["adv"], row["d"], row["rim"], row["unlink"]))
        if step % 10 == 0:
            f, s, a, d_, c, an, ad, dd, ri, ul = np.mean(log_rows[-10:], 0)
            bar.set_postfix(cos=f"{1 - f:.3f}", prior=f"{s:.3f}", anon=f"{a:.3f}", div=f"{d_:.3f}", cons=f"{c:.3f}",
                            **({"anchor": f"{an:.4f}"} if anchor > 0 else {}),
                            **({"rim": f"{ri:.4f}"} if rim > 0 else {}),
                            **({"unlink": f"{ul:.3f}"} if unlink > 0 else {}),
                            **({"adv": f"{ad:.3f}", "d": f"{dd:.3f}"} if adversarial > 0 else {}))
    done = len(log_rows)
    if done == 0:
        raise RuntimeError("fidelity tuning ran no step (max_seconds too small?)")
    _fold_into_style(mapping, keep_proj)  # confine the output to the replaced directions for good
    for m in (gen, mapping, space):
        m.cpu().eval().requires_grad_(False)
    first, last = np.mean(log_rows[: max(1, done // 10)], 0), np.mean(log_rows[-max(1, done // 10):], 0)
    info = {"steps": done, "batch": batch, "lr": lr, "prior": prior, "anon": anon, "anon_margin": anon_margin,
            "diversity": diversity, "diversity_margin": diversity_margin, "consistency": consistency,
            "consistency_margin": consistency_margin, "key_pool": key_pool,
            **({"prior_frame": prior_frame} if frame is not None else {}),
            **({"warp_offsets": "landmarks"} if landmark_offsets else {}),
            "sface_cos_first": float(1 - first[0]), "sface_cos_last": float(1 - last[0]),
            "prior_last": float(last[1]), "anon_hinge_first": float(first[2]), "anon_hinge_last": float(last[2]),
            "diversity_hinge_first": float(first[3]), "diversity_hinge_last": float(last[3]),
            "consistency_hinge_first": float(first[4]), "consistency_hinge_last": float(last[4]),
            **({"rim": rim, "rim_dropped": rim_dropped, "rim_first": float(first[8]), "rim_last": float(last[8])}
               if rim > 0 else {}),
            **({"unlink": unlink, "unlink_first": float(first[9]), "unlink_last": float(last[9])}
               if unlink > 0 else {})}
    if tune_refiner or adversarial > 0 or dev.type != "cpu" or max_seconds is not None:  # the shipped recipe's info as it was
        info.update({"device": str(dev), "train_faces": int(len(z_all)), "steps_asked": steps,
                     "seconds": round(time.monotonic() - t0, 1),
                     "refiner_lr": refiner_lr, "anchor": anchor, **({"anchor_to": "self"} if start is not None else {}),
                     "adversarial": adversarial,
                     "anchor_l1_first": float(first[5]), "anchor_l1_last": float(last[5]),
                     "adversarial_first": float(first[6]), "adversarial_last": float(last[6]),
                     "discriminator_last": float(last[7])})
    bundle.info["fidelity"] = info
    log.info("fidelity tuning: SFace cosine to z'_K %.3f -> %.3f in %d steps", info["sface_cos_first"],
             info["sface_cos_last"], done)
    return info


def _reconfigured(gen: EigenGenerator, new_state: set[str] = frozenset(), **changes) -> EigenGenerator:
    """``gen`` with its config changed by ``changes``, every tensor it had carried over
    (``new_state``: the ones the change adds, left for the caller to fill)."""
    from dataclasses import replace

    out = EigenGenerator(replace(gen.cfg, **changes))
    missing, unexpected = out.load_state_dict(gen.state_dict(), strict=False)
    if unexpected or set(missing) - set(new_state):
        raise RuntimeError(f"generator state does not carry over: missing {missing}, unexpected {unexpected}")
    return out.eval()


def set_seam(bundle: ModelBundle, res: int, screen: float = EigenConfig.seam_screen) -> None:
    """Give the generator the seamless paste (models/eigen.py ``seam_operator``) on a ``res``-px
    grid with screening ``screen`` (0: take it away). Nothing is fitted: the correction follows
    from the mask; tune the mapping with it in place (``tune_fidelity``), as the recognisers
    lose the outline the paste used to draw."""
    gen = bundle.generator
    if not isinstance(gen, EigenGenerator):
        raise TypeError("set_seam needs an eigen bundle")
    if res < 0 or (res and not screen > 0):
        raise ValueError(f"the seam grid needs res >= 0 and screen > 0, got {res} and {screen}")
    bundle.generator = _reconfigured(gen, seam_res=int(res), seam_screen=float(screen))
    bundle.info["seam"] = {"res": int(res), "screen": float(screen)}


def fit_reader(bundle: ModelBundle, train: FaceSet, *, faces: int = 3000,
               qualities: tuple[int, ...] = (50, 65, 75, 85, 95), shift: float = 0.5, ridge: float = 1e-4,
               holdout: float = 0.1, seed: int = 20261126) -> dict:
    """Give the code carrier a learned read (``carrier_read="learned"``, models/carrier.py).

    The exact read (the basis rows the code is written with) is exact only for the uint8
    crop as written: clipping to [0, 255] loses part of the code where the face is bright or
    dark, and a shared photo is re-encoded, and JPEG quantizes chroma, where the code lives,
    hardest. Here virtual crops of ``faces`` train faces (a seeded key per 64) are rendered,
    each kept as it is and saved as a JPEG of a quality drawn from ``qualities``, both moved
    by up to ``shift`` px (what re-alignment leaves), and a ridge regression (``ridge`` x the
    normal matrix's mean diagonal) from the carrier's pooled cells to the unit code u' is fitted.
    ``holdout`` of the identities measure it (cosine to u', exact vs learned, as written and
    as JPEG q75) before it is refitted on all. The generator's output is unchanged; the read
    is fitted to this generator's faces, so refit it after tuning the generator again."""
    from kfaar.faces.image import jpeg_roundtrip
    from kfaar.keys import Key
    from kfaar.models.engine import KfaarEngine, _u8_to_tensor
    from kfaar.ops import warp_affine

    gen = bundle.generator
    if not isinstance(gen, EigenGenerator) or gen.code_carrier is None:
        raise TypeError("fit_reader needs an eigen bundle with a code carrier")
    if faces < 64 or not qualities or not all(1 <= q <= 100 for q in qualities) or shift < 0 or ridge <= 0:
        raise ValueError(f"fit_reader: faces >= 64, qualities in 1..100, shift >= 0 and ridge > 0; got "
                         f"{faces}, {qualities}, {shift}, {ridge}")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(train.labels), min(faces, len(train.labels)), replace=False))
    eng, carrier = KfaarEngine(bundle), gen.code_carrier
    mask = gen.mask(eng.crop_size, "cpu")

    def pooled(crops: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return carrier.pooled(_u8_to_tensor(crops), mask).double().numpy()

    def moved(v: np.ndarray) -> np.ndarray:
        m = np.float64([[1, 0, rng.uniform(-shift, shift)], [0, 1, rng.uniform(-shift, shift)]])
        return warp_affine(v, m, v.shape[1::-1])

    feats, targets, probe, row_face = [], [], [], []  # row_face: each row's position in idx
    for i in range(0, len(idx), 64):
        j = idx[i: i + 64]
        key = Key.from_bytes(rng.bytes(32))
        z = np.ascontiguousarray(train.embeddings[j])
        v, u = eng.generate(train.crops[j], z, key), eng.keyed_code(z, key)
        u = u / np.linalg.norm(u, axis=1, keepdims=True)
        feats += [pooled(np.stack([moved(a) for a in v])),
                  pooled(np.stack([moved(jpeg_roundtrip(a, int(rng.choice(qualities)))) for a in v]))]
        targets += [u, u]
        row_face += [np.arange(i, i + len(j))] * 2
        probe.append((pooled(v), pooled(np.stack([jpeg_roundtrip(a, 75) for a in v]))))
    x, y = np.concatenate(feats), np.concatenate(targets)
    ids = np.unique(train.labels[idx])
    held = set(rng.choice(ids, max(1, int(holdout * len(ids))), replace=False).tolist())
    held_face = np.array([lab in held for lab in train.labels[idx]])
    row_face = np.concatenate(row_face)

    def solve(rows: np.ndarray) -> np.ndarray:
        a = x[rows]
        lam = ridge * float(np.mean(a * a)) * len(a)  # relative to the normal matrix's mean diagonal
        return np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ y[rows]).T  # (dim, 3 r r)

    def cos(read: np.ndarray, f: np.ndarray, u: np.ndarray) -> float:
        r = f @ read.T
        return float(np.median(np.sum(r * u, 1) / np.linalg.norm(r, axis=1)))

    learned = solve(~held_face[row_face])
    exact = carrier.basis[: carrier.dim].double().numpy()
    plain = np.concatenate([p[0] for p in probe])[held_face]
    jpeg75 = np.concatenate([p[1] for p in probe])[held_face]
    u_held = np.concatenate(targets[::2])[held_face]
    info = {"faces": int(len(idx)), "qualities": [int(q) for q in qualities], "shift": float(shift),
            "ridge": float(ridge), "heldout_faces": int(held_face.sum()),
            "heldout_cos_exact": cos(exact, plain, u_held), "heldout_cos_learned": cos(learned, plain, u_held),
            "heldout_cos_exact_jpeg75": cos(exact, jpeg75, u_held),
            "heldout_cos_learned_jpeg75": cos(learned, jpeg75, u_held)}
    log.info("reader: held-out median cosine to u' exact %.3f -> learned %.3f; after JPEG q75 %.3f -> %.3f",
             info["heldout_cos_exact"], info["heldout_cos_learned"], info["heldout_cos_exact_jpeg75"],
             info["heldout_cos_learned_jpeg75"])
    out = _reconfigured(gen, new_state={"code_carrier.reader"}, carrier_read="learned")
    out.code_carrier.reader.copy_(torch.from_numpy(solve(np.ones(len(x), bool))).float())
    bundle.generator = out
    bundle.info["reader"] = info
    return info


def fit_pose_warp(bundle: ModelBundle, train: FaceSet, gain: float, *, ridge: float = 1.0, holdout: float = 0.1,
                  seed: int = 20261126) -> dict:
    """Give the generator its pose warp (models/eigen.py ``EigenGenerator.pose_warp``).

    The identity split replaces most of what makes a turned face look turned (FaceMesh's yaw
    of the virtual face was 0.22x the input's on 150 dev crops). The input's nose offset from
    its eye-mouth midline, a good sign of its yaw (|correlation| with FaceMesh's yaw 0.94 on
    those crops), is read from its face coefficients by a ridge regression fitted here on the
    train crops and their mirror images (offset negated) against YuNet's landmarks — our own
    detector's, not a judge's — and the rendered face is shifted by ``gain`` x that offset.
    ``holdout`` of the identities measure the read-out (R^2) before it is refitted on all."""
    from kfaar.faces.align import nose_offset

    gen = bundle.generator
    if not isinstance(gen, EigenGenerator):
        raise TypeError("fit_pose_warp needs an eigen bundle")
    if train.landmarks is None:
        raise ValueError("the pose warp is fitted on the train crops' landmarks, and these faces have none "
                         "(the faces cache has them: kfaar data prepare)")
    if not gain > 0:
        raise ValueError(f"gain must be > 0, got {gain}")
    warped = _reconfigured(gen, new_state={"nose"}, pose_warp=float(gain))
    boxes, labels = _split_boxes(gen, train, mirror=True)  # each face and its mirror image
    with torch.no_grad():
        c = gen.box_coefficients(boxes).double().numpy()
    del boxes
    d = nose_offset(train.landmarks).astype(np.float64)
    y = np.concatenate([d, -d])  # the mirror image's nose is off the other way
    x = np.c_[c, np.ones(len(c))]
    ids = np.unique(labels)
    held = np.isin(labels, np.random.default_rng(seed).choice(ids, max(1, int(holdout * len(ids))), replace=False))

    def solve(rows: np.ndarray) -> np.ndarray:
        return np.linalg.solve(x[rows].T @ x[rows] + ridge * np.eye(x.shape[1]), x[rows].T @ y[rows])

    r = solve(~held)
    r2 = 1 - float(np.mean((x[held] @ r - y[held]) ** 2) / np.var(y[held]))
    r = solve(np.ones(len(y), bool))
    pixels = gen.basis.double().numpy() @ r[:-1]  # folded into pixel weights: offset = box . pixels + bias
    bias = r[-1] - float(gen.mean.double().numpy() @ pixels)
    warped.nose.copy_(torch.from_numpy(np.append(pixels, bias)).float())
    bundle.generator = warped
    info = {"gain": float(gain), "ridge": ridge, "train_faces": int(len(d)), "offset_std_px": float(d.std()),
            "heldout_r2": r2}
    bundle.info["pose_warp"] = info
    log.info("pose warp: nose offset read-out R^2 %.3f on held-out identities (offset std %.2f px)", r2, d.std())
    return info


class _RefinerPairs:
    """The refiner's training data: (face-model face at 64 px, the real face box at 128 px)
    for train crops, with optional horizontal flips (the face box is symmetric about the
    crop's vertical midline); ``weight`` (1, 1, 2 res, 2 res) is the paste mask on the face
    box, where its objective counts."""

    def __init__(self, gen: EigenGenerator, crops: _Crops):
        self.gen, self.crops = gen, crops
        self.weight = gen.cfg.crop_box(gen.mask(2 * gen.cfg.res, crops.device))

    def __call__(self, idx: np.ndarray, flip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.crops(idx)
        if flip is not None:
            x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
        with torch.no_grad():
            face = self.gen.box_face(self.gen.coefficients(x))
        return face, self.gen.cfg.crop_box(x)


def _refiner_pairs(gen: EigenGenerator, train: FaceSet, holdout: int, g: torch.Generator,
                   device: torch.device = torch.device("cpu")) -> tuple[np.ndarray, np.ndarray, _RefinerPairs]:
    """(train rows to sample, ``holdout`` held-out rows of identities never sampled, pairs)."""
    r = gen.cfg.res
    if train.crops.shape[1] != 2 * r:
        raise ValueError(f"the refiner learns {2 * r}-px detail; the face set has {train.crops.shape[1]}-px crops")
    labels = np.asarray(train.labels)
    ids = np.unique(labels)
    n_held = max(1, min(holdout // 2, len(ids) // 10))  # identities; at most a tenth of them
    held_ids = set(ids[torch.randperm(len(ids), generator=g).numpy()[:n_held]].tolist())
    held = np.flatnonzero([lab in held_ids for lab in labels])[:holdout]
    return np.setdiff1d(np.arange(len(labels)), held), held, _RefinerPairs(gen, _Crops(train.crops, device))


def detail_energy(box: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, 3, h, w) boxes in [-1, 1], (1, 1, h, w) weight -> (B,) their fine detail: the mean
    absolute second difference of the grey level (horizontal and vertical, in grey levels),
    weighted per pixel (inside the refiner's region, 256 held-out train faces: 3.9 for the real
    faces, 1.7 for kfaar-v2's refiner's rendering of their face-model faces)."""
    grey = (0.299 * box[:, 0] + 0.587 * box[:, 1] + 0.114 * box[:, 2]) * 127.5
    w = weight[0, 0]
    dx = (grey[:, :, 2:] - 2 * grey[:, :, 1:-1] + grey[:, :, :-2]).abs() * w[:, 1:-1]
    dy = (grey[:, 2:] - 2 * grey[:, 1:-1] + grey[:, :-2]).abs() * w[1:-1]
    return (dx.sum((1, 2)) / w[:, 1:-1].sum() + dy.sum((1, 2)) / w[1:-1].sum()) / 2


@torch.no_grad()
def _held_out(net: torch.nn.Module, pair: _RefinerPairs, held: np.ndarray) -> tuple[float, float, float, float]:
    """The refiner on the held-out faces: (L1, edge L1 inside the paste mask, its detail
    energy, the real faces'), means over the faces; the refiner is left in train mode."""
    net.eval()
    rows = []
    for i in range(0, len(held), 64):
        face, target = pair(held[i: i + 64])
        out = net(face)
        rows.append([float(t) * len(face) for t in detail_loss(out, target, pair.weight)]
                    + [float(detail_energy(out, net.weight).sum()), float(detail_energy(target, net.weight).sum())])
    net.train()
    return tuple(float(v) for v in np.sum(rows, 0) / len(held))


def fit_refiner(bundle: ModelBundle, train: FaceSet, *, channels: int = 48, layers: int = 4, steps: int = 3000,
                batch: int = 16, lr: float = 2e-3, grad_weight: float = 1.0, holdout: int = 256,
                seed: int = 20261126, progress: bool = True) -> dict:
    """Train the generator's detail refiner (models/eigen.py ``DetailRefiner``) and put it in.

    The face model renders a 64-px face; upsampled bilinearly it is soft. The refiner learns,
    on the train crops, to turn the face model's reconstruction of a face (its coefficients
    rendered at 64 px) into that face at 128 px: L1 on the pixels plus ``grad_weight`` x L1
    on their horizontal and vertical differences (edges), inside the face mask, random
    horizontal flips. It sees only rendered face-model faces, so at inference it sharpens the
    virtual face without access to the input's identity. The face model and mapping are
    left as they are; a refiner the bundle already has is replaced by a new one, trained
    from the bilinear start; ``holdout`` faces of identities never sampled measure the gain."""
    from dataclasses import replace

    from tqdm import tqdm

    gen = bundle.generator
    if not isinstance(gen, EigenGenerator):
        raise TypeError("fit_refiner needs an eigen bundle")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    refined = EigenGenerator(replace(gen.cfg, refine_channels=channels, refine_layers=layers))
    state = {k: v for k, v in gen.state_dict().items() if not k.startswith("refiner.")}  # a refiner starts anew
    missing, unexpected = refined.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("refiner.") for k in missing):
        raise RuntimeError(f"generator state does not carry over: missing {missing}, unexpected {unexpected}")
    refined.requires_grad_(False)
    net = refined.refiner.requires_grad_(True).train()
    pool, held, pair = _refiner_pairs(refined, train, holdout, g)

    before = _held_out(net, pair, held)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    log_rows, bar = [], tqdm(range(steps), desc="refiner", disable=not progress)
    for step in bar:
        idx = pool[torch.randint(len(pool), (batch,), generator=g).numpy()]
        face, target = pair(idx, torch.rand(batch, generator=g) < 0.5)
        pix, edge = detail_loss(net(face), target, pair.weight)
        loss = pix + grad_weight * edge
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        log_rows.append((pix.item(), edge.item()))
        if step % 10 == 0:
            p, e = np.mean(log_rows[-10:], 0)
            bar.set_postfix(l1=f"{p:.4f}", edge=f"{e:.4f}")
    after = _held_out(net, pair, held)
    net.eval()
    refined.requires_grad_(False).eval()
    bundle.generator = refined
    info = {"channels": channels, "layers": layers, "steps": steps, "batch": batch, "lr": lr,
            "grad_weight": grad_weight, "heldout_faces": int(len(held)),
            "heldout_l1_bilinear": before[0], "heldout_edge_bilinear": before[1],
            "heldout_l1": after[0], "heldout_edge": after[1], "heldout_detail_bilinear": before[2],
            "heldout_detail": after[2], "heldout_detail_real": after[3]}
    bundle.info["config"] = asdict(refined.cfg)
    bundle.info["refiner"] = info
    log.info("refiner: held-out L1 %.4f -> %.4f, edge L1 %.4f -> %.4f", before[0], after[0], before[1], after[1])
    return info


def sharpen_refiner(bundle: ModelBundle, train: FaceSet, *, steps: int = 1000, adversarial: float = 0.05,
                    batch: int = 16, lr: float = 1e-4, grad_weight: float | None = None, holdout: int = 256,
                    seed: int = 20261126, device: str = "cpu", progress: bool = True) -> dict:
    """Fine-tune the bundle's detail refiner against a conditional patch discriminator.

    Trained on L1 alone (:func:`fit_refiner`), the refiner renders the conditional mean of a
    face's detail: skin, eyelids and creases come out smooth (:func:`detail_energy` less than
    half of real faces'). Here it keeps its own objective (L1 + ``grad_weight`` x edge L1
    against the real face; ``grad_weight`` by default as :func:`fit_refiner` recorded it) plus
    ``adversarial`` x a hinge GAN loss: ``models/discriminator.py:
    ConditionalPatchDiscriminator`` judges the refined face box,
    pasted into the real crop's box through the face mask as the pipeline pastes it, given
    the face-model face it was rendered from; real: the crop's own box. Like the refiner
    itself, it sees only face-model faces, so the detail it adds is rendered, not the
    input's. Adam (betas 0.5, 0.99) at ``lr``, the discriminator at 4x; random flips. The
    face model, mapping and carrier are left as they are; ``holdout`` faces of identities
    never sampled measure L1 and detail energy before and after. ``device`` "cuda" runs it on
    the GPU (the crops uploaded once); the generator comes back on the CPU."""
    from tqdm import tqdm

    from kfaar.models.discriminator import ConditionalPatchDiscriminator

    gen = bundle.generator
    if not isinstance(gen, EigenGenerator) or gen.refiner is None:
        raise TypeError("sharpen_refiner needs an eigen bundle with a detail refiner (fit_refiner)")
    if steps < 1 or adversarial < 0:
        raise ValueError(f"sharpen_refiner needs steps >= 1 and adversarial >= 0, got {steps} and {adversarial}")
    grad_weight = _refiner_grad_weight(bundle) if grad_weight is None else grad_weight
    dev = _train_device(device)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    gen.to(dev).requires_grad_(False)
    pool, held, pair = _refiner_pairs(gen, train, holdout, g, dev)
    net = gen.refiner.requires_grad_(True).train()
    weight = pair.weight
    disc = ConditionalPatchDiscriminator().to(dev).train()
    g_opt = torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.99))
    d_opt = torch.optim.Adam(disc.parameters(), lr=4 * lr, betas=(0.5, 0.99))

    before = _held_out(net, pair, held)
    log_rows, bar = [], tqdm(range(steps), desc="sharpen", disable=not progress)
    for step in bar:
        idx = pool[torch.randint(len(pool), (batch,), generator=g).numpy()]
        face, target = pair(idx, torch.rand(batch, generator=g) < 0.5)
        cond = F.interpolate(face, scale_factor=2, mode="bilinear", align_corners=False)
        out = net(face)
        fake = weight * out + (1 - weight) * target
        d = F.relu(1 - disc(target, cond)).mean() + F.relu(1 + disc(fake.detach(), cond)).mean()
        d_opt.zero_grad()
        d.backward()
        d_opt.step()
        pix, edge = detail_loss(out, target, weight)
        adv = -disc(fake, cond).mean()
        loss = pix + grad_weight * edge + adversarial * adv
        g_opt.zero_grad()
        loss.backward()
        g_opt.step()
        log_rows.append((pix.item(), adv.item(), d.item()))
        if step % 10 == 0:
            p, a, dd = np.mean(log_rows[-10:], 0)
            bar.set_postfix(l1=f"{p:.4f}", adv=f"{a:.3f}", d=f"{dd:.3f}")
    after = _held_out(net, pair, held)
    net.requires_grad_(False).eval()
    gen.cpu().eval()
    first, last = (np.mean(rows, 0) for rows in (log_rows[: max(1, steps // 10)], log_rows[-max(1, steps // 10):]))
    info = {"steps": steps, "adversarial": adversarial, "batch": batch, "lr": lr, "grad_weight": grad_weight,
            "device": str(dev), "heldout_faces": int(len(held)), "heldout_l1_before": before[0], "heldout_l1": after[0],
            "heldout_detail_before": before[2], "heldout_detail": after[2], "heldout_detail_real": after[3],
            "adversarial_first": float(first[1]), "adversarial_last": float(last[1]),
            "discriminator_first": float(first[2]), "discriminator_last": float(last[2])}
    bundle.info["sharpened"] = info
    log.info("sharpen: held-out L1 %.4f -> %.4f, detail %.2f -> %.2f grey levels (real faces %.2f)",
             before[0], after[0], before[2], after[2], after[3])
    return info
