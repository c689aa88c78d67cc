"""Step one attack on one image, keeping every iterate (for the app).

``attack="fgsm"`` is the paper's iterated fast gradient sign step (Berntsen et al.
§3.2, after Goodfellow et al. 2015): x̃ ← clip(x̃ − (1/255)·sign(∇ₓJ), 0, 1).
``attack="pgd"`` ascends the θ-aware margin inside the L∞ ball of radius ``eps``
(Madry et al. 2018) from the original image (no random start, so iterate 0 is
the original), with step ``step_size`` (default max(1/255, ε/10)). Both stop as
soon as the goal holds or after ``max_steps``. Images are in [0,1].

A Stepper holds its own state only; the shared model is never changed.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, fields

import numpy as np
import torch

from ..viz import upscale
from .fgsm import STEP, input_grad
from .metrics import all_metrics
from .victims import Victim, check_goal, goal_reached, resolve_target

ATTACKS = ("fgsm", "pgd")


@dataclass
class Iterate:
    """One iterate: the image and perturbation (64,64) in [0,1] units, the victim's
    scores and verdict, the metrics against the original, and (triple victim) the
    per-class explanation ``{c: {"rotation", "projection", "alpha", "similarity",
    "pooled_alpha", "score"}}`` as numpy arrays."""

    step: int
    image: torch.Tensor
    scores: list[float]
    verdict: int
    distortion: float
    linf: float
    l2: float
    ssim: float
    perturbation: torch.Tensor
    explanation: dict | None = None


def explanation_dict(expl, n: int = 0) -> dict:
    """``nets.Explanation`` → {class: {name: numpy array, "score": float}} for image ``n``."""
    expl = type(expl)(**{f.name: getattr(expl, f.name).detach() for f in fields(expl)})
    out = {}
    for c in range(expl.scores.shape[1]):
        d = expl.for_class(n, c)
        out[c] = {"rotation": d["rotation"].detach().cpu().numpy(),
                  "projection": d["projection"].detach().cpu().numpy(),
                  "alpha": d["alpha"].detach().cpu().numpy(),
                  "similarity": d["similarity"].detach().cpu().numpy(),
                  "pooled_alpha": d["pooled_alpha"].detach().cpu().numpy(),
                  "score": float(d["scores"])}
    return out


class Stepper:
    """``Stepper(victim, x, y, goal)``; ``step(n)`` advances; ``history[0]`` is the original."""

    def __init__(self, victim: Victim, x: torch.Tensor, y: int, goal: str, target: int | None = None,
                 attack: str = "fgsm", eps: float = 8 / 255, max_steps: int = 500, explain: bool = True,
                 step_size: float | None = None):
        if attack not in ATTACKS:
            raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")
        self.victim, self.goal, self.attack = victim, check_goal(goal), attack
        x = torch.as_tensor(x).detach().float()
        if x.numel() != 64 * 64:
            raise ValueError(f"Stepper takes one 64×64 image, got shape {tuple(x.shape)}")
        self.x0 = x.reshape(1, 1, 64, 64).clone()
        self.y = int(y)
        self.target = int(resolve_target(torch.tensor([self.y]), goal, target)[0])
        # PGD: targeted margin when a false-positive target was given, else any wrong object class
        self._margin_target = torch.tensor([self.target]) if (goal == "fp" and target is not None) else None
        self.eps, self.max_steps, self.explain = float(eps), int(max_steps), bool(explain)
        self.step_size = float(step_size) if step_size is not None else (
            STEP if attack == "fgsm" else max(STEP, self.eps / 10))
        self._lo, self._hi = (self.x0 - self.eps).clamp(min=0), (self.x0 + self.eps).clamp(max=1)
        self.history: list[Iterate] = []
        self.done = self.success = False
        self._x, self._grad = self.x0, None
        self._record(self.x0, 0)

    def _record(self, xa: torch.Tensor, k: int) -> Iterate:
        v = self.victim
        with torch.enable_grad():
            xr = xa.detach().requires_grad_(True)
            expl = None
            if self.explain and v.has_explanation:
                raw, expl = v.forward_explain(xr)
            else:
                raw = v.forward(xr)
            scores = v.scores_of(raw)
            verdict = v.verdict_from(scores.detach())
            self.success = bool(goal_reached(verdict, torch.tensor([self.y]), self.goal)[0])
            self.done = self.success or k >= self.max_steps
            self._grad = None
            if not self.done:
                if self.attack == "fgsm":
                    obj = v.loss_of(raw, torch.tensor([self.target]), self.goal)
                else:  # descend the negative margin
                    obj = -v.margin_of(raw, torch.tensor([self.y]), self.goal, self._margin_target)
                self._grad = input_grad(obj.sum(), xr)
        m = all_metrics(xa, self.x0)
        it = Iterate(step=k, image=xa.detach()[0, 0].clone(), scores=[float(s) for s in scores.detach()[0]],
                     verdict=int(verdict[0]), **{key: float(val[0]) for key, val in m.items()},
                     perturbation=(xa.detach() - self.x0)[0, 0].clone(),
                     explanation=explanation_dict(expl) if expl is not None else None)
        self._x = xa.detach()
        self.history.append(it)
        return it

    @property
    def latest(self) -> Iterate:
        return self.history[-1]

    def step(self, n: int = 1) -> Iterate:
        """Advance up to ``n`` iterations (a no-op once done); returns the latest iterate."""
        for _ in range(int(n)):
            if self.done:
                break
            g = self._grad.sign()
            if self.attack == "fgsm":
                xn = (self._x - self.step_size * g).clamp(0, 1)
            else:
                xn = torch.minimum(torch.maximum(self._x - self.step_size * g, self._lo), self._hi)
            self._record(xn, self.latest.step + 1)
        return self.latest

    def run(self) -> Iterate:
        """Step until done."""
        return self.step(self.max_steps - self.latest.step + 1)

    def to_csv(self) -> str:
        """One row per iterate: step, verdict, distortion, linf, l2, ssim, score_0, …"""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        k = len(self.history[0].scores)
        w.writerow(["step", "verdict", "distortion", "linf", "l2", "ssim", *[f"score_{i}" for i in range(k)]])
        for it in self.history:
            w.writerow([it.step, it.verdict, f"{it.distortion:.6g}", f"{it.linf:.6g}", f"{it.l2:.6g}",
                        f"{it.ssim:.6g}", *[f"{s:.6g}" for s in it.scores]])
        return buf.getvalue()

    def to_gif(self, factor: int = 4, duration_ms: int = 80) -> bytes:
        """An animated GIF of the adversarial image over the iterates (nearest upscale)."""
        frames = [upscale(it.image, factor) for it in self.history]
        buf = io.BytesIO()
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
        return buf.getvalue()

    def images(self) -> np.ndarray:
        """All iterates as (T,64,64) float32."""
        return torch.stack([it.image for it in self.history]).numpy()
