"""int8 twins of the exported graphs with onnxruntime's quantization tools (no torch).

Static QDQ quantization — per-channel int8 weights, uint8 activations whose ranges come
from a calibration set of train-split crops — is what makes convolutions fast on a CPU with
VNNI. Only convolutions are quantized (measured on the generator, 2 cores' worth of one:
quantizing every op was *slower* than fp32, 24 vs 21 ms/face, because of the quantize /
dequantize pairs around cheap elementwise ops; convolutions only: 12 ms, and half the
error), and convolutions producing RGB (<= 3 output channels) stay float: they are cheap
and write the pixels directly. Where static quantization fails on a graph, dynamic
quantization is the fallback; the method used is recorded in the manifest.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class _Feeds:
    """onnxruntime's CalibrationDataReader protocol over a list of input dicts."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]):
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def _rgb_convs(model) -> list[str]:
    """Names of Conv nodes with <= 3 output channels (their weight initializer's first dim)."""
    shapes = {t.name: tuple(t.dims) for t in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "Conv" and len(n.input) > 1 and shapes.get(n.input[1], (99,))[0] <= 3]


def quantize_graph(src: str | os.PathLike, dst: str | os.PathLike, feeds: list[dict[str, np.ndarray]],
                   *, op_types: tuple[str, ...] = ("Conv",)) -> str:
    """Write the int8 twin of ``src`` to ``dst``; returns the method used ("static-qdq" or "dynamic").

    ``feeds``: calibration batches, each {input name: array}; ``op_types``: the ops quantized.
    """
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        # ORT's symbolic shape inference trips over the dynamic-batch Expand torch emits;
        # ONNX shape inference plus ORT's graph optimisations are enough here.
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        try:
            import onnx

            model = onnx.load(str(pre))
            quantize_static(str(pre), str(dst), _Feeds(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=list(op_types),
                            nodes_to_exclude=_rgb_convs(model))
            return "static-qdq"
        except Exception as err:  # noqa: BLE001 — any failure of the static path falls back, loudly
            log.warning("static int8 quantization of %s failed (%s); using dynamic quantization", src, err)
            quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=list(op_types))
            return "dynamic"
