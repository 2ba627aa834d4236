from click.testing import CliRunner

from kfaar import Key
from kfaar.cli import main


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
