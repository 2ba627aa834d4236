"""Training configuration: a dataclass whose comments say why, loadable from YAML or JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


@dataclass
class LossWeights:
    # Reconstruction (identity key): the generator learns to paint *this* face from z alone,
    # which is what later makes it paint *another* face from z'. L1 + SFace-feature loss.
    recon_l1: float = 1.0
    recon_feat: float = 0.5
    recon_id: float = 1.0  # 1 - cos(SFace(v), z) on identity-key samples
    # Anonymity: SFace(v) must stay below this cosine to the original (0.363 is a match).
    anon: float = 2.0
    anon_margin: float = 0.15
    # Virtual-identity fidelity: SFace(v) should *be* z' (then SFace itself can read it back).
    fidelity: float = 1.0
    # Synchronism: keep the low-frequency structure (8x pooled image) and coarse edges.
    sync_low: float = 2.0
    sync_edge: float = 0.5
    # Adversarial realism (non-saturating), switched on after ``adv_start`` steps.
    adv: float = 0.05
    # KVFA: the code read back after a re-alignment-sized jitter must be u' (cosine); the
    # carrier's correction |alpha|^2 is penalised so G learns to paint the code itself; a
    # wrong key's inverse must not land near z.
    kvfa: float = 1.0
    carrier: float = 0.5
    kvfa_wrong: float = 0.5
    wrong_margin: float = 0.1
    # Diversity: same photo, two keys -> SFace cosine below this margin.
    diversity: float = 0.5
    diversity_margin: float = 0.2
    # Consistency: two photos of one person under one key -> same virtual person.
    consistency: float = 0.5
    consistency_margin: float = 0.6


@dataclass
class Stage:
    size: int  # training resolution (crops are pooled from 128)
    steps: int
    batch_pairs: int  # pairs per batch; a pair is two photos of one identity under one key


@dataclass
class TrainConfig:
    seed: int = 20261126
    stages: list = field(default_factory=lambda: [Stage(64, 1500, 6), Stage(128, 500, 4)])
    lr: float = 2e-3  # Adam, equalised-lr layers; StyleGAN2's default
    d_lr: float = 1e-3
    betas: tuple = (0.0, 0.99)
    adv_start: int = 300  # warm-up steps before the discriminator's signal reaches G
    identity_key_prob: float = 0.3  # share of pairs that use the identity transform (reconstruction)
    diversity_samples: int = 2  # photos per step that get a second key
    sface_every: int = 1  # SFace losses on every n-th step (CPU budgets: 2)
    key_pool: int = 1024  # precomputed key matrices (random keys per sample)
    whiten_eps: float = 0.05
    threads: int = 2
    log_every: int = 10
    sample_every: int = 200
    ckpt_every: int = 100
    limit: int | None = None  # cap the training faces (tests, smoke runs)
    cache_dir: str | None = None  # faces cache; None -> cache/lfw or the stand-in
    generator: dict = field(default_factory=dict)  # GeneratorConfig overrides, e.g. {carrier: 0.03}
    losses: LossWeights = field(default_factory=LossWeights)

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        text = Path(path).read_text()
        raw = json.loads(text) if str(path).endswith(".json") else _yaml(text)
        return cls.from_dict(raw or {})

    @classmethod
    def from_dict(cls, raw: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}; valid keys are {sorted(known)}")
        raw = dict(raw)
        if "stages" in raw:
            raw["stages"] = [Stage(**s) for s in raw["stages"]]
        if "losses" in raw:
            lw = {f.name for f in fields(LossWeights)}
            bad = set(raw["losses"]) - lw
            if bad:
                raise ValueError(f"config.losses: unknown keys {sorted(bad)}; valid keys are {sorted(lw)}")
            raw["losses"] = LossWeights(**raw["losses"])
        if "betas" in raw:
            raw["betas"] = tuple(raw["betas"])
        cfg = cls(**raw)
        cfg.stages = [s if isinstance(s, Stage) else Stage(**s) for s in cfg.stages]
        return cfg

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def total_steps(self) -> int:
        return sum(s.steps for s in self.stages)

    def stage_at(self, step: int) -> Stage:
        for s in self.stages:
            if step < s.steps:
                return s
            step -= s.steps
        return self.stages[-1]


def _yaml(text: str) -> dict:
    import yaml

    return yaml.safe_load(text)
