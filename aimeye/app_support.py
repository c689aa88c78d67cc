"""Everything the Streamlit app needs that is not layout: inputs, analysis, charts, results.

The pages (``app.py``, ``pages/``) are thin views over this module; this module
never imports streamlit, so all of it is tested without a browser.

* Inputs: :func:`decode_upload` turns any uploaded file into a (1,1,64,64)
  float32 image or raises :class:`UploadError` with a message meant for a
  person; :func:`make_scene` and :func:`held_out_scene` give generated and held-out
  scenes.
* Shareable state: :class:`ViewState` with :func:`parse_query` and
  :func:`to_query` (bad values fall back to defaults, never raise).
* Analysis: :func:`analyse` runs all three networks once on an image and
  returns plain numpy arrays (cacheable), including re-renders at the
  estimated rotations with the true renderer.
* Attacks: thin wrappers over :mod:`aimeye.attacks` (imported lazily, so the
  app still works while it is missing) and a small live experiment.
* Charts: plotly figures with labelled axes.
* Results: readers for ``metrics.json`` and ``checkpoints/results/`` that
  return ``None`` when a file is missing, with the command that makes it.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from . import checkpoints, nets
from .backgrounds import Backgrounds
from .evaluate import EVAL_SEED
from .paper import CLASSES, NONE, PAPER_TABLE1, ROT_RANGE, THETAS
from .render import render_mesh, resolve_mesh
from .scenes import blend, generate

# ------------------------------------------------------------------ constants

N_OBJECTS = NONE  # 3 object classes; label 3 is "none"
PAPER_THETAS = THETAS  # (0.2, 0.45, 0.7)
NETWORKS = {"direct": "Direct classification", "direct_param": "Direct + parameter estimation",
            "triple": "Triple-staged"}
SOURCES = {"test": "Held-out test set", "scene": "Generated scene", "upload": "Upload"}
BG_SOURCES = {"photos": "Photographs (test sources)", "deadleaves": "Dead leaves (procedural)"}
ATTACKS = {"fgsm": "Iterative FGSM (1/255 per step, as in the paper)", "pgd": "PGD inside an L∞ ball of ε"}
TEST_SEED = EVAL_SEED
TEST_SIZE = 10_000  # indices 0..9999 of the held-out set `python -m aimeye evaluate` scores; label = index % 4
MAX_SEED = 2**31 - 1
TRAIN_COMMAND = "python -m aimeye train all"
EVALUATE_COMMAND = "python -m aimeye evaluate"
EXPERIMENT_COMMAND = "python -m aimeye experiment all --n-per-class 100"

# uploads
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 40_000_000
MIN_SIDE = 8
SMALL_SIDE = 64
UPLOAD_FORMATS = ("PNG", "JPEG", "MPO", "WEBP", "BMP", "GIF", "TIFF")
UPLOAD_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp", "gif", "tif", "tiff")
MATTE = 128  # transparent pixels are composited on mid grey
PREVIEW_SIDE = 256

# PIL's own guard against decompression bombs: it warns above this many pixels and
# refuses above twice as many. decode_upload refuses anything above it outright,
# from the header, before decoding a single pixel.
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
Image.init()  # register every plugin (MPO, the format of many camera JPEGs, is not in the early set)
UPLOAD_FORMATS = tuple(f for f in UPLOAD_FORMATS if f in Image.OPEN)


def class_name(c: int) -> str:
    return CLASSES[int(c)] if 0 <= int(c) < len(CLASSES) else f"class {c}"


# ---------------------------------------------------------------- checkpoints


def checkpoint_dir() -> Path:
    """Where the app reads checkpoints: ``$AIMEYE_CHECKPOINTS`` or the repo's ``checkpoints/``."""
    env = os.environ.get("AIMEYE_CHECKPOINTS", "").strip()
    return Path(env).expanduser().resolve() if env else checkpoints.DEFAULT_DIR


def results_dir(root: Path | str | None = None) -> Path:
    return Path(root or checkpoint_dir()) / "results"


def load_models(root: Path | str | None = None) -> checkpoints.Models:
    """The shared, frozen models (cached per directory by :func:`aimeye.load_models`).
    Raises :class:`aimeye.CheckpointError` with the command that trains what is missing."""
    return checkpoints.load_models(Path(root) if root else checkpoint_dir())


def configure_torch(threads: int | None = None) -> int:
    """Set torch's intra-op threads for the app: ``threads``, else ``$AIMEYE_TORCH_THREADS``, else 1.

    The app runs one 64×64 image at a time, often for several sessions at once;
    a single thread per operation avoids OpenMP oversubscription, which on a
    busy 2-core machine made one forward pass 30× slower. Returns the count set."""
    if threads is None:
        threads = _int(os.environ.get("AIMEYE_TORCH_THREADS"), 1, 1024) or 1
    torch.set_num_threads(int(threads))
    return int(threads)


def checkpoint_message(err: Exception) -> str:
    """A friendly message for a missing or broken checkpoint."""
    return (f"The networks could not be loaded: {err}\n\n"
            f"Train all of them with `{TRAIN_COMMAND}` (or point `AIMEYE_CHECKPOINTS` at a checkpoint folder).")


# --------------------------------------------------------------------- uploads


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


def _grey_float(im: Image.Image) -> np.ndarray:
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


def _resize(a: np.ndarray, side: int) -> np.ndarray:
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
        raise UploadError(f"{label} is empty (0 bytes). Upload a PNG, JPEG, WebP, BMP or GIF image.")
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
                          f"Upload a PNG, JPEG, WebP, BMP or GIF image.") from e
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
        grey = _grey_float(im.crop(box))
    except (OSError, ValueError, TypeError, MemoryError) as e:
        raise UploadError(f"{label} uses a pixel format ({mode}) that could not be converted ({e}).") from e
    small = np.clip(_resize(grey, 64), 0.0, 1.0)
    small = np.round(small * 255.0) / 255.0
    preview = grey if side <= PREVIEW_SIDE else np.clip(_resize(grey, PREVIEW_SIDE), 0.0, 1.0)
    crop = (preview * 255.0 + 0.5).astype(np.uint8)
    x = torch.from_numpy(small.astype(np.float32))[None, None].contiguous()
    return DecodedImage(x=x, crop=crop, size=(w, h), mode=mode, format=fmt, box=box, notes=notes)


