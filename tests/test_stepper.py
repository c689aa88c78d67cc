"""The app's Stepper (aimeye/attacks/stepper.py): history, the batch attack's iterates, PGD's ball.
Moved out of tests/test_attacks.py: the stepper and these tests belong to the app's half."""

import numpy as np
import pytest
import torch
from toys import BandClassifier, BandTriple, band_image

from aimeye.attacks import DirectVictim, Stepper, TripleVictim, iterative_fgsm

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_stepper_records_history_and_matches_the_batch_attack():
    victim = TripleVictim(BandTriple(kappa=10), 0.7)
    x = band_image(0)
    s = Stepper(victim, x, 0, "fn", max_steps=200)
    assert len(s.history) == 1 and s.history[0].step == 0 and s.history[0].distortion == 0.0
    assert torch.equal(s.history[0].image, x[0]) and not s.done
    it = s.step(3)
    assert it.step == 3 and [h.step for h in s.history] == [0, 1, 2, 3]
    assert it.perturbation.abs().max().item() == pytest.approx(3 / 255, abs=1e-6)
    assert set(it.explanation) == {0, 1, 2}
    assert set(it.explanation[0]) == {"rotation", "projection", "alpha", "similarity", "pooled_alpha", "score"}
    assert it.explanation[1]["similarity"].shape == (55, 55) and isinstance(it.explanation[0]["score"], float)
    s.run()
    assert s.done and s.success and s.latest.step == 55 and s.latest.verdict == 3
    s.step(5)  # no-op once done
    assert len(s.history) == 56
    batch = iterative_fgsm(victim, x[None], [0], "fn", max_steps=200)
    assert torch.equal(s.latest.image, batch.x_adv[0, 0]) and batch.steps.item() == 55
    csv = s.to_csv().splitlines()
    assert csv[0] == "step,verdict,distortion,linf,l2,ssim,score_monkey,score_penguin,score_aeroplane"
    assert len(csv) == 57 and csv[-1].startswith("55,none,")
    assert s.to_gif(factor=2).startswith(b"GIF89a")
    d = Stepper(DirectVictim(BandClassifier()), x, 0, "fp", target=2, max_steps=3)
    d.step(10)
    assert d.done and not d.success and d.latest.step == 3 and d.latest.explanation is None
    assert len(d.latest.scores) == 4


def test_stepper_pgd_stays_in_the_ball():
    victim = TripleVictim(BandTriple(kappa=10), 0.7)
    s = Stepper(victim, band_image(0), 0, "fn", attack="pgd", eps=16 / 255, max_steps=20)
    s.step(20)
    assert s.done and not s.success
    assert max(h.linf for h in s.history) <= 16 / 255 + 1e-6
    assert np.allclose(s.images()[0], band_image(0)[0].numpy())




def test_theta_moves_the_stop_point_along_one_trajectory():
    """FGSM's loss against the triple-staged network has no θ in it: set_theta keeps every
    iterate and re-reads the stop (none at θ = 0.9 after 21 steps, at 0.7 after 55, at 0.5 after 77)."""
    s = Stepper(TripleVictim(BandTriple(kappa=10), 0.7), band_image(0), 0, "fn", max_steps=200)
    s.step(40)
    kept = [it.image.clone() for it in s.trajectory]
    s.set_theta(0.9)
    assert s.done and s.success and s.latest.step == 21 and len(s.trajectory) == 41
    assert s.step(5).step == 21, "done at the new θ"
    s.set_theta(0.5)
    assert not s.done and s.latest.step == 40 and all(torch.equal(a, b.image) for a, b in zip(kept, s.history))
    s.run()
    fresh = Stepper(TripleVictim(BandTriple(kappa=10), 0.5), band_image(0), 0, "fn", max_steps=200)
    fresh.run()
    assert s.latest.step == fresh.latest.step == 77 and torch.equal(s.latest.image, fresh.latest.image)
    pgd = Stepper(TripleVictim(BandTriple(kappa=10), 0.7), band_image(0), 0, "fn", attack="pgd", max_steps=5)
    with pytest.raises(ValueError, match="PGD"):
        pgd.set_theta(0.5)
    direct = Stepper(DirectVictim(BandClassifier()), band_image(0), 0, "fn", max_steps=5)
    direct.set_theta(0.1)  # a direct network has no θ: nothing changes
    assert direct.theta_independent and direct.latest.step == 0


def test_the_cap_can_grow_or_shrink():
    s = Stepper(TripleVictim(BandTriple(kappa=10), 0.7), band_image(0), 0, "fn", max_steps=10)
    s.run()
    assert s.done and not s.success and s.latest.step == 10
    s.set_max_steps(4)
    assert s.latest.step == 4 and len(s.trajectory) == 5 and s.done
    s.set_max_steps(100)
    s.run()
    assert s.success and s.latest.step == 55


def test_only_the_newest_explanations_are_kept():
    s = Stepper(TripleVictim(BandTriple(kappa=10), 0.7), band_image(0), 0, "fn", max_steps=20, keep_explanations=1)
    s.step(5)
    kept = [it.explanation is not None for it in s.history]
    assert kept == [True, False, False, False, False, True], "the original and the newest"
