"""``kfaar export``: a bundle to the ONNX model set the runtime loads (or a checkpoint to a bundle).

    kfaar export --out DIR [--model NAME|PATH] [--int8]     bundle -> ONNX set (parity-checked)
    kfaar export --shipped [--model NAME|PATH] [--int8]     ... into kfaar/runtime/weights/<name>/
    kfaar export CHECKPOINT --out FILE.safetensors           = kfaar train-export (checkpoint -> bundle)
"""

from __future__ import annotations

import click


@click.command("export")
@click.argument("checkpoint", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out", type=click.Path(), default=None,
              help="Folder for the ONNX set (or, with CHECKPOINT, the bundle .safetensors file).")
@click.option("--model", default=None, help="Bundle to export: a shipped name (default kfaar-v2) or a .safetensors path.")
@click.option("--sha256", default=None, help="Required SHA-256 of your own --model file.")
@click.option("--int8", is_flag=True, help="Also write int8 graphs (static quantization, train-split calibration).")
@click.option("--shipped", is_flag=True, help="Write into the package's runtime/weights/<name>/ and print the pin.")
@click.option("--faces", "n_faces", type=int, default=512, show_default=True,
              help="With CHECKPOINT: train faces for the threshold.")
@click.option("--limit", type=int, default=None, help="With CHECKPOINT: read only the first LIMIT train faces.")
@click.pass_context
def export(ctx: click.Context, checkpoint: str | None, out: str | None, model: str | None, sha256: str | None,
           int8: bool, shipped: bool, n_faces: int, limit: int | None) -> None:
    """Export the inference networks to ONNX (dynamic batch) with a SHA-256 manifest.

    Fails (and writes no manifest) when ONNX Runtime and torch differ by more than 1e-4 on
    real crops, or when --int8 misses its stated tolerance."""
    if checkpoint is not None:
        if out is None or not out.endswith(".safetensors") or model or int8 or shipped:
            raise click.UsageError("CHECKPOINT exports a training checkpoint to a bundle: pass only --out "
                                   "FILE.safetensors (then `kfaar export --model FILE.safetensors --out DIR`)")
        from kfaar.train.cli import export as export_checkpoint

        ctx.invoke(export_checkpoint, checkpoint=checkpoint, out_path=out, n_faces=n_faces, limit=limit)
        return
    if (out is None) == (not shipped):
        raise click.UsageError("pass exactly one of --out DIR and --shipped")
    from kfaar.models.bundle import load_bundle
    from kfaar.runtime.export import export_bundle, export_shipped

    if shipped:
        res = export_shipped(model, int8=int8)
    else:
        from pathlib import Path

        name = Path(model).stem if model and Path(model).is_file() else (model or "kfaar-v2")
        res = export_bundle(load_bundle(model, sha256), out, name=name, int8=int8)
    m = res.manifest
    click.echo(f"wrote {res.out_dir} ({', '.join(sorted(m['sha256']))})")
    click.echo("parity (max abs diff, ORT vs torch): "
               + " ".join(f"{k}={m['parity'][k]['max_abs_diff']:.2g}" for k in m["networks"]))
    if m["int8"]:
        for net in ("generator", "reader"):
            r = m["int8"][net]
            if "mean_abs_levels" in r:
                same = (f"; SFace cosine of the virtual faces min {r['virtual_sface_cosine_min']:.4f}"
                        if "virtual_sface_cosine_min" in r else "")
                click.echo(f"int8 vs fp32, {net}: mean {r['mean_abs_levels']:.2f} / p99 {r['p99_abs_levels']:.0f} "
                           f"grey levels{same}")
            elif "min_cosine" in r:
                click.echo(f"int8 vs fp32, {net}: min cosine {r['min_cosine']:.4f}")
            else:
                click.echo(f"int8, {net}: {r['method']}")
    click.echo(f"manifest sha256={res.manifest_sha256}")
    if shipped:
        click.echo(f"pin it in python/kfaar/runtime/engine.py: SHIPPED[{m['name']!r}] = {res.manifest_sha256!r}")