# ------------------------------------------------------- shareable view state


@dataclass(frozen=True)
class ViewState:
    """What a page shows, as it travels in the URL (``st.query_params``).

    source: test | scene | upload; cls: 0..3 (3 = none, background only);
    rot: radians in [−0.5, 0.5]; bg: photos | deadleaves; seed: background
    seed; index: held-out test index (label = index % 4); theta in [0,1];
    network: direct | direct_param | triple."""

    source: str = "test"
    cls: int = 1
    rot: tuple[float, float, float] = (0.2, -0.3, 0.1)
    bg: str = "photos"
    seed: int = 0
    index: int = 1
    theta: float = 0.7
    network: str = "triple"


QUERY_KEYS = {"source": "source", "cls": "class", "rot": "rot", "bg": "bg", "seed": "seed", "index": "index",
              "theta": "theta", "network": "network"}


def _last(v: Any) -> str | None:
    if isinstance(v, (list, tuple)):
        v = v[-1] if v else None
    return None if v is None else str(v).strip()


def _finite(s: str | None) -> float | None:
    try:
        f = float(s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(s: str | None, lo: int, hi: int) -> int | None:
    f = _finite(s)
    if f is None or f != int(f) or not lo <= f <= hi:
        return None
    return int(f)


def parse_class(s: Any, default: int | None = None) -> int | None:
    """A class given by name (any case) or by label 0..3; else ``default``."""
    s = _last(s)
    if s is None:
        return default
    if s.lower() in CLASSES:
        return CLASSES.index(s.lower())
    k = _int(s, 0, len(CLASSES) - 1)
    return default if k is None else k


def parse_query(params: Mapping[str, Any] | None) -> ViewState:
    """A :class:`ViewState` from query parameters; anything missing, malformed,
    out of range, NaN or infinite falls back to the default for that field."""
    d = ViewState()
    p = dict(params or {})

    def get(name):
        return _last(p.get(QUERY_KEYS[name]))

    source = (get("source") or "").lower()
    network = (get("network") or "").lower().replace("-", "_").replace("+", "_")
    bg = (get("bg") or "").lower()
    rot = d.rot
    parts = (get("rot") or "").split(",")
    vals = [_finite(v) for v in parts]
    if len(vals) == 3 and all(v is not None for v in vals):
        rot = tuple(round(min(max(v, -ROT_RANGE), ROT_RANGE), 2) + 0.0 for v in vals)
    theta = _finite(get("theta"))
    seed = _int(get("seed"), 0, MAX_SEED)
    index = _int(get("index"), 0, TEST_SIZE - 1)
    return ViewState(
        source=source if source in SOURCES else d.source,
        cls=parse_class(get("cls"), d.cls),
        rot=rot,
        bg=bg if bg in BG_SOURCES else d.bg,
        seed=d.seed if seed is None else seed,
        index=d.index if index is None else index,
        theta=round(min(max(theta, 0.0), 1.0), 2) if theta is not None else d.theta,
        network=network if network in NETWORKS else d.network,
    )


def _fmt(v: float) -> str:
    return format(round(float(v), 2) + 0.0, "g")


def to_query(state: ViewState) -> dict[str, str]:
    """Query parameters for a state: ``parse_query(to_query(s)) == s`` for any valid state."""
    return {"source": state.source, "class": CLASSES[state.cls], "rot": ",".join(_fmt(v) for v in state.rot),
            "bg": state.bg, "seed": str(state.seed), "index": str(state.index), "theta": _fmt(state.theta),
            "network": state.network}


def normalise_state(state: ViewState) -> ViewState:
    """The state as it would come back from the URL (rounded, clipped, defaults for bad values)."""
    return parse_query(to_query(state))


def with_changes(state: ViewState, **changes) -> ViewState:
    return normalise_state(replace(state, **changes))


# --------------------------------------------------------------------- scenes


@dataclass
class Scene:
    """One 64×64 scene: ``image`` (64,64) float32 in [0,1] (quantised to 8 bits),
    the true ``label`` and ``rotation`` (None for none), the object ``render``
    over black and its ``alpha``, and a caption."""

    image: np.ndarray
    label: int
    rotation: np.ndarray | None
    render: np.ndarray
    alpha: np.ndarray
    caption: str

    @property
    def x(self) -> torch.Tensor:
        return as_batch(self.image)


def as_batch(img) -> torch.Tensor:
    """(64,64) array or tensor → (1,1,64,64) float32 tensor."""
    t = img.detach().float() if isinstance(img, torch.Tensor) else torch.from_numpy(np.asarray(img, np.float32))
    return t.reshape(1, 1, *t.shape[-2:]).contiguous()


@lru_cache(maxsize=4)
def _backgrounds(split: str, source: str) -> Backgrounds:
    return Backgrounds(split, photos=source == "photos", deadleaves=source == "deadleaves")


def make_scene(cls: int, rotation=(0.0, 0.0, 0.0), bg: str = "photos", seed: int = 0,
               split: str = "test") -> Scene:
    """A scene with a chosen class (0..2, or 3 for background only), rotation
    (radians, clipped to [−0.5, 0.5]) and background (``bg`` source, drawn with
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
    img = np.round(blend(render, alpha, background) * 255.0) / 255.0
    rot_txt = "" if cls == NONE else " at rotation (" + ", ".join(f"{v:+.2f}" for v in rot) + ") rad"
    caption = f"{CLASSES[cls]}{rot_txt} on {bgs.names[bg_id]} (seed {seed})"
    return Scene(img.astype(np.float32), cls, None if cls == NONE else rot.astype(np.float32), render, alpha,
                 caption)


def held_out_scene(index: int, seed: int = TEST_SEED) -> Scene:
    """Scene ``index`` of the held-out test set that ``python -m aimeye evaluate`` scores (label = index % 4)."""
    index = int(index)
    if not 0 <= index < TEST_SIZE:
        raise ValueError(f"test index must be 0..{TEST_SIZE - 1}, got {index}")
    s = generate([index], "test", seed)
    label = int(s.labels[0])
    rot = None if label == NONE else s.rotations[0].numpy()
    rot_txt = "" if rot is None else " at rotation (" + ", ".join(f"{v:+.2f}" for v in rot) + ") rad"
    return Scene(s.images[0, 0].numpy(), label, rot, s.renders[0, 0].numpy(), s.alphas[0, 0].numpy(),
                 f"test scene #{index}: {CLASSES[label]}{rot_txt}")


def held_out_index(cls: int, k: int = 0) -> int:
    """The k-th held-out test index whose label is ``cls``."""
    return 4 * int(k) + int(cls)


@dataclass
class InputImage:
    """The image a page works on, wherever it came from: ``image`` (64,64) float32 in
    [0,1], the true ``label`` and ``rotation`` when known, a caption, and for uploads
    the centre crop that was used and notes for the user."""

    image: np.ndarray
    label: int | None
    rotation: np.ndarray | None
    caption: str
    crop: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def x(self) -> torch.Tensor:
        return as_batch(self.image)

    @property
    def key(self) -> bytes:
        """The pixels as bytes: a cache key for everything computed from this image."""
        return np.ascontiguousarray(self.image, np.float32).tobytes()

    @classmethod
    def from_scene(cls, scene: Scene) -> InputImage:
        return cls(scene.image, scene.label, scene.rotation, scene.caption)

    @classmethod
    def from_upload(cls, decoded: DecodedImage, name: str = "") -> InputImage:
        w, h = decoded.size
        caption = f"upload{f' “{name}”' if name else ''}: {decoded.format} {w}×{h} {decoded.mode}, centre crop → 64×64"
        return cls(decoded.image.astype(np.float32), None, None, caption, decoded.crop, list(decoded.notes))


def image_from_key(key: bytes) -> np.ndarray:
    """Inverse of :attr:`InputImage.key`."""
    return np.frombuffer(key, np.float32).reshape(64, 64).copy()


# ------------------------------------------------------------------- analysis


@dataclass
class Analysis:
    """Everything the three networks say about one image, as numpy arrays.

    Triple-staged, per class c: ``rotation[c]`` (3,), ``projection[c]`` and
    ``alpha[c]`` (64,64), ``similarity[c]`` and ``pooled_alpha[c]`` (55,55),
    ``scores[c]``; ``rerender[c]``/``rerender_alpha[c]``: the true renderer at
    the estimated rotation. Direct classifiers: softmax ``direct_probs`` and
    ``direct_param_probs`` (4,) and the auxiliary ``direct_param_rotation`` (3,)."""

    scores: np.ndarray
    rotation: np.ndarray
    projection: np.ndarray
    alpha: np.ndarray
    similarity: np.ndarray
    pooled_alpha: np.ndarray
    rerender: np.ndarray
    rerender_alpha: np.ndarray
    direct_probs: np.ndarray
    direct_param_probs: np.ndarray
    direct_param_rotation: np.ndarray

    def verdict(self, theta: float) -> int:
        return triple_verdict(self.scores, theta)


def triple_verdict(scores, theta: float) -> int:
    """The triple-staged verdict from its 3 class scores: the best class if its score ≥ θ, else none (3)."""
    s = torch.as_tensor(np.asarray(scores, np.float32)).reshape(1, -1)
    return int(nets.verdict_from_scores(s, float(theta))[0])


def analyse(models: checkpoints.Models, x: torch.Tensor) -> Analysis:
    """Run every network on one image (1,1,64,64) without touching the models."""
    x = x.detach().float().reshape(1, 1, 64, 64)
    with torch.no_grad():
        e = models.triple.explain(x)
        direct = F.softmax(models.direct(x), 1)[0]
        logits, params = models.direct_param(x)
        dparam = F.softmax(logits, 1)[0]
    rot = e.rotation[0].numpy().astype(np.float32)
    rerender = np.zeros((N_OBJECTS, 64, 64), np.float32)
    rerender_alpha = np.zeros_like(rerender)
    for c in range(N_OBJECTS):
        r, a = render_mesh(resolve_mesh(c), rot[c][None].astype(np.float64))
        rerender[c], rerender_alpha[c] = r[0], a[0]
    return Analysis(scores=e.scores[0].numpy(), rotation=rot, projection=e.projection[0].numpy(),
                    alpha=e.alpha[0].numpy(), similarity=e.similarity[0].numpy(),
                    pooled_alpha=e.pooled_alpha[0].numpy(), rerender=rerender, rerender_alpha=rerender_alpha,
                    direct_probs=direct.numpy(), direct_param_probs=dparam.numpy(),
                    direct_param_rotation=params[0].clamp(-ROT_RANGE, ROT_RANGE).numpy())


def verdict_text(scores, theta: float, digits: int = 3) -> str:
    """A one-line verdict of the triple-staged network, with the score that decided it."""
    s = np.asarray(scores, np.float64).reshape(-1)
    best = int(np.argmax(s))
    v = triple_verdict(s, theta)
    if v == NONE:
        return f"none: the best score, {CLASSES[best]} {s[best]:.{digits}f}, is below θ = {theta:.2f}"
    return f"{CLASSES[v]}: score {s[v]:.{digits}f} ≥ θ = {theta:.2f}"


def direct_verdict_text(probs) -> str:
    p = np.asarray(probs, np.float64).reshape(-1)
    k = int(np.argmax(p))
    return f"{CLASSES[k]}: probability {p[k]:.3f}"


def rotation_table(analysis: Analysis, true_rotation=None, true_label: int | None = None) -> list[dict]:
    """Rows (one per class) of estimated rotation and, for the true class, the true rotation and error."""
    rows = []
    for c in range(N_OBJECTS):
        row = {"class": CLASSES[c], **{f"est. r{a} (rad)": round(float(v), 3)
                                        for a, v in zip("xyz", analysis.rotation[c])}}
        if true_rotation is not None and true_label == c:
            row |= {f"true r{a} (rad)": round(float(v), 3) for a, v in zip("xyz", true_rotation)}
            row["mean |error| (rad)"] = round(float(np.abs(analysis.rotation[c] - np.asarray(true_rotation)).mean()),
                                              3)
        rows.append(row)
    return rows


def amplify(perturbation) -> np.ndarray:
    """A perturbation scaled into [0,1] for display: 0.5 is unchanged, black/white the
    largest decrease/increase. This makes "the emerging drawn object" visible."""
    p = perturbation.detach().cpu().numpy() if isinstance(perturbation, torch.Tensor) else np.asarray(perturbation)
    p = np.squeeze(p).astype(np.float32)
    m = float(np.abs(p).max()) if p.size else 0.0
    return np.full_like(p, 0.5) if m == 0.0 else np.clip(0.5 + p / (2 * m), 0.0, 1.0)


# -------------------------------------------------------------------- attacks

ATTACKS_MISSING = ("The attack code (`aimeye.attacks`) is not available in this checkout yet, "
                   "so attacks cannot run. Every other page works.")


def attacks_module():
    """``aimeye.attacks`` if it provides ``make_victim`` and ``Stepper``, else ``None``
    (then :func:`attacks_problem` says why)."""
    return _attacks()[0]


def attacks_problem() -> str:
    """Why the attacks are unavailable, for the page ("" when they are available)."""
    return _attacks()[1]


def _attacks():
    try:
        from . import attacks
    except Exception as e:  # noqa: BLE001 - any failure to import means "not available"
        return None, f"{ATTACKS_MISSING} (import failed: {type(e).__name__}: {e})"
    if not (hasattr(attacks, "make_victim") and hasattr(attacks, "Stepper")):
        return None, f"{ATTACKS_MISSING} (it has no make_victim/Stepper)"
    return attacks, ""


def target_label(target: int) -> str:
    return f"{class_name(target)} ({'false negative' if int(target) == NONE else 'false positive'})"


def goal_for(target: int) -> tuple[str, int | None]:
    """A chosen target class → (goal, target) for the Stepper: none → a false negative."""
    return ("fn", None) if int(target) == NONE else ("fp", int(target))


def default_target(label: int) -> int:
    """A sensible adversarial target: the next object class (penguin → aeroplane)."""
    return (int(label) + 1) % N_OBJECTS


def new_stepper(models, network: str, theta: float, x: torch.Tensor, y: int, target: int, attack: str = "fgsm",
                eps: float = 8 / 255, max_steps: int = 500, explain: bool = True):
    """A :class:`aimeye.attacks.Stepper` pushing ``x`` (true class ``y``) towards ``target``
    (3 = none: a false negative). Raises RuntimeError when the attacks are unavailable."""
    attacks = attacks_module()
    if attacks is None:
        raise RuntimeError(ATTACKS_MISSING)
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {tuple(NETWORKS)}, got {network!r}")
    goal, tgt = goal_for(target)
    victim = attacks.make_victim(models, network, float(theta))
    return attacks.Stepper(victim, as_batch(x), int(y), goal, tgt, attack=attack, eps=float(eps),
                           max_steps=int(max_steps), explain=bool(explain and network == "triple"))


def step(stepper, n: int = 1, budget_s: float | None = None, keep_explanations: int = 1):
    """Advance a stepper by up to ``n`` steps (stopping early when it is done or
    after ``budget_s`` seconds); returns the latest iterate.

    Only the newest ``keep_explanations`` iterates keep their triple explanation
    (about 170 kB each; :func:`explain_image` recomputes an old one on demand), so a
    long attack held in a session costs about 32 kB per step."""
    t0 = time.perf_counter()
    for _ in range(int(n)):
        if stepper.done:
            break
        stepper.step(1)
        if budget_s is not None and time.perf_counter() - t0 > budget_s:
            break
    for it in stepper.history[1:len(stepper.history) - keep_explanations]:
        it.explanation = None
    return stepper.history[-1]


def explain_image(models, image) -> dict[int, dict[str, np.ndarray]]:
    """The triple network's per-class explanation of one image, as in an iterate:
    ``{class: {"rotation", "projection", "alpha", "similarity", "pooled_alpha", "score"}}``."""
    with torch.no_grad():
        e = models.triple.explain(as_batch(image))
    return {c: {k: v.numpy() for k, v in e.for_class(0, c).items() if k not in ("cls", "scores")}
            | {"score": float(e.scores[0, c])} for c in range(N_OBJECTS)}


def goal_reached(verdict: int, label: int, goal: str) -> bool:
    """The paper's stop rules (as in :mod:`aimeye.attacks`): a false positive is any
    other *object* class (the target only steers the gradient); a false negative is none."""
    verdict = int(verdict)
    return verdict == NONE if goal == "fn" else verdict not in (int(label), NONE)


def flip_point(stepper) -> dict | None:
    """The first iterate at which the attack reached its goal:
    ``{"step", "distortion", "verdict"}``, else None."""
    for it in stepper.history:
        if goal_reached(int(it.verdict), stepper.y, stepper.goal):
            return {"step": int(it.step), "distortion": float(it.distortion), "verdict": int(it.verdict)}
    return None


def race_rows(steppers: Mapping[str, Any], theta: float) -> list[dict]:
    """The race table: per network, steps to flip and distortion at the flip (None until it flips)."""
    rows = []
    for name, s in steppers.items():
        flip = flip_point(s)
        rows.append({"network": NETWORKS.get(name, name) + (f" (θ = {theta:.2f})" if name == "triple" else ""),
                     "steps to flip": flip["step"] if flip else None,
                     "distortion at flip": round(flip["distortion"], 4) if flip else None,
                     "steps so far": int(s.history[-1].step),
                     "status": "flipped" if flip else ("stopped at the cap" if s.done else "running")})
    return rows


def iterate_summary(it, network: str, theta: float) -> dict:
    """The numbers shown for one iterate."""
    scores = [float(s) for s in it.scores]
    if network == "triple":  # four digits: the live view should show the score creeping
        verdict = verdict_text(scores, theta, 4)
    else:
        verdict = f"{class_name(int(it.verdict))}: probability {scores[int(it.verdict)]:.4f}"
    return {"step": int(it.step), "verdict": int(it.verdict), "verdict_text": verdict,
            "distortion": float(it.distortion), "linf": float(it.linf), "l2": float(it.l2), "ssim": float(it.ssim),
            "scores": scores}


def history_rows(history) -> list[dict]:
    """One row per iterate (step, distortion, L∞, L2, SSIM, verdict, one column per score)."""
    rows = []
    for it in history:
        row = {"step": int(it.step), "distortion": float(it.distortion), "linf": float(it.linf),
               "l2": float(it.l2), "ssim": float(it.ssim), "verdict": class_name(int(it.verdict))}
        row |= {f"score_{class_name(c)}": float(s) for c, s in enumerate(it.scores)}
        rows.append(row)
    return rows


def explanation_arrays(explanation: dict | None) -> dict[int, dict[str, np.ndarray]]:
    """An iterate's triple explanation with tensors as numpy arrays (class → field → array)."""
    out = {}
    for c, d in (explanation or {}).items():
        out[int(c)] = {k: (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v))
                       for k, v in d.items()}
    return out


