"""``kfaar anonymize / enroll / verify`` from the shell, on matplotlib's sample photo."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

pytest.importorskip("torch")

from kfaar import Key  # noqa: E402
from kfaar.cli import main  # noqa: E402

ENV = {"KP": "pipeline cli test"}


def _key_file(tmp_path, label: str):
    path = tmp_path / f"{label}.key"
    if path.exists():
        return path
    Key.from_bytes(hashlib.sha256(label.encode()).digest()).save(path, passphrase=ENV["KP"])
    return path


def _anonymize(*args):
    return CliRunner().invoke(main, ["anonymize", *map(str, args), "--passphrase-env", "KP"], env=ENV)


@pytest.fixture
def photos(tmp_path, grace_hopper_path):
    """in/a.jpg, in/a.png (same name, two formats), in/sub/a.jpg, in/broken.jpg, in/notes.txt"""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(grace_hopper_path, src / "a.jpg")
    Image.open(grace_hopper_path).save(src / "a.png")
    shutil.copy(grace_hopper_path, src / "sub" / "a.jpg")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (src / "notes.txt").write_text("not a photo")
    return src


def test_folders_keep_their_layout_and_no_output_replaces_another(tmp_path, photos, grace_hopper):
    out = tmp_path / "out"
    r = _anonymize(photos, "--key", _key_file(tmp_path, "A"), "--out", out)
    assert r.exit_code == 0, r.stdout + r.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.jpg.png", "a.png.png", "sub/a.png"]
    assert "3 photo(s), 3 face(s)" in r.stdout
    assert "skipped" in r.stderr and "broken.jpg" in r.stderr and "notes.txt" not in r.stderr
    virtual = np.asarray(Image.open(out / "sub" / "a.png"))
    assert virtual.shape == grace_hopper.shape and not np.array_equal(virtual, grace_hopper)
    # the same JPEG under two names gives the same bytes
    assert (out / "sub" / "a.png").read_bytes() == (out / "a.jpg.png").read_bytes()


def test_files_named_twice_from_two_folders_both_survive(tmp_path, photos):
    out = tmp_path / "out"
    r = _anonymize(photos / "a.jpg", photos / "sub" / "a.jpg", "--key", _key_file(tmp_path, "A"), "--out", out)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a-2.png", "a.png"]
    again = tmp_path / "again"  # one file named twice: two results too
    r = _anonymize(photos / "a.jpg", photos / "a.jpg", "--key", _key_file(tmp_path, "A"), "--out", again)
    assert r.exit_code == 0 and "2 photo(s), 2 face(s)" in r.stdout, r.stdout + r.stderr
    assert (again / "a.png").read_bytes() == (again / "a-2.png").read_bytes()


def test_an_output_folder_inside_the_input_is_not_read_back(tmp_path, photos):
    key = _key_file(tmp_path, "A")
    out = photos / "anonymized"
    assert _anonymize(photos, "--key", key, "--out", out).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*.png")}
    again = _anonymize(photos, "--key", key, "--out", out)
    assert again.exit_code == 0, again.stdout + again.stderr
    assert "left out 3 photo(s)" in again.stderr
    assert {p: p.read_bytes() for p in out.rglob("*.png")} == before  # deterministic, nothing re-anonymized


def test_an_output_folder_holding_a_named_input_is_refused_before_anything_is_written(tmp_path, grace_hopper_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.open(grace_hopper_path).save(src / "a.png")
    original = (src / "a.png").read_bytes()
    for named in (src, src / "a.png"):
        r = _anonymize(named, "--key", _key_file(tmp_path, "A"), "--out", src)
        assert r.exit_code == 2 and "lies in the output folder" in r.stderr
    assert (src / "a.png").read_bytes() == original and sorted(p.name for p in src.iterdir()) == ["a.png"]


def test_transparency_is_kept(tmp_path, grace_hopper):
    rgba = np.dstack([grace_hopper, np.full(grace_hopper.shape[:2], 255, np.uint8)])
    rgba[:60, :, 3] = 0  # a transparent band above the face
    rgba[60:90, :, 3] = 128
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(rgba, "RGBA").save(src / "t.png")
    out = tmp_path / "out"
    r = _anonymize(src, "--key", _key_file(tmp_path, "A"), "--out", out)
    assert r.exit_code == 0, r.stdout + r.stderr
    result = Image.open(out / "t.png")
    assert result.mode == "RGBA"
    got = np.asarray(result)
    np.testing.assert_array_equal(got[..., 3], rgba[..., 3])
    assert not np.array_equal(got[200:, :, :3], grace_hopper[200:])  # the face below the band was replaced


def test_enroll_then_verify_with_the_right_and_a_wrong_key(tmp_path, grace_hopper_path):
    runner = CliRunner()
    template = tmp_path / "me.npy"
    r = runner.invoke(main, ["enroll", str(grace_hopper_path), "--out", str(template)])
    assert r.exit_code == 0 and template.exists(), r.stdout + r.stderr
    out = tmp_path / "out"
    assert _anonymize(grace_hopper_path, "--key", _key_file(tmp_path, "A"), "--out", out).exit_code == 0
    virtual = out / (grace_hopper_path.stem + ".png")
    for label, code, verdict in (("A", 0, "MATCH"), ("B", 1, "NO MATCH")):
        r = runner.invoke(main, ["verify", str(virtual), "--key", str(_key_file(tmp_path, label)),
                                 "--passphrase-env", "KP", "--template", str(template)], env=ENV)
        assert r.exit_code == code and r.stdout.startswith(verdict + " score="), (label, r.stdout, r.stderr)
    # the genuine photo itself carries no code: with a gate it is refused as such
    r = runner.invoke(main, ["verify", str(grace_hopper_path), "--key", str(_key_file(tmp_path, "A")),
                             "--passphrase-env", "KP", "--template", str(template), "--min-code-match", "0.8"], env=ENV)
    assert r.exit_code == 1 and r.stdout.startswith("NO MATCH no readable kfaar code"), (r.stdout, r.stderr)


def test_output_names_stay_distinct_when_a_numbered_name_is_also_a_photo(tmp_path):
    from kfaar.pipeline_cli import _targets

    for name in ("x/a.jpg", "y/a.jpg", "z/a-2.jpg"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    targets, inside = _targets(tuple(str(tmp_path / n) for n in ("x/a.jpg", "y/a.jpg", "z/a-2.jpg")), tmp_path / "out")
    assert [t.name for _, t in targets] == ["a.png", "a-2.png", "a-2-2.png"] and inside == []


def _srgb_icc() -> bytes:
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_the_colour_profile_is_kept_and_no_other_metadata(tmp_path, grace_hopper):
    """An RGB ICC profile says what the numbers mean and goes with the result; EXIF (place,
    camera, a thumbnail of the original face) and comments do not."""
    icc = _srgb_icc()
    grey_icc = icc[:16] + b"GRAY" + icc[20:]  # a profile for grey data cannot describe RGB pixels
    src = tmp_path / "in"
    src.mkdir()
    im = Image.fromarray(grace_hopper)
    exif = im.getexif()
    exif[0x010F] = "PhoneMaker"  # camera make
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # GPS IFD: latitude
    im.save(src / "p.jpg", quality=95, icc_profile=icc, exif=exif, comment=b"at home")
    im.save(src / "g.png", icc_profile=grey_icc)
    assert Image.open(src / "p.jpg").getexif()  # the input does carry them
    out = tmp_path / "out"
    r = _anonymize(src, "--key", _key_file(tmp_path, "A"), "--out", out)
    assert r.exit_code == 0, r.stdout + r.stderr
    kept = Image.open(out / "p.png")
    assert kept.info.get("icc_profile") == icc
    assert not kept.getexif() and "exif" not in kept.info and "comment" not in kept.info
    assert set(kept.info) <= {"icc_profile", "dpi"}, kept.info
    assert "icc_profile" not in Image.open(out / "g.png").info
    assert sorted(p.name for p in out.iterdir()) == ["g.png", "p.png"]  # no temporary file left
    umask = os.umask(0o022)
    os.umask(umask)
    assert (out / "p.png").stat().st_mode & 0o777 == 0o666 & ~umask  # what a plain open() gives


def test_png_compression_changes_the_bytes_not_the_pixels(tmp_path, grace_hopper_path):
    key = _key_file(tmp_path, "A")
    sizes, pixels = {}, {}
    for level in ("0", "9"):
        out = tmp_path / f"out{level}"
        r = _anonymize(grace_hopper_path, "--key", key, "--out", out, "--png-compression", level)
        assert r.exit_code == 0, r.stdout + r.stderr
        result = out / (grace_hopper_path.stem + ".png")
        sizes[level], pixels[level] = result.stat().st_size, np.asarray(Image.open(result))
    assert sizes["9"] < sizes["0"] / 1.5
    np.testing.assert_array_equal(pixels["0"], pixels["9"])
    assert _anonymize(grace_hopper_path, "--key", key, "--out", tmp_path / "x", "--png-compression", "10").exit_code == 2


def test_a_result_that_cannot_be_written_is_reported_and_leaves_nothing_behind(tmp_path, photos):
    out = tmp_path / "out"
    (out / "sub" / "a.png").mkdir(parents=True)  # a folder where one result would go
    r = _anonymize(photos, "--key", _key_file(tmp_path, "A"), "--out", out)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert "2 photo(s), 2 face(s)" in r.stdout
    assert f"skipped {photos / 'sub' / 'a.jpg'}" in r.stderr and "broken.jpg" in r.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a.jpg.png", "a.png.png"]  # the others written, no half file anywhere


def test_jpeg_results_keep_the_profile_and_the_code_and_skip_what_jpeg_cannot_hold(tmp_path, grace_hopper):
    icc = _srgb_icc()
    src = tmp_path / "in"
    src.mkdir()
    im = Image.fromarray(grace_hopper)
    exif = im.getexif()
    exif[0x010F] = "PhoneMaker"
    im.save(src / "p.jpg", quality=95, icc_profile=icc, exif=exif)
    im.save(src / "p.png")  # same name, other format
    alpha = np.full(grace_hopper.shape[:2], 255, np.uint8)
    alpha[:50] = 0
    Image.fromarray(np.dstack([grace_hopper, alpha])).save(src / "clear.png")
    out, key = tmp_path / "out", _key_file(tmp_path, "A")
    r = _anonymize(src, "--key", key, "--out", out, "--format", "jpeg")
    assert r.exit_code == 0 and "2 photo(s), 2 face(s)" in r.stdout, r.stdout + r.stderr
    assert f"skipped {src / 'clear.png'}: ValueError: it has transparency, which a JPEG cannot hold" in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["p.jpg.jpg", "p.png.jpg"]
    result = Image.open(out / "p.jpg.jpg")
    assert result.format == "JPEG" and result.info.get("icc_profile") == icc and not result.getexif()
    assert result.layer[0][1:3] == result.layer[1][1:3] == (1, 1)  # 4:4:4: the chroma code kept at full resolution
    png = _anonymize(src / "p.jpg", "--key", key, "--out", tmp_path / "png")
    assert png.exit_code == 0
    lossless = np.asarray(Image.open(tmp_path / "png" / "p.png"), dtype=float)
    assert np.abs(np.asarray(result, dtype=float) - lossless).mean() < 2  # the same picture, re-encoded
    template = tmp_path / "me.npy"
    assert CliRunner().invoke(main, ["enroll", str(src / "p.png"), "--out", str(template)]).exit_code == 0
    v = CliRunner().invoke(main, ["verify", str(out / "p.jpg.jpg"), "--key", str(key), "--passphrase-env", "KP",
                                  "--template", str(template), "--min-code-match", "0.75"], env=ENV)
    assert v.exit_code == 0 and v.stdout.startswith("MATCH"), v.stdout + v.stderr
    assert _anonymize(src / "p.jpg", "--key", key, "--out", tmp_path / "x", "--jpeg-quality", "40").exit_code == 2


def test_errors_end_with_their_message_and_exit_code_2_not_a_traceback(tmp_path, grace_hopper_path):
    """2 is apart from verify's 1 ("no match"): a script can tell "not this person" from "cannot tell"."""
    runner = CliRunner()
    key = _key_file(tmp_path, "A")
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((100, 100, 3), 128, np.uint8)).save(blank)
    template = tmp_path / "me.npy"
    assert runner.invoke(main, ["enroll", str(grace_hopper_path), "--out", str(template)]).exit_code == 0
    (tmp_path / "text.npy").write_text("not a template")
    (tmp_path / "afile").write_text("a file where --out wants a folder")
    np.save(tmp_path / "zeros.npy", np.zeros(128, np.float32))
    np.save(tmp_path / "short.npy", np.ones(64, np.float32))
    np.save(tmp_path / "nan.npy", np.full(128, np.nan, np.float32))
    np.save(tmp_path / "huge.npy", np.full(128, 1e39))  # float64 beyond float32: inf once read
    cases = [
        (["enroll", str(blank), "--out", str(tmp_path / "t.npy")], {}, "Error: enroll: no face found"),
        (["enroll", str(grace_hopper_path), "--out", str(tmp_path / "afile" / "t.npy")], {},
         "afile/t.npy: a file stands where a folder of this path should be"),
        (["verify", str(blank), "--key", str(key), "--passphrase-env", "KP", "--template", str(template)], ENV,
         "Error: recover: no face found"),
        (["anonymize", str(grace_hopper_path), "--key", str(key), "--passphrase-env", "KP", "--out", str(tmp_path / "o")],
         {"KP": "not the passphrase"}, "Error: could not open key file"),
    ] + [
        (["verify", str(grace_hopper_path), "--key", str(key), "--passphrase-env", "KP", "--template",
          str(tmp_path / name)], ENV, f"{name} is not a kfaar template")
        for name in ("text.npy", "zeros.npy", "short.npy", "nan.npy", "huge.npy")
    ]
    for args, env, message in cases:
        r = runner.invoke(main, args, env=env)
        assert r.exit_code == 2 and message in r.stderr, (args, r.exit_code, r.stderr)
        assert isinstance(r.exception, SystemExit), r.exception  # ended by the CLI, not by the error itself
    assert not (tmp_path / "t.npy").exists()


