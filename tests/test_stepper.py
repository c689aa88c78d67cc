"""The app's Stepper (aimeye/attacks/stepper.py): history, the batch attack's iterates, PGD's ball.
Moved out of tests/test_attacks.py: the stepper and these tests belong to the app's half."""

import numpy as np
import pytest
import torch
from toys import BandClassifier, BandTriple, band_image

from aimeye.attacks import STEP, DirectVictim, Stepper, TripleVictim, iterative_fgsm

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
    assert csv[0] == "step,verdict,distortion,linf,l2,ssim,score_0,score_1,score_2" and len(csv) == 57
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
    assert STEP == pytest.approx(1 / 255)
    assert np.allclose(s.images()[0], band_image(0)[0].numpy())


