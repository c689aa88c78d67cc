"""Uploads (aimeye.app.uploads): any common file, size or mode → a 64×64 grey image, or a friendly error."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from aimeye.app import uploads as U
from aimeye.app.inputs import InputImage, image_from_key


def encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise_rgb(w=120, h=90, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def animated_gif() -> bytes:
    frames = [Image.new("L", (70, 70), 0), Image.new("L", (70, 70), 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def assert_model_input(d: U.DecodedImage):
    assert d.x.shape == (1, 1, 64, 64) and d.x.dtype == torch.float32
    assert float(d.x.min()) >= 0.0 and float(d.x.max()) <= 1.0
    q = d.x.numpy() * 255
    assert np.allclose(q, np.round(q), atol=1e-4), "quantised to 8 bits like the scenes"


# ------------------------------------------------------------------ uploads

BAD_UPLOADS = {
    "empty": (b"", "empty"),
    "none": (None, "empty"),
    "text": (b"this is not an image at all", "not an image"),
    "html": (b"<html><body>hi</body></html>", "not an image"),
    "eps (not an allowed format)": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n", "not an image"),
    "truncated png": (encode(noise_rgb())[:200], "truncated or corrupt"),
    "truncated jpeg": (encode(noise_rgb(), "JPEG")[:400], "truncated or corrupt"),
    "png header only": (encode(noise_rgb())[:33], "truncated or corrupt"),
    "1x1": (encode(Image.new("L", (1, 1), 7)), "1×1"),
    "7x300": (encode(Image.new("L", (7, 300), 7)), "7×300"),
    "decompression bomb": (encode(Image.new("1", (10_000, 10_000))), "too many pixels"),
    "bomb in the warning zone": (encode(Image.new("1", (7_000, 7_000))), "too many pixels"),
    "too many bytes": (b"\x89PNG" + b"\0" * (U.MAX_UPLOAD_BYTES + 1), "limit"),
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_raise_a_friendly_error(case):
    data, words = BAD_UPLOADS[case]
    with pytest.raises(U.UploadError) as e:
        U.decode_upload(data, "photo.png")
    msg = str(e.value)
    assert words in msg
    assert "Traceback" not in msg and len(msg) < 400
    assert isinstance(e.value, ValueError)


def test_decompression_bomb_is_refused_before_decoding():
    # 20 000 × 20 000 would need 400 MB decoded; the header alone must be enough to refuse it
    data = encode(Image.new("1", (20_000, 20_000)))
    with pytest.raises(U.UploadError, match="too many pixels"):
        U.decode_upload(data)
    assert Image.MAX_IMAGE_PIXELS == U.MAX_PIXELS


def test_decompression_bomb_warning_as_error():
    data = encode(Image.new("1", (7_000, 7_000)))  # 49 MP: PIL itself would only warn
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(U.UploadError, match="too many pixels"):
            U.decode_upload(data)


GOOD_UPLOADS = {
    "png rgb": lambda: encode(noise_rgb()),
    "jpeg": lambda: encode(noise_rgb(), "JPEG", quality=90),
    "webp": lambda: encode(noise_rgb(), "WEBP"),
    "bmp": lambda: encode(noise_rgb(), "BMP"),
    "gif animated": animated_gif,
    "tiff": lambda: encode(noise_rgb(), "TIFF"),
    "rgba": lambda: encode(noise_rgb().convert("RGBA")),
    "la": lambda: encode(Image.new("LA", (80, 80), (200, 100))),
    "p with transparency": lambda: encode(Image.new("P", (80, 80), 0), transparency=0),
    "cmyk jpeg": lambda: encode(noise_rgb().convert("CMYK"), "JPEG"),
    "16-bit grey png": lambda: encode(Image.fromarray(np.full((80, 80), 40_000, np.uint16))),
    "32-bit int": lambda: encode(Image.fromarray(np.full((80, 80), 300, np.int32), "I"), "TIFF"),
    "float tiff": lambda: encode(Image.fromarray(np.full((80, 80), 0.25, np.float32), "F"), "TIFF"),
    "1-bit": lambda: encode(Image.new("1", (80, 80), 1)),
    "wide 3000x200": lambda: encode(Image.new("L", (3000, 200), 90)),
    "tall 64x1000": lambda: encode(Image.new("RGB", (64, 1000), (10, 200, 30))),
    "small 8x8": lambda: encode(Image.new("L", (8, 8), 50)),
}


@pytest.mark.parametrize("case", list(GOOD_UPLOADS))
def test_good_uploads_give_a_64x64_grey_image(case):
    d = U.decode_upload(GOOD_UPLOADS[case](), f"{case}.img")
    assert_model_input(d)
    w, h = d.size
    side = min(w, h)
    assert d.box[2] - d.box[0] == side and d.box[3] - d.box[1] == side
    assert d.crop.dtype == np.uint8 and d.crop.shape[0] == d.crop.shape[1] <= U.PREVIEW_SIDE


def test_transparency_is_composited_on_mid_grey():
    d = U.decode_upload(encode(Image.new("RGBA", (80, 80), (255, 0, 0, 0))))
    assert np.allclose(d.image, U.MATTE / 255, atol=1 / 255)
    half = U.decode_upload(encode(Image.new("LA", (80, 80), (255, 128))))
    assert 0.6 < float(half.image.mean()) < 0.9


def test_sixteen_bit_keeps_its_range():
    a = np.zeros((80, 80), np.uint16)
    a[:, 40:] = 65535
    d = U.decode_upload(encode(Image.fromarray(a)))
    assert d.image[:, :24].max() == 0.0 and d.image[:, 40:].min() == 1.0  # not clipped at 255/65535
    mid = U.decode_upload(encode(Image.fromarray(np.full((80, 80), 32768, np.uint16))))
    assert abs(float(mid.image.mean()) - 0.5) < 1 / 255


def test_animated_gif_uses_the_first_frame():
    d = U.decode_upload(animated_gif())
    assert float(d.image.max()) == 0.0  # frame 0 is black, frame 1 white
    assert any("first frame" in n for n in d.notes)


def test_centre_square_crop():
    a = np.zeros((100, 300), np.uint8)
    a[:, 150:] = 255  # the centre 100×100 square (x in 100..200) is half black, half white
    d = U.decode_upload(encode(Image.fromarray(a)))
    assert d.box == (100, 0, 200, 100)
    assert d.image[:, :28].max() < 0.02 and d.image[:, 36:].min() > 0.98
    assert any("centre" in n for n in d.notes)


def test_small_images_are_accepted_with_a_warning():
    d = U.decode_upload(encode(Image.new("L", (20, 20), 100)))
    assert_model_input(d)
    assert any("upscaled" in n for n in d.notes)
    assert not U.decode_upload(encode(Image.new("L", (64, 64), 100))).notes


def test_exif_orientation_is_applied():
    a = np.zeros((60, 120, 3), np.uint8)
    a[:, :60] = 255  # white left half, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display → portrait, white on top
    d = U.decode_upload(encode(Image.fromarray(a), "JPEG", exif=exif.tobytes(), quality=95))
    assert d.size == (60, 120)
    assert d.image[:20].mean() > 0.9 and d.image[-20:].mean() < 0.1


def test_upload_becomes_an_input_image():
    d = U.decode_upload(encode(noise_rgb()), "cat.png")
    img = InputImage.from_upload(d, "cat.png")
    assert img.label is None and img.rotation is None and "cat.png" in img.caption
    assert np.array_equal(image_from_key(img.key), img.image)
    assert img.x.shape == (1, 1, 64, 64)


def test_every_message_lists_the_same_formats():
    for data in (b"", b"plain text"):
        with pytest.raises(U.UploadError) as e:
            U.decode_upload(data)
        assert U.FORMATS_TEXT in str(e.value) and "TIFF" in str(e.value)
    exts = {f.lower() for f in U.FORMATS_TEXT.replace(" or ", ", ").split(", ")}
    assert exts - {"jpeg", "webp", "png", "bmp", "gif", "tiff"} == set()
    assert {"tif", "tiff", "png", "jpg", "jpeg", "webp", "bmp", "gif"} == set(U.UPLOAD_EXTENSIONS)