def small_experiment(models, networks=("direct", "triple"), theta: float = 0.7, n_images: int = 3,
                     max_steps: int = 60, goal: str = "fp",
                     progress: Callable[[float, str], None] | None = None) -> list[dict]:
    """A small live version of Fig. 4 (``goal="fp"``) or Fig. 6 (``"fn"``): the paper's
    iterative FGSM (:func:`aimeye.attacks.iterative_fgsm`) against each network on the
    first ``n_images`` positive held-out test scenes (classes in turn; fp target: the
    next class). ``progress(fraction, text)`` is called as attacks finish. One row per attack."""
    attacks = attacks_module()
    if attacks is None or not hasattr(attacks, "iterative_fgsm"):
        raise RuntimeError(ATTACKS_MISSING)
    if goal not in ("fp", "fn"):
        raise ValueError(f"goal must be 'fp' or 'fn', got {goal!r}")
    labels = [k % N_OBJECTS for k in range(n_images)]
    indices = [held_out_index(y, k // N_OBJECTS) for k, y in enumerate(labels)]
    x = torch.cat([held_out_scene(i).x for i in indices])
    y = torch.tensor(labels)
    target = torch.tensor([default_target(v) for v in labels]) if goal == "fp" else None
    total, finished = len(networks) * n_images, 0
    rows = []
    for net in networks:
        name = f"triple@{theta:g}" if net == "triple" else net

        def tick(k, name=name):
            nonlocal finished
            finished += int(k)
            if progress:
                progress(min(finished / total, 1.0), f"{name}: {finished} of {total} attacks done")

        victim = attacks.make_victim(models, net, float(theta))
        t0 = time.perf_counter()
        result = attacks.iterative_fgsm(victim, x, y, goal, target, max_steps, progress=tick)
        seconds = time.perf_counter() - t0
        for i, idx in enumerate(indices):
            rows.append({"network": name, "index": idx, "true": CLASSES[labels[i]],
                         "target": CLASSES[int(result.target[i])], "goal": goal, "steps": int(result.steps[i]),
                         "success": bool(result.success[i]), "verdict": CLASSES[int(result.verdict[i])],
                         "distortion": round(float(result.distortion[i]), 5),
                         "seconds (all images)": round(seconds, 2)})
    return rows


# --------------------------------------------------------------------- results


def read_json(path: Path | str) -> dict | None:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def load_metrics(root: Path | str | None = None) -> dict | None:
    """``checkpoints/metrics.json`` (written by ``python -m aimeye evaluate``), or None."""
    return read_json(Path(root or checkpoint_dir()) / "metrics.json")


def load_summary(root: Path | str | None = None) -> dict | None:
    return read_json(results_dir(root) / "summary.json")


def load_robust(root: Path | str | None = None) -> dict | None:
    """The robustness block of ``summary.json`` (rates) if there, else ``robust.json`` (counts)."""
    summary = load_summary(root)
    if summary and isinstance(summary.get("robust"), Mapping):
        return summary["robust"]
    return read_json(results_dir(root) / "robust.json")


def load_attacks_csv(root: Path | str | None = None) -> list[dict] | None:
    """``results/attacks.csv`` as a list of rows (numbers parsed), or None."""
    path = results_dir(root) / "attacks.csv"
    try:
        text = path.read_text()
    except OSError:
        return None
    rows = []
    for r in csv.DictReader(io.StringIO(text)):
        rows.append({k: _maybe_number(v) for k, v in r.items() if k is not None})
    return rows or None


def _maybe_number(v: str | None):
    if v is None:
        return None
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    try:
        return int(v)
    except ValueError:
        pass
    f = _finite(v)
    return f if f is not None else v


def table1_rows(metrics: dict) -> list[dict]:
    """Table 1: our error rates next to the paper's, in percent."""
    ours = metrics.get("errors", {})
    paper = metrics.get("paper_errors", PAPER_TABLE1)
    names = {"direct": "Direct classification", "direct_param": "Direct classification + parameter estimation"}
    rows = []
    for key in dict.fromkeys([*paper, *ours]):
        name = names.get(key) or (f"Triple-staged, θ = {key.split('@')[1]}" if key.startswith("triple@") else key)
        rows.append({"network": name, "ours (error %)": _pct(ours.get(key)), "paper (error %)": _pct(paper.get(key))})
    return rows


def _pct(v):
    return None if v is None else round(100.0 * float(v), 2)


def sweep_at(sweep: list[dict], theta: float) -> dict | None:
    """The θ-sweep row nearest to ``theta``."""
    if not sweep:
        return None
    return min(sweep, key=lambda r: abs(float(r["theta"]) - float(theta)))


def split_network(name: str) -> tuple[str, float | None]:
    """``"triple@0.7"`` → ("triple", 0.7); ``"direct"`` → ("direct", None)."""
    base, _, th = str(name).partition("@")
    return base, _finite(th) if th else None


def robustness_rows(summary: dict | None, attack_rows: list[dict] | None = None) -> list[dict]:
    """One row per (goal, network, θ): attacks, success rate, median steps and median
    distortion. From ``summary.json`` (``python -m aimeye experiment``); without it, the
    medians are computed from the ``attacks.csv`` rows."""
    rows = []
    for goal in ("fp", "fn"):
        block = (summary or {}).get(goal)
        if not isinstance(block, Mapping):
            continue
        for name, r in block.items():
            if not isinstance(r, Mapping) or not r.get("n"):
                continue
            net, theta = split_network(name)
            rows.append({"goal": goal, "network": net, "theta": theta, "n": int(r["n"]),
                         "success_rate": r.get("success_rate"),
                         "median_steps": (r.get("steps") or {}).get("median"),
                         "median_distortion": (r.get("distortion") or {}).get("median")})
    if rows or not attack_rows:
        return rows
    groups: dict[tuple, list[dict]] = {}
    for r in attack_rows:
        net, theta = split_network(r.get("network", ""))
        if theta is None and net == "triple":
            theta = _finite(str(r.get("theta")))
        groups.setdefault((str(r.get("goal", "")), net, theta), []).append(r)
    for (goal, net, theta), rs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or -1)):
        steps = [float(r["steps"]) for r in rs if _finite(str(r.get("steps"))) is not None]
        dist = [float(r["distortion"]) for r in rs if _finite(str(r.get("distortion"))) is not None]
        ok = [r for r in rs if r.get("success") in (True, "True", 1)]
        rows.append({"goal": goal, "network": net, "theta": theta, "n": len(rs),
                     "success_rate": len(ok) / len(rs),
                     "median_steps": float(np.median(steps)) if steps else None,
                     "median_distortion": float(np.median(dist)) if dist else None})
    return rows


