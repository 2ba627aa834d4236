"""Writes protected_template_v1.json, the known answers of protected templates (v1 file format).

Run only when deliberately changing the shipped model's identity space or the file format
(every protected template a service holds is then void: its ``space`` no longer matches):
    python tests/vectors/protected_template_v1_make.py
The vectors pin the keyed code of a fixed embedding under a fixed key in the shipped model's
identity space, the space's id, the key fingerprint and the file's bytes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kfaar import Key
from kfaar.runtime.engine import default_engine
from kfaar.templates import ProtectedTemplate

KEY = bytes(range(32))


def fixed_embedding() -> np.ndarray:
    """A (128,) unit float32 vector anyone can recompute: sin(i + 1) + 0.5 cos(3 i), normalised."""
    i = np.arange(128, dtype=np.float64)
    v = np.sin(i + 1) + 0.5 * np.cos(3 * i)
    return (v / np.linalg.norm(v)).astype(np.float32)


def main() -> None:
    key = Key.from_bytes(KEY)
    engine = default_engine()
    z = fixed_embedding()
    code = engine.protected_code(z[None], key)[0]
    template = ProtectedTemplate(code, key.fingerprint, engine.space)
    doc = {
        "format": "kfaar protected template v1",
        "note": "code = unit(whiten(P_K(z) - mean)) in the shipped model's identity space; "
                "space = SHA-256(float32 mean || float32 whiten)[:16 hex]",
        "key_hex": KEY.hex(),
        "key_fingerprint": key.fingerprint,
        "space": engine.space,
        "embedding": z.astype(float).tolist(),
        "code": code.astype(float).tolist(),
        "file": template.to_bytes().decode("utf-8"),
    }
    out = Path(__file__).with_name("protected_template_v1.json")
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
