"""int8 twins of the exported graphs with onnxruntime's quantization tools (no torch).

Static QDQ quantization — per-channel int8 weights, uint8 activations whose ranges come
from a calibration set of train-split crops — is what makes convolutions fast on a CPU with
VNNI. Only the op types the export names are quantized (``runtime/export.py: INT8_OPS``;
measured on the styled generator, 2 cores' worth of one: quantizing every op was *slower*
than fp32, 24 vs 21 ms/face, because of the quantize / dequantize pairs around cheap
elementwise ops; convolutions only: 12 ms, and half the error), and convolutions producing
RGB (<= 3 output channels) stay float: they are cheap and write the pixels directly. Large
float weights of products left out (``INT8_WEIGHT_ONLY``) are stored int8 weight-only and
folded back to float when a session opens the graph. Where static quantization fails on a
graph, dynamic quantization is the fallback; the method used is recorded in the manifest.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

WEIGHT_ONLY_SUFFIX = "_weight_only_int8"  # names the DequantizeLinear nodes of store_weights_int8


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


def store_weights_int8(model, op_types: tuple[str, ...] = ("Gemm", "MatMul"), min_elements: int = 1 << 18) -> list[str]:
    """Weight-only int8 for the large float weights ``op_types`` nodes still hold after static
    quantization: each becomes an int8 initializer with one symmetric scale per output column
    and a ``DequantizeLinear`` in front of the node, which keeps computing in float on its
    float activation. For products whose activation a single uint8 scale serves badly (the
    eigen generator's render product: 256 face-model coefficients whose ranges differ by
    component) this keeps fp32 accuracy and still stores 1 byte a weight. Edits ``model`` (an
    onnx ModelProto) in place; returns the names of the weights it converted."""
    from onnx import TensorProto, helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    uses: dict[str, int] = {}
    for n in model.graph.node:
        for i in n.input:
            uses[i] = uses.get(i, 0) + 1
    done, front = [], []
    for n in model.graph.node:
        w = inits.get(n.input[1]) if n.op_type in op_types and len(n.input) > 1 else None
        if w is None or w.data_type != TensorProto.FLOAT or len(w.dims) != 2 or uses[w.name] != 1:
            continue
        if int(np.prod(w.dims)) < min_elements:
            continue
        trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0) if n.op_type == "Gemm" else 0
        axis = 0 if trans_b else 1  # the output columns of B
        arr = numpy_helper.to_array(w).astype(np.float32)
        scale = np.maximum(np.abs(arr).max(axis=1 - axis), 1e-12) / 127.0
        q = np.clip(np.rint(arr / np.expand_dims(scale, 1 - axis)), -127, 127).astype(np.int8)
        model.graph.initializer.remove(w)
        model.graph.initializer.extend([numpy_helper.from_array(q, f"{w.name}_int8"),
                                        numpy_helper.from_array(scale.astype(np.float32), f"{w.name}_int8_scale"),
                                        numpy_helper.from_array(np.zeros_like(scale, np.int8), f"{w.name}_int8_zero")])
        front.append(helper.make_node("DequantizeLinear", [f"{w.name}_int8", f"{w.name}_int8_scale", f"{w.name}_int8_zero"],
                                      [f"{w.name}_dequantized"], name=f"{w.name}{WEIGHT_ONLY_SUFFIX}", axis=axis))
        n.input[1] = f"{w.name}_dequantized"
        done.append(w.name)
    for node in reversed(front):  # constants first: the graph stays topologically sorted
        model.graph.node.insert(0, node)
    return done


def fold_weight_only(graph: bytes) -> bytes:
    """The inverse of :func:`store_weights_int8` at load time: each weight-only
    ``DequantizeLinear`` becomes the float initializer it computes (the same float32
    arithmetic, ``(q - zero) * scale``), so the session does not dequantize the weight at
    every call (ONNX Runtime does not constant-fold DequantizeLinear in QDQ graphs), and no
    optimiser rewrites the pair (with ORT's optimisations on, a DequantizeLinear(axis=1) ->
    Gemm pair was computed up to 0.4 off on a test graph; tests/runtime). The file stays 1
    byte a weight; memory holds the float copy, as it would for an fp32 graph. A graph with
    no such node comes back as it is, unparsed."""
    if WEIGHT_ONLY_SUFFIX.encode() not in graph:
        return graph
    import onnx
    from onnx import numpy_helper

    model = onnx.load_from_string(graph)
    inits = {t.name: t for t in model.graph.initializer}
    for n in [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.name.endswith(WEIGHT_ONLY_SUFFIX)]:
        q, scale, zero = (numpy_helper.to_array(inits[i]) for i in n.input)
        axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
        shape = [1] * q.ndim
        shape[axis] = -1
        w = (q.astype(np.float32) - zero.astype(np.float32).reshape(shape)) * scale.astype(np.float32).reshape(shape)
        for i in n.input:
            model.graph.initializer.remove(inits[i])
        model.graph.initializer.append(numpy_helper.from_array(w.astype(np.float32), n.output[0]))
        model.graph.node.remove(n)
    return model.SerializeToString()


def quantize_graph(src: str | os.PathLike, dst: str | os.PathLike, feeds: list[dict[str, np.ndarray]],
                   *, op_types: tuple[str, ...] = ("Conv",), weight_only: tuple[str, ...] = ()) -> str:
    """Write the int8 twin of ``src`` to ``dst``; returns the method used ("static-qdq" or "dynamic").

    ``feeds``: calibration batches, each {input name: array}; ``op_types``: the ops quantized;
    ``weight_only``: op types whose large float weights left after that are stored int8
    (:func:`store_weights_int8`).
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
            if weight_only:
                q = onnx.load(str(dst))
                if store_weights_int8(q, weight_only):
                    onnx.save(q, str(dst))
                    return "static-qdq + weight-only"
            return "static-qdq"
        except Exception as err:  # noqa: BLE001 — any failure of the static path falls back, loudly
            log.warning("static int8 quantization of %s failed (%s); using dynamic quantization", src, err)
            quantize_dynamic(str(pre), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=list(op_types))
            return "dynamic"
