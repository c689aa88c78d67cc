"""Every network's view of one image, as plain numpy arrays (cacheable, no streamlit)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .. import checkpoints, nets
from ..attacks.stepper import explanation_dict
from ..paper import CLASSES, N_OBJECTS, ROT_RANGE
from ..render import render_mesh, resolve_mesh
from .inputs import as_batch


@dataclass
class Analysis:
    """Triple-staged, per class c: ``rotation[c]`` (3,), ``projection[c]`` and ``alpha[c]``
    (64,64), ``similarity[c]`` and ``pooled_alpha[c]`` (55,55), ``scores[c]``;
    ``rerender[c]``: the true renderer at the estimated rotation. Direct networks: softmax
    ``direct_probs`` and ``direct_param_probs`` (4,) and the auxiliary ``direct_param_rotation`` (3,)."""

    scores: np.ndarray
    rotation: np.ndarray
    projection: np.ndarray
    alpha: np.ndarray
    similarity: np.ndarray
    pooled_alpha: np.ndarray
    rerender: np.ndarray
    direct_probs: np.ndarray
    direct_param_probs: np.ndarray
    direct_param_rotation: np.ndarray

    def verdict(self, theta: float) -> int:
        return triple_verdict(self.scores, theta)


def triple_verdict(scores, theta: float) -> int:
    """The triple-staged verdict from its 3 class scores (:func:`aimeye.nets.verdict_from_scores`)."""
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
    for c in range(N_OBJECTS):
        rerender[c] = render_mesh(resolve_mesh(c), rot[c][None].astype(np.float64))[0][0]
    return Analysis(scores=e.scores[0].numpy(), rotation=rot, projection=e.projection[0].numpy(),
                    alpha=e.alpha[0].numpy(), similarity=e.similarity[0].numpy(),
                    pooled_alpha=e.pooled_alpha[0].numpy(), rerender=rerender,
                    direct_probs=direct.numpy(), direct_param_probs=dparam.numpy(),
                    direct_param_rotation=params[0].clamp(-ROT_RANGE, ROT_RANGE).numpy())


def explain_image(models, image, network: str = "triple") -> dict[int, dict]:
    """A triple-staged network's (``triple`` or ``triple_at``) per-class explanation of one image, in the
    form an attack iterate keeps it: ``{class: {"rotation", "projection", "alpha", "similarity",
    "pooled_alpha", "score"}}``."""
    with torch.no_grad():
        return explanation_dict(getattr(models, network).explain(as_batch(image)))


def weighted_similarity(explanation: dict) -> np.ndarray:
    """The similarity map weighted by where the projection counts (ā, scaled to a maximum of 1):
    what the score averages. (55,55) in [0,1]."""
    pa = np.asarray(explanation["pooled_alpha"], np.float32)
    return np.asarray(explanation["similarity"], np.float32) * pa / max(float(pa.max()), 1e-6)


def rotation_table(analysis: Analysis, true_rotation=None, true_label: int | None = None) -> list[dict]:
    """Rows (one per class) of estimated rotation and, for the true class, the true rotation and error."""
    rows = []
    for c in range(N_OBJECTS):
        row = {"class": CLASSES[c], **{f"estimated r{a} (rad)": round(float(v), 3)
                                        for a, v in zip("xyz", analysis.rotation[c], strict=True)}}
        if true_rotation is not None and true_label == c:
            row |= {f"true r{a} (rad)": round(float(v), 3) for a, v in zip("xyz", true_rotation, strict=True)}
            err = np.abs(analysis.rotation[c] - np.asarray(true_rotation)).mean()
            row["mean |error| (rad)"] = round(float(err), 3)
        rows.append(row)
    return rows


def amplify(perturbation) -> np.ndarray:
    """A perturbation scaled into [0,1] for display: 0.5 is unchanged, black/white the largest
    decrease/increase. This makes the object the attack draws visible."""
    p = perturbation.detach().cpu().numpy() if isinstance(perturbation, torch.Tensor) else np.asarray(perturbation)
    p = np.squeeze(p).astype(np.float32)
    m = float(np.abs(p).max()) if p.size else 0.0
    return np.full_like(p, 0.5) if m == 0.0 else np.clip(0.5 + p / (2 * m), 0.0, 1.0)