def _frames(path) -> tuple[list[np.ndarray], list[int], int]:
    """Every frame of an image file as RGB(A) arrays, each frame's duration and the loop count."""
    from PIL import ImageSequence

    with Image.open(path) as im:
        loop = im.info.get("loop")
        frames = [(np.asarray(f.convert(f.mode if f.mode in ("RGB", "RGBA") else "RGB")).copy(), f.info.get("duration"))
                  for f in ImageSequence.Iterator(im)]
    return [f for f, _ in frames], [d for _, d in frames], loop


def test_every_page_of_a_multi_page_photo_is_anonymized_into_one_animated_png(tmp_path, grace_hopper):
    from kfaar.faces.image import PAGE_MS
    from kfaar.pipeline import Anonymizer

    src = tmp_path / "in"
    src.mkdir()
    pages = [grace_hopper, np.ascontiguousarray(grace_hopper[:, ::-1]), np.full_like(grace_hopper, 90)]
    Image.fromarray(pages[0]).save(src / "pages.tif", save_all=True, append_images=[Image.fromarray(p) for p in pages[1:]])
    out, report = tmp_path / "out", tmp_path / "report.json"
    r = _anonymize(src, "--key", _key_file(tmp_path, "A"), "--out", out, "--report", report)
    assert r.exit_code == 0 and "1 photo(s), 2 face(s)" in r.stdout, r.stdout + r.stderr
    assert "note:" not in r.stderr
    got, durations, loop = _frames(out / "pages.png")
    with Anonymizer() as anon:
        key = Key.from_bytes(hashlib.sha256(b"A").digest())
        want = [anon.anonymize(p, key) for p in pages]
    assert len(got) == 3 and durations == [PAGE_MS] * 3 and loop == 0
    for g, w in zip(got, want):  # each page as it is anonymized alone
        np.testing.assert_array_equal(g, w)
    np.testing.assert_array_equal(got[2], pages[2])  # no face: the page as it was
    entry = json.loads(report.read_text())["photos"][0]
    assert [len(b) for b in entry["frames"]] == [1, 1, 0] and entry["faces"] == entry["frames"][0]
    assert "frames_left" not in entry


