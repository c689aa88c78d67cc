"""Toy networks with closed-form behaviour, for testing the attacks of Berntsen et al. (§3.2) and
Madry et al. (2018) by hand.

Each toy reads the image (N,1,64,64) in [0,1] as three horizontal bands (rows
0–20, 21–41, 42–63), one per object class; ``m_c`` is the mean of band c. The
toys mirror the interfaces of the real networks:

* :class:`BandClassifier`: logits ``κ·(m_c − ½)`` for c = 0, 1, 2 and 0 for none.
* :class:`BandTriple`: scores ``sigmoid(κ·(m_c − ½))`` with an ``explain`` that
  returns a :class:`aimeye.nets.Explanation` of the right shapes.
* :func:`weak_triple`: a real :class:`aimeye.nets.TripleStaged` built from band stages
  (estimator, projector, comparator), for the adaptive attacks that use the stages.

Every pixel of a band gets the same gradient sign under FGSM, so the step at
which a verdict flips can be computed by hand (see tests/test_attacks.py). The
toys have no parameters and no train/eval-dependent layers.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from aimeye import experiments, nets, train
from aimeye.attacks import pgd
from aimeye.experiments import TestSet
from aimeye.experiments.robust import AttackSpec

BANDS = ((0, 21), (21, 42), (42, 64))


def band_means(x: torch.Tensor) -> torch.Tensor:
    """(N,1,64,64) → (N,3), the mean of each class band."""
    return torch.stack([x[:, 0, a:b].mean((1, 2)) for a, b in BANDS], 1)


def band_image(label: int, on: float = 0.8, off: float = 0.2) -> torch.Tensor:
    """A (1,64,64) image whose band ``label`` is ``on`` and the rest ``off`` (label 3: all off)."""
    img = torch.full((1, 64, 64), off)
    if label < len(BANDS):
        a, b = BANDS[label]
        img[:, a:b] = on
    return img


class BandClassifier(nn.Module):
    def __init__(self, kappa: float = 10.0, with_params: bool = False):
        super().__init__()
        self.kappa, self.with_params = kappa, with_params

    def forward(self, x):
        logits = torch.cat([self.kappa * (band_means(x) - 0.5), torch.zeros(len(x), 1)], 1)
        return (logits, torch.zeros(len(x), 3)) if self.with_params else logits


class BandTriple(nn.Module):
    def __init__(self, kappa: float = 10.0):
        super().__init__()
        self.kappa = kappa

    def explain(self, x, straight_through: bool = False):
        n = len(x)
        scores = torch.sigmoid(self.kappa * (band_means(x) - 0.5))
        alpha = torch.zeros(n, 3, 64, 64)
        for c, (a, b) in enumerate(BANDS):
            alpha[:, c, a:b] = 1.0
        sim = scores[:, :, None, None].expand(n, 3, 55, 55)
        return nets.Explanation(rotation=torch.zeros(n, 3, 3), projection=alpha * 0.8, alpha=alpha,
                                similarity=sim, pooled_alpha=nets.pooled_alpha(alpha.reshape(n * 3, 1, 64, 64))
                                .reshape(n, 3, 55, 55), scores=scores)

    def forward(self, x, straight_through: bool = False):
        return torch.sigmoid(self.kappa * (band_means(x) - 0.5))


def toy_models(kappa: float = 10.0) -> SimpleNamespace:
    """A :class:`aimeye.checkpoints.Models`-like bundle of toys."""
    return SimpleNamespace(direct=BandClassifier(kappa), direct_param=BandClassifier(kappa, with_params=True),
                           triple=BandTriple(kappa))


# --- a weak triple-staged toy with the real network's three stages --------------------------------

class BandEstimator(nn.Module):
    """Stage 1 of the toy: the 'rotation' is 4·(m_c − ½) on every axis, clipped like the real one
    (so the clip saturates for any clearly bright or dark band; BPDA passes through it)."""

    def forward(self, x, cls, straight_through: bool = False):
        m = band_means(x).gather(1, cls[:, None])
        return nets.clip_rotation((4 * (m - 0.5)).expand(-1, 3), straight_through)


class BandProjector(nn.Module):
    """Stage 2 of the toy: class c is drawn as its band at grey 0.9 (alpha 1 on the band)."""

    def forward(self, params, cls):
        alpha = torch.zeros(len(cls), 1, 64, 64, device=params.device)
        for c, (a, b) in enumerate(BANDS):
            alpha[cls == c, :, a:b] = 1.0
        return 0.9 * alpha + 0 * params.sum(1).view(-1, 1, 1, 1), alpha


class BandComparator(nn.Module):
    """Stage 3 of the toy: a patch is 'similar' when its query mean is bright: κ·(mean − ½) logits."""

    def __init__(self, kappa: float = 10.0):
        super().__init__()
        self.kappa = kappa

    def forward(self, query, projection, alpha):
        return self.kappa * (torch.nn.functional.avg_pool2d(query, 10, stride=1) - 0.5)


def weak_triple(kappa: float = 10.0) -> nets.TripleStaged:
    """A real :class:`aimeye.nets.TripleStaged` made of the band stages: weak on purpose."""
    return nets.TripleStaged(BandEstimator(), BandProjector(), BandComparator(kappa)).eval()


# --- a tiny experiment on toys: test_experiments and test_distributed -------------------------------

def toy_test_set(n_per_class=3):
    """Band images, label = index % 4 like make_scenes (index 3, 7, … would be none and are skipped)."""
    imgs, labels, idx = [], [], []
    for i in range(4 * n_per_class):
        c = i % 4
        if c == 3:
            continue
        imgs.append(band_image(c, on=0.64 + 0.02 * (i % 5), off=0.4 + 0.02 * (i % 3)))
        labels.append(c)
        idx.append(i)
    imgs[-1] = band_image(2, on=0.55)  # triple@0.7 calls this one none: it must be filtered out
    return TestSet(torch.stack(imgs), torch.tensor(labels), torch.tensor(idx))


def toy_suite():
    """One quick attack for the robust table."""
    return [AttackSpec("pgd", pgd, {"steps": 4, "restarts": 1})]


def tiny(what, out, figures=False, **kw):
    """A whole experiment (``what``: fig4, fig6, robust or all) on the toys, in seconds."""
    return experiments.run(what, 3, models=toy_models(), testset=toy_test_set(), max_steps=60, out=out,
                           eps_255=(4, 16, 64), suite=toy_suite(), figures=figures, png=False, progress=False,
                           command="test", **kw)


# --- toy widths for the training loop: test_train and test_distributed ------------------------------

TOY = {  # toy widths: a training step costs milliseconds
    "direct": {"widths": [4, 4, 4, 4, 4], "fc": 16, "dropout": 0.0},
    "direct-param": {"widths": [4, 4, 4, 4, 4], "fc": 16, "dropout": 0.0},
    "estimator": {"in_channels": 4, "widths": [4, 4, 4, 4, 4], "fc": 16, "dropout": 0.0},
    "projector": {"hidden": 16, "base": 4, "widths": [4, 4, 4]},
    "comparator": {"widths": [4, 4]},
}
CFG = train.TrainConfig(steps=3, batch=8, lr=3e-3, warmup=1, ckpt_every=2)


def toy_frozen_stages(root: Path):
    """Tiny estimator and projector checkpoints for the comparator to train against."""
    for stage in ("estimator", "projector"):
        train.train(stage, replace(CFG, steps=1), root=root, runs=root / "runs", evaluate_after=False,
                    model_config=TOY[stage])
