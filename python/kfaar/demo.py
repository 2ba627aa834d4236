"""``kfaar demo``: the README's main job in one command.

Anonymizes matplotlib's shipped ``grace_hopper.jpg`` with two fixed demo keys and writes
original | key A | key B side by side, then reports whether each key recovers the identity.
"""

from __future__ import annotations

import hashlib
import logging

import click
import numpy as np

log = logging.getLogger(__name__)


def demo_keys():
    """Two fixed, public demo keys (never use them for anything real)."""
    from kfaar.keys import Key

    return tuple(Key.from_bytes(hashlib.sha256(f"kfaar demo key {c}".encode()).digest()) for c in "AB")


def sample_photo_path() -> str:
    import matplotlib.cbook as cbook

    return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def run_demo(out: str, photo: str | None = None) -> dict:
    from PIL import Image

    from kfaar.faces import load_image
    from kfaar.pipeline import Anonymizer, Authenticator

    rgb = load_image(photo or sample_photo_path())
    key_a, key_b = demo_keys()
    with Anonymizer() as anon:
        va, vb = anon.anonymize(rgb, key_a), anon.anonymize(rgb, key_b)
    with Authenticator() as auth:
        t = auth.enroll(rgb)
        scores = {"A/A": auth.score(auth.recover(va, key_a), t), "A/B": auth.score(auth.recover(va, key_b), t),
                  "B/B": auth.score(auth.recover(vb, key_b), t)}
        thr = auth.threshold
    gap = np.full((rgb.shape[0], 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([rgb, gap, va, gap, vb], 1)).save(out)
    return {"out": out, "threshold": thr, **scores}


@click.command("demo")
@click.option("--out", default="demo.png", show_default=True, type=click.Path(dir_okay=False),
              help="Side-by-side PNG: original | key A | key B.")
@click.option("--photo", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Use this photo instead of matplotlib's grace_hopper.jpg.")
def demo(out: str, photo: str | None) -> None:
    """Anonymize a sample photo with two keys and write a side-by-side PNG."""
    r = run_demo(out, photo)
    click.echo(f"wrote {r['out']}  (original | key A | key B)")
    click.echo(f"recovery score with the right key A: {r['A/A']:.3f}, B: {r['B/B']:.3f}; "
               f"photo A read with key B: {r['A/B']:.3f}; threshold {r['threshold']:.3f}")
