"""``kfaar train``: train the generator, mapping and reader from a config file."""

from __future__ import annotations

import logging
from pathlib import Path

import click

log = logging.getLogger(__name__)

# train faces the learned code read is refitted on when a run changes a learned-read bundle's faces (~40 s)
AUTO_READER_FACES = 3000


def _require_device(device: str) -> None:
    """Fail before any data is read when --device cuda has no CUDA device to run on."""
    import torch

    from kfaar.errors import BackendUnavailableError

    if device == "cuda" and not torch.cuda.is_available():
        raise BackendUnavailableError("--device cuda: torch sees no CUDA device; use --device cpu")


@click.command("train")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="YAML or JSON training config (see configs/).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Run folder (runs/NAME).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT/ckpt.pt.")
@click.option("--max-steps", type=int, default=None, help="Stop after this many steps (this invocation).")
def train(config_path: str, out_dir: str, device: str, resume: bool, max_steps: int | None) -> None:
    """Train a kfaar model; checkpoints, samples and log.jsonl go to OUT."""
    from kfaar.train.config import TrainConfig
    from kfaar.train.loop import Trainer

    _require_device(device)
    cfg = TrainConfig.load(config_path)
    trainer = Trainer(cfg, out_dir, device)
    ckpt = Path(out_dir) / "ckpt.pt"
    if resume:
        if not ckpt.exists():
            raise click.UsageError(f"--resume: no checkpoint at {ckpt}")
        trainer.load(ckpt)
        log.info("resumed at step %d", trainer.step)
    (Path(out_dir) / "config.json").write_text(__import__("json").dumps(cfg.to_dict(), indent=1))
    last = trainer.run(max_steps)
    click.echo(" ".join(f"{k}={v:.4f}" for k, v in sorted(last.items())))


@click.command("train-export")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Bundle (.safetensors).")
@click.option("--faces", "n_faces", type=int, default=512, show_default=True, help="Train faces for the threshold.")
@click.option("--limit", type=int, default=None, help="Read only the first LIMIT train faces.")
def export(checkpoint: str, out_path: str, n_faces: int, limit: int | None) -> None:
    """Export a checkpoint to an inference bundle; prints its SHA-256 (pin it in kfaar.models.bundle)."""
    from kfaar.train.data import load_faces
    from kfaar.train.export import export_checkpoint

    sha, op = export_checkpoint(checkpoint, out_path, load_faces("train", limit=limit), n_faces)
    click.echo(f"sha256={sha}")
    click.echo(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in op.items()))


@click.command("train-eigen")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Bundle (.safetensors).")
@click.option("--n-identity", type=int, default=None,
              help="Discriminant directions of the face model the key replaces (of 256). Default: 192 for a new "
                   "face model; with --init the bundle's own, or this many found again on its face model.")
@click.option("--mask-radii", type=(float, float), default=None,
              help="Half-width and half-height of the face ellipse the key replaces, as fractions of the crop "
                   "(a new face model only). Default: EigenConfig's, the shipped model's.")
@click.option("--mirror/--no-mirror", default=False, show_default=True,
              help="Fit the face model and the identity split with every train face also flipped left-right.")
@click.option("--fidelity-steps", type=int, default=1000, show_default=True,
              help="Steps of SFace-fidelity tuning of the mapping (0: the regression alone; ~9 min on 2 cores).")
@click.option("--diversity", type=float, default=0.0, show_default=True,
              help="Weight of the two-key diversity hinge in the tuning (each step then renders two keys).")
@click.option("--consistency", type=float, default=0.0, show_default=True,
              help="Weight of the same-person consistency hinge (batches become pairs of one person's photos).")
@click.option("--refine-steps", type=int, default=0, show_default=True,
              help="Train the detail refiner (128-px detail of the face-model face) for this many steps "
                   "before the tuning (3,000: ~10 min on 2 cores). 0: keep the bundle's own (or none).")