def success_rows(summary: dict) -> list[dict]:
    """The attack table: per goal and network, attacks, success rate and the box statistics' medians."""
    out = []
    for r in robustness_rows(summary):
        name = r["network"] + (f"@{r['theta']:g}" if r["theta"] is not None else "")
        out.append({"goal": {"fp": "false positive", "fn": "false negative"}.get(r["goal"], r["goal"]),
                    "network": name, "attacks": r["n"],
                    "success (%)": _pct(r["success_rate"]),
                    "median steps": r["median_steps"],
                    "median distortion": None if r["median_distortion"] is None else round(r["median_distortion"], 4)})
    return out


def filter_rows(summary: dict) -> list[dict]:
    """Share of positive test images each network misclassifies before any attack (the paper's Fig. 6 caption)."""
    shares = (summary.get("filter") or {}).get("misclassified_share") or {}
    paper = (summary.get("paper") or {}).get("fig6_filtered_percent") or {}
    return [{"network": k, "ours (%)": _pct(v), "paper (%)": paper.get(k)} for k, v in shares.items()]


def robust_curves(robust: dict | None, goal: str) -> dict[str, list[tuple[float, float]]]:
    """Accuracy under PGD (1 − success rate) vs ε in units of 1/255, per network, from
    ``robust.json`` (counts over ``n_images``) or the ``robust`` block of ``summary.json``
    (rates). The gradient-masking check (clip bypassed) appears as ``<net>+st``."""
    if not isinstance(robust, Mapping) or not robust.get("eps_255"):
        return {}
    eps = [float(e) for e in robust["eps_255"]]
    curves = {}
    if isinstance(robust.get("accuracy"), Mapping):  # summary["robust"]: rates
        for net, acc in (robust["accuracy"].get(goal) or {}).items():
            curves[net] = list(zip(eps, map(float, acc)))
        for net, sr in ((robust.get("gradient_masking_success_rate") or {}).get(goal) or {}).items():
            if net.endswith("+st"):
                curves[net] = list(zip(eps, (1.0 - float(v) for v in sr)))
        return curves
    n = int(robust.get("n_images") or 0)
    if n <= 0:
        return {}
    for net, counts in ((robust.get("pgd_success") or {}).get(goal) or {}).items():
        curves[net] = list(zip(eps, (1.0 - c / n for c in counts)))
    for net, counts in ((robust.get("gradient_masking") or {}).get(goal) or {}).items():
        if net.endswith("+st"):
            curves[net] = list(zip(eps, (1.0 - c / n for c in counts)))
    return curves


