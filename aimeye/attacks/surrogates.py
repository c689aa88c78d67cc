"""What the adaptive attacks on the triple-staged network (Berntsen et al. §2, Fig. 3) need beyond its
scores: the comparator's per-patch *logits* pooled with the projected alpha, and the projector's own
drawing of a class blended into an image. Images are (N,1,64,64) in [0,1].

:func:`patch_logits` runs the same three stages as :meth:`aimeye.nets.TripleStaged.explain` (through
its public submodules ``estimator``, ``projector``, ``comparator``) but keeps the comparator's logits
before the sigmoid: the attacks' loss then never saturates where a patch is already confidently
(dis)similar. The scores it returns are the network's own (checked in the tests).
"""

from __future__ import annotations

import torch

from .. import nets
from ..paper import N_OBJECTS


def patch_logits(model, x: torch.Tensor, straight_through: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores (N,3), pooled logits (N,3)): score_c = Σ σ(l)·ā / Σā as the network computes it, and
    Σ l·ā / Σā, the comparator logits l weighted by the pooled projected alpha ā of class c.
    ``straight_through``: BPDA over the estimator's clip (its backward pass is the identity)."""
    n = len(x)
    cls = torch.arange(N_OBJECTS, device=x.device).repeat_interleave(n)  # class-major, as in explain()
    xr = x.repeat(N_OBJECTS, 1, 1, 1)
    rot = model.estimator(xr, cls, straight_through)
    proj, alpha = model.projector(rot, cls)
    logits = model.comparator(xr, proj, alpha)
    abar = nets.pooled_alpha(alpha)
    scores = nets.weighted_score(torch.sigmoid(logits), abar)
    pooled = nets.weighted_score(logits, abar)
    return scores.view(N_OBJECTS, n).T, pooled.view(N_OBJECTS, n).T


def drawing(model, x: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
    """The projector's drawing of class ``cls`` (N,) at the rotation the estimator reads off x,
    blended over x: proj + (1 − α)·x (the projection is premultiplied over black)."""
    with torch.no_grad():
        rot = model.estimator(x, cls)
        proj, alpha = model.projector(rot, cls)
    return (proj + (1 - alpha) * x).clamp(0, 1)


def projector_start(model):
    """An APGD ``start``: restart 0 begins at the target's drawing blended into the image (APGD then
    clips it to the ε-ball); later restarts add uniform noise in the ball to it. Without a target
    (fn) it is the uniform start."""

    def start(x, y, t, eps, restart, gen):
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device) * eps
        if t is None:
            return x + noise
        return drawing(model, x, t) + (noise if restart else 0)

    return start
