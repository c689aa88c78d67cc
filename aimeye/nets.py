"""The five networks of the paper (§2, Fig. 1 and Fig. 3) in one file.

Every network takes images as (N,1,64,64) float32 in [0,1].

* :class:`DirectClassifier`: the reduced AlexNet with a 4-way softmax head.
* :class:`DirectParam`: the same trunk with a second head for the 3 rotations
  (used only in training).
* :class:`Estimator` (stage 1): image + constant one-hot class planes → the 3
  rotation parameters, clipped to their valid range [−0.5, 0.5].
* :class:`Projector` (stage 2): class one-hot + rotation → image over black and
  alpha (one sigmoid on the alpha logits).
* :class:`Comparator` (stage 3): a 10×10 patch network over (query, projection,
  projected alpha), run fully convolutionally at stride 1 → a 55×55 map.
* :class:`TripleStaged`: estimate → project → compare for each class, then
  score_c = Σ(sim·ā)/Σā with ā the 10×10 average-pooled projected alpha.

Deviations from the reference (BatchNorm for LRN, fc width, no dropout in
regression layers, a convolutional projector decoder, comparator width) are
listed with reasons in the README, "Differences from the paper".
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .paper import N_OBJECTS, PATCH, ROT_RANGE


@dataclass
class AlexConfig:
    in_channels: int = 1
    widths: tuple[int, ...] = (16, 64, 96, 96, 64)
    fc: int = 512
    dropout: float = 0.5


def _conv_bn(cin, cout):
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class AlexNetSmall(nn.Module):
    """The reference's reduced AlexNet (conv 16-64-96-96-64, three max-pools to
    7×7, two fully connected layers), with BatchNorm instead of LRN."""

    def __init__(self, cfg: AlexConfig, outputs: int):
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.features = nn.Sequential(
            nn.Conv2d(cfg.in_channels, w[0], 3, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, ceil_mode=True),  # 62 → 31
            *_conv_bn(w[0], w[1]), nn.MaxPool2d(3, 2, ceil_mode=True),  # → 15
            *_conv_bn(w[1], w[2]), *_conv_bn(w[2], w[3]), *_conv_bn(w[3], w[4]),
            nn.MaxPool2d(3, 2, ceil_mode=True),  # → 7
            nn.Flatten(),
        )
        self.fc = nn.Sequential(
            nn.Linear(w[4] * 7 * 7, cfg.fc), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout),
            nn.Linear(cfg.fc, cfg.fc), nn.ReLU(inplace=True), nn.Dropout(cfg.dropout),
        )
        self.head = nn.Linear(cfg.fc, outputs)

    def trunk(self, x):
        return self.fc(self.features(x))

    def forward(self, x):
        return self.head(self.trunk(x))


class DirectClassifier(AlexNetSmall):
    """Network 1: image → logits over (monkey, penguin, aeroplane, none)."""

    def __init__(self, cfg: AlexConfig | None = None):
        super().__init__(cfg or AlexConfig(), N_OBJECTS + 1)


class DirectParam(AlexNetSmall):
    """Network 2: image → (logits (N,4), rotation (N,3)); the rotation head only guides training."""

    def __init__(self, cfg: AlexConfig | None = None):
        super().__init__(cfg or AlexConfig(dropout=0.0), N_OBJECTS + 1)
        self.param_head = nn.Linear(self.head.in_features, 3)

    def forward(self, x):
        h = self.trunk(x)
        return self.head(h), self.param_head(h)


def class_planes(cls: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Constant one-hot planes (N,3,H,W) for class indices ``cls`` (N,)."""
    onehot = F.one_hot(cls, N_OBJECTS).to(like.dtype)
    return onehot[:, :, None, None].expand(-1, -1, like.shape[-2], like.shape[-1])