def transfer_rows(robust: dict | None, goal: str) -> list[dict]:
    """Success (%) of adversarials crafted on the direct network, on the direct and triple networks."""
    if not isinstance(robust, Mapping) or not robust.get("n_images"):
        return []
    n = int(robust["n_images"])
    tr = robust.get("transfer_from_direct") or {}
    rows = []
    for attack in ("fgsm", "pgd"):
        for net, counts in ((tr.get(attack) or {}).get(goal) or {}).items():
            rows.append({"attack on direct": attack.upper(), "judged by": net,
                         **{f"ε={e}/255": _pct(c / n) for e, c in zip(robust.get("eps_255", []), counts)}})
    it = (tr.get("iterative_fgsm") or {}).get(goal) or {}
    for net, c in it.items():
        rows.append({"attack on direct": "iterated FGSM (until direct flips)", "judged by": net,
                     "success (%)": _pct(c / n)})
    return rows


# --------------------------------------------------------------------- charts

CLASS_COLOURS = {"monkey": "#8c564b", "penguin": "#1f77b4", "aeroplane": "#2ca02c", "none": "#7f7f7f"}
NETWORK_COLOURS = {"direct": "#d62728", "direct_param": "#ff7f0e", "triple": "#1f77b4"}


def _go():
    import plotly.graph_objects as go

    return go


