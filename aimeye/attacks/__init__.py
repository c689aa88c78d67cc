"""Adversarial attacks on the three networks; images are (N,1,64,64) float32 in [0,1].

* :func:`iterative_fgsm`: the paper's attack (Berntsen et al. §3.2, after
  Goodfellow et al. 2015), batched, with per-image stop rules and per-θ stops.
* :func:`fgsm`: the one-step fast gradient sign method (for transfer tests).
* :func:`pgd`: L∞ PGD with a random start on a θ-aware margin (Madry et al. 2018).
* :func:`apgd`: APGD / APGD-T with CE or DLR losses (Croce & Hein 2020), the robustness workhorse.
* :func:`adaptive_score`, :func:`adaptive_patch`: adaptive attacks on the triple-staged network
  (target score / comparator patch logits, projector start, BPDA over the estimator's clip).
* :func:`transfer`: adversarials crafted on a source network, judged on the attacked one.
* :class:`Stepper`: one image, one iterate at a time, for the app.
* :func:`make_victim`: the uniform face (scores, verdict, loss, margin) of
  ``direct``, ``direct_param`` and ``triple``.
* :mod:`.metrics`: distortion (the paper's (1/255)·RMS), L∞, L2, SSIM.

Nothing here changes a model: gradients are taken w.r.t. the input only.
"""

from .adaptive_patch import adaptive_patch
from .adaptive_score import adaptive_score
from .apgd import apgd
from .fgsm import STEP, fgsm, iterative_fgsm
from .metrics import all_metrics, distortion, l2, linf, ssim
from .pgd import pgd
from .result import AttackResult
from .stepper import Iterate, Stepper
from .transfer import transfer
from .victims import GOALS, NETWORKS, DirectVictim, TripleVictim, Victim, goal_reached, make_victim, resolve_target

__all__ = ["GOALS", "NETWORKS", "STEP", "AttackResult", "DirectVictim", "Iterate", "Stepper", "TripleVictim",
           "Victim", "adaptive_patch", "adaptive_score", "all_metrics", "apgd", "distortion", "fgsm", "goal_reached",
           "iterative_fgsm", "l2", "linf", "make_victim", "pgd", "resolve_target", "ssim", "transfer"]