@click.option("--sharpen-steps", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fine-tune the detail refiner against a conditional patch discriminator for this many steps "
                   "(after --refine-steps, before the tuning; 1,000: ~10 min on 2 cores), so it renders skin and "
                   "creases instead of their blurred mean. 0: leave it.")
@click.option("--sharpen-weight", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Weight of the discriminator's loss against the refiner's own L1 objective in --sharpen-steps.")
@click.option("--pose-warp", type=float, default=None,
              help="Fit the pose warp (the face shifted sideways with the input's nose offset, read from its "
                   "face coefficients) with this gain, before the tuning (1.25 shipped; seconds).")
@click.option("--warp-offsets", type=click.Choice(["read", "landmarks"]), default="read", show_default=True,
              help="What the pose warp is fed in the tuning: its own read-out of the face, or the train crops' "
                   "landmark nose offsets, as the full-photo pipeline feeds the detector's.")
@click.option("--seam-res", type=int, default=None,
              help="Paste the face seamlessly: spread the mismatch at the mask's edge inward on a grid of this "
                   "many pixels (32), before the tuning; 0 takes it away. Default: the bundle's own (new: off).")
@click.option("--seam-screen", type=float, default=None,
              help="Screening of the seamless paste's correction: it fades inward over about 1/sqrt(this) grid "
                   "pixels. [default: 0.2; with --seam-res]")
@click.option("--reader-faces", type=int, default=None,
              help="Fit the code carrier's learned read on this many train faces' virtual crops, as written and "
                   "re-encoded as JPEG (3,000: ~40 s), after the tuning (which it is fitted to). Default: refit on "
                   f"{AUTO_READER_FACES:,} faces where this run changes a learned-read bundle's faces, else keep "
                   "the bundle's read. 0: keep it.")
@click.option("--init", "init_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Continue tuning this eigen bundle instead of fitting a new one (its face model and --mirror are then "
                   "its own).")
@click.option("--batch", type=int, default=16, show_default=True,
              help="Photos per tuning step (with --diversity each is rendered under two keys).")
@click.option("--lr", type=float, default=1e-2, show_default=True, help="Learning rate of the mapping's tuning.")
@click.option("--refiner-lr", type=float, default=0.0, show_default=True,
              help="Tune the detail refiner with the same losses at this learning rate (0: leave it).")
@click.option("--anchor", type=float, default=0.0, show_default=True,
              help="Weight of the refiner's own objective (detail of real faces) while it is tuned.")
@click.option("--prior-frame", type=click.Choice(["coefficients", "principal"]), default="coefficients",
              show_default=True,
              help="Where the tuning's spread prior reads the keyed part's spread: per face-model coefficient (the "
                   "shipped recipe's), or about its start mean along its principal directions (the directions the "
                   "affine mapping does not span no longer read drift as growth; not yet measured on a tuning).")
@click.option("--anchor-to", type=click.Choice(["real", "self"]), default="real", show_default=True,
              help="What --anchor holds the refiner to: the real faces' detail (L1 to them), or its own rendering "
                   "at the start of the tuning (keeps a --sharpen-steps refiner sharp).")
@click.option("--adversarial", type=float, default=0.0, show_default=True,
              help="Weight of a patch discriminator's realism loss on the rendered face.")
@click.option("--anon", type=float, default=1.0, show_default=True,
              help="Weight of the anonymity hinge in the tuning (SFace cosine of the face to its own person).")
@click.option("--anon-margin", type=float, default=0.2, show_default=True,
              help="The anonymity hinge's margin: cosines above it are pushed down.")
@click.option("--unlink", type=float, default=0.0, show_default=True,
              help="Weight of the linkability hinge: a face no closer to its own person than to the batch's "
                   "others (SFace).")
@click.option("--rim", type=float, default=0.0, show_default=True,
              help="Weight of the outline prior: the batch's common difference from the input on the mask's "
                   "outer ring (the dark outline all faces shared).")
@click.option("--max-seconds", type=float, default=None,
              help="Stop the tuning after this long (the steps run are recorded in the bundle's info).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Where the tuning and --sharpen-steps run (cuda: the GPU recipe).")
@click.option("--faces-cache", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Read the train faces from this packed .npz (python -m kfaar.train.data) instead of the cache.")
@click.option("--seed", type=int, default=20261126, show_default=True)
@click.option("--faces", "n_faces", type=int, default=512, show_default=True, help="Train faces for the threshold.")
@click.option("--limit", type=int, default=None, help="Use only the first LIMIT train faces.")
def train_eigen(out_path: str, n_identity: int | None, mask_radii: tuple[float, float] | None, mirror: bool,
                fidelity_steps: int, diversity: float, consistency: float, refine_steps: int, sharpen_steps: int,
                sharpen_weight: float, pose_warp: float | None,
                warp_offsets: str, seam_res: int | None, seam_screen: float | None, reader_faces: int | None,
                init_path: str | None, batch: int,
                lr: float, prior_frame: str, refiner_lr: float, anchor: float, anchor_to: str, adversarial: float,
                anon: float,
                anon_margin: float, unlink: float, rim: float, max_seconds: float | None, device: str,
                faces_cache: str | None, seed: int, n_faces: int, limit: int | None) -> None:
    """Fit the eigenface generator and its mapping on the train split, tune the mapping for
    SFace fidelity (about 10 minutes on 2 CPU cores in all) and write a bundle with its
    operating threshold; prints its SHA-256. With --init, only the refiner and the tuning run,
    on that bundle (with --refine-steps 0 and --fidelity-steps 0, only its operating threshold
    is re-derived)."""
    import json

    from pathlib import Path

    from kfaar.models.bundle import load_bundle, save_bundle, sha256_bytes
    from kfaar.models.eigen import EigenConfig, EigenGenerator
    from kfaar.train.data import load_faces
    from kfaar.train.eigen import (check_refiner_tuning, fit_eigen, fit_pose_warp, fit_reader, fit_refiner,
                                   set_identity_split, set_seam, sharpen_refiner, tune_fidelity)
    from kfaar.train.export import operating_point

    _require_device(device)
    if seam_screen is not None and seam_res is None:
        raise click.BadParameter("goes with --seam-res", param_hint="--seam-screen")
    try:
        check_refiner_tuning(refiner_lr, anchor, anchor_to)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=["--anchor", "--anchor-to", "--refiner-lr"]) from None
    if init_path and mirror:
        raise click.BadParameter("--mirror shapes a new face model; the --init bundle keeps its own", param_hint="--mirror")
    if init_path and mask_radii is not None:
        raise click.BadParameter("shapes a new face model; the --init bundle keeps its own", param_hint="--mask-radii")
    if mask_radii is not None and not all(0 < r <= 0.5 for r in mask_radii):
        raise click.BadParameter(f"each radius must be in (0, 0.5], got {mask_radii}", param_hint="--mask-radii")
    if init_path:
        bundle = load_bundle(init_path)
        if not isinstance(bundle.generator, EigenGenerator):
            raise click.BadParameter(f"{init_path} is not an eigen bundle", param_hint="--init")
        parent = sha256_bytes(Path(init_path).read_bytes())
        # the faces this run changes are no longer the ones a learned read was fitted to
        changed = bool(fidelity_steps or refine_steps or sharpen_steps or pose_warp is not None or seam_res is not None
                       or n_identity is not None)
        stale = changed and bundle.generator.cfg.carrier_read == "learned"
        if reader_faces is None:
            reader_faces = AUTO_READER_FACES if stale else 0
            if reader_faces:
                click.echo(f"the learned code read will be refitted to the new faces ({reader_faces:,} train faces)",
                           err=True)
        if fidelity_steps:  # this run's tuning is recorded under "fidelity", the parent's here
            bundle.info["tuned_from"] = {"sha256": parent, "fidelity": bundle.info.pop("fidelity", None)}
        if refine_steps:  # likewise the refiner's
            bundle.info["refined_from"] = {"sha256": parent, "refiner": bundle.info.pop("refiner", None)}
        if sharpen_steps:
            bundle.info["sharpened_from"] = {"sha256": parent, "sharpened": bundle.info.pop("sharpened", None)}
        if pose_warp is not None:  # likewise the pose warp's
            bundle.info["warped_from"] = {"sha256": parent, "pose_warp": bundle.info.pop("pose_warp", None)}
        if n_identity is not None:  # likewise the identity split's
            bundle.info["split_from"] = {"sha256": parent, "identity_split": bundle.info.pop("identity_split", None)}
        if seam_res is not None:
            bundle.info["seamed_from"] = {"sha256": parent, "seam": bundle.info.pop("seam", None)}
        if reader_faces:
            bundle.info["read_from"] = {"sha256": parent, "reader": bundle.info.pop("reader", None)}
        if not (changed or reader_faces):  # only the operating threshold is re-derived
            bundle.info["threshold_from"] = {"sha256": parent, "operating_point_train":
                                             bundle.info.get("operating_point_train")}
    else:
        stale, reader_faces = False, reader_faces or 0
    faces = load_faces("train", cache_dir=faces_cache, limit=limit)
    if not init_path:
        shape = {} if mask_radii is None else {"mask_radii": tuple(mask_radii)}
        bundle = fit_eigen(faces, EigenConfig(n_identity=n_identity or EigenConfig.n_identity, **shape), seed=seed,
                           mirror=mirror)
    elif n_identity is not None:
        try:
            set_identity_split(bundle, faces, n_identity)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--n-identity") from None
    if refine_steps:
        fit_refiner(bundle, faces, steps=refine_steps, seed=seed)
    if sharpen_steps:
        try:
            sharpen_refiner(bundle, faces, steps=sharpen_steps, adversarial=sharpen_weight, seed=seed, device=device)
        except (TypeError, ValueError) as err:
            raise click.BadParameter(str(err), param_hint="--sharpen-steps") from None
    if pose_warp is not None:
        try:
            fit_pose_warp(bundle, faces, pose_warp, seed=seed)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--pose-warp") from None
    if seam_res is not None:
        try:
            set_seam(bundle, seam_res, **({} if seam_screen is None else {"screen": seam_screen}))
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--seam-res") from None
    if fidelity_steps:
        tune_fidelity(bundle, faces, steps=fidelity_steps, batch=batch, lr=lr, diversity=diversity,
                      consistency=consistency, prior_frame=prior_frame, refiner_lr=refiner_lr, anchor=anchor,
                      anchor_to=anchor_to, adversarial=adversarial, anon=anon, anon_margin=anon_margin, unlink=unlink, rim=rim,
                      landmark_offsets=warp_offsets == "landmarks",
                      max_seconds=max_seconds, device=device, seed=seed)
    if stale and not reader_faces:
        click.echo("warning: this bundle's learned code read was fitted to its faces before this run; refit it "
                   f"(--init OUT --fidelity-steps 0 --reader-faces {AUTO_READER_FACES}) before relying on the "
                   "threshold", err=True)
    if reader_faces:
        try:
            fit_reader(bundle, faces, faces=reader_faces, seed=seed)
        except (TypeError, ValueError) as err:
            raise click.BadParameter(str(err), param_hint="--reader-faces") from None
    op = operating_point(bundle, faces, n_faces)
    bundle.threshold = op["threshold"]
    bundle.info["operating_point_train"] = op
    sha = save_bundle(bundle, out_path)
    click.echo(f"sha256={sha}")
    click.echo(json.dumps(bundle.info, indent=1))
