"""Adaptive attacks on the triple-staged network (target score, comparator patch logits, projector start,
BPDA) and transfer, on a deliberately weak toy built from the real TripleStaged (tests/toys.py): each
finds an adversarial where one exists and none where none exists; and no attack changes a model."""

import pytest
import torch
from toys import BandClassifier, band_image, band_means, weak_triple

from aimeye import checkpoints, nets
from aimeye.attacks import (
    DirectVictim,
    TripleVictim,
    adaptive_patch,
    adaptive_score,
    apgd,
    fgsm,
    iterative_fgsm,
    pgd,
    transfer,
)
from aimeye.attacks.surrogates import drawing, patch_logits

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_triple():
    """The real triple-staged architecture (BatchNorm, clip, pooling) at toy widths."""
    torch.manual_seed(0)
    est = nets.Estimator(nets.AlexConfig(in_channels=4, widths=(4, 4, 4, 4, 4), fc=16, dropout=0.0))
    proj = nets.Projector(nets.ProjectorConfig(hidden=16, base=4, widths=(4, 4, 4)))
    return nets.TripleStaged(est, proj, nets.Comparator(nets.ComparatorConfig(widths=(4, 4, 4))))


def test_patch_logits_give_the_networks_own_scores():
    x = torch.rand(3, 1, 64, 64)
    for model in (checkpoints.freeze(small_triple()), weak_triple()):
        with torch.no_grad():
            scores, pooled = patch_logits(model, x)
            torch.testing.assert_close(scores, model(x), rtol=0, atol=1e-6)
        assert pooled.shape == (3, 3)
    # the toy's pooled logit of a uniform band is κ·(mean − ½) in its interior, averaged with the band's edges
    with torch.no_grad():
        _, pooled = patch_logits(weak_triple(), band_image(0, on=0.7, off=0.4)[None])
    assert pooled[0, 0] > 0 > pooled[0, 1]


def test_projector_start_draws_the_target_into_the_image():
    x = band_image(0, on=0.7, off=0.4)[None]
    d = drawing(weak_triple(), x, torch.tensor([1]))
    assert band_means(d)[0].tolist() == pytest.approx([0.7, 0.9, 0.4], abs=1e-6)


# band 0 at 0.7, the others at 0.4, θ = 0.7. fp: another band must reach the comparator's 0.7 (mean ≈ 0.585)
# and lead: possible at ε = 64/255, impossible at 16/255. fn: every score below 0.7: possible at 64/255.
CASES = [("fp", 64, True), ("fp", 16, False), ("fn", 64, True), ("fn", 8, False)]


@pytest.mark.parametrize(("goal", "eps", "exists"), CASES)
def test_adaptive_attacks_find_adversarials_on_a_weak_toy(goal, eps, exists):
    x = torch.stack([band_image(0, on=0.7, off=0.4), band_image(2, on=0.7, off=0.4)])
    y = torch.tensor([0, 2])
    victim = TripleVictim(weak_triple(), 0.7)
    source = DirectVictim(BandClassifier())
    for name, attack, kw in (("score", adaptive_score, {}), ("patch", adaptive_patch, {}),
                             ("transfer", transfer, {"source": source})):
        r = attack(victim, x, y, goal, eps / 255, steps=10, restarts=1, **kw)
        assert r.success.tolist() == [exists, exists], (name, goal, eps)
        assert (r.linf <= eps / 255 + 1e-6).all() and (r.x_adv >= 0).all() and (r.x_adv <= 1).all()
        assert torch.equal(r.success, victim.judge(r.x_adv, y, goal)[2])  # the plain network's verdict


def test_bpda_keeps_the_forward_pass():
    model = checkpoints.freeze(small_triple())
    x = torch.rand(2, 1, 64, 64)
    plain = TripleVictim(model, 0.45)
    with torch.no_grad():
        torch.testing.assert_close(plain.bpda().scores(x), plain.scores(x), rtol=0, atol=0)
    assert plain.bpda().straight_through and not plain.straight_through


def test_attacks_leave_models_untouched():
    torch.manual_seed(2)
    # parameters still require grad here: a .backward() anywhere would fill .grad
    direct = nets.DirectClassifier(nets.AlexConfig(widths=(4, 8, 8, 8, 8), fc=16)).eval()
    triple = small_triple().eval()
    models = [direct, triple]
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in models]
    modes = [[mod.training for mod in m.modules()] for m in models]
    x, y = torch.rand(2, 1, 64, 64), torch.tensor([0, 1])
    d, t = DirectVictim(direct), TripleVictim(triple, 0.45)
    with torch.no_grad():  # the attacks must still work inside a caller's no_grad
        for victim in (d, t, TripleVictim(triple, 0.7, True)):
            iterative_fgsm(victim, x, y, "fp", max_steps=2)
            pgd(victim, x, y, "fp", 4 / 255, steps=2)
            fgsm(victim, x, y, "fn", 4 / 255)
            for goal in ("fp", "fn"):
                apgd(victim, x, y, goal, 4 / 255, steps=2, restarts=1, targeted=True)
        for goal in ("fp", "fn"):
            adaptive_score(t, x, y, goal, 4 / 255, steps=2, restarts=1)
            adaptive_patch(t, x, y, goal, 4 / 255, steps=2, restarts=1)
            transfer(t, x, y, goal, 4 / 255, source=d, steps=2)
    for m, b, mode in zip(models, before, modes, strict=True):
        after = m.state_dict()
        assert all(torch.equal(after[k], v) for k, v in b.items())
        assert all(p.grad is None for p in m.parameters())
        assert [mod.training for mod in m.modules()] == mode
