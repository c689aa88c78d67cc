"""Uploaded images: any common file, size or colour mode → one 64×64 greyscale image, or a message.

:func:`decode_upload` turns an uploaded file into a (1,1,64,64) float32 image in
[0,1] (centre square, greyscale, resized, quantised to 8 bits like the scenes) or
raises :class:`UploadError` with a message meant for the person who uploaded it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # .streamlit/config.toml's server.maxUploadSize says the same
MAX_PIXELS = 40_000_000
MIN_SIDE = 8
SMALL_SIDE = 64
UPLOAD_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF")
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
FORMATS_TEXT = "PNG, JPEG, WebP, BMP, GIF or TIFF"  # every message and label that lists the formats uses this
MATTE = 128  # transparent pixels are composited on mid grey
PREVIEW_SIDE = 256

# PIL's own guard against decompression bombs: it warns above this many pixels and
# refuses above twice as many. decode_upload refuses anything above it outright,
# from the header, before decoding a single pixel.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
Image.init()  # register every plugin (MPO, the format of many camera JPEGs, is not in the early set)
UPLOAD_FORMATS = tuple(f for f in UPLOAD_FORMATS if f in Image.OPEN)


class UploadError(ValueError):
    """An uploaded file cannot be used; ``str(err)`` is meant for the person who uploaded it."""


@dataclass
class DecodedImage:
    """An upload made ready for the networks.

    ``x``: (1,1,64,64) float32 in [0,1], quantised to 8 bits like the scenes;
    ``crop``: the centre square that was used, greyscale uint8, at most 256 px;
    ``size``: the original (width, height); ``box``: the crop in original pixels
    (left, top, right, bottom); ``notes``: things the user should know."""

    x: torch.Tensor
    crop: np.ndarray
    size: tuple[int, int]
    mode: str
    format: str
    box: tuple[int, int, int, int]
    notes: list[str] = field(default_factory=list)

    @property
    def image(self) -> np.ndarray:
        return self.x[0, 0].numpy()


def grey_float(im: Image.Image) -> np.ndarray:
    """Any PIL mode → greyscale float32 in [0,1]; transparency composited on mid grey."""
    mode = im.mode
    if mode.startswith("I;16"):
        a = np.asarray(im.convert("I") if mode not in ("I;16", "I;16B", "I;16L") else im).astype(np.float32)
        return np.clip(a / 65535.0, 0.0, 1.0)
    if mode == "I":
        a = np.asarray(im).astype(np.float32)
        return np.clip(a / (65535.0 if a.size and a.max() > 255 else 255.0), 0.0, 1.0)
    if mode == "F":
        a = np.nan_to_num(np.asarray(im).astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(a / 255.0 if a.size and a.max() > 1.0 else a, 0.0, 1.0)
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = im.convert("RGBA")
        matte = Image.new("RGBA", rgba.size, (MATTE, MATTE, MATTE, 255))
        im = Image.alpha_composite(matte, rgba)
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def resize_square(a: np.ndarray, side: int) -> np.ndarray:
    """Resize a float square image to ``side``×``side`` (Lanczos; box-reduced first when huge)."""
    im = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    if im.width > 8 * side:  # cheap, alias-free pre-reduction
        f = im.width // (4 * side)
        im = im.reduce(f)
    return np.asarray(im.resize((side, side), Image.Resampling.LANCZOS), dtype=np.float32)


MAGIC = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
         (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"))


def sniff_format(data: bytes) -> str | None:
    """The image format a file's first bytes announce, if any (to tell a broken image from a non-image)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WebP"
    return next((name for magic, name in MAGIC if data.startswith(magic)), None)


def decode_upload(data: bytes | None, name: str = "") -> DecodedImage:
    """Decode an uploaded image (PNG, JPEG, WebP, BMP, GIF's first frame, TIFF) of any
    size or mode into a 64×64 greyscale image: centre square crop, then resize.

    Raises :class:`UploadError` with a friendly message for empty, non-image,
    truncated or oversized files and for images smaller than 8×8 pixels.
    Alpha is composited on mid grey; 16-bit images keep their full range;
    EXIF orientation is applied.
    """
    label = f"“{name}”" if name else "The file"
    if not data:
        raise UploadError(f"{label} is empty (0 bytes). Upload a {FORMATS_TEXT} image.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{label} is {len(data) / 2**20:.0f} MiB; the limit is {MAX_UPLOAD_BYTES // 2**20} MiB.")
    notes: list[str] = []
    bomb = (f"{label} has too many pixels to decode safely (more than {MAX_PIXELS / 1e6:.0f} megapixels); "
            "downscale it first.")
    # No warnings.catch_warnings() here: it swaps the process-wide filters and is not
    # thread-safe, and the app decodes in one thread per session. The size check below
    # refuses everything PIL would only warn about; DecompressionBombError (and the
    # warning, when a caller runs with -W error) are caught too.
    try:
        im = Image.open(io.BytesIO(data), formats=UPLOAD_FORMATS)
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise UploadError(bomb)
        fmt = im.format or "?"
        frames = int(getattr(im, "n_frames", 1) or 1)
        if frames > 1:
            im.seek(0)
            notes.append(f"Animated {fmt} with {frames} frames: only the first frame is used.")
        im.load()
        im = ImageOps.exif_transpose(im) or im
    except UploadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise UploadError(bomb) from e
    except UnidentifiedImageError as e:
        kind = sniff_format(data)
        if kind:
            raise UploadError(f"{label} starts like a {kind} file but looks truncated or corrupt, "
                              "so it could not be decoded.") from e
        raise UploadError(f"{label} is not an image this app can read. "
                          f"Upload a {FORMATS_TEXT} image.") from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, MemoryError) as e:
        raise UploadError(f"{label} looks truncated or corrupt and could not be decoded ({e}).") from e
    w, h = im.size
    if min(w, h) < MIN_SIDE:
        raise UploadError(f"{label} is only {w}×{h} pixels; the networks need at least {MIN_SIDE}×{MIN_SIDE} "
                          f"(ideally 64×64 or more).")
    if min(w, h) < SMALL_SIDE:
        notes.append(f"The image is only {w}×{h} pixels, so it was upscaled to 64×64 and looks soft.")
    if w != h:
        notes.append(f"The image is {w}×{h}; the networks see only the centre {min(w, h)}×{min(w, h)} square.")
    mode = im.mode
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    box = (left, top, left + side, top + side)
    try:
        grey = grey_float(im.crop(box))
    except (OSError, ValueError, TypeError, MemoryError) as e:
        raise UploadError(f"{label} uses a pixel format ({mode}) that could not be converted ({e}).") from e
    small = np.clip(resize_square(grey, 64), 0.0, 1.0)
    small = np.round(small * 255.0) / 255.0
    preview = grey if side <= PREVIEW_SIDE else np.clip(resize_square(grey, PREVIEW_SIDE), 0.0, 1.0)
    crop = (preview * 255.0 + 0.5).astype(np.uint8)
    x = torch.from_numpy(small.astype(np.float32))[None, None].contiguous()
    return DecodedImage(x=x, crop=crop, size=(w, h), mode=mode, format=fmt, box=box, notes=notes)
