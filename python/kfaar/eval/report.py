"""metrics.json and report.html from an :class:`~kfaar.eval.runner.EvalResult`.

The HTML is one self-contained file (plots and image grids inlined as base64 PNG). The grids
show dataset photos: they are written only into the user's ``--out`` folder.
"""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kfaar.eval.runner import DLIB_THRESHOLD, JUDGES, KVFA_JPEG_QUALITY, SFACE_THRESHOLD, EvalResult, MethodResult

SCHEMA = "kfaar.eval/1"
_JUDGE_LABEL = {"dlib": "dlib", "sface": "SFace*"}


def metrics_json(result: EvalResult, *, run_info: dict) -> dict:
    """The JSON document: run info (command, versions, dataset) + every property per method."""
    methods = {}
    for m in result.methods:
        methods[m.name] = {
            "available": True,
            "description": m.description,
            **m.properties,
            "curves": {k: c.to_json() for k, c in m.curves.items()},
        }
    for name, reason in result.unavailable.items():
        methods[name] = {"available": False, "reason": reason}
    return {
        "schema": SCHEMA,
        **run_info,
        "wall_time_s": round(result.seconds, 1),
        "dataset": {**run_info.get("dataset", {}), **result.counts},
        "judges": {
            "dlib": {"match": f"L2 < {DLIB_THRESHOLD}", "independent": True},
            "sface": {"match": f"cosine >= {SFACE_THRESHOLD}", "independent": False,
                      "note": "SFace is kfaar's own identity encoder: reported, not an independent judge"},
            "facemesh": {"independent": True, "use": "head pose (solvePnP), mouth / eye ratios"},
            "yunet": {"independent": False, "use": "detectability"},
            "versions": result.judge_versions,
        },
        "originals": result.originals,
        "methods": methods,
    }


@dataclass(frozen=True)
class ReportFiles:
    metrics: Path
    html: Path


def write_report(result: EvalResult, out_dir: Path, *, run_info: dict) -> ReportFiles:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = metrics_json(result, run_info=run_info)
    metrics_path = out_dir / "metrics.json"
    metrics_path.write_text(json.dumps(doc, indent=1, sort_keys=False) + "\n")
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(result, doc))
    return ReportFiles(metrics_path, html_path)


# ---------------------------------------------------------------- the property table

def _get(props: dict, path: str):
    """``props`` at a "/"-separated path (JSON keys may hold dots: ``tar_at_far_0.01``), or None."""
    cur = props
    for part in path.split("/"):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