def clip_rotation(p: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
    """Clip to the valid range [−0.5, 0.5]. ``straight_through`` keeps the clip in the
    forward pass but passes the gradient through unchanged (a gradient-masking check)."""
    clipped = p.clamp(-ROT_RANGE, ROT_RANGE)
    return p + (clipped - p).detach() if straight_through else clipped


# thinner than the classifiers: it runs three times in every triple-staged pass
ESTIMATOR_CONFIG = AlexConfig(in_channels=1 + N_OBJECTS, widths=(16, 32, 64, 64, 32), fc=256, dropout=0.0)


class Estimator(AlexNetSmall):
    """Stage 1: (image, class) → rotation (N,3) in [−0.5, 0.5]. No dropout: it stalls regression."""

    def __init__(self, cfg: AlexConfig | None = None):
        super().__init__(cfg or ESTIMATOR_CONFIG, 3)

    def forward(self, x, cls, straight_through: bool = False):
        raw = super().forward(torch.cat([x, class_planes(cls, x)], 1))
        return clip_rotation(raw, straight_through)


@dataclass
class ProjectorConfig:
    hidden: int = 512
    base: int = 64  # channels of the 8×8 seed map
    widths: tuple[int, ...] = (64, 32, 16)  # after each ×2 upsampling: 16, 32, 64


class Projector(nn.Module):
    """Stage 2: (rotation (N,3), class (N,)) → (image over black (N,1,64,64), alpha (N,1,64,64))."""

    def __init__(self, cfg: ProjectorConfig | None = None):
        super().__init__()
        cfg = cfg or ProjectorConfig()
        self.cfg = cfg
        self.fc = nn.Sequential(
            nn.Linear(3 + N_OBJECTS, cfg.hidden), nn.LeakyReLU(0.1),
            nn.Linear(cfg.hidden, cfg.hidden), nn.LeakyReLU(0.1),
            nn.Linear(cfg.hidden, cfg.base * 64), nn.LeakyReLU(0.1),
        )
        layers, cin = [], cfg.base
        for cout in cfg.widths:
            layers += [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1),
                       nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.LeakyReLU(0.1)]
            cin = cout
        self.up = nn.Sequential(*layers)
        self.out = nn.Conv2d(cin, 2, 3, padding=1)

    def forward(self, params, cls):
        z = torch.cat([params / ROT_RANGE, F.one_hot(cls, N_OBJECTS).to(params.dtype)], 1)
        h = self.fc(z).view(-1, self.cfg.base, 8, 8)
        o = self.out(self.up(h))
        alpha = torch.sigmoid(o[:, 1:2])
        return torch.sigmoid(o[:, 0:1]) * alpha, alpha


@dataclass
class ComparatorConfig:
    widths: tuple[int, ...] = (32, 32, 32)


