"""The outcome of a batched attack, shared by :mod:`.fgsm` (Berntsen et al. §3.2, after Goodfellow et
al. 2015) and :mod:`.pgd` (Madry et al. 2018). Images are in [0,1]."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .metrics import all_metrics

METRICS = ("distortion", "linf", "l2", "ssim")


@dataclass
class AttackResult:
    """Per image (N,): ``steps`` (updates applied; 0 if the goal already held, the cap
    if it failed), ``success``, final ``scores`` and ``verdict``, the adversarial images
    ``x_adv`` (N,1,64,64) in [0,1] and the metrics against the original.

    For the triple network run with several thresholds, ``per_theta`` maps each θ
    to the result of stopping at that θ's goal along the one shared trajectory; the
    top-level fields are the victim's own θ."""

    attack: str
    network: str
    goal: str
    theta: float | None
    y: torch.Tensor
    target: torch.Tensor
    steps: torch.Tensor
    success: torch.Tensor
    scores: torch.Tensor
    verdict: torch.Tensor
    x_adv: torch.Tensor
    distortion: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor
    ssim: torch.Tensor
    max_steps: int
    eps: float | None = None
    per_theta: dict[float, AttackResult] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.steps)

    @classmethod
    def build(cls, *, x, x_adv, **kw) -> AttackResult:
        m = all_metrics(x_adv, x)
        return cls(x_adv=x_adv.detach(), **m, **kw)

    @property
    def success_rate(self) -> float:
        return self.success.float().mean().item() if len(self) else float("nan")

    def records(self) -> list[dict]:
        """One plain dict per image (JSON/CSV-ready; no images)."""
        rows = []
        for i in range(len(self)):
            rows.append({
                "network": self.network, "attack": self.attack, "goal": self.goal, "theta": self.theta,
                "label": int(self.y[i]), "target": int(self.target[i]), "steps": int(self.steps[i]),
                "success": bool(self.success[i]), "verdict": int(self.verdict[i]),
                **{k: float(getattr(self, k)[i]) for k in METRICS},
                "scores": [float(v) for v in self.scores[i]],
            })
        return rows
