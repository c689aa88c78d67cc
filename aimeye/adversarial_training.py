"""Adversarial training: the paper's stated future work (§5) and the baseline reviewers ask for.

Three extra stages, trained by the same loop as the paper's five (``python -m aimeye train
direct-at|estimator-at|comparator-at``):

* ``direct-at``: the direct CNN trained from scratch on adversarial scenes, FGSM with a random
  start ("fast is better than free", Wong, Rice & Kolter 2020): x' = x + U(−ε, ε), one signed
  gradient step of α = 1.25ε on the cross-entropy, projected back to the ε-ball and to [0, 1].
  It costs two forward/backward passes per step, so it trains on this 2-core CPU in about twice the
  direct CNN's time; PGD-AT (Madry et al. 2018) would cost ~k+1 times.
* ``estimator-at``: the estimator fine-tuned from the shipped one on FGSM-RS images that maximise
  its rotation error, so that a perturbation cannot swing the drawing cheaply.
* ``comparator-at``: the comparator fine-tuned from the shipped one on query images perturbed
  through the *whole* triple-staged pipeline (robust estimator → projector → comparator) to push
  each pair's score the wrong way: same pairs down, different pairs up.

``triple_at`` = TripleStaged(estimator-at, projector, comparator-at). Every input gradient is
taken with ``torch.autograd.grad`` w.r.t. the images; images are (N,1,64,64) in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import nets
from .paper import STEP

EPS = 8 * STEP  # the training radius: 8/255, the middle of the evaluation's ε grid
ALPHA = 1.25 * EPS


def fgsm_rs(x: torch.Tensor, loss_of, eps: float = EPS, alpha: float = ALPHA,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """One FGSM step from a uniform random start inside the L∞ ε-ball, *ascending* ``loss_of(x)``."""
    noise = (torch.rand(x.shape, generator=generator) * 2 - 1).to(x.device) * eps
    x0 = (x + noise).clamp(0, 1).requires_grad_(True)
    (g,) = torch.autograd.grad(loss_of(x0), x0)
    delta = (x0.detach() + alpha * g.sign() - x).clamp(-eps, eps)
    return (x + delta).clamp(0, 1).detach()


def _gen(x: torch.Tensor) -> torch.Generator:  # deterministic noise per batch
    return torch.Generator().manual_seed(int(x.flatten()[:64].mul(255).sum().item()) % (2 ** 31))


def _raw(model):  # craft on the bare module: DDP's hooks expect one forward per backward
    return getattr(model, "module", model)


def loss_direct_at(model, batch):
    x, y, _ = batch
    x_adv = fgsm_rs(x, lambda z: F.cross_entropy(_raw(model)(z), y), generator=_gen(x))
    logits = model(x_adv)
    loss = F.cross_entropy(logits, y)
    return loss, {"adv_acc": (logits.argmax(1) == y).float().mean().item()}


def loss_estimator_at(model, batch):
    x, y, rot = batch
    x_adv = fgsm_rs(x, lambda z: F.mse_loss(_raw(model)(z, y, straight_through=True), rot), generator=_gen(x))
    pred = model(x_adv, y, straight_through=True)
    mse = F.mse_loss(pred, rot)
    return 100 * mse, {"adv_rot_mae": (pred - rot).abs().mean().item()}


def comparator_at_loss(comparator, estimator, projector, x, cls, target):
    """Score BCE for pairs (x, cls) after an FGSM-RS perturbation through the whole pipeline."""

    def score(net, z):
        proj, alpha = projector(estimator(z, cls, straight_through=True), cls)
        return nets.drawing_score(net, z, proj, alpha)

    def wrong_way(z):  # what the attacker wants: same pairs scored low, different pairs high
        return F.binary_cross_entropy(score(_raw(comparator), z).clamp(1e-6, 1 - 1e-6), target)

    x_adv = fgsm_rs(x, wrong_way, generator=_gen(x))
    s = score(comparator, x_adv).clamp(1e-6, 1 - 1e-6)
    return F.binary_cross_entropy(s, target), {"adv_score_acc": ((s > 0.5).float() == target).float().mean().item()}


def loss_comparator_at(model, batch):
    x, cls, target, estimator, projector = batch
    return comparator_at_loss(model, estimator, projector, x, cls, target)