MIN_N = 30  # a table cell backed by fewer cases shows its n beside the value


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def _num(x, digits: int = 2) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _row_specs() -> list[tuple[str, str, str, str, str]]:
    """(label, goal, format, value path, n path) of each row of the side-by-side table."""
    rows = []
    for j in JUDGES:
        rows.append((f"Anonymity vs original ({_JUDGE_LABEL[j]})", "high", "pct",
                     f"anonymity/vs_original/{j}/value", f"anonymity/vs_original/{j}/n"))
    for j in JUDGES:
        rows.append((f"Anonymity vs other photo ({_JUDGE_LABEL[j]})", "high", "pct",
                     f"anonymity/vs_other_photo/{j}/value", f"anonymity/vs_other_photo/{j}/n"))
    for j in JUDGES:
        rows.append((f"Attacker ROC AUC ({_JUDGE_LABEL[j]})", "0.5", "num3", f"attack/{j}/auc", f"attack/{j}/n_genuine"))
    for far, label in (("0.01", "1%"), ("0.001", "0.1%")):
        rows.append((f"TAR @ FAR {label}, right key", "high", "pct",
                     f"authentication/tar_at_far_{far}/tar", f"authentication/tar_at_far_{far}/n_genuine"))
    after = "authentication/after_jpeg/tar_at_far_0.01"
    rows.append((f"TAR @ FAR 1%, right key, after JPEG q{KVFA_JPEG_QUALITY}", "high", "pct", f"{after}/tar",
                 f"{after}/n_genuine"))
    rows.append(("Wrong-key acceptance", "= FAR", "pct", "wrong_key_acceptance/value", "wrong_key_acceptance/n"))
    rows.append(("Acceptance of the person's original photo (no code), their key", "= FAR", "pct",
                 "code_free_acceptance/value", "code_free_acceptance/n"))
    for a in ("yaw", "pitch", "roll"):
        rows.append((f"Abs. Δ {a}, median / p90 (°)", "low", "pose", f"synchronism/{a}", f"synchronism/{a}/n"))
    for r, label in (("mouth_ratio", "Mouth-ratio correlation"), ("eye_ratio", "Eye-ratio correlation")):
        rows.append((label, "high", "num2", f"synchronism/{r}_corr/r", f"synchronism/{r}_corr/n"))
    for d, label in (("yunet", "YuNet"), ("dlib", "dlib"), ("facemesh", "FaceMesh")):
        rows.append((f"Detectability ({label})", "high", "pct", f"detectability/{d}/value", f"detectability/{d}/n"))
    for j in JUDGES:
        rows.append((f"Diversity, 2 keys ({_JUDGE_LABEL[j]})", "high", "pct", f"diversity/{j}/value", f"diversity/{j}/n"))
    for j in JUDGES:
        rows.append((f"Consistency, same key ({_JUDGE_LABEL[j]})", "high", "pct",
                     f"consistency/{j}/value", f"consistency/{j}/n"))
    for j in JUDGES:
        rows.append((f"Unlinkability D↔sys ({_JUDGE_LABEL[j]})", "low", "num3",
                     f"unlinkability/{j}/dsys", f"unlinkability/{j}/n_mated"))
    return rows


def _cell(props: dict, fmt: str, path: str, n_path: str) -> tuple[str, int | None]:
    n = _get(props, n_path)
    if fmt == "pose":
        text = f"{_num(_get(props, path + '/median'), 1)} / {_num(_get(props, path + '/p90'), 1)}"
        missing = _get(props, path + "/median") is None
    else:
        v = _get(props, path)
        text = {"pct": _pct, "num2": _num, "num3": lambda x: _num(x, 3)}[fmt](v)
        missing = v is None
    if missing:
        return "–", n
    if n is not None and n < MIN_N:
        return f"{text} (n={n})", n  # flagged: too few cases to lean on
    return text, n


def _goal(goal: str, path: str, originals: dict) -> str:
    """The TAR rows' goal names the bar: plain SFace between genuine photos, same pairs and FAR."""
    if path.startswith("authentication/"):
        ref = _get(originals, "sface_verification/" + path.split("/", 1)[1])
        if ref is not None:
            return f"high (SFace genuine: {_pct(ref)})"
    return goal


def table_rows(result: EvalResult) -> list[dict]:
    """Rows of (property, goal, one cell per method) for the side-by-side table."""
    out = []
    for label, goal, fmt, path, n_path in _row_specs():
        cells = [dict(zip(("text", "n"), _cell(m.properties, fmt, path, n_path))) for m in result.methods]
        out.append({"label": label, "goal": _goal(goal, path, result.originals), "cells": cells})
    return out