def _layout(fig, title: str, x: str, y: str, height: int = 320):
    fig.update_layout(title={"text": title, "font": {"size": 14}, "y": 0.98, "yanchor": "top"}, height=height + 20,
                      margin={"l": 60, "r": 20, "t": 80, "b": 50},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "right", "x": 1},
                      template="plotly_white")
    fig.update_xaxes(title_text=x)
    fig.update_yaxes(title_text=y)
    return fig


def similarity_figure(similarity, pooled_alpha=None, title: str = "similarity map"):
    """The 55×55 convoluted similarity map (each cell: one 10×10 patch), with the
    ā = 0.5 contour of the pooled projected alpha (where the comparison counts)."""
    go = _go()
    sim = np.asarray(similarity, np.float32)
    fig = go.Figure(go.Heatmap(z=sim, zmin=0, zmax=1, colorscale="Viridis",
                               colorbar={"title": {"text": "similarity"}, "thickness": 10},
                               hovertemplate="patch x %{x} px, y %{y} px<br>similarity %{z:.2f}<extra></extra>"))
    if pooled_alpha is not None and float(np.max(pooled_alpha)) > 0.05:
        fig.add_trace(go.Contour(z=np.asarray(pooled_alpha, np.float32), showscale=False, hoverinfo="skip",
                                 contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "lines"},
                                 line={"color": "white", "width": 1.5, "dash": "dot"}, name="ā = 0.5"))
    _layout(fig, title, "patch left edge x (px)", "patch top edge y (px)", height=300)
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain")
    fig.update_xaxes(constrain="domain")
    return fig


