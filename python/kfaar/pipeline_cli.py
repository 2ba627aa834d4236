"""``kfaar anonymize``, ``kfaar enroll``, ``kfaar verify``: the pipeline from the shell."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import click
import numpy as np

log = logging.getLogger(__name__)

_key_file = click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), required=True,
                         help="Sealed key file (kfaar keygen).")
_passphrase_env = click.option("--passphrase-env", metavar="VAR", default=None,
                               help="Read the key file's passphrase from this environment variable (else prompt).")


def _load_key(key_file: str, passphrase_env: str | None):
    from kfaar.keys import Key

    if passphrase_env:
        if passphrase_env not in os.environ:
            raise click.UsageError(f"--passphrase-env: environment variable {passphrase_env} is not set")
        passphrase = os.environ[passphrase_env]
    else:
        passphrase = click.prompt("Key passphrase", hide_input=True)
    return Key.load(key_file, passphrase=passphrase)


def _targets(paths: tuple[str, ...], out: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(source, output file) for every photo under ``paths``, and the files left out because
    they lie in ``out`` (an earlier run's results, when ``out`` is inside an input folder).

    A folder's photos keep their path below it, a named file goes to the top of ``out``; the
    result is always PNG (lossless: the keyed code the virtual face carries survives it).
    Outputs never overwrite each other — ``a.jpg`` and ``a.png`` become ``a.jpg.png`` and
    ``a.png.png``, and names still shared get ``-2``, ``-3``... in input order — nor an input:
    a path named on the command line that lies in ``out`` is refused before any photo is read."""
    from kfaar.faces import iter_images

    out_abs = out.resolve()
    pairs, inside = [], []
    for p in paths:
        root = Path(p)
        if root.resolve().is_relative_to(out_abs):
            raise click.UsageError(f"--out: {p} lies in the output folder {out}; write the results elsewhere")
        for f in iter_images(root):
            if f.resolve().is_relative_to(out_abs):
                inside.append(f)
                continue
            rel = f.relative_to(root) if root.is_dir() else Path(f.name)
            pairs.append((f, rel))

    def suffixes(rels: list[Path]) -> dict[Path, set[str]]:  # output name -> the sources' suffixes
        seen: dict[Path, set[str]] = {}
        for (f, _), r in zip(pairs, rels):
            seen.setdefault(r, set()).add(f.suffix)
        return seen

    rels = [rel.with_suffix(".png") for _, rel in pairs]
    mixed = {r for r, sfx in suffixes(rels).items() if len(sfx) > 1}  # a.jpg and a.png: say which
    rels = [rel.with_name(rel.name + ".png") if r in mixed else r for (_, rel), r in zip(pairs, rels)]
    taken: set[Path] = set()
    for i, r in enumerate(rels):  # still shared (one name in two folders): number the later ones
        n = 1
        while rels[i] in taken:
            n += 1
            rels[i] = r.with_name(f"{r.stem}-{n}{r.suffix}")
        taken.add(rels[i])
    return [(f, out / r) for (f, _), r in zip(pairs, rels)], inside


@click.command("anonymize")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@_key_file
@_passphrase_env
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
def anonymize(paths: tuple[str, ...], key_file: str, passphrase_env: str | None, out_dir: str) -> None:
    """Replace every face in PATHS (photos or folders) with the key's virtual face.

    Results are PNG files in --out, a folder's photos under their path in it; a photo's
    transparency is kept. Unreadable files are reported and skipped."""
    from PIL import Image
    from tqdm import tqdm

    from kfaar.faces import load_image_alpha
    from kfaar.pipeline import Anonymizer

    out = Path(out_dir)
    targets, inside = _targets(paths, out)
    key = _load_key(key_file, passphrase_env)
    out.mkdir(parents=True, exist_ok=True)
    done, faces, bad = 0, 0, []
    with Anonymizer() as anon:
        for f, target in tqdm(targets, desc="anonymize", unit="photo"):
            try:
                rgb, alpha = load_image_alpha(f)
                r = anon.anonymize_result(rgb, key)
            except Exception as err:  # noqa: BLE001 — a bad file is reported and skipped
                bad.append((f, err))
                continue
            image = Image.fromarray(r.image)
            if alpha is not None:
                image.putalpha(Image.fromarray(alpha))
            target.parent.mkdir(parents=True, exist_ok=True)
            image.save(target)
            done += 1
            faces += r.n_faces
    click.echo(f"{done} photo(s), {faces} face(s) anonymized into {out}")
    if inside:
        click.echo(f"left out {len(inside)} photo(s) already in {out}", err=True)
    for f, err in bad:
        click.echo(f"skipped {f}: {err}", err=True)


@click.command("enroll")
@click.argument("photo", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_path", type=click.Path(dir_okay=False), required=True, help="Template file (.npy).")
def enroll(photo: str, out_path: str) -> None:
    """Compute the identity template of PHOTO's main face (on this device)."""
    from kfaar.pipeline import Authenticator

    with Authenticator() as auth:
        np.save(out_path, auth.enroll(photo))
    click.echo(f"template written to {out_path}")


@click.command("verify")
@click.argument("virtual_photo", type=click.Path(exists=True, dir_okay=False))
@_key_file
@_passphrase_env
@click.option("--template", "template_path", type=click.Path(exists=True, dir_okay=False), required=True)
def verify(virtual_photo: str, key_file: str, passphrase_env: str | None, template_path: str) -> None:
    """Check with the key whether VIRTUAL_PHOTO shows the enrolled person; exit code 1 if not."""
    from kfaar.pipeline import Authenticator

    key = _load_key(key_file, passphrase_env)
    with Authenticator() as auth:
        e = auth.recover(virtual_photo, key)
        s = auth.score(e, np.load(template_path))
        ok = s >= auth.threshold
    click.echo(f"{'MATCH' if ok else 'NO MATCH'} score={s:.3f} threshold={auth.threshold:.3f}")
    raise SystemExit(0 if ok else 1)
