import numpy as np
import pytest
from PIL import Image

from kfaar.errors import ImageReadError
from kfaar.faces import load_image


def test_path_pil_and_array_agree(grace_hopper_path, grace_hopper):
    from_path = load_image(grace_hopper_path)
    from_str = load_image(str(grace_hopper_path))
    from_pil = load_image(Image.open(grace_hopper_path))
    from_arr = load_image(grace_hopper)
    for a in (from_path, from_str, from_pil, from_arr):
        assert a.shape == (600, 512, 3) and a.dtype == np.uint8 and a.flags.c_contiguous
        np.testing.assert_array_equal(a, grace_hopper)
    assert from_arr is not grace_hopper and from_arr.flags.writeable


def test_missing_file_names_the_file(tmp_path):
    path = tmp_path / "nope.jpg"
    with pytest.raises(ImageReadError, match="nope.jpg"):
        load_image(path)


def test_corrupt_file_names_the_file(tmp_path, grace_hopper_path):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(ImageReadError, match="corrupt.jpg"):
        load_image(bad)
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(grace_hopper_path.read_bytes()[:3000])
    with pytest.raises(ImageReadError, match="truncated.jpg"):
        load_image(truncated)


def test_directory_is_an_error(tmp_path):
    with pytest.raises(ImageReadError, match="directory"):
        load_image(tmp_path)


