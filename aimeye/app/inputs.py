"""The image a page works on, wherever it comes from: a held-out test scene, a generated
scene, an upload or a drawing. Every one becomes an :class:`InputImage`: (64,64) float32 in
[0,1], quantised to 8 bits like the scenes, with its true label and rotation when known."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from ..backgrounds import Backgrounds
from ..evaluate import EVAL_SEED
from ..paper import CLASSES, NONE, ROT_RANGE
from ..render import render_mesh, resolve_mesh
from ..scenes import blend, generate
from .uploads import DecodedImage, grey_float, resize_square

SOURCES = {"test": "Held-out test set", "scene": "Generated scene", "upload": "Upload", "draw": "Draw your own"}
BG_SOURCES = {"photos": "Photographs (test sources)", "deadleaves": "Dead leaves (procedural)"}
TEST_SEED = EVAL_SEED
TEST_SIZE = 10_000  # indices 0..9999 of the held-out set `python -m aimeye evaluate` scores; label = index % 4
MAX_SEED = 2**31 - 1
CANVAS_SIDE = 256  # the drawing canvas, in screen pixels (4 per network pixel)
CANVAS_BACKGROUND = 128  # mid grey, like the matte of transparent uploads


def class_name(c: int) -> str:
    return CLASSES[int(c)] if 0 <= int(c) < len(CLASSES) else f"class {c}"


def as_batch(img) -> torch.Tensor:
    """(64,64) array or tensor → (1,1,64,64) float32 tensor."""
    t = img.detach().float() if isinstance(img, torch.Tensor) else torch.from_numpy(np.asarray(img, np.float32))
    return t.reshape(1, 1, *t.shape[-2:]).contiguous()


def _quantise(a: np.ndarray) -> np.ndarray:
    return (np.round(np.clip(a, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def _rot_text(rot) -> str:
    return "" if rot is None else " at rotation (" + ", ".join(f"{v:+.2f}" for v in rot) + ") rad"


@dataclass
class InputImage:
    """``image`` (64,64) float32 in [0,1]; the true ``label`` and ``rotation`` when known; a
    caption; for uploads the centre crop that was used; notes for the user. ``render`` and
    ``alpha``: the object over black and its coverage (scenes only)."""

    image: np.ndarray
    label: int | None
    rotation: np.ndarray | None
    caption: str
    crop: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)
    render: np.ndarray | None = None
    alpha: np.ndarray | None = None

    @property
    def x(self) -> torch.Tensor:
        return as_batch(self.image)

    @property
    def key(self) -> bytes:
        """The pixels as bytes: a cache key for everything computed from this image."""
        return np.ascontiguousarray(self.image, np.float32).tobytes()

    @classmethod
    def from_upload(cls, decoded: DecodedImage, name: str = "") -> InputImage:
        w, h = decoded.size
        caption = f"upload{f' “{name}”' if name else ''}: {decoded.format} {w}×{h} {decoded.mode}, centre crop → 64×64"
        return cls(decoded.image.astype(np.float32), None, None, caption, decoded.crop, list(decoded.notes))

    @classmethod
    def from_drawing(cls, rgba: np.ndarray) -> InputImage:
        """A canvas drawing (H,W,4) uint8 RGBA (as ``streamlit-drawable-canvas`` returns it),
        composited on mid grey, made grey and area-resized to 64×64."""
        a = np.asarray(rgba)
        if a.ndim != 3 or a.shape[2] not in (3, 4) or min(a.shape[:2]) < 8:
            raise ValueError(f"a drawing is an (H,W,4) RGBA array, got shape {a.shape}")
        from PIL import Image

        grey = grey_float(Image.fromarray(np.ascontiguousarray(a, np.uint8), "RGBA" if a.shape[2] == 4 else "RGB"))
        side = min(grey.shape)
        top, left = (grey.shape[0] - side) // 2, (grey.shape[1] - side) // 2
        small = _quantise(resize_square(grey[top:top + side, left:left + side], 64))
        return cls(small, None, None, "your drawing, made grey and resized to 64×64")


def image_from_key(key: bytes) -> np.ndarray:
    """Inverse of :attr:`InputImage.key`."""
    return np.frombuffer(key, np.float32).reshape(64, 64).copy()


def is_blank(img: InputImage, tol: float = 1 / 255) -> bool:
    """True for an image of one flat grey (an empty canvas)."""
    return float(np.ptp(img.image)) <= tol


@lru_cache(maxsize=4)
def _backgrounds(split: str, source: str) -> Backgrounds:
    return Backgrounds(split, photos=source == "photos", deadleaves=source == "deadleaves")


def make_scene(cls: int, rotation=(0.0, 0.0, 0.0), bg: str = "photos", seed: int = 0,
               split: str = "test") -> InputImage:
    """A scene with a chosen class (0..2, or 3 for background only), rotation (radians,
    clipped to [−0.5, 0.5]) and background (``bg`` source, drawn with
    ``np.random.default_rng(seed)``). Backgrounds come from the test sources by default."""
    if bg not in BG_SOURCES:
        raise ValueError(f"bg must be one of {tuple(BG_SOURCES)}, got {bg!r}")
    cls = int(cls)
    if not 0 <= cls < len(CLASSES):
        raise ValueError(f"class must be 0..{len(CLASSES) - 1}, got {cls}")
    rot = np.clip(np.asarray(rotation, np.float64).reshape(3), -ROT_RANGE, ROT_RANGE)
    bgs = _backgrounds(split, bg)
    background, bg_id = bgs.sample(np.random.default_rng(int(seed)))
    if cls == NONE:
        render = alpha = np.zeros((64, 64), np.float32)
    else:
        r, a = render_mesh(resolve_mesh(cls), rot[None])
        render, alpha = r[0], a[0]
    rotation = None if cls == NONE else rot.astype(np.float32)
    caption = f"{CLASSES[cls]}{_rot_text(rotation)} on {bgs.names[bg_id]} (seed {seed})"
    return InputImage(_quantise(blend(render, alpha, background)), cls, rotation, caption, render=render, alpha=alpha)


def held_out_scene(index: int, seed: int = TEST_SEED) -> InputImage:
    """Scene ``index`` of the held-out test set that ``python -m aimeye evaluate`` scores (label = index % 4)."""
    index = int(index)
    if not 0 <= index < TEST_SIZE:
        raise ValueError(f"test index must be 0..{TEST_SIZE - 1}, got {index}")
    s = generate([index], "test", seed)
    label = int(s.labels[0])
    rot = None if label == NONE else s.rotations[0].numpy()
    return InputImage(s.images[0, 0].numpy(), label, rot, f"test scene #{index}: {CLASSES[label]}{_rot_text(rot)}",
                      render=s.renders[0, 0].numpy(), alpha=s.alphas[0, 0].numpy())


def held_out_index(cls: int, k: int = 0) -> int:
    """The k-th held-out test index whose label is ``cls``."""
    return 4 * int(k) + int(cls)