def test_an_animated_gif_keeps_its_timing_and_transparency(tmp_path, grace_hopper):
    from kfaar.faces import load_photo_file

    src = tmp_path / "in"
    src.mkdir()
    small = np.asarray(Image.fromarray(grace_hopper).resize((256, 300)))
    frames = [Image.fromarray(small), Image.fromarray(np.ascontiguousarray(small[:, ::-1])), Image.fromarray(small // 2)]
    frames[0].save(src / "clip.gif", save_all=True, append_images=frames[1:], duration=[120, 80, 400], loop=3,
                   transparency=0)
    out = tmp_path / "out"
    r = _anonymize(src, "--key", _key_file(tmp_path, "A"), "--out", out)
    assert r.exit_code == 0 and "note:" not in r.stderr, r.stdout + r.stderr
    got, durations, loop = _frames(out / "clip.png")
    assert len(got) == 3 and durations == [120, 80, 400] and loop == 3
    # the GIF's transparent colour stays transparent, in every frame, exactly where it was
    photo = load_photo_file(src / "clip.gif", all_frames=True)
    alphas = [photo.alpha] + [f.alpha for f in photo.later]
    assert all(a is not None and (a == 0).any() and (a == 255).any() for a in alphas)
    for g, a in zip(got, alphas):
        assert g.shape == (300, 256, 4)
        np.testing.assert_array_equal(g[..., 3], a)
    assert not np.array_equal(got[0][..., :3], photo.rgb)  # the face replaced


def test_only_the_first_frame_is_written_where_the_rest_cannot_be_held(tmp_path, grace_hopper):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(grace_hopper).save(src / "sizes.tif", save_all=True,
                                       append_images=[Image.fromarray(grace_hopper[:400])])
    Image.fromarray(grace_hopper).save(src / "pages.tif", save_all=True,
                                       append_images=[Image.fromarray(grace_hopper[:, ::-1].copy())])
    Image.fromarray(grace_hopper).save(src / "one.png")
    out, report = tmp_path / "out", tmp_path / "report.json"
    r = _anonymize(src, "--key", _key_file(tmp_path, "A"), "--out", out, "--format", "jpeg", "--report", report)
    assert r.exit_code == 0 and "3 photo(s), 3 face(s)" in r.stdout, r.stdout + r.stderr
    assert (f"note: {src / 'pages.tif'} has 2 frames or pages; only the first was anonymized and written: "
            "a JPEG holds one frame (--format png keeps them all)") in r.stderr
    assert f"note: {src / 'sizes.tif'} has 2 frames or pages; only the first was anonymized and written: its " \
           "frames differ in size (512x600 and 512x400), which one result file cannot hold" not in r.stderr  # JPEG first
    assert "one.png has" not in r.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(out / "pages.jpg")), np.asarray(Image.open(out / "one.jpg")))
    entries = {Path(e["source"]).name: e for e in json.loads(report.read_text())["photos"]}
    assert entries["pages.tif"]["frames_left"].startswith("1 of its 2 frames not written: a JPEG holds one frame")
    r = _anonymize(src, "--key", _key_file(tmp_path, "A"), "--out", tmp_path / "png")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert (f"note: {src / 'sizes.tif'} has 2 frames or pages; only the first was anonymized and written: its "
            "frames differ in size (512x600 and 512x400), which one result file cannot hold") in r.stderr
    assert "pages.tif has" not in r.stderr
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "png" / "sizes.png")),
                                  np.asarray(Image.open(tmp_path / "png" / "one.png")))


