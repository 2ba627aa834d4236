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


def test_overlapped_batch_keeps_the_order_and_reports_each_stage_in_its_place(tmp_path):
    import threading

    from kfaar.faces import process_images_overlapped

    paths = [tmp_path / f"{i}.png" for i in range(9)]
    threads = {}

    def read(p):
        threads.setdefault("read", set()).add(threading.current_thread().name)
        if p.stem == "2":
            raise ValueError("unreadable")
        return int(p.stem)

    def work(i):
        threads.setdefault("work", set()).add(threading.current_thread().name)
        if i == 5:
            raise RuntimeError("no model")
        return i * 10

    def write(p, v):
        threads.setdefault("write", set()).add(threading.current_thread().name)
        if p.stem == "7":
            raise OSError("disk full")
        return v + 1

    report = BatchReport()
    got = list(process_images_overlapped(paths, read, work, write, report=report, progress=False))
    assert got == [(tmp_path / f"{i}.png", i * 10 + 1) for i in (0, 1, 3, 4, 6, 8)]
    assert [(p.stem, msg) for p, msg in report.failed] == [
        ("2", "ValueError: unreadable"), ("5", "RuntimeError: no model"), ("7", "OSError: disk full")]
    assert report.ok == 6 and report.total == 9
    # the three stages ran on three threads: the work on the caller's
    assert threads["work"] == {threading.current_thread().name}
    assert len(threads["read"]) == len(threads["write"]) == 1 and threads["read"] != threads["write"]


def test_overlapped_batch_reads_and_holds_at_most_ahead_files_beyond_the_work(tmp_path):
    import threading

    from kfaar.faces import process_images_overlapped

    paths = [tmp_path / f"{i}.png" for i in range(12)]
    lock, state, worst = threading.Lock(), {"read": 0, "worked": 0, "written": 0}, {"reading": 0, "writing": 0}

    def read(p):
        with lock:
            state["read"] += 1
            worst["reading"] = max(worst["reading"], state["read"] - state["worked"])
        return p

    def work(p):
        with lock:
            state["worked"] += 1
            worst["writing"] = max(worst["writing"], state["worked"] - state["written"])
        return p

    def write(p, v):
        threading.Event().wait(0.01)  # a slow disk: results queue up for the writer
        with lock:
            state["written"] += 1
        return v

    for ahead in (1, 3):
        state.update(read=0, worked=0, written=0)
        worst.update(reading=0, writing=0)
        out = [p for p, _ in process_images_overlapped(paths, read, work, write, progress=False, ahead=ahead)]
        assert out == paths
        # read but not yet worked on: the file in hand plus `ahead`; worked but not written: `ahead` + 1
        assert worst["reading"] <= ahead + 1 and worst["writing"] <= ahead + 1, (ahead, worst)


def test_overlapped_batch_stopped_early_finishes_what_it_started_and_nothing_more(tmp_path):
    import pytest

    from kfaar.faces import process_images_overlapped

    paths = [tmp_path / f"{i}.png" for i in range(20)]
    written = []
    batch = process_images_overlapped(paths, lambda p: p, lambda p: p, lambda p, v: written.append(p.stem),
                                      progress=False)
    for i, _ in enumerate(batch):
        if i == 2:
            break
    batch.close()
    assert 3 <= len(written) <= 5 and written == [str(i) for i in range(len(written))]
    with pytest.raises(ValueError, match="ahead"):
        next(process_images_overlapped(paths, str, str, str, ahead=0))
