"""Transfer attack: adversarials crafted on a *source* network, judged on the attacked one.

A black-box check that white-box gradients are not masked (Athalye et al. 2018; Carlini et al. 2019
§5.2; Tramèr et al. 2020): the source (the direct CNN, an adversarially trained CNN, or any other
victim) is attacked with APGD (Croce & Hein 2020) for its full budget (no early stop: the most
confident adversarial on the source, by its θ-aware margin, transfers best), and the result is judged
by the target network's own verdict rule. Images and ε in [0,1]. Call:
``transfer(victim, x, y, goal, eps, source=other_victim, **apgd_options)``.
"""

from __future__ import annotations

import torch

from ..paper import NONE
from .adaptive_score import rejudge
from .apgd import apgd
from .result import AttackResult
from .victims import Victim


class NeverDone(Victim):
    """The source with a verdict that never meets the goal, so APGD spends its whole budget and keeps
    the iterate with the highest margin on the source."""

    def __init__(self, source: Victim, goal: str):
        self.source, self.goal = source, goal
        self.name, self.n_outputs, self.theta = source.name, source.n_outputs, source.theta
        self.batch_size = source.batch_size

    def forward(self, x):
        return self.source.forward(x)

    def scores_of(self, raw):
        return self.source.scores_of(raw)

    def verdict_from(self, scores, theta=None):
        return torch.full((len(scores),), NONE if self.goal == "fp" else 0, dtype=torch.long, device=scores.device)

    def verdict_raw(self, raw, theta=None):
        return self.verdict_from(raw)

    def margin_of(self, raw, y, goal, target=None, theta=None):
        return self.source.margin_of(raw, y, goal, target, theta)

    def objective(self, raw, y, goal, target=None, loss="ce"):
        return self.source.objective(raw, y, goal, target, loss)

    def loss_of(self, raw, target, goal):
        return self.source.loss_of(raw, target, goal)


def transfer(victim: Victim, x: torch.Tensor, y, goal: str, eps: float, *, source: Victim, loss: str = "ce",
             steps: int = 100, restarts: int = 1, seed: int = 0, batch_size: int | None = None,
             **kw) -> AttackResult:
    """APGD on ``source``, judged on ``victim``; see the module docstring."""
    x = x.detach().float()
    r = apgd(NeverDone(source, goal), x, y, goal, eps, loss=loss, steps=steps, restarts=restarts, seed=seed,
             batch_size=batch_size or source.batch_size, **kw)
    return rejudge(r, victim, x, f"transfer({source.name})")