def test_skip_existing_keeps_what_an_interrupted_run_wrote_and_does_the_rest(tmp_path, photos):
    key = _key_file(tmp_path, "A")
    full = tmp_path / "full"
    assert _anonymize(photos, "--key", key, "--out", full).exit_code == 0
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "a.png").write_bytes((full / "sub" / "a.png").read_bytes())  # what the first run got to
    (out / "a.png.png").write_bytes(b"a stale result the user asked to keep")
    r = _anonymize(photos, "--key", key, "--out", out, "--skip-existing")
    assert r.exit_code == 0 and "1 photo(s), 1 face(s)" in r.stdout, r.stdout + r.stderr
    assert "kept 2 result(s) already in" in r.stderr and f"skipped {photos / 'broken.jpg'}" in r.stderr
    assert (out / "a.jpg.png").read_bytes() == (full / "a.jpg.png").read_bytes()
    assert (out / "a.png.png").read_bytes() == b"a stale result the user asked to keep"
    again = _anonymize(photos, "--key", key, "--out", out)  # without the flag everything is made again
    assert again.exit_code == 0 and "3 photo(s)" in again.stdout
    assert (out / "a.png.png").read_bytes() == (full / "a.png.png").read_bytes()


def test_a_services_subkey_is_used_by_anonymize_enroll_and_verify_alike(tmp_path, grace_hopper_path):
    from kfaar import ProtectedTemplate

    runner, key = CliRunner(), _key_file(tmp_path, "A")
    for name, extra in (("bank", ["--service", "bank"]), ("plain", [])):
        r = _anonymize(grace_hopper_path, "--key", key, "--out", tmp_path / name, *extra)
        assert r.exit_code == 0, r.stdout + r.stderr
    bank, plain = (tmp_path / d / (grace_hopper_path.stem + ".png") for d in ("bank", "plain"))
    assert not np.array_equal(np.asarray(Image.open(bank)), np.asarray(Image.open(plain)))
    template, protected = tmp_path / "me.npy", tmp_path / "me.kft"
    assert runner.invoke(main, ["enroll", str(grace_hopper_path), "--out", str(template)]).exit_code == 0
    r = runner.invoke(main, ["enroll", str(grace_hopper_path), "--out", str(protected), "--key", str(key),
                             "--service", "bank", "--passphrase-env", "KP"], env=ENV)
    assert r.exit_code == 0, r.stdout + r.stderr
    subkey = Key.from_bytes(hashlib.sha256(b"A").digest()).for_relying_party("bank")
    assert ProtectedTemplate.load(protected).key_fingerprint == subkey.fingerprint
    cases = [  # (photo, arguments, exit code)
        (bank, ["--template", str(template), "--key", str(key), "--service", "bank"], 0),
        (bank, ["--template", str(template), "--key", str(key)], 1),  # the main key reads the bank's face as noise
        (plain, ["--template", str(template), "--key", str(key), "--service", "bank"], 1),
        (bank, ["--template", str(protected)], 0),
        (plain, ["--template", str(protected)], 1),
        (bank, ["--template", str(protected), "--service", "bank"], 2),  # a subkey needs the key
        (bank, ["--template", str(protected), "--key", str(key)], 2),  # made with the bank's subkey, not the key
        (bank, ["--template", str(template), "--key", str(key), "--service", ""], 2),
    ]
    for photo, args, code in cases:
        r = runner.invoke(main, ["verify", str(photo), *args, "--passphrase-env", "KP"], env=ENV)
        assert r.exit_code == code, (photo.parent.name, args, r.stdout, r.stderr)


