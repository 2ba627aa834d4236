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


@click.command("anonymize")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@_key_file
@_passphrase_env
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
def anonymize(paths: tuple[str, ...], key_file: str, passphrase_env: str | None, out_dir: str) -> None:
    """Replace every face in PATHS (photos or folders) with the key's virtual face."""
    from PIL import Image
    from tqdm import tqdm

    from kfaar.faces import iter_images
    from kfaar.pipeline import Anonymizer

    key = _load_key(key_file, passphrase_env)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = [f for p in paths for f in iter_images(p)]
    done, faces, bad = 0, 0, []
    with Anonymizer() as anon:
        for f in tqdm(files, desc="anonymize", unit="photo"):
            try:
                r = anon.anonymize_result(str(f), key)
            except Exception as err:  # noqa: BLE001 — a bad file is reported and skipped
                bad.append((f, err))
                continue
            Image.fromarray(r.image).save(out / (Path(f).stem + ".png"))
            done += 1
            faces += r.n_faces
    click.echo(f"{done} photo(s), {faces} face(s) anonymized into {out}")
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
