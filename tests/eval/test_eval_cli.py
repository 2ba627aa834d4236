"""`kfaar eval` argument handling (no data, no judges needed)."""

from __future__ import annotations

from click.testing import CliRunner

from kfaar.cli import main


def test_eval_help_lists_the_options():
    res = CliRunner().invoke(main, ["eval", "--help"])
    assert res.exit_code == 0
    for opt in ("--methods", "--split", "--limit", "--out", "--data", "--seed", "--setup-judges", "--judges-venv"):
        assert opt in res.output


def test_eval_unknown_method_lists_valid_ones():
    res = CliRunner().invoke(main, ["eval", "--methods", "identity,swirl"])
    assert res.exit_code != 0
    assert "swirl" in res.output and "blackbox" in res.output


def test_eval_without_data_fails_before_touching_the_judges(tmp_path, monkeypatch):
    monkeypatch.setenv("KFAAR_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("KFAAR_JUDGES_VENV", str(tmp_path / "venv"))
    res = CliRunner().invoke(main, ["eval", "--limit", "2", "--out", str(tmp_path / "out")])
    assert res.exit_code != 0
    assert "KFAAR_DATA" in res.output
    assert not (tmp_path / "venv").exists()
