"""Write the render chain's ceiling: a bundle that replaces nothing, for ``kfaar eval``'s pose rows.

A kfaar-v2 face is the input's face-model coefficients with the identity directions replaced
by the keyed part (``c E + w``), rendered through the detail refiner, the colour shift, the
seamless paste and the code carrier. This tool writes the same bundle with nothing replaced
(``E = I``, the mapping's output zero) and the pose warp off (the face is the input's own, so
it needs no turning): the face model's reconstruction of the input, through every later
stage as shipped. ``kfaar eval`` on it gives the pose and mouth rows the chain could reach if
the identity split cost nothing; its privacy rows are meaningless (the face is the person's).

    python tools/ceiling_bundle.py --out runs/ceiling.safetensors      # prints the SHA-256
    kfaar eval --methods kfaar --limit 100 --quiet --out runs/ceiling_eval \\
        --kfaar-model runs/ceiling.safetensors --kfaar-sha256 <printed>
"""

from __future__ import annotations

import argparse
import copy
import dataclasses

import torch

from kfaar.models.bundle import load_bundle, save_bundle
from kfaar.models.eigen import EigenGenerator


def ceiling(bundle):
    """The bundle with nothing replaced and no pose warp (a new generator and mapping; the input untouched)."""
    gen = bundle.generator
    if not isinstance(gen, EigenGenerator):
        raise SystemExit("the ceiling is the face model's: this bundle's generator is not an eigen generator")
    cfg = dataclasses.replace(gen.cfg, pose_warp=0.0)
    out = EigenGenerator(cfg)
    state = {k: v for k, v in gen.state_dict().items() if k != "nose"}  # the warp's read-out goes with it
    out.load_state_dict(state)
    out.edit.copy_(torch.eye(cfg.n_components))
    mapping = copy.deepcopy(bundle.mapping)
    with torch.no_grad():
        for p in mapping.styles[0].parameters():
            p.zero_()
    info = dict(bundle.info, ceiling="nothing replaced (E = I, w = 0), no pose warp: tools/ceiling_bundle.py")
    return dataclasses.replace(bundle, generator=out.eval(), mapping=mapping, info=info)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None, help="a .safetensors bundle (default: the shipped one)")
    ap.add_argument("--model-sha256", default=None, help="its SHA-256 (checked before loading)")
    ap.add_argument("--out", required=True, help="where to write the ceiling bundle")
    args = ap.parse_args()
    print(save_bundle(ceiling(load_bundle(args.model, args.model_sha256)), args.out))


if __name__ == "__main__":
    main()
