"""APGD (Croce & Hein 2020) on hand-computable toys: the checkpoint schedule and step-size halving,
restarts and per-image stopping (counted evaluations), best-iterate keeping, targeted vs untargeted,
the θ-aware success rule, and the DLR loss on four classes."""

import pytest
import torch
from toys import BandClassifier, BandTriple, band_image, band_means

from aimeye.attacks import DirectVictim, TripleVictim, apgd, goal_reached
from aimeye.attacks.apgd import checkpoints

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def bands(m0, m1, m2):
    x = torch.empty(1, 1, 64, 64)
    for (a, b), v in zip(((0, 21), (21, 42), (42, 64)), (m0, m1, m2), strict=True):
        x[:, :, a:b] = v
    return x


class Counting(DirectVictim):
    """A direct victim that counts forward passes per image."""

    def __init__(self, model):
        super().__init__(model, "counting")
        self.calls = 0

    def forward(self, x):
        self.calls += len(x)
        return super().forward(x)


def test_checkpoint_schedule_is_the_papers_in_the_authors_integer_form():
    # p = 0, 0.22, 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99 (Croce & Hein 2020, §3.2)
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]
    assert checkpoints(1000)[:3] == [220, 410, 570]
    # short runs in the authors' integer form: gaps 4, 3, 2, then 1 (⌊0.03·20⌋ = 0 → 1; ⌊0.06·20⌋ = 1)
    assert checkpoints(20) == [4, 7, 9, *range(10, 21)]


def test_step_size_halves_at_every_checkpoint_when_the_loss_stalls():
    # a goal out of reach (fn needs band 0 below ½: 0.2 away, ε = 2/255); the loss is monotone in each
    # band, so the first step lands on the ball's corner and every later step stays there: the loss
    # never rises, condition 1 holds at every checkpoint and η = 2ε/2^j after the j-th checkpoint
    victim, eps, tr = DirectVictim(BandClassifier()), 2 / 255, []
    r = apgd(victim, band_image(0, on=0.7)[None], [0], "fn", eps, steps=30, restarts=1, trace=tr,
             start=lambda x, y, t, e, k, g: x)
    w = checkpoints(30)
    assert w == [6, 11, 15, 18, 20, *range(21, 31)]  # gaps 6, 5, 4, 3, 2, then 1
    assert [t["eta"].item() for t in tr] == pytest.approx(
        [2 * eps / 2 ** sum(c < t["k"] for c in w) for t in tr])
    # log p(none) rises as every band darkens: the corner is x − ε everywhere, and it is the margin-best iterate
    corner = band_image(0, on=0.7)[None] - eps
    assert not r.success.item() and torch.allclose(r.x_adv, corner, atol=1e-6)
    assert r.steps.item() == 1 + 1 + 30  # the clean image, the start, 30 steps


def test_restarts_and_per_image_stopping_count_evaluations():
    victim = Counting(BandClassifier())
    x = torch.cat([band_image(0, on=0.7), band_image(0, on=0.52)])[:, None]  # hopeless / easy fn at ε = 8
    r = apgd(victim, x, [0, 0], "fn", 8 / 255, steps=10, restarts=3)
    assert r.success.tolist() == [False, True]
    # hopeless: the clean image, then 3 restarts of (start + 10 steps); easy: clean, start, its first step
    assert r.steps.tolist() == [1 + 3 * (1 + 10), 3]
    assert victim.calls == r.steps.sum().item() + 2  # and one final judgement per image
    # targeted fp runs every restart for each other object class in turn
    r = apgd(Counting(BandClassifier()), band_image(0, on=0.7, off=0.2)[None], [0], "fp", 4 / 255, steps=5,
             restarts=2, targeted=True, loss="dlr")
    assert r.steps.item() == 1 + 2 * 2 * (1 + 5) and not r.success.item()


def test_first_success_is_kept_and_images_are_judged_by_the_true_rule():
    victim = DirectVictim(BandClassifier())
    x = bands(0.52, 0.2, 0.2)
    r = apgd(victim, x, [0], "fn", 8 / 255, steps=10, restarts=1, start=lambda x, y, t, e, k, g: x)
    # the first step (η = 2ε, clipped to the ball) takes band 0 to 0.52 − 8/255 < ½: none
    assert r.success.item() and r.steps.item() == 3 and r.verdict.item() == 3
    assert band_means(r.x_adv)[0, 0].item() == pytest.approx(0.52 - 8 / 255, abs=1e-6)
    assert (r.linf <= 8 / 255 + 1e-6).all() and torch.equal(r.success, goal_reached(r.verdict, torch.tensor([0]),
                                                                                         "fn"))


def test_targeted_and_untargeted():
    # monkey 0.6, penguin 0.45, aeroplane 0.3; ε = 0.1: penguin can beat monkey and none, aeroplane cannot
    victim, x, eps = DirectVictim(BandClassifier()), bands(0.6, 0.45, 0.3), 0.1
    for loss in ("ce", "dlr"):
        r = apgd(victim, x, [0], "fp", eps, steps=20, restarts=1, loss=loss)
        assert r.success.item() and r.verdict.item() == 1, loss
        assert not apgd(victim, x, [0], "fp", eps, steps=20, restarts=2, loss=loss, target=2).success.item()
        r = apgd(victim, x, [0], "fp", eps, steps=20, restarts=1, loss=loss, target=1)
        assert r.success.item() and r.verdict.item() == 1
        assert apgd(victim, x, [0], "fp", eps, steps=20, restarts=1, loss=loss, targeted=True).success.item()
    # the direct CNN's DLR on four classes: with the order (own, none, other) the textbook untargeted
    # scale z_π1 − z_π3 cancels the margin (loss ≡ −1); ours still finds the attack (hand threshold: ε > 0.15)
    x = band_image(0, on=0.7, off=0.4)[None]
    assert apgd(victim, x, [0], "fp", 40 / 255, steps=20, restarts=1, loss="dlr").success.item()
    assert not apgd(victim, x, [0], "fp", 37 / 255, steps=20, restarts=1, loss="dlr").success.item()


@pytest.mark.parametrize("loss", ["ce", "dlr", "score"])
def test_theta_aware_success(loss):
    # triple toy, band 0.7 / others 0.4. fp needs another score ≥ θ and the argmax: ε > 0.15 at θ = 0.2,
    # ε ≥ 0.185 at θ = 0.7. fn needs every score < θ: ε > 0.115 at θ = 0.7, ε > 0.339 at θ = 0.2
    x, model = band_image(0, on=0.7, off=0.4)[None], BandTriple()
    at = {th: TripleVictim(model, th) for th in (0.2, 0.7)}
    assert apgd(at[0.2], x, [0], "fp", 42 / 255, steps=15, restarts=1, loss=loss).success.item()
    assert not apgd(at[0.7], x, [0], "fp", 42 / 255, steps=15, restarts=1, loss=loss).success.item()
    assert apgd(at[0.7], x, [0], "fn", 32 / 255, steps=15, restarts=1, loss=loss).success.item()
    assert not apgd(at[0.2], x, [0], "fn", 32 / 255, steps=15, restarts=1, loss=loss).success.item()