def scores_theta_figure(scores, theta: float, title: str = "triple-staged scores vs θ"):
    """The three class scores as bars, the threshold θ as a line (bars at or above θ pass)."""
    go = _go()
    s = [float(v) for v in np.asarray(scores).reshape(-1)[:N_OBJECTS]]
    colours = [CLASS_COLOURS[CLASSES[c]] if s[c] >= theta else "#c7c7c7" for c in range(N_OBJECTS)]
    fig = go.Figure(go.Bar(x=list(CLASSES[:N_OBJECTS]), y=s, marker_color=colours, text=[f"{v:.3f}" for v in s],
                           textposition="outside", name="score", hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.add_hline(y=theta, line={"color": "#d62728", "dash": "dash"}, annotation_text=f"θ = {theta:.2f}",
                  annotation_position="top left")
    _layout(fig, title, "class", "score Σ(sim·ā)/Σā (0–1)", height=300)
    fig.update_yaxes(range=[0, 1.1])
    return fig


def probabilities_figure(direct_probs, direct_param_probs=None, title: str = "direct classifiers"):
    """Softmax probabilities of the direct classifiers over the 4 classes."""
    go = _go()
    fig = go.Figure()
    fig.add_trace(go.Bar(x=list(CLASSES), y=[float(v) for v in direct_probs], name=NETWORKS["direct"],
                         marker_color=NETWORK_COLOURS["direct"]))
    if direct_param_probs is not None:
        fig.add_trace(go.Bar(x=list(CLASSES), y=[float(v) for v in direct_param_probs], name=NETWORKS["direct_param"],
                             marker_color=NETWORK_COLOURS["direct_param"]))
    _layout(fig, title, "class", "softmax probability (0–1)", height=300)
    fig.update_layout(barmode="group")
    fig.update_yaxes(range=[0, 1.05])
    return fig


def distortion_figure(histories: Mapping[str, list], title: str = "distortion vs step"):
    """Distortion (RMS change, the paper's formula on a 0–1 scale) vs step, one line per attack."""
    go = _go()
    fig = go.Figure()
    for name, hist in histories.items():
        fig.add_trace(go.Scatter(x=[int(it.step) for it in hist], y=[float(it.distortion) for it in hist],
                                 mode="lines+markers", marker={"size": 4}, name=name))
    _layout(fig, title, "step (one 1/255 sign step each)", "distortion √(mean Δ²) (0–1 scale)", height=300)
    fig.update_xaxes(rangemode="nonnegative")
    fig.update_yaxes(rangemode="nonnegative")
    return fig


def scores_figure(history, network: str, theta: float, title: str | None = None):
    """Each class's score (triple) or probability (direct) vs step, with the θ line for the triple."""
    go = _go()
    fig = go.Figure()
    steps = [int(it.step) for it in history]
    k = len(history[0].scores) if history else 0
    for c in range(k):
        fig.add_trace(go.Scatter(x=steps, y=[float(it.scores[c]) for it in history], mode="lines+markers",
                                 marker={"size": 4},
                                 name=class_name(c), line={"color": CLASS_COLOURS.get(class_name(c))}))
    if network == "triple":
        fig.add_hline(y=theta, line={"color": "#d62728", "dash": "dash"}, annotation_text=f"θ = {theta:.2f}",
                      annotation_position="top left")
        ylabel = "score (0–1)"
    else:
        ylabel = "softmax probability (0–1)"
    _layout(fig, title or f"{NETWORKS.get(network, network)}: scores vs step", "step", ylabel, height=300)
    fig.update_yaxes(range=[0, 1.05])
    fig.update_xaxes(rangemode="nonnegative")
    return fig


def theta_sweep_figure(sweep: list[dict], theta: float):
    """Error and rejection rate vs θ, the chosen θ and the paper's three values marked."""
    go = _go()
    th = [float(r["theta"]) for r in sweep]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=th, y=[100 * float(r["error"]) for r in sweep], name="error", mode="lines"))
    fig.add_trace(go.Scatter(x=th, y=[100 * float(r["rejection"]) for r in sweep], name="rejection (judged none)",
                             mode="lines", line={"dash": "dot"}))
    for t in PAPER_THETAS:
        fig.add_vline(x=t, line={"color": "#aaaaaa", "dash": "dot", "width": 1}, annotation_text=f"paper {t}",
                      annotation_position="bottom right")
    fig.add_vline(x=theta, line={"color": "#d62728", "width": 2}, annotation_text=f"θ = {theta:.2f}")
    return _layout(fig, "triple-staged network on held-out test scenes", "threshold θ", "rate (%)", height=340)


def confusion_figure(matrix, title: str = "confusion matrix"):
    """A 4×4 confusion matrix (rows: true class, columns: verdict) with counts."""
    go = _go()
    m = np.asarray(matrix, np.int64)
    fig = go.Figure(go.Heatmap(z=m, x=list(CLASSES), y=list(CLASSES), colorscale="Blues", text=m,
                               texttemplate="%{text}", colorbar={"title": {"text": "scenes"}, "thickness": 10},
                               hovertemplate="true %{y}, verdict %{x}: %{z}<extra></extra>"))
    _layout(fig, title, "verdict", "true class", height=340)
    fig.update_yaxes(autorange="reversed")
    return fig


