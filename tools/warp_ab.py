"""kfaar's own warps (`kfaar.ops.warp_affine`, since 2026-11-28) against OpenCV's, which the
pipeline called before: speed, and whether results depend on the installed OpenCV.

    python tools/warp_ab.py speed [--rounds 8]
    python tools/warp_ab.py hashes OUT.json [--photos 60]     # once per OpenCV, e.g.
    PYTHONPATH=/tmp/cv5 python tools/warp_ab.py hashes cv5.json   # (pip install --no-deps --target /tmp/cv5 opencv-python-headless==5.0.0.93)
    python tools/warp_ab.py compare cv4.json cv5.json

`speed`, alternated in one process on `grace_hopper.jpg` (8 keys): full-photo anonymize and
recover with kfaar's warps as shipped, and with `cv2.warpAffine` in their place everywhere
the pipeline warps (alignment, paste-back, recovery's canvases and crop: the same code
otherwise); then the paste alone on a 512 x 600 photo and a 12-megapixel one with an 850- and
a 2,100-px face box. Medians of the
rounds, each round's range printed beside. `hashes`: the SHA-256 of each of the first N dev
photos' anonymized bytes and of its recovered embedding, with this process's OpenCV;
`compare` counts the photos two such files agree on.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from pathlib import Path

import click
import numpy as np


def _opencv_warp_affine(photo, matrix, size, *, border="replicate", interpolation="linear", inverse=False,
                        backend=None):
    """kfaar.ops.warp_affine's signature on cv2.warpAffine: what the pipeline called before."""
    import cv2

    flags = (cv2.INTER_CUBIC if interpolation == "cubic" else cv2.INTER_LINEAR) | (cv2.WARP_INVERSE_MAP if inverse else 0)
    mode = cv2.BORDER_REPLICATE if border == "replicate" else cv2.BORDER_CONSTANT
    out = cv2.warpAffine(photo, matrix, tuple(int(v) for v in size), flags=flags, borderMode=mode, borderValue=0)
    return out.reshape(out.shape[:2] + photo.shape[2:])


def _summary(times: list[float]) -> str:
    return f"{1e3 * statistics.median(times):.2f} ms (rounds {1e3 * min(times):.1f}-{1e3 * max(times):.1f})"


@click.group()
def main() -> None:
    """Speed and OpenCV-independence of kfaar's warps."""


@main.command()
@click.option("--rounds", type=click.IntRange(2), default=8, show_default=True)
def speed(rounds: int) -> None:
    """Full photo anonymize / recover and the paste alone, kfaar's warps vs OpenCV's."""
    from matplotlib import cbook

    import kfaar.ops
    from kfaar import Anonymizer, Authenticator, Key
    from kfaar.faces import align, load_image

    ours, theirs = kfaar.ops.warp_affine, _opencv_warp_affine

    def use(warp) -> None:  # every caller imports it from kfaar.ops when it runs
        kfaar.ops.warp_affine = warp

    photo = load_image(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))
    keys = [Key.from_bytes(hashlib.sha256(bytes([i])).digest()) for i in range(8)]
    t = {name: {"anonymize": [], "recover": []} for name in ("kfaar", "OpenCV")}
    try:
        with Anonymizer() as anon, Authenticator() as auth:
            virtual = [anon.anonymize(photo, k) for k in keys]
            for r in range(rounds):
                for name in ("kfaar", "OpenCV") if r % 2 == 0 else ("OpenCV", "kfaar"):
                    use(ours if name == "kfaar" else theirs)
                    s = time.perf_counter()
                    for k in keys:
                        anon.anonymize(photo, k)
                    t[name]["anonymize"].append((time.perf_counter() - s) / len(keys))
                    s = time.perf_counter()
                    for v, k in zip(virtual, keys):
                        auth.recover_result(v, k)
                    t[name]["recover"].append((time.perf_counter() - s) / len(keys))
    finally:
        use(ours)
    for name, d in t.items():
        click.echo(f"{name:6s} 512x600 photo: anonymize {_summary(d['anonymize'])}, recover {_summary(d['recover'])}")

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (128, 128, 3), np.uint8)
    mask = rng.random((128, 128)).astype(np.float32)
    for side, scale in ((600, 0.6), (4000, 0.15), (4000, 0.06)):
        big = rng.integers(0, 256, (side, side * 3 // 4, 3), np.uint8)
        m = np.array([[scale * 0.98, scale * 0.17, -20.0], [-scale * 0.17, scale * 0.98, -30.0]])
        p = {"kfaar": [], "OpenCV": []}
        for r in range(rounds):
            for name in ("kfaar", "OpenCV") if r % 2 == 0 else ("OpenCV", "kfaar"):
                out = big.copy()
                s = time.perf_counter()
                use(ours if name == "kfaar" else theirs)
                align.paste_into(out, crop, m, mask=mask)
                p[name].append(time.perf_counter() - s)
        use(ours)
        click.echo(f"paste into {big.shape[1]}x{big.shape[0]}, face box ~{128 / scale:.0f} px: "
                   f"kfaar {_summary(p['kfaar'])}, OpenCV {_summary(p['OpenCV'])}")


@main.command()
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--photos", type=click.IntRange(1), default=60, show_default=True)
@click.option("--data", type=click.Path(file_okay=False), default=None, help="Folder holding lfw/ (default: ../shared/data).")
def hashes(out: str, photos: int, data: str | None) -> None:
    """SHA-256 of each dev photo's anonymized bytes and recovered embedding, with this OpenCV."""
    import cv2

    from kfaar import Anonymizer, Authenticator, Key
    from kfaar.faces import load_image

    root = Path(data) if data else Path(__file__).resolve().parents[2] / "shared" / "data"
    files = sorted((root / "lfw").glob("*/*_0001.jpg"))[:photos]
    key = Key.from_bytes(hashlib.sha256(b"A").digest())
    got = {"opencv": cv2.__version__, "photos": {}}
    with Anonymizer() as anon, Authenticator() as auth:
        for f in files:
            v = anon.anonymize(load_image(f), key)
            e = auth.recover_result(v, key).embedding
            got["photos"][f.name] = [hashlib.sha256(v.tobytes()).hexdigest(), hashlib.sha256(e.tobytes()).hexdigest()]
    Path(out).write_text(json.dumps(got, indent=1))
    click.echo(f"OpenCV {cv2.__version__}: {len(files)} photos hashed into {out}")


@main.command()
@click.argument("a", type=click.Path(exists=True, dir_okay=False))
@click.argument("b", type=click.Path(exists=True, dir_okay=False))
def compare(a: str, b: str) -> None:
    """How many photos two `hashes` files agree on."""
    x, y = json.loads(Path(a).read_text()), json.loads(Path(b).read_text())
    shared = sorted(set(x["photos"]) & set(y["photos"]))
    same = [sum(x["photos"][f][i] == y["photos"][f][i] for f in shared) for i in (0, 1)]
    click.echo(f"OpenCV {x['opencv']} vs {y['opencv']}: {len(shared)} photos; anonymized bytes identical for {same[0]}, "
               f"recovered embeddings for {same[1]}")


if __name__ == "__main__":
    main()
