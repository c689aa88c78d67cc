"""Bridges for running torchattacks (Kim 2020) on this project's networks, for the benchmarks only.

torchattacks sees a model that maps images in [0,1] to logits and counts an attack as successful when
the argmax differs from the label. :func:`goal_model` builds such a model whose misclassification *is*
one of this project's goals, so both implementations aim at the same thing:

* fn (object → none): logits [max over the object classes, none] (direct: the none logit; triple:
  θ), label 0: "misclassified" ⇔ the verdict is none. Padded to 4 columns (torchattacks' DLR needs 4).
* fp (object → another object), for images of one true class c: the object logits with z_c replaced
  by max(z_c, z_none) (triple: max(s_c, θ)), label c: "misclassified" ⇔ another object wins. Padded.

The pitfall: torchattacks restores ``model.train()`` after an attack when the model it was given was in
training mode, and a fresh ``nn.Module`` wrapper *is* in training mode, which would put the shared
networks' BatchNorm into training mode. :class:`EvalOnly` never leaves eval mode, and
:func:`assert_untouched` checks the shared networks' modes and weights afterwards.
"""

from __future__ import annotations

import torch
from torch import nn


class EvalOnly(nn.Module):
    """A wrapper that stays in eval mode whatever ``train()`` is called with."""

    def __init__(self, fn, *modules: nn.Module):
        super().__init__()
        self.fn = fn
        self.held = nn.ModuleList(modules)  # registered so that .to()/.eval() reach them
        super().train(False)

    def train(self, mode: bool = True):  # torchattacks calls .train() / .eval() on the wrapper
        return super().train(False)

    def forward(self, x):
        return self.fn(x)


def _pad(z: torch.Tensor) -> torch.Tensor:
    """Pad logits to 4 columns with copies of (min − 1): torchattacks' DLR reads z_π3 and z_π4."""
    extra = max(0, 4 - z.shape[1])
    low = z.min(1, keepdim=True).values - 1
    return torch.cat([z, low.expand(-1, extra)], 1)


def goal_model(victim, goal: str, cls: int | None = None) -> EvalOnly:
    """An eval-only module whose misclassification of label (0 for fn, ``cls`` for fp) is ``goal``."""
    theta = victim.theta

    def objects_and_none(x):
        raw = victim.forward(x)
        if theta is None:  # direct: logits over (monkey, penguin, aeroplane, none)
            return raw[:, :3], raw[:, 3]
        return raw, torch.full((len(raw),), float(theta), device=raw.device)

    def fn(x):
        obj, none = objects_and_none(x)
        if goal == "fn":
            return _pad(torch.stack([obj.max(1).values, none], 1))
        merged = obj.clone()
        merged[:, cls] = torch.maximum(obj[:, cls], none)
        return _pad(merged)

    return EvalOnly(fn, *[m for m in (getattr(victim, "model", None),) if isinstance(m, nn.Module)])


def labels_for(goal: str, y: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(y) if goal == "fn" else y


def snapshot(*models: nn.Module) -> list:
    return [([m.training for m in model.modules()], {k: v.clone() for k, v in model.state_dict().items()})
            for model in models]


def assert_untouched(before: list, *models: nn.Module):
    """The shared networks' train/eval flags and weights are what they were."""
    for (modes, state), model in zip(before, models, strict=True):
        assert [m.training for m in model.modules()] == modes, "a network left eval mode"
        now = model.state_dict()
        assert all(torch.equal(now[k], v) for k, v in state.items()), "a network's weights or BN stats changed"
        assert all(p.grad is None for p in model.parameters()), "a network got parameter gradients"
