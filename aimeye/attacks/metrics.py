"""Perturbation metrics between an adversarial image and its original.

Images are (N,1,64,64) or (N,64,64) tensors in [0,1]; every metric returns (N,).

* :func:`distortion` is the paper's measure (Berntsen et al. §4, after Szegedy
  et al.): (1/255)·√(Σ(x̃ᵢ − xᵢ)²/n) with pixels in 0–255 units, which is
  exactly the RMS of x̃ − x in [0,1] units.
* :func:`linf`, :func:`l2`: the max-abs and Euclidean norms of x̃ − x in [0,1] units.
* :func:`ssim`: the mean structural similarity with the defaults of
  ``skimage.metrics.structural_similarity(..., data_range=1)`` (7×7 uniform
  window, sample covariance, K1 = 0.01, K2 = 0.03, mean over the valid region),
  computed in float64 torch and checked against skimage in the tests. The
  reference code recorded SSIM for every attack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _flat_diff(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return (x_adv.detach().double() - x.detach().double()).flatten(1)


def distortion(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """RMS of x̃ − x in [0,1] units = the paper's (1/255)·RMS in 0–255 units."""
    return _flat_diff(x_adv, x).pow(2).mean(1).sqrt().float()


def linf(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return _flat_diff(x_adv, x).abs().max(1).values.float()


def l2(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return _flat_diff(x_adv, x).pow(2).sum(1).sqrt().float()


SSIM_WIN = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03


def ssim(x_adv: torch.Tensor, x: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM per image, matching skimage's ``structural_similarity`` defaults."""
    if len(x) == 0:
        return torch.zeros(0)
    a = x_adv.detach().double().reshape(len(x), 1, *x.shape[-2:])
    b = x.detach().double().reshape(len(x), 1, *x.shape[-2:])

    def filt(t):
        return F.avg_pool2d(t, SSIM_WIN, stride=1)  # = uniform_filter, cropped by (win−1)/2

    npix = SSIM_WIN ** 2
    cov_norm = npix / (npix - 1)
    ua, ub = filt(a), filt(b)
    vaa = cov_norm * (filt(a * a) - ua * ua)
    vbb = cov_norm * (filt(b * b) - ub * ub)
    vab = cov_norm * (filt(a * b) - ua * ub)
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ua * ub + c1) * (2 * vab + c2)) / ((ua ** 2 + ub ** 2 + c1) * (vaa + vbb + c2))
    return s.flatten(1).mean(1).float()


def all_metrics(x_adv: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """{"distortion", "linf", "l2", "ssim"} → (N,) float32 each."""
    return {"distortion": distortion(x_adv, x), "linf": linf(x_adv, x), "l2": l2(x_adv, x), "ssim": ssim(x_adv, x)}
