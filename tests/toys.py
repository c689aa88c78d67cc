"""Toy networks with closed-form behaviour, for testing the attacks of Berntsen et al. (§3.2) and
Madry et al. (2018) by hand.

Each toy reads the image (N,1,64,64) in [0,1] as three horizontal bands (rows
0–20, 21–41, 42–63), one per object class; ``m_c`` is the mean of band c. The
toys mirror the interfaces of the real networks:

* :class:`BandClassifier`: logits ``κ·(m_c − ½)`` for c = 0, 1, 2 and 0 for none.
* :class:`BandTriple`: scores ``sigmoid(κ·(m_c − ½))`` with an ``explain`` that
  returns a :class:`aimeye.nets.Explanation` of the right shapes.

Every pixel of a band gets the same gradient sign under FGSM, so the step at
which a verdict flips can be computed by hand (see tests/test_attacks.py). The
toys have no parameters and no train/eval-dependent layers.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from aimeye import nets

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
