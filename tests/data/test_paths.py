import numpy as np
from PIL import Image

from kfaar.data import default_data_dir, iter_yale, require_data_dir


def test_env_var_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("KFAAR_DATA", str(tmp_path / "x"))
    assert default_data_dir() == tmp_path / "x"


def test_repo_relative_default(monkeypatch):
    monkeypatch.delenv("KFAAR_DATA", raising=False)
    d = default_data_dir()
    assert d.name == "data" and d.parent.name == "shared"


def test_require_names_the_env_var(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="KFAAR_DATA"):
        require_data_dir("lfw", tmp_path)


def test_iter_yale(tmp_path):
    img = Image.fromarray(np.zeros((8, 8), np.uint8))
    for subject, conds in {"subject02": ["sad", "happy"], "subject01": ["wink"]}.items():
        (tmp_path / "yalefaces" / subject).mkdir(parents=True)
        for c in conds:
            img.save(tmp_path / "yalefaces" / subject / f"{c}.png")
    got = [(s, c, p.name) for s, c, p in iter_yale(tmp_path)]
    assert got == [("subject01", "wink", "wink.png"), ("subject02", "happy", "happy.png"),
                   ("subject02", "sad", "sad.png")]
    assert len(list(iter_yale(tmp_path / "yalefaces"))) == 3