def robustness_figure(rows: list[dict], theta: float | None = None, metric: str = "median_steps"):
    """Median attack effort vs θ for the triple network, per goal; direct networks as horizontal lines."""
    go = _go()
    fig = go.Figure()
    label = {"median_steps": "median steps to flip", "median_distortion": "median distortion at flip (0–1)"}[metric]
    dash = {"fp": "solid", "fn": "dash"}
    for goal in sorted({r["goal"] for r in rows}):
        tri = sorted((r for r in rows if r["goal"] == goal and r["network"] == "triple" and r["theta"] is not None
                      and r.get(metric) is not None), key=lambda r: r["theta"])
        if tri:
            fig.add_trace(go.Scatter(x=[r["theta"] for r in tri], y=[r[metric] for r in tri], mode="lines+markers",
                                     name=f"triple, {goal.upper()}", line={"dash": dash.get(goal, "solid")}))
        for r in rows:
            if r["goal"] == goal and r["network"] != "triple" and r.get(metric) is not None:
                fig.add_hline(y=r[metric], line={"color": NETWORK_COLOURS.get(r["network"], "#888"), "width": 1,
                                                     "dash": dash.get(goal, "solid")},
                              annotation_text=f"{r['network']} {goal.upper()}", annotation_position="top right")
    for t in PAPER_THETAS:
        fig.add_vline(x=t, line={"color": "#aaaaaa", "dash": "dot", "width": 1})
    if theta is not None:
        fig.add_vline(x=theta, line={"color": "#d62728", "width": 2}, annotation_text=f"θ = {theta:.2f}")
    return _layout(fig, f"robustness vs θ ({label})", "threshold θ", label, height=340)


def box_stats(values) -> dict:
    """The paper's box: quartiles, median and whiskers at the 2nd and 98th percentiles."""
    p2, q1, med, q3, p98 = np.percentile(np.asarray(values, np.float64), [2, 25, 50, 75, 98])
    return {"n": len(values), "p2": p2, "q1": q1, "median": med, "q3": q3, "p98": p98}


def _box_figure(boxes: dict[str, dict], goal: str, metric: str, clip: float | None):
    go = _go()
    fig = go.Figure()
    for name, b in boxes.items():
        if not b or b.get("median") is None:
            continue
        v = {k: float(b[k]) for k in ("p2", "q1", "median", "q3", "p98")}
        if clip is not None and metric == "steps":
            v = {k: min(x, clip) for k, x in v.items()}  # clipping commutes with percentiles
        fig.add_trace(go.Box(x=[name], q1=[v["q1"]], median=[v["median"]], q3=[v["q3"]], lowerfence=[v["p2"]],
                             upperfence=[v["p98"]], name=f"{name} (n={b.get('n', '?')})", boxpoints=False))
    unit = (f"steps (clipped at {clip:g})" if clip else "steps") if metric == "steps" else "distortion (0–1 scale)"
    title = {"fp": "false positives (Fig. 4)", "fn": "false negatives (Fig. 6)"}.get(goal, goal)
    _layout(fig, f"{title}: {'steps' if metric == 'steps' else 'distortion'} to flip", "network", unit, height=360)
    fig.update_layout(showlegend=False)
    return fig


def summary_box_figure(summary: dict, goal: str, metric: str = "steps", clip: float | None = 1500):
    """Fig. 4 (``goal="fp"``) / Fig. 6 (``"fn"``) from ``summary.json``'s box statistics:
    whiskers at the 2nd and 98th percentiles, steps clipped at 1500, as in the paper."""
    block = summary.get(goal) or {}
    return _box_figure({net: (r or {}).get(metric) for net, r in block.items()}, goal, metric, clip)


def effort_box_figure(rows: list[dict], goal: str, metric: str = "steps", clip: float | None = 1500):
    """The same boxes computed from rows of attacks (``attacks.csv`` or :func:`small_experiment`)."""
    sel = [r for r in rows if str(r.get("goal", goal)) == goal and _finite(str(r.get(metric))) is not None]
    boxes = {}
    for name in dict.fromkeys(str(r.get("network", "?")) for r in sel):
        boxes[name] = box_stats([float(r[metric]) for r in sel if str(r.get("network", "?")) == name])
    return _box_figure(boxes, goal, metric, clip)


def accuracy_eps_figure(robust: dict | None, goal: str):
    """Accuracy under PGD vs ε (1/255 units) per network; dashed: the clip-bypass check."""
    go = _go()
    fig = go.Figure()
    for name, pts in robust_curves(robust, goal).items():
        line = {"dash": "dash" if name.endswith("+st") else "solid"}
        if not name.startswith("triple"):
            line["color"] = NETWORK_COLOURS.get(name)
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[100 * p[1] for p in pts], mode="lines+markers",
                                 name=name, line=line))
    title = {"fp": "false positives", "fn": "false negatives"}.get(goal, goal)
    _layout(fig, f"accuracy under PGD vs ε ({title})", "ε (L∞ budget, in 1/255)", "accuracy under attack (%)",
            height=340)
    fig.update_yaxes(range=[-2, 102])
    return fig


def pipeline_dot(theta: float = 0.7, verdict: str | None = None) -> str:
    """Graphviz DOT for the paper's Fig. 1: image → estimate → project → compare → verdict(θ)."""
    v = f"verdict (θ = {theta:.2f})" + (f"\\n{verdict}" if verdict else "")
    return f"""digraph G {{
  rankdir=LR; bgcolor="transparent";
  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#4a6fa5", fontname="Helvetica"];
  edge [color="#4a6fa5"];
  image [label="query image\\n64×64 grey", fillcolor="#ffffff"];
  est [label="1. estimate\\nrotation per class"];
  proj [label="2. project\\ndraw image + alpha"];
  comp [label="3. compare\\n10×10 patches"];
  score [label="score\\nΣ(sim·ā)/Σā"];
  verdict [label="{v}", fillcolor="#fff4e0", color="#d08a1c"];
  image -> est; est -> proj [label="(rx, ry, rz)"]; proj -> comp; image -> comp [style=dashed];
  comp -> score; score -> verdict;
}}"""
