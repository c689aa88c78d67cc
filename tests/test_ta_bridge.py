"""The benchmarks' torchattacks bridge (benchmarks/ta_bridge.py): a goal-shaped view whose
misclassification is our goal, and the BatchNorm pitfall (torchattacks restores a fresh wrapper's
training mode, and with it the shared network's). Skipped without torchattacks (a benchmark-only tool)."""

import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from toys import BandClassifier, BandTriple, band_image

from aimeye import checkpoints, nets
from aimeye.attacks import DirectVictim, TripleVictim

torchattacks = pytest.importorskip("torchattacks")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import ta_bridge

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_direct():
    torch.manual_seed(0)
    return checkpoints.freeze(nets.DirectClassifier(nets.AlexConfig(widths=(4, 4, 4, 4, 4), fc=8)))


def test_a_fresh_wrapper_flips_batchnorm_and_evalonly_does_not():
    model, x, y = tiny_direct(), torch.rand(2, 1, 64, 64), torch.tensor([0, 1])

    class Naive(nn.Module):  # what one writes first: it starts in training mode
        def __init__(self):
            super().__init__()
            self.m = model

        def forward(self, x):
            return self.m(x)

    torchattacks.BIM(Naive(), eps=2 / 255, alpha=1 / 255, steps=1)(x, y)
    assert any(m.training for m in model.modules())  # the pitfall: BatchNorm is in training mode now
    checkpoints.freeze(model)
    before = ta_bridge.snapshot(model)
    wrapped = ta_bridge.goal_model(DirectVictim(model), "fn")
    torchattacks.APGD(wrapped, eps=2 / 255, steps=2)(x, torch.zeros_like(y))
    ta_bridge.assert_untouched(before, model)


def test_goal_views_misclassify_exactly_at_the_goal():
    x = torch.stack([band_image(0, on=0.4), band_image(0, on=0.7), band_image(0, on=0.52, off=0.45),
                     band_image(1, on=0.7, off=0.45), band_image(0, on=0.62, off=0.45)])
    y = torch.zeros(5, dtype=torch.long)
    for victim in (DirectVictim(BandClassifier()), TripleVictim(BandTriple(), 0.7), TripleVictim(BandTriple(), 0.2)):
        for goal in ("fp", "fn"):
            view = ta_bridge.goal_model(victim, goal, 0)
            wrong = view(x).argmax(1) != ta_bridge.labels_for(goal, y)
            assert torch.equal(wrong, victim.judge(x, y, goal)[2]), (victim.name, goal)


@pytest.mark.parametrize("kind", ["bim", "apgd"])
def test_the_benchmark_times_the_same_network_work_on_both_sides(kind):
    # bench_attacks.py compares image-steps/s; ours returns a judged result, torchattacks images only, so the
    # benchmark adds the caller's judging pass to torchattacks: then both run exactly the same passes
    import bench_attacks

    x, y = torch.stack([band_image(0, on=0.7), band_image(1, on=0.7)]), torch.tensor([0, 1])
    for victim in (DirectVictim(BandClassifier()), TripleVictim(BandTriple(), 0.45)):
        p = bench_attacks.passes(kind, victim, x, y, 6)
        assert p["ours"] == p["torchattacks_judged"], (victim.name, p)
        # BIM: 6 steps, then the pass that judges the last iterate; APGD: the clean pass, the start, 6 steps,
        # and (ours) the pass that judges the kept iterate
        fwd, grads = (6 + 1, 6) if kind == "bim" else (1 + 1 + 6 + 1, 1 + 6)
        assert p["ours"] == {"forwards": fwd, "input_gradients": grads}
        assert p["torchattacks"] == {"forwards": fwd - 1, "input_gradients": grads}
