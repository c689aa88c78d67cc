"""Sheets a person can look at: the data (raw and blended) and renders vs projections."""

from __future__ import annotations

import numpy as np
import torch

from .meshes import BUILTIN
from .paper import NONE
from .render import render_mesh, resolve_mesh
from .scenes import generate
from .viz import grid


def contact_sheet(n: int = 8, seed: int = 0):
    """Per class: a row of raw renders (over black) and a row of blended test scenes;
    last row: none scenes."""
    rows = []
    for c in range(len(BUILTIN)):
        s = generate(np.arange(n) * 4 + c, "test", seed)
        rows.append(list(s.renders[:, 0]))
        rows.append(list(s.images[:, 0]))
    s = generate(np.arange(n) * 4 + NONE, "test", seed)
    rows.append(list(s.images[:, 0]))
    return grid(rows, factor=2)


def projection_sheet(projector, n: int = 8, seed: int = 12345):
    """Per class: true renders (top) vs the projector's drawings (bottom) at held-out rotations."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(len(BUILTIN)):
        rot = rng.uniform(-0.5, 0.5, (n, 3)).astype(np.float32)
        img, _ = render_mesh(resolve_mesh(c), rot)
        with torch.no_grad():
            p, _ = projector(torch.from_numpy(rot), torch.full((n,), c))
        rows += [list(img), list(p[:, 0])]
    return grid(rows, factor=3)
