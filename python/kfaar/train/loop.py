"""The training loop: batches of same-identity pairs, random keys, every loss term logged.

One step:
    pairs (a_j, b_j) of one identity share key K_j (the identity transform with
    probability ``identity_key_prob``: the reconstruction case)
    u = W(z - mean);  u' = Q_K u;  z' = normalise(mean + C^1/2 u')
    v = G(x, M(u'), u');  e = SFace(v);  r = read(jitter(v))   (the code carrier, KVFA)
    G and M step on the weighted losses; then D steps on (x, v).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kfaar._atomic import atomic_write
from kfaar.models.discriminator import Discriminator
from kfaar.models.generator import Generator, GeneratorConfig
from kfaar.models.identity_space import IdentitySpace
from kfaar.models.keyed import KeyPool
from kfaar.models.mapping import MappingNetwork
from kfaar.models.sface_torch import SFaceTorch
from kfaar.train import losses as L
from kfaar.train.config import TrainConfig
from kfaar.train.data import FaceSet, identity_groups, load_faces

log = logging.getLogger(__name__)


class KfaarModel(nn.Module):
    """Everything shipped for inference: generator (attribute encoder, decoder, code carrier = the
    KVFA reader), mapping, identity space."""

    def __init__(self, gcfg: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.generator = Generator(gcfg)
        self.mapping = MappingNetwork(n_styles=gcfg.n_styles, style_dim=gcfg.style_dim)
        self.space = IdentitySpace()


def to_tensor(crops: np.ndarray, size: int, device) -> torch.Tensor:
    """(B, 128, 128, 3) uint8 -> (B, 3, size, size) float in [-1, 1]."""
    x = torch.from_numpy(crops).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1
    if x.shape[-1] != size:
        x = F.avg_pool2d(x, x.shape[-1] // size)
    return x


class Trainer:
    def __init__(self, cfg: TrainConfig, out_dir: str | os.PathLike, device: str = "cpu",
                 faces: FaceSet | None = None):
        self.cfg, self.out, self.device = cfg, Path(out_dir), torch.device(device)
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(cfg.seed)
        if self.device.type == "cpu":
            torch.set_num_threads(cfg.threads)
        self.faces = faces if faces is not None else load_faces("train", cfg.cache_dir, cfg.limit)
        gcfg = GeneratorConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.generator.items()})
        self.model = KfaarModel(gcfg).to(self.device)
        self.model.space.fit(self.faces.embeddings, cfg.whiten_eps)
        self.pool = KeyPool(cfg.key_pool, cfg.seed).matrices.to(self.device)  # (K, d, d)
        self.disc = Discriminator().to(self.device)
        self.sface = SFaceTorch().to(self.device).eval()
        g_params = [p for n, p in self.model.named_parameters() if not n.startswith("space")]
        self.opt_g = torch.optim.Adam(g_params, lr=cfg.lr, betas=cfg.betas)
        self.opt_d = torch.optim.Adam(self.disc.parameters(), lr=cfg.d_lr, betas=cfg.betas)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.step = 0
        groups = identity_groups(self.faces.labels)
        if not groups:
            raise ValueError("training faces: need identities with at least two photos for pairs")
        self.groups = groups
        self.amp = self.device.type == "cuda"
        self._fixed = None

    # ---------------------------------------------------------------- batches
    def sample_pairs(self, n_pairs: int) -> np.ndarray:
        """(2P,) face indices: a_0..a_{P-1}, then b_0..b_{P-1} (b_j another photo of a_j's person)."""
        gi = torch.randint(len(self.groups), (n_pairs,), generator=self.gen).tolist()
        a, b = [], []
        for g in gi:
            grp = self.groups[g]
            i, j = torch.randperm(len(grp), generator=self.gen)[:2].tolist()
            a.append(grp[i])
            b.append(grp[j])
        return np.asarray(a + b)

    # ---------------------------------------------------------------- one step
    def train_step(self) -> dict[str, float]:
        cfg, lw, dev = self.cfg, self.cfg.losses, self.device
        stage = cfg.stage_at(self.step)
        p = stage.batch_pairs
        idx = self.sample_pairs(p)
        x = to_tensor(self.faces.crops[idx], stage.size, dev)  # (B, 3, S, S)
        z = torch.from_numpy(self.faces.embeddings[idx]).to(dev)  # (B, d)
        ident_p = torch.rand(p, generator=self.gen) < cfg.identity_key_prob  # (P,)
        kidx = torch.randint(len(self.pool), (p,), generator=self.gen)
        q = self.pool[kidx].clone()  # (P, d, d)
        q[ident_p.to(dev)] = torch.eye(q.shape[-1], device=dev)
        q = torch.cat([q, q])  # (B, d, d): a pair shares its key
        ident = torch.cat([ident_p, ident_p]).to(dev)  # (B,)
        keyed = ~ident
        wrong = self.pool[torch.randint(len(self.pool), (2 * p,), generator=self.gen)]
        n_div = min(cfg.diversity_samples, int(keyed.sum()))
        q2 = self.pool[torch.randint(len(self.pool), (max(n_div, 1),), generator=self.gen)]
        jit_gen = torch.Generator().manual_seed(int(torch.randint(2**31, (1,), generator=self.gen)))

        space, m = self.model.space, self.model
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.amp):
            u = space.to_code(z)  # (B, d)
            u_k = torch.bmm(q, u[:, :, None])[:, :, 0]  # (B, d) keyed code
            z_virtual = F.normalize(space.from_code(u_k), dim=1)  # (B, d) target identity z'
            v, alpha = m.generator.synthesize(x, m.mapping(u_k), u_k)  # (B, 3, S, S), (B, d)
            parts: dict[str, torch.Tensor] = {}
            if ident.any():
                parts["recon_l1"] = F.l1_loss(v[ident], x[ident])
            parts["sync_low"] = L.sync_low(v, x)
            parts["sync_edge"] = L.sync_edge(v, x)
            if self.step >= cfg.adv_start and lw.adv > 0:
                parts["adv"] = L.g_adv(self.disc(v))
            r = m.generator.read_code(L.jitter(v.float(), jit_gen))  # (B, d) what KVFA reads after re-alignment
            parts["kvfa"] = (1 - L.cos(r, u_k)).mean()
            parts["carrier"] = alpha.pow(2).sum(1).mean()  # learn to paint faces that already carry u'
            rec_wrong = torch.bmm(wrong.transpose(1, 2), r[:, :, None])[:, :, 0]
            parts["kvfa_wrong"] = L.hinge_above(L.cos(rec_wrong, u), lw.wrong_margin)
        # SFace (the costliest part of a CPU step) runs every ``sface_every`` steps.
        use_id = self.step % cfg.sface_every == 0
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.amp and use_id):
            feats_v: list = []
            e = self.sface(v.float(), feats_v) if use_id else None  # (B, d)
            if use_id and ident.any():
                with torch.no_grad():
                    feats_x: list = []
                    self.sface(x[ident], feats_x)
                parts["recon_feat"] = L.feature_l1([f[ident] for f in feats_v], feats_x)
                parts["recon_id"] = (1 - L.cos(e[ident], z[ident])).mean()
            z_pair = torch.roll(z, p, 0)  # the other photo of the same person
            if use_id and keyed.any():
                e_pair = torch.roll(e, p, 0)
                parts["anon"] = L.hinge_above(L.cos(e[keyed], z[keyed]), lw.anon_margin) + L.hinge_above(
                    L.cos(e[keyed], z_pair[keyed]), lw.anon_margin)
                parts["fidelity"] = (1 - L.cos(e[keyed], z_virtual[keyed])).mean()
                parts["consistency"] = F.relu(lw.consistency_margin - L.cos(e[keyed], e_pair[keyed])).mean()
            if use_id and n_div > 0:
                sel = torch.nonzero(keyed)[:n_div, 0]
                u2 = torch.bmm(q2[:n_div], u[sel][:, :, None])[:, :, 0]
                v2 = m.generator(x[sel], m.mapping(u2), u2)
                e2 = self.sface(v2.float())
                parts["diversity"] = L.hinge_above(L.cos(e[sel], e2), lw.diversity_margin)
                parts["fidelity2"] = (1 - L.cos(e2, F.normalize(space.from_code(u2), dim=1))).mean()
            weights = {"fidelity2": lw.fidelity}
            total = sum(getattr(lw, k, weights.get(k, 0.0)) * val for k, val in parts.items())

        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()

        if lw.adv > 0 and self.step >= cfg.adv_start // 2:  # D warms up before G listens to it
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=self.amp):
                ld = L.d_loss(self.disc(x), self.disc(v.detach()))
            self.opt_d.zero_grad(set_to_none=True)
            ld.backward()
            self.opt_d.step()
            parts["d"] = ld

        with torch.no_grad():
            stats = {k: float(val) for k, val in parts.items()}
            stats["total"] = float(total)
            if use_id and keyed.any():
                stats["cos_orig"] = float(L.cos(e[keyed], z[keyed]).mean())
                stats["cos_virtual"] = float(L.cos(e[keyed], z_virtual[keyed]).mean())
            stats["cos_read"] = float(L.cos(r, u_k).mean())
        self.step += 1
        return stats

    # ---------------------------------------------------------------- state
    def state(self) -> dict:
        return {
            "step": self.step, "config": self.cfg.to_dict(),
            "model": self.model.state_dict(), "disc": self.disc.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "gen": self.gen.get_state(), "torch_rng": torch.get_rng_state(),
        }

    def save(self, name: str = "ckpt.pt") -> Path:
        path = self.out / name
        with atomic_write(path) as f:
            torch.save(self.state(), f)
        return path

    def load(self, path: str | os.PathLike) -> None:
        st = torch.load(path, map_location=self.device, weights_only=False)
        # the carrier basis is a deterministic function of its seed: rebuilt, never resumed
        model_state = {k: v for k, v in st["model"].items() if "code_carrier." not in k}
        missing, unexpected = self.model.load_state_dict(model_state, strict=False)
        if unexpected or any("code_carrier." not in k for k in missing):
            raise RuntimeError(f"checkpoint {path}: does not fit the model (missing {missing}, unexpected {unexpected})")
        self.disc.load_state_dict(st["disc"])
        self.opt_g.load_state_dict(st["opt_g"])
        self.opt_d.load_state_dict(st["opt_d"])
        self.gen.set_state(st["gen"])
        torch.set_rng_state(st["torch_rng"])
        self.step = int(st["step"])

    # ---------------------------------------------------------------- samples
    @torch.no_grad()
    def sample_grid(self, path: Path) -> None:
        """Rows: input, identity key (reconstruction), key A, key B — 8 fixed train faces."""
        from PIL import Image

        size = self.cfg.stage_at(max(self.step - 1, 0)).size
        if self._fixed is None:
            self._fixed = np.asarray([g[0] for g in self.groups[:: max(1, len(self.groups) // 8)][:8]])
        idx = self._fixed
        x = to_tensor(self.faces.crops[idx], size, self.device)
        u = self.model.space.to_code(torch.from_numpy(self.faces.embeddings[idx]).to(self.device))
        rows = [x]
        for q in (torch.eye(u.shape[1], device=self.device), self.pool[0], self.pool[1]):
            uk = u @ q.T
            rows.append(self.model.generator(x, self.model.mapping(uk), uk))
        grid = torch.cat([torch.cat(list(r), 2) for r in rows], 1)  # (3, 4S, 8S)
        img = ((grid.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(path)

    # ---------------------------------------------------------------- run
    def run(self, max_steps: int | None = None) -> dict[str, float]:
        from tqdm import tqdm

        cfg = self.cfg
        end = cfg.total_steps if max_steps is None else min(cfg.total_steps, self.step + max_steps)
        logf = open(self.out / "log.jsonl", "a")
        acc: dict[str, list[float]] = {}
        last: dict[str, float] = {}
        self.model.train()
        bar = tqdm(total=end, initial=self.step, desc="train", dynamic_ncols=True, mininterval=5)
        t0 = time.time()
        try:
            while self.step < end:
                stats = self.train_step()
                for k, val in stats.items():
                    acc.setdefault(k, []).append(val)
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == end:
                    last = {k: float(np.mean(val)) for k, val in acc.items()}
                    acc = {}
                    rec = {"step": self.step, "size": cfg.stage_at(self.step - 1).size,
                           "time": round(time.time() - t0, 1), **{k: round(val, 4) for k, val in last.items()}}
                    logf.write(json.dumps(rec) + "\n")
                    logf.flush()
                    bar.set_postfix({k: f"{last[k]:.3f}" for k in ("total", "cos_orig", "cos_virtual", "cos_read")
                                     if k in last})
                if self.step % cfg.ckpt_every == 0 or self.step == end:
                    self.save()
                if self.step % cfg.sample_every == 0 or self.step == end:
                    self.sample_grid(self.out / "samples" / f"step_{self.step:06d}.png")
        finally:
            bar.close()
            logf.close()
        return last
