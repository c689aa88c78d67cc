"""Step one attack on one image, keeping every iterate: the app's attack loop, and its one home.

``attack="fgsm"`` is the paper's iterated fast gradient sign step (Berntsen et al.
§3.2, after Goodfellow et al. 2015): x̃ ← clip(x̃ − (1/255)·sign(∇ₓJ), 0, 1).
``attack="pgd"`` ascends the θ-aware margin inside the L∞ ball of radius ``eps``
(Madry et al. 2018) from the original image (no random start, so iterate 0 is
the original), with step ``step_size`` (default max(1/255, ε/10)). Both stop as
soon as the goal holds (:func:`.victims.goal_reached`) or after ``max_steps``.
Images are (1,1,64,64) or (64,64) float32 in [0,1].

The FGSM trajectory against the triple-staged network does not depend on θ (its
loss ½‖scores − t‖² has no θ in it): only the stop point does. So
:meth:`Stepper.set_theta` re-reads every recorded verdict at the new θ and moves
the stop point along the same trajectory, keeping what was already computed.

A Stepper holds its own state only; the shared model is never changed (input
gradients only).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import torch
from PIL import ImageDraw, ImageFont

from ..paper import CLASSES
from ..viz import upscale
from .fgsm import STEP, input_grad
from .metrics import all_metrics
from .victims import TripleVictim, Victim, check_goal, goal_reached, resolve_target

ATTACKS = ("fgsm", "pgd")
EXPLANATION_FIELDS = ("rotation", "projection", "alpha", "similarity", "pooled_alpha")


@dataclass
class Iterate:
    """One iterate: the image (64,64) in [0,1], the victim's scores (softmax over four
    classes for a direct network, three scores for the triple-staged one) and its
    verdict, the metrics against the original, and (triple victim) the per-class
    explanation ``{c: {"rotation", "projection", "alpha", "similarity",
    "pooled_alpha", "score"}}`` as numpy arrays."""

    step: int
    image: torch.Tensor
    scores: list[float]
    verdict: int
    distortion: float
    linf: float
    l2: float
    ssim: float
    origin: torch.Tensor
    explanation: dict | None = None

    @property
    def perturbation(self) -> torch.Tensor:
        """x̃ − x (64,64), in [0,1] units."""
        return self.image - self.origin


def explanation_dict(expl, n: int = 0) -> dict:
    """``nets.Explanation`` → {class: {name: numpy array, "score": float}} for image ``n``
    (plain indexing: no copies of the batch tensors)."""
    out = {}
    for c in range(expl.scores.shape[1]):
        out[c] = {k: getattr(expl, k)[n, c].detach().cpu().numpy() for k in EXPLANATION_FIELDS}
        out[c]["score"] = float(expl.scores[n, c].detach())
    return out


class Stepper:
    """``Stepper(victim, x, y, goal)``; ``step(n)`` advances; ``history[0]`` is the original.

    ``keep_explanations``: keep the explanation of the original and of only this many
    newest iterates (None: all). An explanation is about 170 kB; the app keeps one."""

    def __init__(self, victim: Victim, x: torch.Tensor, y: int, goal: str, target: int | None = None,
                 attack: str = "fgsm", eps: float = 8 / 255, max_steps: int = 500, explain: bool = True,
                 step_size: float | None = None, keep_explanations: int | None = None):
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
        self.keep_explanations = keep_explanations
        self.step_size = float(step_size) if step_size is not None else (
            STEP if attack == "fgsm" else max(STEP, self.eps / 10))
        self._lo, self._hi = (self.x0 - self.eps).clamp(min=0), (self.x0 + self.eps).clamp(max=1)
        self.trajectory: list[Iterate] = []  # every iterate computed, possibly past the stop point at this θ
        self._stop = 0  # len(history)
        self._grad: torch.Tensor | None = None
        self._record(self.x0, 0)

    # --- state -------------------------------------------------------------------------------
    @property
    def history(self) -> list[Iterate]:
        """The iterates up to and including the stop point (the first at which the goal holds)."""
        return self.trajectory[:self._stop]

    @property
    def latest(self) -> Iterate:
        return self.trajectory[self._stop - 1]

    @property
    def success(self) -> bool:
        return self._reached(self.latest)

    @property
    def done(self) -> bool:
        return self.success or self.latest.step >= self.max_steps

    @property
    def theta_independent(self) -> bool:
        """Whether the trajectory is the same at every θ (then :meth:`set_theta` keeps it)."""
        return self.attack == "fgsm" or not isinstance(self.victim, TripleVictim)

    def _reached(self, it: Iterate) -> bool:
        return bool(goal_reached(torch.tensor([it.verdict]), torch.tensor([self.y]), self.goal)[0])

    def _restop(self):
        verdicts = torch.tensor([it.verdict for it in self.trajectory])
        hit = goal_reached(verdicts, torch.full_like(verdicts, self.y), self.goal).nonzero()
        self._stop = int(hit[0, 0]) + 1 if len(hit) else len(self.trajectory)

    def set_max_steps(self, n: int):
        """Change the step cap: a larger cap lets the run go on, a smaller one cuts the trajectory."""
        self.max_steps = int(n)
        if len(self.trajectory) > self.max_steps + 1:
            del self.trajectory[self.max_steps + 1:]
            self._grad = None
        self._restop()

    def set_theta(self, theta: float):
        """Move a triple-staged victim to threshold θ, keeping the recorded trajectory:
        every verdict is re-read from its scores and the stop point moves."""
        if not isinstance(self.victim, TripleVictim):
            return
        if not self.theta_independent:
            raise ValueError("a PGD trajectory depends on θ (its margin does); start a new Stepper")
        v = self.victim
        self.victim = TripleVictim(v.model, theta, v.straight_through)
        scores = torch.tensor([it.scores for it in self.trajectory])
        for it, verdict in zip(self.trajectory, self.victim.verdict_from(scores).tolist(), strict=True):
            it.verdict = int(verdict)
        self._restop()

    # --- stepping ----------------------------------------------------------------------------
    def _forward(self, xa: torch.Tensor, need_grad: bool):
        """Scores, explanation (or None) and, if asked, the gradient of the attack's objective."""
        v = self.victim
        with torch.enable_grad():
            xr = xa.detach().requires_grad_(need_grad)
            expl = None
            if self.explain and v.has_explanation:
                raw, expl = v.forward_explain(xr)
            else:
                raw = v.forward(xr)
            grad = None
            if need_grad:
                if self.attack == "fgsm":
                    obj = v.loss_of(raw, torch.tensor([self.target]), self.goal)
                else:  # descend the negative margin
                    obj = -v.margin_of(raw, torch.tensor([self.y]), self.goal, self._margin_target)
                grad = input_grad(obj.sum(), xr)
        return v.scores_of(raw).detach(), expl, grad

    def _record(self, xa: torch.Tensor, k: int) -> Iterate:
        scores, expl, grad = self._forward(xa, need_grad=k < self.max_steps)
        verdict = int(self.victim.verdict_from(scores)[0])
        m = all_metrics(xa, self.x0)
        it = Iterate(step=k, image=xa.detach()[0, 0].clone(), scores=[float(s) for s in scores[0]], verdict=verdict,
                     **{key: float(val[0]) for key, val in m.items()}, origin=self.x0[0, 0],
                     explanation=explanation_dict(expl) if expl is not None else None)
        self.trajectory.append(it)
        self._stop = len(self.trajectory)
        self._grad = grad
        if self.keep_explanations is not None and len(self.trajectory) > self.keep_explanations + 1:
            self.trajectory[-self.keep_explanations - 1].explanation = None
        return it

    def step(self, n: int = 1) -> Iterate:
        """Advance up to ``n`` iterations (a no-op once done); returns the latest iterate."""
        for _ in range(int(n)):
            if self.done:
                break
            if self._stop < len(self.trajectory):  # cannot happen: a shortened history ends at the goal
                break
            if self._grad is None:  # done at an earlier θ: the gradient was not needed then
                self._grad = self._forward(self.latest.image.reshape(1, 1, 64, 64), need_grad=True)[2]
            g = self._grad.sign()
            x = self.latest.image.reshape(1, 1, 64, 64)
            if self.attack == "fgsm":
                xn = (x - self.step_size * g).clamp(0, 1)
            else:
                xn = torch.minimum(torch.maximum(x - self.step_size * g, self._lo), self._hi)
            self._record(xn, self.latest.step + 1)
        return self.latest

    def run(self) -> Iterate:
        """Step until done."""
        return self.step(self.max_steps - self.latest.step + 1)

    # --- exports -----------------------------------------------------------------------------
    def class_names(self) -> list[str]:
        """The classes the scores are over: four for a direct network, the three objects for the triple one."""
        return list(CLASSES[:len(self.latest.scores)])

    def to_csv(self) -> str:
        """One row per iterate: step, verdict (class name), distortion, linf, l2, ssim, score_<class>…"""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["step", "verdict", "distortion", "linf", "l2", "ssim", *[f"score_{c}" for c in self.class_names()]])
        for it in self.history:
            w.writerow([it.step, CLASSES[it.verdict], f"{it.distortion:.6g}", f"{it.linf:.6g}", f"{it.l2:.6g}",
                        f"{it.ssim:.6g}", *[f"{s:.6g}" for s in it.scores]])
        return buf.getvalue()

    def to_gif(self, factor: int = 4, duration_ms: int = 80, max_frames: int = 240) -> bytes:
        """An animated GIF of the adversarial image (nearest upscale); each frame carries its step,
        verdict and distortion. Long attacks are subsampled to ``max_frames`` (first and last kept)."""
        hist = self.history
        keep = np.unique(np.linspace(0, len(hist) - 1, min(len(hist), max_frames)).round().astype(int))
        font = ImageFont.load_default(size=max(10, 4 * factor))
        frames = []
        for it in (hist[k] for k in keep):
            img = upscale(it.image, factor)
            band = 3 * (4 * factor + 4)
            frame = img.crop((0, 0, img.width, img.height + band))  # a black band below the image
            draw = ImageDraw.Draw(frame)
            for row, text in enumerate((f"step {it.step}", f"verdict: {CLASSES[it.verdict]}",
                                        f"distortion {it.distortion:.4f}")):
                draw.text((4, img.height + 2 + row * (4 * factor + 4)), text, fill=255, font=font)
            frames.append(frame)
        buf = io.BytesIO()
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
        return buf.getvalue()

    def images(self) -> np.ndarray:
        """All iterates as (T,64,64) float32."""
        return torch.stack([it.image for it in self.history]).numpy()


__all__ = ["ATTACKS", "Iterate", "Stepper", "explanation_dict"]