def test_the_small_faces_of_a_large_photo_are_replaced_unless_asked_not_to(tmp_path, grace_hopper):
    import cv2

    small = cv2.resize(grace_hopper, None, fx=0.16, fy=0.16, interpolation=cv2.INTER_AREA)  # a ~28-px face
    photo = np.full((3024, 4032, 3), 90, np.uint8)
    for x, y in ((300, 200), (2500, 1800)):
        photo[y:y + small.shape[0], x:x + small.shape[1]] = small
    Image.fromarray(photo).save(tmp_path / "crowd.png", compress_level=1)
    key = _key_file(tmp_path, "A")
    r = _anonymize(tmp_path / "crowd.png", "--key", key, "--out", tmp_path / "all")
    assert r.exit_code == 0 and "1 photo(s), 2 face(s)" in r.stdout, r.stdout + r.stderr
    r = _anonymize(tmp_path / "crowd.png", "--key", key, "--out", tmp_path / "fast", "--no-small-faces")
    assert r.exit_code == 0 and r.stdout.startswith("1 photo(s), "), r.stdout + r.stderr
    assert int(r.stdout.split()[2]) < 2  # at 1,280 px the faces are ~9 px: YuNet finds one at most


def test_a_folder_of_phone_photos_is_read_whole_and_what_cannot_be_read_is_named(tmp_path, grace_hopper):
    """HEIC (an iPhone's default) and AVIF are read; a camera RAW file is reported, not passed over."""
    pytest.importorskip("pillow_heif")
    src = tmp_path / "in"
    src.mkdir()
    im = Image.fromarray(grace_hopper)
    im.save(src / "a.heic", "HEIF", quality=90)
    im.save(src / "b.avif", quality=90)
    im.save(src / "c.tif")
    (src / "c.tif").rename(src / "c.dng")
    (src / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    r = _anonymize(src, "--key", _key_file(tmp_path, "A"), "--out", out)
    assert r.exit_code == 0 and "2 photo(s), 2 face(s)" in r.stdout, r.stdout + r.stderr
    assert f"skipped {src / 'c.dng'}: " in r.stderr and "camera RAW" in r.stderr
    assert "notes.txt" not in r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_the_report_lists_what_was_replaced_in_each_photo_and_what_was_skipped(tmp_path, grace_hopper_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(grace_hopper_path, src / "a.jpg")
    Image.fromarray(np.full((120, 160, 3), 200, np.uint8)).save(src / "wall.png")
    (src / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out, report = tmp_path / "out", tmp_path / "reports" / "report.json"  # written whole, its folder made
    r = _anonymize(src, "--key", _key_file(tmp_path, "A"), "--out", out, "--report", report)
    assert r.exit_code == 0 and "2 photo(s), 1 face(s)" in r.stdout, r.stdout + r.stderr
    assert f"no face found in 1 photo(s): their results are the photos as they were (listed in {report})" in r.stderr
    doc = json.loads(report.read_text())
    photos = {Path(p["source"]).name: p for p in doc["photos"]}
    assert sorted(photos) == ["a.jpg", "wall.png"] and photos["wall.png"]["faces"] == []
    (box,) = photos["a.jpg"]["faces"]
    assert Path(photos["a.jpg"]["result"]) == out / "a.png" and 120 < box[2] < 260  # the sample face's width
    assert [Path(s["source"]).name for s in doc["skipped"]] == ["broken.jpg"] and doc["skipped"][0]["error"]


def test_max_megapixels_refuses_larger_photos_and_reads_the_rest_quietly(tmp_path, grace_hopper, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # the CLI sets it for its process
    key = _key_file(tmp_path, "A")
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(grace_hopper).resize((1536, 1800)).save(src / "big.png")  # 2.8 megapixels
    runner = CliRunner()
    small = runner.invoke(main, ["--max-megapixels", "2", "anonymize", str(src), "--key", str(key),
                                 "--passphrase-env", "KP", "--out", str(tmp_path / "o2")], env=ENV)
    assert small.exit_code == 0 and not (tmp_path / "o2" / "big.png").exists()
    assert "skipped" in small.stderr and "big.png: 2.8 megapixels" in small.stderr and "(2.0 megapixels" in small.stderr
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        enough = runner.invoke(main, ["--max-megapixels", "3", "anonymize", str(src), "--key", str(key),
                                      "--passphrase-env", "KP", "--out", str(tmp_path / "o3")], env=ENV)
    assert enough.exit_code == 0 and (tmp_path / "o3" / "big.png").is_file()
    # Pillow warns from half its limit (1.5 megapixels here); the CLI has said what it reads
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]


def test_photos_without_colour_are_written_grey_unless_asked(tmp_path, grace_hopper):
    key = _key_file(tmp_path, "A")
    src = tmp_path / "in"
    src.mkdir()
    luma = np.asarray(Image.fromarray(grace_hopper).convert("L"))
    Image.fromarray(luma).save(src / "bw.png")  # a grey file
    Image.fromarray(np.repeat(luma[:, :, None], 3, axis=2)).save(src / "scan.png")  # a scan saved as colour
    Image.fromarray(grace_hopper).save(src / "colour.png")
    r = _anonymize(src, "--key", key, "--out", tmp_path / "out", "--report", tmp_path / "r.json")
    assert r.exit_code == 0, r.output
    assert "2 photo(s) without colour written grey" in r.stderr and "will not authenticate" in r.stderr
    grey = {Path(p["source"]).name: p["grey"] for p in json.loads((tmp_path / "r.json").read_text())["photos"]}
    assert grey == {"bw.png": True, "colour.png": False, "scan.png": True}
    for name in ("bw.png", "scan.png"):
        with Image.open(tmp_path / "out" / name) as im:
            assert im.mode == "L"
            out = np.asarray(im)
        changed = out != luma
        assert 2_000 < changed.sum() < 0.5 * luma.size  # the face, and nothing far from it
        ys, xs = np.nonzero(changed)
        assert 150 < ys.mean() < 400 and 150 < xs.mean() < 400
    with Image.open(tmp_path / "out" / "colour.png") as im:
        assert im.mode == "RGB"
    template = tmp_path / "t.npy"
    assert CliRunner().invoke(main, ["enroll", str(src / "colour.png"), "--out", str(template)]).exit_code == 0
    kept = _anonymize(src / "bw.png", "--key", key, "--out", tmp_path / "kept", "--grey-as-colour")
    assert kept.exit_code == 0 and "without colour" not in kept.stderr
    with Image.open(tmp_path / "kept" / "bw.png") as im:
        assert im.mode == "RGB"
    for result, verdict in ((tmp_path / "kept" / "bw.png", "MATCH"), (tmp_path / "out" / "bw.png", "NO MATCH")):
        v = CliRunner().invoke(main, ["verify", str(result), "--key", str(key), "--passphrase-env", "KP",
                                      "--template", str(template), "--min-code-match", "0.75"], env=ENV)
        assert v.stdout.startswith(verdict), (result, v.stdout, v.stderr)
