"""Natural backgrounds: the offline stand-in for the paper's ImageNet images.

Sources, each with a fixed train/test split of *source images*, so that no
photograph contributes to both splits:

* ``photos``: the photographs bundled inside scikit-image (``skimage/data``),
  read from the installed package; synthetic test patterns are skipped.
* ``deadleaves``: a procedural dead-leaves model (occluding grey discs with a
  power-law size distribution), seeded so train and test never share a seed.
* a user folder (for example a real ImageNet directory): files are split by a
  hash of their relative path, one in five to test.

A background is a random square crop at a random scale, resampled to 64×64
greyscale float32 in [0, 1], flipped left-right at random.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numba
import numpy as np
from PIL import Image

SIZE = 64
PHOTOS_TRAIN = ("astronaut.png", "brick.png", "cell.png", "clock_motion.png", "coffee.png",
                "coins.png", "grass.png", "hubble_deep_field.jpg", "microaneurysms.png",
                "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg",
                "text.png")
PHOTOS_TEST = ("camera.png", "chelsea.png", "rocket.jpg", "gravel.png", "ihc.png", "moon.png")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff")
DEADLEAVES_SHARE = 0.25
SPLITS = ("train", "test")


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def _to_grey(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("L"), dtype=np.float32) / 255.0


@cache
def _pyramid(path: str) -> tuple[np.ndarray, ...]:
    """The image in grey at scales 1, 1/2, 1/4, ... down to about 64 pixels."""
    with Image.open(path) as im:
        grey = _to_grey(im)
    levels = [grey]
    while min(levels[-1].shape) >= 2 * SIZE:
        g = levels[-1]
        h, w = (g.shape[0] // 2) * 2, (g.shape[1] // 2) * 2
        g = g[:h, :w]
        levels.append(0.25 * (g[0::2, 0::2] + g[1::2, 0::2] + g[0::2, 1::2] + g[1::2, 1::2]))
    return tuple(np.ascontiguousarray(level) for level in levels)


def _user_split(rel: str) -> str:
    return "test" if int(hashlib.sha1(rel.encode()).hexdigest(), 16) % 5 == 0 else "train"


def folder_images(folder: str | os.PathLike, split: str) -> list[str]:
    """Image files under ``folder`` that belong to ``split`` (hash of the relative path)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"background folder {str(root)!r} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
    return [str(p) for p in files if _user_split(str(p.relative_to(root))) == split]


@numba.njit(cache=True)
def _bilinear_crop(img, y0, x0, side, flip, out):
    n = out.shape[0]
    step = side / n
    h, w = img.shape
    for i in range(n):
        fy = y0 + (i + 0.5) * step - 0.5
        iy = min(max(int(np.floor(fy)), 0), h - 2)
        ty = min(max(fy - iy, 0.0), 1.0)
        for j in range(n):
            fx = x0 + (j + 0.5) * step - 0.5
            ix = min(max(int(np.floor(fx)), 0), w - 2)
            tx = min(max(fx - ix, 0.0), 1.0)
            v = ((1 - ty) * ((1 - tx) * img[iy, ix] + tx * img[iy, ix + 1])
                 + ty * ((1 - tx) * img[iy + 1, ix] + tx * img[iy + 1, ix + 1]))
            out[i, n - 1 - j if flip else j] = v


@numba.njit(cache=True)
def _dead_leaves(seed, out):
    np.random.seed(seed)
    n = out.shape[0]
    filled = np.zeros((n, n), np.bool_)
    remaining = n * n
    for _ in range(400):
        # radius ~ r^-3 between 2 and 40 pixels (scale-invariant statistics)
        u = np.random.random()
        rmin, rmax = 2.0, 40.0
        r = 1.0 / np.sqrt(u / rmax**2 + (1 - u) / rmin**2)
        cx = np.random.random() * (n + 2 * r) - r
        cy = np.random.random() * (n + 2 * r) - r
        grey = np.random.random() ** 1.2
        ys = max(int(cy - r), 0)
        ye = min(int(cy + r) + 1, n)
        xs = max(int(cx - r), 0)
        xe = min(int(cx + r) + 1, n)
        for y in range(ys, ye):
            for x in range(xs, xe):
                if not filled[y, x] and (y + 0.5 - cy) ** 2 + (x + 0.5 - cx) ** 2 <= r * r:
                    filled[y, x] = True
                    out[y, x] = grey
                    remaining -= 1
        if remaining == 0:
            break
    if remaining:
        for y in range(n):
            for x in range(n):
                if not filled[y, x]:
                    out[y, x] = 0.5


@dataclass
class Backgrounds:
    """Random 64×64 background crops from the sources of one split.

    ``names`` lists every source image of the split; a sample's background id
    is an index into it (the procedural source is the last entry, when used).
    """

    split: str = "train"
    photos: bool = True
    deadleaves: bool = True
    folder: str | None = None

    def __post_init__(self):
        if self.split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {self.split!r}")
        files: list[str] = []
        if self.photos:
            data = skimage_data_dir()
            files += [str(data / f) for f in (PHOTOS_TRAIN if self.split == "train" else PHOTOS_TEST)
                      if (data / f).exists()]
        if self.folder:
            files += folder_images(self.folder, self.split)
        self.files = files
        self.names = [Path(f).name for f in files] + (["deadleaves"] if self.deadleaves else [])
        if not self.names:
            raise ValueError(f"no background images for split {self.split!r}")

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, int]:
        """One crop and its background id, drawn with ``rng``."""
        out = np.empty((SIZE, SIZE), np.float32)
        use_leaves = self.deadleaves and (not self.files or rng.random() < DEADLEAVES_SHARE)
        if use_leaves:
            # train seeds are even, test seeds odd: the two never share a leaf pattern
            seed = int(rng.integers(0, 2**30)) * 2 + (self.split == "test")
            _dead_leaves(seed, out)
            return out, len(self.names) - 1
        k = int(rng.integers(len(self.files)))
        levels = _pyramid(self.files[k])
        full = min(levels[0].shape)
        side = float(np.exp(rng.uniform(np.log(min(SIZE, full)), np.log(full))))
        level = 0
        while level + 1 < len(levels) and side / 2 ** (level + 1) >= SIZE:
            level += 1
        img = levels[level]
        s = side / 2**level
        h, w = img.shape
        s = min(s, h, w)
        y0 = rng.uniform(0, h - s)
        x0 = rng.uniform(0, w - s)
        _bilinear_crop(img, y0, x0, s, bool(rng.random() < 0.5), out)
        return out, k
