"""User keys: generation, passphrase derivation, HKDF subkeys and sealed key files.

Every primitive comes from ``cryptography``; nothing here is hand-written crypto.

* :meth:`Key.generate` — 256 bits from the OS CSPRNG.
* :meth:`Key.from_passphrase` — Argon2id (RFC 9106's second recommended setting, above
  OWASP's minimum), scrypt where the linked OpenSSL lacks Argon2id. Salt and parameters are
  recorded on the key (:attr:`Key.kdf`) so the same key can be re-derived.
* :meth:`Key.derive` — HKDF-SHA256 with a context label per use, so no two uses (projection
  parameters, relying parties, the fingerprint) ever share bytes.
* :meth:`Key.save` / :meth:`Key.load` — a versioned file sealed with AES-256-GCM under a
  passphrase-derived key. The header (format, version, KDF, salt, nonce) is authenticated as
  associated data, so any changed byte fails the tag check.

Key material never appears in ``repr``/``str``, logs or exception messages; equality is
constant-time. Python ``bytes`` cannot be wiped from memory: keep keys in as few places as
you can and let them go out of scope.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Union

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.constant_time import bytes_eq
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from kfaar._atomic import atomic_write
from kfaar.errors import KeyFormatError, KeyVerificationError

__all__ = ["KEY_BYTES", "Key", "PassphraseKdf"]

KEY_BYTES = 32  # 256-bit keys everywhere

PathLike = Union[str, os.PathLike]
Passphrase = Union[str, bytes]

# Context labels: every derived use of a key has its own, so outputs never collide.
_CTX_FINGERPRINT = "kfaar/v1/fingerprint"
_CTX_RELYING_PARTY = "kfaar/v1/relying-party/"

# Key file layout: MAGIC | u16 header length | header JSON | AES-GCM ciphertext+tag.
# Everything before the ciphertext is the associated data.
_MAGIC = b"KFAARKEY"
_FILE_VERSION = 1
_NONCE_BYTES = 12
_SALT_BYTES = 16
_MIN_SALT_BYTES = 8  # Argon2's own minimum

# Bounds on KDF parameters read from a file: a tampered header must not make us spend
# gigabytes or minutes before the tag check can fail.
_MAX_MEMORY_KIB = 1 << 21  # 2 GiB
_MAX_ITERATIONS = 64
_MAX_LANES = 64
_MAX_SCRYPT_LOG2_N = 22


@dataclass(frozen=True)
class PassphraseKdf:
    """How a passphrase became a key: algorithm, salt and cost. Not secret.

    Pass one without a salt to choose the cost; :meth:`Key.from_passphrase` and
    :meth:`Key.save` fill the salt in.

    Defaults are RFC 9106's second recommended Argon2id setting (64 MiB, 3 passes, 4 lanes),
    above OWASP's minimum (19 MiB, 2 passes, 1 lane). ``scrypt`` uses N = 2**17, r = 8, p = 1
    (OWASP's recommendation).
    """

    algorithm: str = "argon2id"  # "argon2id" or "scrypt"
    salt: bytes = b""
    memory_cost_kib: int = 64 * 1024  # argon2id
    iterations: int = 3  # argon2id passes
    lanes: int = 4  # argon2id parallelism
    log2_n: int = 17  # scrypt cost
    r: int = 8  # scrypt block size
    p: int = 1  # scrypt parallelism

    def __post_init__(self) -> None:
        if self.algorithm not in ("argon2id", "scrypt"):
            raise KeyFormatError(f"algorithm: expected 'argon2id' or 'scrypt', got {self.algorithm!r}")
        if not isinstance(self.salt, (bytes, bytearray)):
            raise TypeError(f"salt: expected bytes, got {type(self.salt).__name__}")
        if self.algorithm == "argon2id":
            _check_range("memory_cost_kib", self.memory_cost_kib, 19 * 1024, _MAX_MEMORY_KIB)
            _check_range("iterations", self.iterations, 1, _MAX_ITERATIONS)
            _check_range("lanes", self.lanes, 1, _MAX_LANES)
            if self.memory_cost_kib < 8 * self.lanes:
                raise KeyFormatError("memory_cost_kib: must be at least 8 KiB per lane")
        else:
            _check_range("log2_n", self.log2_n, 15, _MAX_SCRYPT_LOG2_N)
            _check_range("r", self.r, 1, 32)
            _check_range("p", self.p, 1, 16)

    def derive(self, passphrase: bytes, length: int = KEY_BYTES) -> bytes:
        if len(self.salt) < _MIN_SALT_BYTES:
            raise KeyFormatError(
                f"salt: expected at least {_MIN_SALT_BYTES} bytes (16 random bytes recommended), got {len(self.salt)}"
            )
        if self.algorithm == "argon2id":
            from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

            kdf = Argon2id(
                salt=bytes(self.salt),
                length=length,
                iterations=self.iterations,
                lanes=self.lanes,
                memory_cost=self.memory_cost_kib,
            )
        else:
            kdf = Scrypt(salt=bytes(self.salt), length=length, n=1 << self.log2_n, r=self.r, p=self.p)
        return kdf.derive(passphrase)

    def to_json(self) -> dict:
        d = asdict(self)
        d["salt"] = base64.b64encode(bytes(self.salt)).decode("ascii")
        return d

    @classmethod
    def from_json(cls, d: dict) -> PassphraseKdf:
        fields = dict(d)
        fields["salt"] = base64.b64decode(fields["salt"], validate=True)
        return cls(**fields)


def _check_range(name: str, value: object, lo: int, hi: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise KeyFormatError(f"{name}: expected an integer in [{lo}, {hi}], got {value!r}")


def _argon2id_available() -> bool:
    try:
        PassphraseKdf(salt=b"\0" * _SALT_BYTES, memory_cost_kib=19 * 1024, iterations=1, lanes=1).derive(b"probe")
    except (ImportError, UnsupportedAlgorithm):
        return False
    return True


def default_kdf(salt: bytes) -> PassphraseKdf:
    """Argon2id where the linked OpenSSL has it, else scrypt."""
    if _argon2id_available():
        return PassphraseKdf(algorithm="argon2id", salt=salt)
    return PassphraseKdf(algorithm="scrypt", salt=salt)


def _passphrase_bytes(passphrase: Passphrase) -> bytes:
    if isinstance(passphrase, str):
        passphrase = passphrase.encode("utf-8")
    if not isinstance(passphrase, (bytes, bytearray)):
        raise TypeError(f"passphrase: expected str or bytes, got {type(passphrase).__name__}")
    if len(passphrase) == 0:
        raise KeyFormatError("passphrase: must not be empty")
    return bytes(passphrase)


class Key:
    """A 256-bit secret key. Create with :meth:`generate`, :meth:`from_passphrase`,
    :meth:`load` or (for tests and golden vectors) :meth:`from_bytes`."""

    __slots__ = ("_material", "_kdf")

    def __init__(self, material: bytes, *, kdf: PassphraseKdf | None = None):
        if not isinstance(material, (bytes, bytearray)):
            raise TypeError(f"key material: expected bytes, got {type(material).__name__}")
        if len(material) != KEY_BYTES:
            raise KeyFormatError(f"key material: expected {KEY_BYTES} bytes, got {len(material)}")
        self._material = bytes(material)
        self._kdf = kdf

    # -- construction -------------------------------------------------------------------
    @classmethod
    def generate(cls, *, randbytes: Callable[[int], bytes] | None = None) -> Key:
        """A fresh random key from the OS CSPRNG (``randbytes`` may be passed for exact tests)."""
        return cls((randbytes or os.urandom)(KEY_BYTES))

    @classmethod
    def from_bytes(cls, data: bytes) -> Key:
        """A key from exactly 32 bytes of existing key material."""
        return cls(data)

    @classmethod
    def from_passphrase(
        cls, passphrase: Passphrase, *, salt: bytes, kdf: PassphraseKdf | None = None
    ) -> Key:
        """A key stretched from a passphrase with a memory-hard KDF.

        ``salt``: at least 8 bytes, 16 random bytes recommended; keep it with the user record.
        ``kdf``: explicit algorithm and cost (its ``salt`` is replaced by ``salt``).
        """
        if not isinstance(salt, (bytes, bytearray)):
            raise TypeError(f"salt: expected bytes, got {type(salt).__name__}")
        params = default_kdf(bytes(salt)) if kdf is None else _with_salt(kdf, bytes(salt))
        return cls(params.derive(_passphrase_bytes(passphrase)), kdf=params)

    # -- use ----------------------------------------------------------------------------
    def derive(self, context: str, length: int = KEY_BYTES) -> bytes:
        """HKDF-SHA256 subkey bytes for one use, named by ``context`` (e.g. ``"kfaar/v1/projection"``)."""
        if not isinstance(context, str) or not context:
            raise KeyFormatError(f"context: expected a non-empty str label, got {context!r}")
        if not isinstance(length, int) or not 1 <= length <= 255 * 32:
            raise KeyFormatError(f"length: expected an integer in [1, 8160], got {length!r}")
        hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=context.encode("utf-8"))
        return hkdf.derive(self._material)

    def for_relying_party(self, party: str) -> Key:
        """An independent key per service, so two services cannot link one user's virtual faces."""
        if not isinstance(party, str) or not party:
            raise KeyFormatError(f"party: expected a non-empty str, got {party!r}")
        return Key(self.derive(_CTX_RELYING_PARTY + party))

    @property
    def fingerprint(self) -> str:
        """A short, non-secret identifier (80 bits of HKDF output), e.g. ``kfp-ABCD-EFGH-...``."""
        digest = base64.b32encode(self.derive(_CTX_FINGERPRINT, 10)).decode("ascii")
        return "kfp-" + "-".join(digest[i : i + 4] for i in range(0, 16, 4))

    @property
    def kdf(self) -> PassphraseKdf | None:
        """The passphrase KDF and salt this key came from, or None."""
        return self._kdf

    # -- files --------------------------------------------------------------------------
    def save(
        self,
        path: PathLike,
        *,
        passphrase: Passphrase,
        kdf: PassphraseKdf | None = None,
        overwrite: bool = False,
    ) -> Path:
        """Seal the key into ``path`` (mode 0600, written atomically); returns the path."""
        path = Path(path)
        pw = _passphrase_bytes(passphrase)
        salt = os.urandom(_SALT_BYTES)
        params = default_kdf(salt) if kdf is None else _with_salt(kdf, salt)
        nonce = os.urandom(_NONCE_BYTES)
        header = json.dumps(
            {"format": "kfaar-key", "version": _FILE_VERSION, "kdf": params.to_json(),
             "nonce": base64.b64encode(nonce).decode("ascii")},
            sort_keys=True, separators=(",", ":"),
        ).encode("utf-8")
        prefix = _MAGIC + struct.pack(">H", len(header)) + header
        sealed = AESGCM(params.derive(pw)).encrypt(nonce, self._material, prefix)
        write_private(path, prefix + sealed, overwrite=overwrite)
        return path

    @classmethod
    def load(cls, path: PathLike, *, passphrase: Passphrase) -> Key:
        """Open a sealed key file. A wrong passphrase or any damaged byte raises
        :class:`KeyVerificationError`; no partial key is ever returned."""
        path = Path(path)
        pw = _passphrase_bytes(passphrase)
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(f"key file not found: {path}") from None
        failure = KeyVerificationError(
            f"could not open key file {path}: wrong passphrase, or the file is damaged or not a kfaar key"
        )
        try:
            params, nonce, end = _read_header(blob)
            material = AESGCM(params.derive(pw)).decrypt(nonce, blob[end:], blob[:end])
        except (InvalidTag, *_HEADER_ERRORS):
            # One error for every failure, so the file is no oracle for which check failed.
            raise failure from None
        if len(material) != KEY_BYTES:
            raise failure
        return cls(material)

    @staticmethod
    def file_kdf(path: PathLike) -> PassphraseKdf:
        """The passphrase KDF a sealed key file was written with (not secret; read without the
        passphrase, and not authenticated until :meth:`load` checks the tag)."""
        path = Path(path)
        try:
            return _read_header(path.read_bytes())[0]
        except FileNotFoundError:
            raise FileNotFoundError(f"key file not found: {path}") from None
        except _HEADER_ERRORS:
            raise KeyFormatError(f"{path} is not a kfaar key file") from None

    # -- hygiene ------------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Key(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return bytes_eq(self._material, other._material)

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    def __reduce__(self):
        raise TypeError("Key objects cannot be pickled (that would write key material in the clear); use Key.save")

    def __copy__(self) -> Key:
        return self

    def __deepcopy__(self, memo: dict) -> Key:
        return self


_HEADER_ERRORS = (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError)


def _read_header(blob: bytes) -> tuple[PassphraseKdf, bytes, int]:
    """A key file's KDF, nonce and header length (the associated data ends there); one of
    ``_HEADER_ERRORS`` when it is no kfaar key file."""
    if not blob.startswith(_MAGIC):
        raise ValueError
    (hlen,) = struct.unpack(">H", blob[len(_MAGIC) : len(_MAGIC) + 2])
    end = len(_MAGIC) + 2 + hlen
    header = json.loads(blob[len(_MAGIC) + 2 : end].decode("utf-8"))
    if not isinstance(header, dict) or header.get("format") != "kfaar-key" or header.get("version") != _FILE_VERSION:
        raise ValueError
    params = PassphraseKdf.from_json(header["kdf"])
    nonce = base64.b64decode(header["nonce"], validate=True)
    if len(nonce) != _NONCE_BYTES:
        raise ValueError
    return params, nonce, end


def _with_salt(kdf: PassphraseKdf, salt: bytes) -> PassphraseKdf:
    if not isinstance(kdf, PassphraseKdf):
        raise TypeError(f"kdf: expected PassphraseKdf, got {type(kdf).__name__}")
    return PassphraseKdf(**{**asdict(kdf), "salt": salt})


def write_private(path: Path, data: bytes, *, overwrite: bool, what: str = "key file") -> None:
    """Write ``data`` to ``path`` with mode 0600 via a temp file and an atomic rename (key files,
    templates): no other user can read it, and no half-written file is left under its name."""
    if path.exists() and not overwrite:
        raise FileExistsError(f"{what} already exists: {path} (pass overwrite=True to replace it)")
    with atomic_write(path, private=True, sync=True) as f:
        f.write(data)
