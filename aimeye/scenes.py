"""Scenes: a rendered object alpha-blended onto a natural background.

``out = fg·α + bg·(1−α)`` with *straight* alpha (the renderer's image is
already fg·α, so this is ``render + bg·(1−α)``; the reference code weighted the
object by α² by mistake). Rotations are uniform in [−0.5, 0.5]³ rad; the
``none`` class is background only, with rotation (0, 0, 0). Scenes are
quantised to 8 bits like the paper's images, and every sample is a pure
function of ``(split, seed, index)``: label ``index % 4`` (so classes are
balanced), then a generator seeded by the triple draws the rotation and the
background crop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch

from .backgrounds import Backgrounds
from .meshes import Mesh, load_builtin
from .paper import CLASSES, NONE, OBJECTS, ROT_RANGE
from .render import render_mesh

SPLIT_CODE = {"train": 0, "test": 1}
CACHE_VERSION = 1  # bump when the scene recipe changes, so stale on-disk caches are not reused


def blend(fg_over_black: np.ndarray, alpha: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Straight-alpha compositing: fg·α + bg·(1−α), given fg·α (the render over black)."""
    return np.clip(fg_over_black + bg * (1.0 - alpha), 0.0, 1.0)


@dataclass
class Scenes:
    """A batch of scenes. Tensors: images/alphas/renders (N,1,64,64) float32 in [0,1],
    labels (N,) int64, rotations (N,3) float32 (radians), bg_ids (N,) int64,
    indices (N,) int64 (the sample index within its split and seed)."""

    images: torch.Tensor
    labels: torch.Tensor
    rotations: torch.Tensor
    alphas: torch.Tensor
    renders: torch.Tensor
    bg_ids: torch.Tensor
    indices: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, item) -> Scenes:
        return Scenes(**{f.name: getattr(self, f.name)[item] for f in fields(self)})


def sample_rng(split: str, seed: int, index: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), SPLIT_CODE[split], int(index)])


def generate(indices, split: str = "train", seed: int = 0, *, classes=(0, 1, 2, 3),
             backgrounds: Backgrounds | None = None, meshes: dict[int, Mesh] | None = None,
             quantise: bool = True) -> Scenes:
    """The scenes with these sample indices. ``classes`` lists the labels to cycle
    through (``(0, 1, 2)`` gives positives only)."""
    idx = np.asarray(indices, dtype=np.int64)
    n = len(idx)
    bgs = backgrounds or _backgrounds(split)
    if bgs.split != split:
        raise ValueError("backgrounds come from another split")
    labels = np.asarray(classes, dtype=np.int64)[idx % len(classes)]
    rots = np.zeros((n, 3), np.float32)
    bg = np.empty((n, 64, 64), np.float32)
    bg_ids = np.empty(n, np.int64)
    for k, i in enumerate(idx):
        rng = sample_rng(split, seed, i)
        r = rng.uniform(-ROT_RANGE, ROT_RANGE, 3)
        if labels[k] != NONE:
            rots[k] = r
        bg[k], bg_ids[k] = bgs.sample(rng)
    renders = np.zeros((n, 64, 64), np.float32)
    alphas = np.zeros((n, 64, 64), np.float32)
    for c in np.unique(labels):
        if c == NONE:
            continue
        sel = labels == c
        mesh = (meshes or {}).get(int(c)) or load_builtin(CLASSES[c])
        renders[sel], alphas[sel] = render_mesh(mesh, rots[sel])
    images = blend(renders, alphas, bg)
    if quantise:
        images = np.round(images * 255.0) / 255.0

    def t(a):
        return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[:, None]

    return Scenes(images=t(images), labels=torch.from_numpy(labels), rotations=torch.from_numpy(rots),
                  alphas=t(alphas), renders=t(renders), bg_ids=torch.from_numpy(bg_ids),
                  indices=torch.from_numpy(idx.copy()))


_BG_CACHE: dict[str, Backgrounds] = {}


def _backgrounds(split: str) -> Backgrounds:
    if split not in _BG_CACHE:
        _BG_CACHE[split] = Backgrounds(split)
    return _BG_CACHE[split]


def make_scenes(n: int, split: str = "test", seed: int = 0, *, start: int = 0, classes=(0, 1, 2, 3),
                cache_dir: str | Path | None = None, batch: int = 512) -> Scenes:
    """``n`` balanced scenes (indices ``start .. start+n``) of ``split``.

    With ``cache_dir`` the arrays are stored once as ``.npz`` and read back on the
    next call with the same arguments.
    """
    path = None
    if cache_dir is not None:
        key = hashlib.sha1(repr((n, split, seed, start, tuple(classes), CACHE_VERSION)).encode()).hexdigest()[:12]
        path = Path(cache_dir) / f"scenes-{split}-s{seed}-n{n}-{key}.npz"
        if path.exists():
            with np.load(path) as z:
                return Scenes(**{k: torch.from_numpy(z[k]) for k in z.files})
    parts = [generate(np.arange(s, min(s + batch, start + n)), split, seed, classes=classes)
             for s in range(start, start + n, batch)]
    scenes = Scenes(**{f.name: torch.cat([getattr(p, f.name) for p in parts]) for f in fields(Scenes)})
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{f.name: getattr(scenes, f.name).numpy() for f in fields(Scenes)})
    return scenes


def projector_targets(n: int, seed: int, step: int):
    """The projector's training data: random classes and rotations rendered over black.

    Returns (rotations (n,3), classes (n,), images (n,1,64,64), alphas (n,1,64,64)); a pure
    function of (seed, step)."""
    rng = np.random.default_rng([seed, 7, step])
    cls = rng.integers(0, len(OBJECTS), n)
    rot = rng.uniform(-ROT_RANGE, ROT_RANGE, (n, 3)).astype(np.float32)
    img = np.zeros((n, 64, 64), np.float32)
    alpha = np.zeros((n, 64, 64), np.float32)
    for c in range(len(OBJECTS)):
        sel = cls == c
        if sel.any():
            img[sel], alpha[sel] = render_mesh(load_builtin(OBJECTS[c]), rot[sel])
    return (torch.from_numpy(rot), torch.from_numpy(cls), torch.from_numpy(img)[:, None],
            torch.from_numpy(alpha)[:, None])


class SceneStream(torch.utils.data.IterableDataset):
    """An endless, deterministic stream of scene batches for training.

    Batch ``k`` holds the indices ``start + k·batch_size ...``; resuming at step
    ``k`` gives exactly the batches a run that never stopped would have seen.
    """

    def __init__(self, split: str = "train", seed: int = 0, batch_size: int = 128, *,
                 classes=(0, 1, 2, 3), start_batch: int = 0):
        self.split, self.seed, self.batch_size = split, seed, batch_size
        self.classes, self.start_batch = tuple(classes), start_batch

    def batch(self, k: int) -> Scenes:
        lo = k * self.batch_size
        return generate(np.arange(lo, lo + self.batch_size), self.split, self.seed, classes=self.classes)

    def __iter__(self):
        k = self.start_batch
        while True:
            yield self.batch(k)
            k += 1