class Comparator(nn.Module):
    """Stage 3: a 10×10 patch comparator over (query, projection, alpha). On a 64×64
    input it runs at stride 1 and returns similarity *logits* (N,1,55,55)."""

    def __init__(self, cfg: ComparatorConfig | None = None):
        super().__init__()
        cfg = cfg or ComparatorConfig()
        self.cfg = cfg
        w = cfg.widths
        layers = [nn.Conv2d(3, w[0], PATCH), nn.ReLU(inplace=True)]
        for a, b in itertools.pairwise(w):
            layers += [nn.Conv2d(a, b, 1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(w[-1], 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, query, projection, alpha):
        return self.net(torch.cat([query, projection, alpha], 1))


def pooled_alpha(alpha: torch.Tensor) -> torch.Tensor:
    """ā: the 10×10, stride-1 average of the projected alpha (N,1,64,64) → (N,1,55,55)."""
    return F.avg_pool2d(alpha, PATCH, stride=1)


# Only patches that the projection covers at least half-way are judged (a deviation from the paper, which
# weighs every patch by ā): on patches that are mostly background the comparator's similarity sits near
# 0.45 whatever the query, and a thin object (the aeroplane) has a fifth of its ā mass there, which put a
# floor under its score on none scenes (`python -m aimeye evaluate --anatomy`).
MIN_PATCH_COVER = 0.5


def patch_weights(abar: torch.Tensor) -> torch.Tensor:
    """The score's weight of each patch: ā where ā ≥ :data:`MIN_PATCH_COVER`, else 0."""
    return abar * (abar >= MIN_PATCH_COVER)


def weighted_score(sim: torch.Tensor, abar: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """score = Σ(sim·w)/Σw over the map with w = :func:`patch_weights` (ā); 0 where no patch
    is covered enough (Σw = 0)."""
    w = patch_weights(abar)
    num = (sim * w).flatten(1).sum(1)
    den = w.flatten(1).sum(1)
    return torch.where(den > eps, num / den.clamp_min(eps), torch.zeros_like(num))


def drawing_score(comparator, query: torch.Tensor, projection: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """One class's score (N,) for given drawings: the comparator's similarity map weighted by the
    pooled alpha (what :meth:`TripleStaged.explain` computes per class, without the intermediates)."""
    return weighted_score(torch.sigmoid(comparator(query, projection, alpha)), pooled_alpha(alpha))


@dataclass
class Explanation:
    """Everything the triple-staged network computed, with a class axis of length 3:
    rotation (N,3,3), projection/alpha (N,3,64,64), similarity/pooled_alpha
    (N,3,55,55), scores (N,3)."""

    rotation: torch.Tensor
    projection: torch.Tensor
    alpha: torch.Tensor
    similarity: torch.Tensor
    pooled_alpha: torch.Tensor
    scores: torch.Tensor

    def for_class(self, n: int, c: int) -> dict:
        return {k: v[n, c] for k, v in asdict(self).items()} | {"cls": c}


def verdict_from_scores(scores: torch.Tensor, theta: float) -> torch.Tensor:
    """argmax class if any score ≥ θ, else none (3)."""
    best, arg = scores.max(1)
    return torch.where(best >= theta, arg, torch.full_like(arg, N_OBJECTS))


class TripleStaged(nn.Module):
    """The merged network (Fig. 3): all three classes in one batched pass.

    ``self(x)`` → scores (N,3) in [0,1]; differentiable end to end in x.
    """

    def __init__(self, estimator: Estimator, projector: Projector, comparator: Comparator):
        super().__init__()
        self.estimator, self.projector, self.comparator = estimator, projector, comparator

    def explain(self, x: torch.Tensor, straight_through: bool = False) -> Explanation:
        n = x.shape[0]
        cls = torch.arange(N_OBJECTS, device=x.device).repeat_interleave(n)  # class-major
        xr = x.repeat(N_OBJECTS, 1, 1, 1)
        rot = self.estimator(xr, cls, straight_through)
        proj, alpha = self.projector(rot, cls)
        sim = torch.sigmoid(self.comparator(xr, proj, alpha))
        abar = pooled_alpha(alpha)
        scores = weighted_score(sim, abar)

        def per_class(t):  # (3N, ...) → (N, 3, ...), dropping a channel axis of 1
            t = t.reshape(N_OBJECTS, n, *t.shape[1:]).transpose(0, 1)
            return t[:, :, 0] if t.dim() == 5 else t

        return Explanation(per_class(rot), per_class(proj), per_class(alpha), per_class(sim),
                           per_class(abar), per_class(scores))

    def forward(self, x: torch.Tensor, straight_through: bool = False) -> torch.Tensor:
        return self.explain(x, straight_through).scores

    def verdict(self, x: torch.Tensor, theta: float) -> torch.Tensor:
        with torch.no_grad():
            return verdict_from_scores(self(x), theta)


ARCHITECTURES = {
    "direct": (DirectClassifier, AlexConfig),
    "direct-param": (DirectParam, AlexConfig),
    "estimator": (Estimator, AlexConfig),
    "projector": (Projector, ProjectorConfig),
    "comparator": (Comparator, ComparatorConfig),
}
ARCHITECTURES |= {f"{k}-at": ARCHITECTURES[k] for k in ("direct", "estimator", "comparator")}  # adversarially trained


def default_config(stage: str):
    stage = stage.removesuffix("-at")
    return {"direct": AlexConfig(), "direct-param": AlexConfig(dropout=0.0),
            "estimator": ESTIMATOR_CONFIG,
            "projector": ProjectorConfig(), "comparator": ComparatorConfig()}[stage]


def build(stage: str, config: dict | None = None) -> nn.Module:
    """A fresh network for a stage, from a config dict (as stored in a sidecar)."""
    cls, cfg_cls = ARCHITECTURES[stage]
    cfg = default_config(stage) if config is None else cfg_cls(**{
        k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    return cls(cfg)


def config_dict(model: nn.Module) -> dict:
    return asdict(model.cfg)

