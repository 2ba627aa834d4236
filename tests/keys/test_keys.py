"""Keys: known answers, sealed files, and hygiene (no key material where it should not be)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import pickle
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from kfaar import Key, KeyFormatError, KeyVerificationError
from kfaar.keys import PassphraseKdf

VECTORS = json.loads((Path(__file__).parents[1] / "vectors" / "keys_v1.json").read_text())
PASS = "correct horse battery staple"
# The cheapest Argon2id the SDK accepts (OWASP's minimum), so file tests stay fast.
FAST_KDF = PassphraseKdf(algorithm="argon2id", memory_cost_kib=19 * 1024, iterations=2, lanes=1)


def _hkdf_rfc5869(ikm: bytes, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 written from RFC 5869 with the stdlib, as an independent check of the vectors."""
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    out, block = b"", b""
    for i in range(1, -(-length // 32) + 1):
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
    return out[:length]


@pytest.mark.parametrize("entry", VECTORS["keys"], ids=lambda e: e["fingerprint"])
def test_derive_matches_golden_vectors(entry):
    key = Key.from_bytes(bytes.fromhex(entry["material_hex"]))
    for context, expected in entry["derive"].items():
        assert key.derive(context).hex() == expected
        assert _hkdf_rfc5869(key._material, context.encode(), 32).hex() == expected
    for context, expected in entry["derive_64"].items():
        assert key.derive(context, 64).hex() == expected
    assert key.fingerprint == entry["fingerprint"]
    for party, expected in entry["relying_party"].items():
        assert key.for_relying_party(party)._material.hex() == expected


@pytest.mark.parametrize("entry", VECTORS["passphrase"], ids=lambda e: e["kdf"]["algorithm"])
def test_passphrase_keys_match_golden_vectors(entry):
    kdf = PassphraseKdf.from_json(entry["kdf"])
    key = Key.from_passphrase(entry["passphrase"], salt=kdf.salt, kdf=kdf)
    assert key._material.hex() == entry["material_hex"]
    assert key.kdf == kdf


def test_derivation_is_identical_in_a_fresh_process():
    code = "from kfaar import Key; print(Key.from_bytes(bytes(range(32))).derive('kfaar/v1/projection').hex())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == VECTORS["keys"][0]["derive"]["kfaar/v1/projection"]


def test_default_passphrase_kdf_meets_owasp_minimum():
    key = Key.from_passphrase(PASS, salt=b"0123456789abcdef")
    kdf = key.kdf
    if kdf.algorithm == "argon2id":
        assert kdf.memory_cost_kib >= 19 * 1024 and kdf.iterations >= 2
    else:
        assert kdf.log2_n >= 17 and kdf.r >= 8
    assert kdf.salt == b"0123456789abcdef"
    assert Key.from_passphrase(PASS, salt=b"0123456789abcdef") == key
    assert Key.from_passphrase(PASS, salt=b"fedcba9876543210") != key
    assert Key.from_passphrase(PASS + "!", salt=b"0123456789abcdef") != key


def test_generate_is_random_and_injectable():
    assert Key.generate() != Key.generate()
    a = Key.generate(randbytes=lambda n: b"\x07" * n)
    assert a == Key.from_bytes(b"\x07" * 32)


def test_contexts_and_relying_parties_are_independent():
    key = Key.generate()
    assert key.derive("kfaar/v1/projection") != key.derive("kfaar/v1/fingerprint")
    bank, social = key.for_relying_party("bank"), key.for_relying_party("social")
    assert bank != social and bank != key
    assert bank.fingerprint != social.fingerprint != key.fingerprint


@pytest.mark.parametrize(
    "make, error",
    [
        (lambda: Key.from_bytes(b"\0" * 16), KeyFormatError),
        (lambda: Key.from_bytes(b"\0" * 33), KeyFormatError),
        (lambda: Key.from_bytes("0" * 32), TypeError),
        (lambda: Key.from_passphrase("", salt=b"0123456789abcdef"), KeyFormatError),
        (lambda: Key.from_passphrase(PASS, salt=b"short"), KeyFormatError),
        (lambda: Key.from_passphrase(PASS, salt="0123456789abcdef"), TypeError),
        (lambda: Key.from_passphrase(123, salt=b"0123456789abcdef"), TypeError),
        (lambda: PassphraseKdf(memory_cost_kib=1024), KeyFormatError),
        (lambda: PassphraseKdf(algorithm="md5"), KeyFormatError),
        (lambda: Key.generate().derive(""), KeyFormatError),
        (lambda: Key.generate().derive("x", 0), KeyFormatError),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error(make, error):
    with pytest.raises(error):
        make()


def test_save_load_round_trip_with_private_mode(tmp_path):
    key = Key.generate()
    path = key.save(tmp_path / "user.key", passphrase=PASS, kdf=FAST_KDF)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert Key.load(path, passphrase=PASS) == key
    assert key._material not in path.read_bytes()
    assert [p.name for p in tmp_path.iterdir()] == ["user.key"]  # no temp file left behind


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "user.key"
    first = Key.generate()
    first.save(path, passphrase=PASS, kdf=FAST_KDF)
    with pytest.raises(FileExistsError):
        Key.generate().save(path, passphrase=PASS, kdf=FAST_KDF)
    assert Key.load(path, passphrase=PASS) == first
    second = Key.generate()
    second.save(path, passphrase=PASS, kdf=FAST_KDF, overwrite=True)
    assert Key.load(path, passphrase=PASS) == second


def test_default_save_uses_the_strong_kdf(tmp_path):
    path = Key.generate().save(tmp_path / "k", passphrase=PASS)
    blob = path.read_bytes()
    (hlen,) = struct.unpack(">H", blob[8:10])  # MAGIC | u16 header length | header JSON | sealed key
    kdf = json.loads(blob[10 : 10 + hlen])["kdf"]
    assert kdf["algorithm"] in ("argon2id", "scrypt")
    assert kdf["algorithm"] == "scrypt" or (kdf["memory_cost_kib"] >= 19 * 1024 and kdf["iterations"] >= 2)


def test_wrong_passphrase_gives_one_clear_error(tmp_path):
    path = Key.generate().save(tmp_path / "user.key", passphrase=PASS, kdf=FAST_KDF)
    with pytest.raises(KeyVerificationError, match="wrong passphrase"):
        Key.load(path, passphrase="not it")


def test_every_tampered_byte_is_detected(tmp_path):
    path = Key.generate().save(tmp_path / "user.key", passphrase=PASS, kdf=FAST_KDF)
    blob = path.read_bytes()
    # Every byte of the header, the nonce and the ciphertext is covered; step to keep it quick.
    for i in list(range(0, len(blob), 7)) + [len(blob) - 1]:
        damaged = bytearray(blob)
        damaged[i] ^= 0x01
        path.write_bytes(bytes(damaged))
        with pytest.raises(KeyVerificationError):
            Key.load(path, passphrase=PASS)


@pytest.mark.parametrize("content", [b"", b"KFAARKEY", b"KFAARKEY\xff\xff{}", b"not a key file at all", b"\0" * 100,
                                     b"KFAARKEY\x00\x02[]", b'KFAARKEY\x00\x04"kf"'])  # headers not objects
def test_truncated_or_foreign_files_are_rejected(tmp_path, content):
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(KeyVerificationError):
        Key.load(path, passphrase=PASS)
    with pytest.raises(KeyFormatError, match="bad.key is not a kfaar key file"):
        Key.file_kdf(path)


def test_file_kdf_reads_the_cost_without_the_passphrase(tmp_path):
    path = Key.generate().save(tmp_path / "user.key", passphrase=PASS, kdf=FAST_KDF)
    kdf = Key.file_kdf(path)
    assert (kdf.algorithm, kdf.memory_cost_kib, kdf.iterations, kdf.lanes) == ("argon2id", 19 * 1024, 2, 1)
    assert len(kdf.salt) == 16
    with pytest.raises(FileNotFoundError, match="nope.key"):
        Key.file_kdf(tmp_path / "nope.key")


def test_truncated_real_file_is_rejected(tmp_path):
    path = Key.generate().save(tmp_path / "user.key", passphrase=PASS, kdf=FAST_KDF)
    blob = path.read_bytes()
    for cut in (len(blob) - 1, len(blob) - 17, len(blob) // 2):
        path.write_bytes(blob[:cut])
        with pytest.raises(KeyVerificationError):
            Key.load(path, passphrase=PASS)


def test_hostile_header_cannot_ask_for_huge_kdf_cost(tmp_path):
    path = Key.generate().save(tmp_path / "user.key", passphrase=PASS, kdf=FAST_KDF)
    blob = path.read_bytes()
    path.write_bytes(blob.replace(b'"memory_cost_kib":19456', b'"memory_cost_kib":99999999'))
    with pytest.raises(KeyVerificationError):
        Key.load(path, passphrase=PASS)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.key"):
        Key.load(tmp_path / "nope.key", passphrase=PASS)


def test_key_material_never_shows(caplog, tmp_path):
    key = Key.from_bytes(bytes(range(32)))
    secret_hex = key._material.hex()
    with caplog.at_level(logging.DEBUG):
        texts = [repr(key), str(key), f"{key}", repr([key]), repr(key.kdf)]
        path = key.save(tmp_path / "k", passphrase=PASS, kdf=FAST_KDF)
        try:
            Key.load(path, passphrase="wrong")
        except KeyVerificationError as exc:
            texts.append(str(exc))
    texts.append(caplog.text)
    for text in texts:
        assert secret_hex not in text and str(key._material) not in text
    assert key.fingerprint in repr(key)


def test_keys_refuse_pickling_and_copy_safely():
    key = Key.generate()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    assert copy.deepcopy(key) == key


def test_equality_and_hashing():
    a, b = Key.from_bytes(b"\1" * 32), Key.from_bytes(b"\1" * 32)
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Key.from_bytes(b"\2" * 32)
    assert (a == "key") is False
