"""Are the virtual faces of photos without colour, written grey (`kfaar anonymize`'s default for
them), still other people to SFace? 100 LFW photos (every 50th `*_0001.jpg`), made grey by
ITU-R 601 luma, anonymized with one key; SFace's cosine between the grey original and the grey
result (the virtual face's luma), beside the colour result as the Anonymizer makes it.

    python tools/grey_anonymity.py [--data ../shared/data]

SFace is kfaar's own encoder, not an independent judge (`kfaar eval` has those, on colour photos).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

MATCH = 0.363  # SFace's match threshold (cosine)


@click.command()
@click.option("--data", "data_dir", type=click.Path(file_okay=False, path_type=Path), default=None)
@click.option("--photos", type=int, default=100, show_default=True)
def main(data_dir: Path | None, photos: int) -> None:
    from kfaar import Anonymizer, Authenticator, Key
    from kfaar.data.paths import default_data_dir
    from kfaar.faces import load_image
    from kfaar.faces.image import like_input

    paths = sorted((data_dir or default_data_dir()).glob("lfw/*/*_0001.jpg"))[::50][:photos]
    key = Key.from_bytes(b"g" * 32)
    cos: dict[str, list[float]] = {"grey": [], "colour": []}
    with Anonymizer() as anon, Authenticator() as auth:
        for p in paths:
            luma = np.rint(load_image(p) @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
            grey = np.repeat(luma[:, :, None], 3, axis=2)
            r = anon.anonymize_result(grey, key)
            if not r.n_faces:
                continue
            written = like_input(luma, grey, r.image)  # what kfaar anonymize writes for a grey photo
            t = auth.enroll(grey)
            for name, result in (("grey", np.repeat(written[:, :, None], 3, axis=2)), ("colour", r.image)):
                e = auth.enroll(result)
                cos[name].append(float(t @ e / np.linalg.norm(t) / np.linalg.norm(e)))
    for name, c in cos.items():
        c = np.array(c)
        click.echo(f"{name} result vs the grey original: {len(c)} photos, SFace matches {(c >= MATCH).mean():.1%}, "
                   f"median cosine {np.median(c):.3f}, max {c.max():.3f}")


if __name__ == "__main__":
    main()
