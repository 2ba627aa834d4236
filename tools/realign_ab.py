"""A/B of recovery's re-alignment search: this checkout's against an earlier commit's, in one process.

Loads ``python/kfaar/runtime/realign.py`` as it was at ``--rev`` beside the installed one, then
times both searches alternately on the sample photo's virtual face (key bytes 0..31, the shipped
model's ONNX set, its pilot rows and grid), after checking both find the same alignment:

    python tools/realign_ab.py --rev 6fb7250 --repeats 20

``--dev N`` searches instead the virtual photos of the first photo of N dev identities (the
data cache's order, one key each), as written and re-encoded as JPEG q60, once each, and
counts how often both find the same alignment and pilot match.

The earlier module is the whole search as it was (canvases, their cells in numpy); only the
model, photo and alignment are shared. Timings are medians of alternating runs: the machine's
noise moves both alike.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np


def _module_at(rev: str):
    src = subprocess.run(["git", "show", f"{rev}:python/kfaar/runtime/realign.py"], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1]).stdout
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "realign_at_rev.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location("realign_at_rev", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod  # dataclasses look their module up
        spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rev", required=True, help="the commit to compare against")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--dev", type=int, default=0, help="search N dev identities' virtual photos instead")
    args = ap.parse_args()

    import kfaar.runtime.realign as now
    from kfaar.demo import sample_photo_path
    from kfaar.faces import FaceDetector, align_face, load_image, main_face
    from kfaar.keys import Key
    from kfaar.pipeline import Anonymizer, AnonymizerOptions, Authenticator, AuthenticatorOptions

    before = _module_at(args.rev)
    with Authenticator(AuthenticatorOptions(threads=2)) as auth:
        engine = auth._engine
        rows, grid, size = engine._pilot, engine._realign["search"], int(engine._realign["size"])
    runs = {"before": (before, before.PilotRows(rows.rows, rows.cells, rows.pilot, rows.res)), "now": (now, rows)}
    times: dict[str, list[float]] = {k: [] for k in runs}

    def both(virtual: np.ndarray, base: np.ndarray) -> dict:
        out = {}
        for k, (mod, pilot) in runs.items():
            t = time.perf_counter()
            out[k] = mod.search(virtual, base, engine.crop_size, size, grid, pilot)
            times[k].append(time.perf_counter() - t)
        return out

    photos = [load_image(sample_photo_path())]
    if args.dev:
        from kfaar.data import require_data_dir
        from kfaar.data.lfw import load_split
        from kfaar.train.data import first_photos, repo_root

        dev = load_split(repo_root() / "cache" / "lfw", "dev")
        photos = [load_image(require_data_dir("lfw") / dev.paths[i]) for i in first_photos(dev.labels, args.dev)]
    rng = np.random.default_rng(0)
    searched = same = 0
    with Anonymizer(AnonymizerOptions(threads=2)) as anon, FaceDetector() as det:
        for photo in photos:
            key = Key.from_bytes(bytes(range(32)) if not args.dev else rng.bytes(32))
            written = anon.anonymize(photo, key)
            versions = [written]
            if args.dev:
                ok, jpeg = cv2.imencode(".jpg", written[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 60])
                versions.append(cv2.imdecode(jpeg, cv2.IMREAD_COLOR)[..., ::-1].copy())
            for virtual in versions:
                faces = det.detect(virtual)
                if not faces:
                    continue
                base = align_face(virtual, main_face(faces, virtual.shape).landmarks, size=128).matrix
                for _ in range(1 if args.dev else args.repeats):
                    found = both(virtual, base)
                searched += 1
                same += bool(np.allclose(found["before"][0], found["now"][0], atol=1e-9)
                             and abs(found["before"][1] - found["now"][1]) < 1e-5)
    print(f"same alignment and pilot match: {same} of {searched} searches")
    for k, ts in times.items():
        print(f"{k:<7} median {1e3 * np.median(ts):.1f} ms per search ({len(ts)} searches, alternating)")


if __name__ == "__main__":
    main()
