"""kfaar._atomic.atomic_write: the one way kfaar writes a file."""

import os
import stat

import pytest

from kfaar._atomic import atomic_write


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_writes_the_whole_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "sub" / "dir" / "out.bin"  # folders made when missing
    with atomic_write(path) as f:
        f.write(b"hello ")
        f.write(b"world")
        assert not path.exists()  # nothing under the real name until the block ends
    assert path.read_bytes() == b"hello world"
    assert [p.name for p in path.parent.iterdir()] == ["out.bin"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()  # what a plain open() gives


def test_an_exception_mid_write_keeps_the_old_file_and_removes_the_new_one(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="stopped"):
        with atomic_write(path, sync=True) as f:
            f.write(b"half of the new")
            raise RuntimeError("stopped")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_private_files_are_0600_even_over_a_readable_one(tmp_path):
    path = tmp_path / "secret"
    path.write_bytes(b"old")
    path.chmod(0o644)
    with atomic_write(path, private=True, sync=True) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_temporary_name_is_hidden_and_beside_the_target(tmp_path):
    path = tmp_path / "photo.png"
    with atomic_write(path) as f:
        f.write(b"x")
        f.flush()
        (tmp,) = tmp_path.iterdir()
        assert tmp.name.startswith(".photo.png.") and tmp.name.endswith(".tmp")
        assert tmp.read_bytes() == b"x"


def test_a_file_in_the_way_of_the_folder_is_named(tmp_path):
    (tmp_path / "a").write_bytes(b"a file, not a folder")
    for path in (tmp_path / "a" / "out.bin", tmp_path / "a" / "b" / "out.bin"):
        with pytest.raises(NotADirectoryError, match="a file stands where a folder"):
            with atomic_write(path) as f:
                f.write(b"never")
    assert (tmp_path / "a").read_bytes() == b"a file, not a folder"