@pytest.mark.parametrize(
    "arr, match",
    [
        (np.zeros((4, 4, 2), np.uint8), r"shape \(4, 4, 2\)"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
        (np.zeros((0, 4, 3), np.uint8), "empty"),
        (np.zeros((4, 4, 3), np.complex64), "dtype complex64"),
        (np.full((4, 4, 3), 7.0, np.float32), r"floats in \[0, 1\]"),
        (np.full((4, 4, 3), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_arrays_say_what_was_expected(arr, match):
    with pytest.raises(ImageReadError, match=match):
        load_image(arr)


def test_wrong_type():
    with pytest.raises(TypeError, match="photo: got list"):
        load_image([[1, 2, 3]])


def test_conversions(grace_hopper):
    gray = grace_hopper[:, :, 1]
    out = load_image(gray)
    assert out.shape == (600, 512, 3) and np.all(out[:, :, 0] == gray) and np.all(out[:, :, 2] == gray)
    assert load_image(gray[:, :, None]).shape == (600, 512, 3)
    rgba = np.dstack([grace_hopper, np.full(gray.shape, 128, np.uint8)])
    np.testing.assert_array_equal(load_image(rgba), grace_hopper)
    sixteen = grace_hopper.astype(np.uint16) * 257
    np.testing.assert_array_equal(load_image(sixteen), grace_hopper)
    floats = grace_hopper.astype(np.float32) / 255.0
    np.testing.assert_array_equal(load_image(floats), grace_hopper)
    assert load_image(np.ones((3, 3), bool)).max() == 255


def test_file_conversions(tmp_path, grace_hopper):
    gray = grace_hopper[:, :, 0]
    Image.fromarray(gray).save(tmp_path / "g.png")
    np.testing.assert_array_equal(load_image(tmp_path / "g.png")[:, :, 2], gray)
    Image.fromarray(np.dstack([grace_hopper, gray])).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), grace_hopper)
    g16 = gray.astype(np.uint16) * 257
    Image.fromarray(g16).save(tmp_path / "g16.png")  # mode I;16
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    np.testing.assert_array_equal(load_image(tmp_path / "g16.png")[:, :, 0], gray)
    Image.fromarray(grace_hopper).convert("P").save(tmp_path / "p.gif")
    assert load_image(tmp_path / "p.gif").shape == (600, 512, 3)


def test_exif_orientation_is_applied(tmp_path, grace_hopper):
    small = Image.fromarray(grace_hopper).resize((64, 75))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": stored landscape-on-its-side
    small.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    small.save(tmp_path / "plain.jpg", quality=95)
    raw = np.asarray(Image.open(tmp_path / "rot.jpg"))
    out = load_image(tmp_path / "rot.jpg")
    assert raw.shape == (75, 64, 3) and out.shape == (64, 75, 3)
    expect = np.rot90(load_image(tmp_path / "plain.jpg"), k=-1)  # orientation 6 = rotate 90 clockwise
    assert np.abs(out.astype(int) - expect.astype(int)).mean() < 2.0


def test_image_and_alpha_from_one_decoding_agree_with_the_two_readers(tmp_path):
    from kfaar.faces import load_alpha, load_image_alpha

    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 0] = np.arange(30, dtype=np.uint8)[None] * 8
    rgba[..., 3] = np.arange(20, dtype=np.uint8)[:, None] * 12
    im = Image.fromarray(rgba, "RGBA")
    exif = im.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to display
    im.save(tmp_path / "a.png", exif=exif)
    rgb, alpha = load_image_alpha(tmp_path / "a.png")
    np.testing.assert_array_equal(rgb, load_image(tmp_path / "a.png"))
    np.testing.assert_array_equal(alpha, load_alpha(tmp_path / "a.png"))
    assert rgb.shape == (30, 20, 3) and alpha.shape == (30, 20)  # both turned by the EXIF orientation
    Image.fromarray(rgba[..., :3]).save(tmp_path / "b.png")
    assert load_image_alpha(tmp_path / "b.png")[1] is None
    for bad, match in ((tmp_path / "nope.png", "no such file"), (tmp_path, "is a directory")):
        with pytest.raises(ImageReadError, match=match):
            load_image_alpha(bad)


def test_like_input_writes_only_the_changed_pixels_and_never_wraps_around():
    from kfaar.faces.image import like_input

    src = np.full((4, 5), 100, np.int8)
    before = load_image(src)
    after = before.copy()
    after[1, 2] = 250
    out = like_input(src, before, after)
    assert out.dtype == np.int8 and out[1, 2] == 127  # clipped to the type, not wrapped to -6
    out[1, 2] = 100
    np.testing.assert_array_equal(out, src)
    f = np.random.default_rng(0).random((4, 5, 4)).astype(np.float32)
    before = load_image(f)
    after = before.copy()
    after[0, 0] = (255, 0, 51)
    out = like_input(f, before, after)
    np.testing.assert_allclose(out[0, 0], (1.0, 0.0, 0.2, f[0, 0, 3]), rtol=1e-6)
    out[0, 0] = f[0, 0]
    np.testing.assert_array_equal(out, f)


def test_a_photo_file_brings_its_rgb_colour_profile_and_nothing_else(tmp_path):
    from PIL import ImageCms

    from kfaar.faces import load_photo_file

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rgba = np.zeros((20, 30, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[..., 3] = 77
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png", icc_profile=icc)
    photo = load_photo_file(tmp_path / "a.png")
    np.testing.assert_array_equal(photo.rgb, load_image(tmp_path / "a.png"))
    assert photo.alpha is not None and (photo.alpha == 77).all() and photo.icc_profile == icc
    for name, profile in (("grey", icc[:16] + b"GRAY" + icc[20:]), ("cmyk", icc[:16] + b"CMYK" + icc[20:]),
                          ("short", icc[:100]), ("none", None)):
        Image.fromarray(rgba[..., :3]).save(tmp_path / f"{name}.png", **({"icc_profile": profile} if profile else {}))
        p = load_photo_file(tmp_path / f"{name}.png")
        assert p.icc_profile is None and p.alpha is None, name
    with pytest.raises(ImageReadError, match="no such file"):
        load_photo_file(tmp_path / "nope.png")


def test_heic_photos_are_read_with_their_profile_where_pillow_heif_is_installed(tmp_path, grace_hopper):
    pytest.importorskip("pillow_heif")
    from PIL import ImageCms

    from kfaar.faces import load_photo_file
    from kfaar.faces.image import heif_available

    assert heif_available()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(grace_hopper).save(tmp_path / "p.heic", "HEIF", quality=95, icc_profile=icc)
    photo = load_photo_file(tmp_path / "p.heic")
    assert photo.rgb.shape == grace_hopper.shape and photo.icc_profile == icc and photo.alpha is None
    assert np.abs(photo.rgb.astype(int) - grace_hopper).mean() < 4  # lossy, but the same picture


def test_photos_kfaar_cannot_read_say_what_they_need(tmp_path, grace_hopper, monkeypatch):
    from kfaar.faces import image

    Image.fromarray(grace_hopper).save(tmp_path / "p.tif")
    (tmp_path / "p.tif").rename(tmp_path / "p.dng")  # a RAW file's TIFF structure: Pillow would open it
    with pytest.raises(ImageReadError, match=r"p\.dng: a camera RAW file; develop it to JPEG, PNG or TIFF first"):
        load_image(tmp_path / "p.dng")
    (tmp_path / "p.heic").write_bytes(b"\0\0\0\x18ftypheic")
    monkeypatch.setattr(image, "heif_available", lambda: False)
    with pytest.raises(ImageReadError, match=r"p\.heic: a HEIC/HEIF photo; reading it needs pillow-heif "
                                             r"\(pip install 'kfaar\[heif\]'\)"):
        load_image(tmp_path / "p.heic")


def test_read_only_rgb_shares_rgb_arrays_and_converts_the_rest():
    from kfaar.faces.image import read_only_rgb

    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    view = read_only_rgb(rgb)
    assert np.shares_memory(view, rgb) and not view.flags.writeable
    assert rgb.flags.writeable  # the caller's array stays writable
    strided = rgb[:, ::2]  # not C-ordered: a C-ordered copy, as load_image makes
    out = read_only_rgb(strided)
    assert out.flags.c_contiguous and not np.shares_memory(out, rgb)
    np.testing.assert_array_equal(out, strided)
    grey = read_only_rgb(rgb[:, :, 0])
    assert grey.shape == (4, 5, 3) and (grey == rgb[:, :, :1]).all()
    with pytest.raises(ImageReadError, match="empty"):
        read_only_rgb(np.zeros((0, 5, 3), np.uint8))


def test_tall_photos_are_copied_in_strips_to_the_same_pixels(tmp_path):
    from kfaar.faces.image import _rgb_array

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (2600, 37, 3), dtype=np.uint8)  # three strips, the last short
    Image.fromarray(pixels).save(tmp_path / "tall.png")
    np.testing.assert_array_equal(load_image(tmp_path / "tall.png"), pixels)
    with Image.open(tmp_path / "tall.png") as im:
        out = _rgb_array(im, strip=1000)
        assert out.flags.c_contiguous and out.flags.writeable and out.dtype == np.uint8
        np.testing.assert_array_equal(out, pixels)


def test_an_upright_photo_is_not_copied_to_be_oriented(tmp_path, grace_hopper):
    from kfaar.faces.image import _oriented

    Image.fromarray(grace_hopper).save(tmp_path / "up.jpg")
    exif = Image.Exif()
    exif[0x0112] = 1  # upright, said explicitly
    Image.fromarray(grace_hopper).save(tmp_path / "up1.jpg", exif=exif)
    for name in ("up.jpg", "up1.jpg"):
        with Image.open(tmp_path / name) as im:
            assert _oriented(im, name) is im


def test_a_photo_over_pillows_pixel_guard_is_refused_with_the_way_to_read_it(tmp_path, monkeypatch):
    Image.fromarray(np.zeros((300, 400, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000)  # refused above 0.1 megapixels
    with pytest.raises(ImageReadError, match=r"big.png: 0.1 megapixels, more than Pillow reads without being told "
                                             r"to \(0.1 megapixels, .*MAX_IMAGE_PIXELS, or kfaar's --max-megapixels"):
        load_image(tmp_path / "big.png")


def test_is_grey_looks_at_every_strip(grace_hopper):
    from kfaar.faces.image import is_grey

    grey = np.repeat(grace_hopper[:, :, :1], 3, axis=2)
    assert is_grey(grey, strip=100)
    for y in (0, 599):  # one pixel of colour in the first row, or in the last (short) strip
        tinted = grey.copy()
        tinted[y, 7, 2] ^= 1
        assert not is_grey(tinted, strip=100)
    assert not is_grey(grace_hopper)


def test_photo_files_say_whether_they_have_colour(tmp_path, grace_hopper):
    from kfaar.faces import load_photo_file

    Image.fromarray(grace_hopper).convert("L").save(tmp_path / "l.png")
    Image.fromarray(grace_hopper).convert("1").save(tmp_path / "bw.png")
    Image.fromarray(grace_hopper).save(tmp_path / "rgb.jpg", quality=90)
    Image.fromarray(grace_hopper).convert("L").convert("RGB").save(tmp_path / "scan.jpg", quality=90)
    got = {p.name: load_photo_file(p).grey for p in sorted(tmp_path.iterdir())}
    assert got == {"bw.png": True, "l.png": True, "rgb.jpg": False, "scan.jpg": True}
