import stat

import pytest
from click.testing import CliRunner

from kfaar import Key, KeyVerificationError
from kfaar.cli import main
from kfaar.keys import PassphraseKdf


def test_keygen_writes_a_loadable_sealed_key(tmp_path):
    out = tmp_path / "user.key"
    runner = CliRunner()
    result = runner.invoke(main, ["keygen", str(out), "--passphrase-env", "KP"], env={"KP": "s3cret pass"})
    assert result.exit_code == 0, result.output
    key = Key.load(out, passphrase="s3cret pass")
    assert key.fingerprint in result.output
    again = runner.invoke(main, ["keygen", str(out), "--passphrase-env", "KP"], env={"KP": "s3cret pass"})
    assert again.exit_code != 0 and "already exists" in again.output
    assert Key.load(out, passphrase="s3cret pass") == key


def test_keygen_prompts_with_confirmation(tmp_path):
    out = tmp_path / "user.key"
    result = CliRunner().invoke(main, ["keygen", str(out)], input="pw one\npw one\n")
    assert result.exit_code == 0, result.output
    assert "pw one" not in result.output
    Key.load(out, passphrase="pw one")


def test_keygen_with_unset_env_var_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(main, ["keygen", str(tmp_path / "k"), "--passphrase-env", "NOPE_UNSET"], env={})
    assert result.exit_code == 2 and "NOPE_UNSET" in result.output


def _keygen(path, passphrase="old pass"):
    r = CliRunner().invoke(main, ["keygen", str(path), "--passphrase-env", "KP"], env={"KP": passphrase})
    assert r.exit_code == 0, r.output
    return Key.load(path, passphrase=passphrase)


def test_key_passwd_reseals_the_same_key_under_the_new_passphrase(tmp_path):
    path = tmp_path / "user.key"
    key = _keygen(path)
    before = path.read_bytes()
    r = CliRunner().invoke(main, ["key", "passwd", str(path), "--passphrase-env", "KP", "--new-passphrase-env", "KN"],
                           env={"KP": "old pass", "KN": "new pass"})
    assert r.exit_code == 0, r.output
    assert key.fingerprint in r.output and "old pass" not in r.output and "new pass" not in r.output
    assert Key.load(path, passphrase="new pass") == key
    with pytest.raises(KeyVerificationError):
        Key.load(path, passphrase="old pass")
    (tmp_path / "before").write_bytes(before)
    assert Key.file_kdf(path).salt != Key.file_kdf(tmp_path / "before").salt  # a new salt
    (tmp_path / "before").unlink()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["user.key"]


def test_key_passwd_prompts_and_keeps_the_file_when_the_old_passphrase_is_wrong(tmp_path):
    path = tmp_path / "user.key"
    key = _keygen(path)
    before = path.read_bytes()
    wrong = CliRunner().invoke(main, ["key", "passwd", str(path)], input="not it\nnew pass\nnew pass\n")
    assert wrong.exit_code == 2 and "could not open key file" in wrong.output
    assert path.read_bytes() == before
    mismatch = CliRunner().invoke(main, ["key", "passwd", str(path)], input="old pass\nnew one\nnew two\nnew pass\nnew pass\n")
    assert mismatch.exit_code == 0, mismatch.output  # click asks again when the two entries differ
    assert "new one" not in mismatch.output and Key.load(path, passphrase="new pass") == key


def test_key_info_opens_the_file_and_shows_fingerprints_and_the_kdf(tmp_path):
    path = tmp_path / "user.key"
    key = _keygen(path)
    r = CliRunner().invoke(main, ["key", "info", str(path), "--passphrase-env", "KP", "--service", "shop"],
                           env={"KP": "old pass"})
    assert r.exit_code == 0, r.output
    assert f"fingerprint  {key.fingerprint}" in r.output
    assert f"shop: fingerprint {key.for_relying_party('shop').fingerprint}" in r.output
    assert "Argon2id (64 MiB, 3 passes, 4 lanes)" in r.output and "note:" not in r.output
    wrong = CliRunner().invoke(main, ["key", "info", str(path), "--passphrase-env", "KP"], env={"KP": "nope"})
    assert wrong.exit_code == 2 and "could not open key file" in wrong.output and key.fingerprint not in wrong.output
    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8 not a key")
    foreign = CliRunner().invoke(main, ["key", "info", str(tmp_path / "photo.jpg"), "--passphrase-env", "KP"],
                                 env={"KP": "old pass"})
    assert foreign.exit_code == 2 and "photo.jpg is not a kfaar key file" in foreign.output


def test_key_info_suggests_passwd_for_a_file_sealed_with_a_weaker_kdf(tmp_path):
    path = tmp_path / "user.key"
    key = Key.generate()
    key.save(path, passphrase="pw", kdf=PassphraseKdf(algorithm="scrypt", log2_n=15))
    r = CliRunner().invoke(main, ["key", "info", str(path), "--passphrase-env", "KP"], env={"KP": "pw"})
    assert r.exit_code == 0 and "scrypt (N = 2^15, r = 8, p = 1)" in r.output
    assert f"kfaar key passwd {path}" in r.output
