"""What every virtual face shares: the mean of (virtual minus input) by distance from the ellipse's centre.

For the first aligned crop of each of LIMIT dev identities (the faces cache), one key's
virtual face is rendered by the torch bundle (the detector's landmarks feeding the pose
warp, as in the pipeline) and compared with its input, averaged over the faces, in rings of
0.1 of the face ellipse's radii (grey levels, the three channels' mean), at each stage of
the generator: as rendered, after the colour shift (the input's mean colour under the
mask), after the seamless paste's correction (if the bundle has one); and, for reference,
the face model's own reconstruction of the input (no key). A bias that every face shows is
not identity: it is how the model's faces differ from photos (the dark outline of step 12
was found this way). Last, the outline prior's value (``train/eigen.py: rim_bias``) on the
final faces.

    python tools/rim_profile.py --limit 200                        # the shipped bundle, ~20 s
    python tools/rim_profile.py --model runs/x.safetensors         # your own (unpinned) bundle
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from kfaar.faces.align import nose_offset
from kfaar.keys import Key
from kfaar.models.bundle import load_bundle
from kfaar.models.engine import KfaarEngine
from kfaar.models.generator import ellipse_radius
from kfaar.train.data import first_faces
from kfaar.train.eigen import rim_bias, rim_weight


@torch.inference_mode()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="bundle: a shipped name or a .safetensors path (default kfaar-v2)")
    ap.add_argument("--limit", type=int, default=200, help="dev identities (default 200)")
    args = ap.parse_args()

    try:
        faces = first_faces("dev", args.limit)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    bundle = load_bundle(args.model)
    gen, engine = bundle.generator, KfaarEngine(bundle)
    if not hasattr(gen, "seam_correction"):
        raise SystemExit("this tool reads the eigen generator's stages; this bundle has another generator")
    key = Key.from_bytes(bytes([1] * 32))
    z = np.ascontiguousarray(faces.embeddings)
    w_plus = torch.from_numpy(engine.w_plus(engine.keyed_code(z, key)))
    x = torch.from_numpy(faces.crops).permute(0, 3, 1, 2).float() / 127.5 - 1  # the generator's [-1, 1]
    offset = torch.from_numpy(nose_offset(faces.landmarks).astype(np.float32))

    m = gen.mask(x.shape[-1], x.device)
    stages = {"rendered": gen.face(x, w_plus, offset)}
    final = stages["colour shift"] = gen.colour_shift(stages["rendered"], x, m)
    if gen.cfg.seam_res:
        final = stages["seamless paste"] = final + gen.seam_correction(x - final, m)
    stages["reconstruction"] = gen.render(gen.coefficients(x), x.shape[-1])

    size = x.shape[-1]
    r = ellipse_radius(gen.cfg, size).numpy()
    edges = np.round(np.arange(0.0, 1.11, 0.1), 2)
    print(f"{len(z)} dev faces, mean of (face - input) in grey levels, by ring of the ellipse's radii")
    print(f"{'':16s}" + "".join(f"{f'{a:.1f}-{b:.1f}':>8s}" for a, b in zip(edges, edges[1:])))
    for name, face in stages.items():
        d = ((face - x) * 127.5).mean(1).mean(0).numpy()
        print(f"{name:16s}" + "".join(f"{d[(r >= a) & (r < b)].mean():+8.1f}" for a, b in zip(edges, edges[1:])))
    virtual = x * (1 - m) + final * m
    print(f"outline prior (rim_bias) on the pasted faces: {float(rim_bias(virtual, x, rim_weight(gen.cfg, size))):.4f}")


if __name__ == "__main__":
    main()
