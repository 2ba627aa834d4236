"""``kfaar eval``: evaluate anonymizers on LFW's dev split with independent judges."""

from __future__ import annotations

import time
from pathlib import Path

import click

from kfaar.eval.methods import METHOD_NAMES


def _methods(ctx, param, value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    bad = [n for n in names if n not in METHOD_NAMES]
    if bad or not names:
        raise click.BadParameter(f"unknown {bad or value!r}; choose from {','.join(METHOD_NAMES)}")
    return names


@click.command("eval")
@click.option("--methods", default=",".join(METHOD_NAMES), show_default=True, callback=_methods,
              help="Comma-separated methods. 'kfaar' is reported as unavailable until its model is installed.")
@click.option("--split", default="dev", show_default=True, help="Split of <data>/lfw/splits.json.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate N identities (seeded choice).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("kfaar-eval"),
              show_default=True, help="Folder for metrics.json and report.html.")
@click.option("--data", "data_dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="Folder holding lfw/ (default: $KFAAR_DATA or ../shared/data).")
@click.option("--seed", type=int, default=0, show_default=True, help="Fixes the subset, keys and sampled pairs.")
@click.option("--jobs", type=click.IntRange(min=1), default=2, show_default=True, help="Judge worker processes.")
@click.option("--setup-judges", is_flag=True,
              help="Create the judges virtualenv (dlib + MediaPipe, numpy<2) if missing or stale, then exit.")
@click.option("--judges-venv", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Judges virtualenv (default: $KFAAR_JUDGES_VENV or ~/.cache/kfaar/judges-venv).")
@click.option("--kfaar-model", default=None,
              help="Bundle for the 'kfaar' method: a shipped name or a .safetensors path (kfaar export CKPT).")
@click.option("--kfaar-sha256", default=None, help="Required SHA-256 of --kfaar-model (unpinned files load with a warning).")
@click.option("--kfaar-precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="Graphs the 'kfaar' method runs (int8: the quantized ONNX set).")
@click.option("--no-judge-cache", is_flag=True,
              help="Judge every image afresh (default: reuse rows of images judged before, "
                   "$KFAAR_JUDGES_CACHE or ~/.cache/kfaar/judges-cache).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def eval_command(methods, split, limit, out_dir, data_dir, seed, jobs, setup_judges, judges_venv,
                 kfaar_model, kfaar_sha256, kfaar_precision, no_judge_cache, quiet) -> None:
    """Measure anonymity, authentication, synchronism, detectability, diversity, consistency
    and unlinkability of each method; write metrics.json and report.html into --out."""
    from kfaar.eval.judges import JudgesUnavailableError, ensure_judges, find_judges, setup_judges as make

    if setup_judges:
        try:
            env = find_judges(judges_venv) or make(judges_venv)
        except JudgesUnavailableError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"judges ready at {env.venv}: " + ", ".join(f"{k} {v}" for k, v in env.versions.items()))
        return

    from kfaar.eval.api import EvalConfig, evaluate
    from kfaar.eval.methods import KfaarModelOptions
    from kfaar.eval.protocol import default_data_dir
    from kfaar.eval.runner import EvalOptions

    splits = (data_dir or default_data_dir()) / "lfw" / "splits.json"
    if not splits.is_file():  # before the judges: no point setting them up without data
        raise click.ClickException(f"no LFW splits at {splits}; pass --data DIR or set KFAAR_DATA")
    if find_judges(judges_venv) is None:
        click.echo("judges virtualenv missing: creating it first (one time, ~250 MB download)", err=True)
        try:
            ensure_judges(judges_venv)
        except JudgesUnavailableError as exc:
            raise click.ClickException(str(exc)) from exc
    config = EvalConfig(
        methods=methods, split=split, limit=limit, seed=seed, data_dir=data_dir, out_dir=out_dir,
        judges_venv=judges_venv, options=EvalOptions(jobs=jobs, judge_cache=not no_judge_cache),
        progress=not quiet,
        kfaar_model=KfaarModelOptions(kfaar_model, kfaar_sha256, kfaar_precision),
    )
    t0 = time.perf_counter()
    try:
        res = evaluate(config)
    except (FileNotFoundError, ValueError, JudgesUnavailableError) as exc:
        raise click.ClickException(str(exc)) from exc
    for name, reason in res.result.unavailable.items():
        click.echo(f"{name}: not evaluated ({reason})", err=True)
    from kfaar.eval.report import markdown_table

    click.echo(markdown_table(res.metrics))
    click.echo(f"\n{res.files.metrics}\n{res.files.html}\n({time.perf_counter() - t0:.0f} s)")
