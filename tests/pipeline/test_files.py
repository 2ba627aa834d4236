"""kfaar.files: photo files in, photo files out, from Python (what kfaar anonymize runs)."""

import hashlib

import numpy as np
from PIL import Image, ImageCms

from kfaar import Anonymizer, Key
from kfaar.files import ResultFormat, anonymize_files


def test_anonymize_files_keeps_the_colour_profile_drops_the_rest_and_reports_bad_files(tmp_path, grace_hopper, capsys):
    key = Key.from_bytes(hashlib.sha256(b"files").digest())
    src = tmp_path / "in"
    src.mkdir()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x8825] = {2: (51.0, 30.0, 0.0)}  # GPS: where the photo was taken
    exif[0x010F] = "a camera maker"
    Image.fromarray(grace_hopper).save(src / "p.jpg", quality=95, icc_profile=icc, exif=exif)
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "out"
    targets = [(src / "p.jpg", out / "p.jpg"), (src / "broken.jpg", out / "broken.jpg")]
    with Anonymizer() as anon:
        done = anonymize_files(targets, anon, key, ResultFormat("jpeg"))
    assert "anonymize" not in capsys.readouterr().err  # a library call draws no progress bar unless asked
    assert [w.result for w in done.written] == [out / "p.jpg"] and len(done.written[0].boxes) == 1
    assert not done.written[0].grey and done.faces == 1
    assert [(s.name, "cannot decode" in e) for s, e in done.report.failed] == [("broken.jpg", True)]
    assert sorted(p.name for p in out.iterdir()) == ["p.jpg"]  # nothing half-written beside it
    with Image.open(out / "p.jpg") as im:
        assert im.info.get("icc_profile") == icc
        assert not im.getexif()  # GPS, camera: gone
        result = np.asarray(im)
    assert result.shape == grace_hopper.shape and np.abs(result.astype(int) - grace_hopper).max() > 50
    assert done.to_json()["photos"][0]["faces"] == [[round(v, 1) for v in done.written[0].boxes[0]]]
