"""Writes projection_v1.json, the known answers of the v1 keyed projection.

Run only when deliberately starting a new format version (then copy to projection_v2...):
    python tests/vectors/projection_v1_make.py
The vectors pin HKDF context, ChaCha20 keystream use, sign bits, Fisher-Yates order and the
transform itself; any change to them breaks every user's enrolled templates.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kfaar import Key
from kfaar.ops.projection import CONTEXT, ProjectionParams, _project_ref

KEYS = {"range": bytes(range(32)), "reverse": bytes(range(255, 223, -1))}
CASES = [("range", 128, 4), ("reverse", 128, 4), ("range", 16, 3)]


def fixed_input(dim: int) -> np.ndarray:
    """Two rows of float32 values anyone can recompute: sin(i + 1) and cos(3 i)."""
    i = np.arange(dim, dtype=np.float64)
    return np.stack([np.sin(i + 1), np.cos(3 * i)]).astype(np.float32)


def main() -> None:
    cases = []
    for key_name, dim, rounds in CASES:
        key = Key.from_bytes(KEYS[key_name])
        params = ProjectionParams.from_key(key, dim=dim, rounds=rounds)
        z = fixed_input(dim)
        cases.append(
            {
                "key_hex": KEYS[key_name].hex(),
                "seed_hex": key.derive(CONTEXT).hex(),
                "dim": dim,
                "rounds": rounds,
                "signs": params.signs.astype(int).tolist(),
                "perms": params.perms.tolist(),
                "input": z.astype(float).tolist(),
                "forward": _project_ref(z, params).tolist(),
            }
        )
    doc = {
        "format": "kfaar projection v1",
        "context": CONTEXT,
        "note": "seed = HKDF-SHA256(key, salt=None, info=context, 32 bytes); see ProjectionParams.from_seed",
        "cases": cases,
    }
    out = Path(__file__).with_name("projection_v1.json")
    out.write_text(_dump(doc) + "\n")


def _dump(value, indent: str = "") -> str:
    """JSON with one array row per line: readable, and a changed value shows as a one-line diff."""
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k)}: {_dump(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(value, list) and value and isinstance(value[0], (list, dict)):
        return "[\n" + ",\n".join(inner + _dump(v, inner) for v in value) + "\n" + indent + "]"
    return json.dumps(value)


if __name__ == "__main__":
    main()
