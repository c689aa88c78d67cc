"""Adaptive attack 2 on the triple-staged network: a loss on the comparator's per-patch logits.

The score of class c is the pooled-alpha average of *sigmoids* of the comparator's patch logits; where
patches are confidently dissimilar the sigmoid saturates and its gradient vanishes. This attack
maximises the same average taken over the logits themselves (:func:`.surrogates.patch_logits`), in a
θ-aware margin form: for fp toward target t, min(ℓ_t − max_{c≠t} ℓ_c, ℓ_t − logit θ); for fn,
logit θ − max_c ℓ_c (ℓ: pooled logits). APGD (Croce & Hein 2020), targeted over both other object
classes for fp, from the projector's drawing of the target, with BPDA over the estimator's clip.
Images and ε in [0,1]; success is the network's own θ-aware verdict. Same call as :func:`.apgd.apgd`.
"""

from __future__ import annotations

import math

import torch

from .adaptive_score import rejudge
from .apgd import apgd
from .result import AttackResult
from .surrogates import patch_logits, projector_start
from .victims import TripleVictim


def patch_objective(victim: TripleVictim, goal: str):
    """``objective(x, y, t) -> (value, scores)`` for :func:`.apgd.apgd`."""
    th = min(max(victim.theta, 1e-4), 1 - 1e-4)
    logit_th = math.log(th / (1 - th))

    def f(x, y, t):
        scores, ell = patch_logits(victim.model, x, straight_through=True)
        if goal == "fn":
            return logit_th - ell.max(1).values, scores
        if t is None:  # untargeted: the best other class now
            t = scores.detach().scatter(1, y[:, None], float("-inf")).argmax(1)
        lt = ell.gather(1, t[:, None])[:, 0]
        rest = ell.scatter(1, t[:, None], float("-inf")).max(1).values
        return torch.minimum(lt - rest, lt - logit_th), scores

    return f


def adaptive_patch(victim: TripleVictim, x: torch.Tensor, y, goal: str, eps: float, *, steps: int = 100,
                   restarts: int = 5, seed: int = 0, batch_size: int | None = None, **kw) -> AttackResult:
    """APGD on the pooled patch logits, projector start, BPDA; see the module docstring."""
    if not isinstance(victim, TripleVictim):
        raise TypeError("adaptive_patch attacks the triple-staged network")
    x = x.detach().float()
    r = apgd(victim.bpda(), x, y, goal, eps, loss=patch_objective(victim, goal), targeted=goal == "fp",
             steps=steps, restarts=restarts, seed=seed, batch_size=batch_size,
             start=projector_start(victim.model), **kw)
    return rejudge(r, victim, x, "adaptive-patch")