def markdown_table(doc: dict) -> str:
    """The side-by-side table as Markdown, for docs/EVALUATION.md (from a metrics.json document)."""
    names = [n for n, m in doc["methods"].items() if m.get("available")]
    lines = ["| property | goal | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for label, goal, fmt, path, n_path in _row_specs():
        cells = [_cell(doc["methods"][n], fmt, path, n_path)[0] for n in names]
        lines.append(f"| {label} | {_goal(goal, path, doc.get('originals', {}))} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- figures

def _png_b64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _roc_figures(result: EvalResult) -> list[dict]:
    from matplotlib.figure import Figure

    figs = []
    panels = [(f"attack/{j}", f"Attacker: virtual vs genuine photos ({_JUDGE_LABEL[j]})",
               "lower is more anonymous; chance = diagonal") for j in JUDGES]
    if any("kvfa" in m.curves for m in result.methods):
        panels.append(("kvfa", "Authentication with the right key (KVFA)",
                       "higher is better; dashed: plain SFace on genuine photos, the bar to reach"))
    for key, title, note in panels:
        fig = Figure(figsize=(5.2, 4.2), layout="constrained")
        ax = fig.add_subplot()
        for m in result.methods:
            c = m.curves.get(key)
            if c is None or c.far.size == 0:
                continue
            ax.plot(np.maximum(c.far, 1e-5), c.tar, label=f"{m.name} (AUC {c.auc:.3f})")
        chance = np.geomspace(1e-5, 1, 100)
        if key == "kvfa" and result.reference is not None and result.reference.far.size:
            ref = result.reference
            ax.plot(np.maximum(ref.far, 1e-5), ref.tar, c="k", lw=1, ls="--",
                    label=f"SFace, genuine vs genuine (AUC {ref.auc:.3f})")
        ax.plot(chance, chance, ls=":", c="grey", lw=1, label="chance")
        ax.set_xscale("log")
        ax.set_xlim(1e-4, 1)
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("false accept rate")
        ax.set_ylabel("true accept rate")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        figs.append({"title": title, "note": note, "png": _png_b64(fig)})
    return figs


def _pose_figure(m: MethodResult) -> str | None:
    from matplotlib.figure import Figure

    keys = ("yaw", "pitch", "roll", "mouth_ratio")
    if not any(np.isfinite(m.pose[k][1]).any() for k in keys):
        return None
    fig = Figure(figsize=(12, 3.4), layout="constrained")
    for n, k in enumerate(keys):
        ax = fig.add_subplot(1, 4, n + 1)
        o, v = m.pose[k]
        ok = np.isfinite(o) & np.isfinite(v)
        ax.scatter(o[ok], v[ok], s=4, alpha=0.5)
        lim = (-60, 60) if k != "mouth_ratio" else (0, 1)
        if ok.any():
            lo = min(lim[0], np.nanmin(o[ok]), np.nanmin(v[ok]))
            hi = max(lim[1], np.nanmax(o[ok]), np.nanmax(v[ok])) if k == "mouth_ratio" else lim[1]
            lim = (lo if k != "mouth_ratio" else 0, hi)
        ax.plot(lim, lim, c="grey", lw=1, ls=":")
        ax.set_xlim(lim)
        ax.set_ylim(lim)
        unit = " (°)" if k != "mouth_ratio" else ""
        ax.set_xlabel(f"original {k}{unit}")
        ax.set_ylabel(f"virtual {k}{unit}")
        ax.set_title(f"{k}: n = {int(ok.sum())}", fontsize=9)
    fig.suptitle(f"{m.name}: FaceMesh on original vs virtual (key A)", fontsize=10)
    return _png_b64(fig)


def _grid_png(grid: list[tuple[np.ndarray, np.ndarray, np.ndarray]], cell: int = 160) -> str | None:
    if not grid:
        return None
    rows = []
    for triple in grid:
        cells = [cv2.resize(x, (cell, cell), interpolation=cv2.INTER_AREA) for x in triple]
        sep = np.full((cell, 4, 3), 255, np.uint8)
        rows.append(np.hstack([cells[0], sep, cells[1], sep, cells[2]]))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    img = np.vstack(rows[:-1])
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return base64.b64encode(buf.tobytes()).decode() if ok else None


def render_html(result: EvalResult, doc: dict) -> str:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )
    template = env.get_template("report.html.j2")
    methods = [
        {"name": m.name, "description": m.description, "grid": _grid_png(m.grid), "pose": _pose_figure(m)}
        for m in result.methods
    ]
    return template.render(
        doc=doc,
        methods=methods,
        rows=table_rows(result),
        rocs=_roc_figures(result),
        unavailable=result.unavailable,
        versions_json=json.dumps(doc.get("versions", {}), indent=1),
        dataset_json=json.dumps(doc.get("dataset", {}), indent=1),
        options_json=json.dumps(doc.get("options", {}), indent=1, default=str),
    )
