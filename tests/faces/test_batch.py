import numpy as np
from PIL import Image

from kfaar.faces import BatchReport, iter_images, load_image, process_images


def _tree(tmp_path):
    img = np.zeros((8, 8, 3), np.uint8)
    (tmp_path / "a" / "deep").mkdir(parents=True)
    Image.fromarray(img).save(tmp_path / "a" / "1.png")
    Image.fromarray(img).save(tmp_path / "a" / "deep" / "2.JPG")
    (tmp_path / "a" / "notes.txt").write_text("not an image")
    (tmp_path / "a" / ".hidden.png").write_bytes(b"")
    (tmp_path / "a" / "broken.jpg").write_bytes(b"garbage")
    return tmp_path / "a"


def test_iter_images_expands_folders(tmp_path):
    root = _tree(tmp_path)
    assert [p.relative_to(root).as_posix() for p in iter_images(root)] == ["1.png", "broken.jpg", "deep/2.JPG"]
    assert [p.name for p in iter_images(root, recursive=False)] == ["1.png", "broken.jpg"]
    # explicit files are passed through, even missing ones (the batch reports them)
    listed = list(iter_images([root / "notes.txt", tmp_path / "missing.jpg", str(root / "1.png")]))
    assert [p.name for p in listed] == ["notes.txt", "missing.jpg", "1.png"]


def test_process_images_skips_and_reports(tmp_path):
    root = _tree(tmp_path)
    report = BatchReport()
    paths = [*iter_images(root), tmp_path / "missing.jpg"]
    done = dict(process_images(paths, lambda p: load_image(p).shape, report=report, progress=False))
    assert sorted(p.name for p in done) == ["1.png", "2.JPG"]
    assert report.ok == 2 and report.total == 4
    failed = {p.name: msg for p, msg in report.failed}
    assert set(failed) == {"broken.jpg", "missing.jpg"}
    assert "ImageReadError" in failed["broken.jpg"] and "broken.jpg" in failed["broken.jpg"]
    assert "2 of 4 processed, 2 skipped" == report.summary()
