"""Adaptive attack 1 on the triple-staged network: maximise the target's score directly.

Tramèr et al. (NeurIPS 2020) ask for a loss aimed at the defence's actual decision: here the target
class's score (fp; the highest score, pushed down, for fn), optimised with APGD (Croce & Hein 2020),
from the projector's own drawing of the target blended into the image and clipped to the ε-ball
(:func:`.surrogates.projector_start`), with BPDA (Athalye et al. 2018) over the estimator's clip.
Targeted over both other object classes for fp. Images and ε in [0,1]; success is the network's
own θ-aware verdict on the plain (non-BPDA) forward pass. Same call as :func:`.apgd.apgd`.
"""

from __future__ import annotations

import torch

from .apgd import apgd
from .result import AttackResult
from .surrogates import projector_start
from .victims import TripleVictim, Victim


def rejudge(result: AttackResult, victim: Victim, x: torch.Tensor, name: str) -> AttackResult:
    """The result re-judged on ``victim`` (the plain network), renamed."""
    scores, verdict, success = victim.judge(result.x_adv.to(x.device), result.y.to(x.device), result.goal)
    return AttackResult.build(attack=name, network=victim.name, goal=result.goal, theta=victim.theta, y=result.y,
                              target=result.target, steps=result.steps, success=success.cpu(), scores=scores.cpu(),
                              verdict=verdict.cpu(), x=x.cpu(), x_adv=result.x_adv, max_steps=result.max_steps,
                              eps=result.eps)


def adaptive_score(victim: TripleVictim, x: torch.Tensor, y, goal: str, eps: float, *, steps: int = 100,
                   restarts: int = 5, seed: int = 0, batch_size: int | None = None, **kw) -> AttackResult:
    """APGD on the target score, projector start, BPDA; see the module docstring."""
    if not isinstance(victim, TripleVictim):
        raise TypeError("adaptive_score attacks the triple-staged network")
    x = x.detach().float()
    r = apgd(victim.bpda(), x, y, goal, eps, loss="score", targeted=goal == "fp", steps=steps, restarts=restarts,
             seed=seed, batch_size=batch_size, start=projector_start(victim.model), **kw)
    return rejudge(r, victim, x, "adaptive-score")
