"""The attack session (aimeye.app.session) on toy networks whose flips can be computed by hand.

The toys (tests/toys.py) read band c (rows 0–20 for class 0) of the image: a band at 0.8
gives the triple-staged toy a score sigmoid(10·(m − ½)). Pushed to none (a false
negative), FGSM lowers the band by 1/255 a step, so the verdict turns none at θ = 0.7
after 55 steps, at θ = 0.9 after 21 and at θ = 0.5 after 77 (see tests/test_attacks.py).
"""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
import torch
from PIL import Image
from toys import band_image, toy_models

from aimeye.app.session import HEARTBEAT_S, AttackConfig, AttackSession, new_config

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FLIP = {0.5: 77, 0.7: 55, 0.9: 21}  # FGSM steps to none for band_image(0), per θ


@pytest.fixture
def toys():
    return toy_models()


def session(toys, **settings) -> AttackSession:
    img = band_image(0)[0].numpy()
    settings = {"theta": 0.7, "goal": 3, "cap": 200} | settings
    return AttackSession(toys, img, new_config(img, 0, **settings))


def wait_for(predicate, timeout_s: float = 20):
    deadline = time.time() + timeout_s
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def test_config_rules():
    with pytest.raises(ValueError, match="goal"):
        AttackConfig("x", label=1, goal=1)
    with pytest.raises(ValueError, match="networks"):
        AttackConfig("x", label=1, networks=("resnet",))
    c = new_config(np.zeros((64, 64)), 1)
    assert c.goal == 2 and c.networks == ("direct", "triple") and c.race and c.kind == "fp"
    assert new_config(np.zeros((64, 64)), 3).goal == 0


def test_a_new_session_is_ready_and_steps(toys):
    s = session(toys)
    assert s.latest_step == 0 and s.shown_step == 0 and s.following and not s.playing
    assert s.status("triple") == "Ready: press play or step." and s.flip("triple") is None
    assert s.step(3) == 3
    it = s.frame("triple")
    assert it.step == 3 and it.linf == pytest.approx(3 / 255, abs=1e-6)
    assert s.status("triple") == "Not flipped yet after 3 steps."


def test_the_race_flips_where_the_hand_computation_says(toys):
    s = session(toys)
    s.step(300)
    assert s.flip("triple").step == FLIP[0.7] and s.flip("triple").verdict == 3
    assert s.status("triple").startswith(f"Flipped to none at step {FLIP[0.7]}")
    assert s.flip("direct").step == 77, "the direct toy says none once the band mean is below ½ (logit < 0)"
    assert s.done and s.frame("triple", 70).step == FLIP[0.7], "a finished run shows its last iterate"


def test_theta_moves_the_stop_point_along_the_same_trajectory(toys):
    s = session(toys)
    s.step(30)
    direct, triple = s.runs["direct"], s.runs["triple"]
    images = [it.image.clone() for it in triple.history]
    msg = s.configure(s.image, new_config(s.image, 0, theta=0.9, goal=3, cap=200))
    assert s.runs["direct"] is direct and s.runs["triple"] is triple, "both runs survive a θ change"
    assert "Kept" in msg and "θ (0.90)" in msg and f"flips at step {FLIP[0.9]}" in msg and "again" not in msg
    assert s.flip("triple").step == FLIP[0.9] and len(triple.history) == FLIP[0.9] + 1
    assert s.latest_step == 30, "the direct run still holds its 30 steps"
    s.configure(s.image, new_config(s.image, 0, theta=0.7, goal=3, cap=200))
    assert len(triple.history) == 31 and s.flip("triple") is None, "back at θ = 0.7: nothing was lost"
    assert all(torch.equal(a, b.image) for a, b in zip(images, triple.history, strict=True))
    s.configure(s.image, new_config(s.image, 0, theta=0.5, goal=3, cap=200))
    s.step(200)
    assert s.flip("triple").step == FLIP[0.5]
    fresh = session(toys, theta=0.5)
    fresh.step(200)
    assert torch.equal(fresh.runs["triple"].latest.image, triple.latest.image), "one trajectory for every θ"


def test_pgd_restarts_the_triple_run_on_a_theta_change_but_keeps_the_direct_one(toys):
    s = session(toys, attack="pgd", eps=8)
    s.step(3)
    direct, triple = s.runs["direct"], s.runs["triple"]
    msg = s.configure(s.image, new_config(s.image, 0, theta=0.6, goal=3, cap=200, attack="pgd", eps=8))
    assert s.runs["direct"] is direct and s.runs["triple"] is not triple
    assert "Started again from step 0: Triple-staged" in msg and "Kept the Direct CNN run (3 steps)" in msg


def test_other_changes_start_again_and_say_so(toys):
    s = session(toys)
    s.step(5)
    other = band_image(1)[0].numpy()
    msg = s.configure(other, new_config(other, 1, theta=0.7, goal=3, cap=200))
    assert s.latest_step == 0 and msg.startswith("Changed image, true class.") and "Started again" in msg
    msg = s.configure(other, new_config(other, 1, theta=0.7, goal=2, cap=200))
    assert "goal (aeroplane)" in msg
    assert s.configure(other, new_config(other, 1, theta=0.7, goal=2, cap=200)) is None, "nothing changed"


def test_the_cap_cuts_or_extends_runs(toys):
    s = session(toys, networks=("triple",), cap=20)
    s.step(100)
    assert s.latest_step == 20 and s.status("triple") == "Not flipped within the cap of 20 steps."
    s.configure(s.image, new_config(s.image, 0, networks=("triple",), goal=3, cap=10))
    assert s.latest_step == 10 and s.done
    s.configure(s.image, new_config(s.image, 0, networks=("triple",), goal=3, cap=100))
    assert not s.done and s.latest_step == 10
    s.step(100)
    assert s.flip("triple").step == FLIP[0.7]


def test_goal_already_holding_at_step_zero_is_said_as_such(toys):
    s = session(toys, theta=1.0)  # no score reaches θ = 1: the triple-staged verdict is none before any step
    assert s.flip("triple").step == 0 and s.runs["triple"].done
    assert s.status("triple") == "Goal already holds at step 0: it says none before any attack step."
    assert s.status("direct") == "Ready: press play or step."


def test_scrubbing_back_pauses_and_play_jumps_to_the_newest_step(toys):
    s = session(toys, networks=("triple",), cap=2000, theta=0.01)  # θ tiny: it never says none
    s.play()
    wait_for(lambda: s.latest_step >= 12)
    s.set_scrub(4)
    assert not s.playing and s.scrub == 4 and s.shown_step == 4 and s.frame("triple").step == 4
    newest = s.latest_step
    time.sleep(0.05)
    assert s.latest_step == newest, "scrubbing back paused play: nothing runs out of sight"
    assert s.play() and s.following and s.shown_step >= newest
    wait_for(lambda: s.latest_step >= newest + 5)
    s.set_scrub(10**6)  # past the end: follow the newest step again
    assert s.following
    s.pause()
    assert not s.playing and s.shown_step == s.latest_step == s.frame("triple").step


def test_play_stops_when_done_and_when_nobody_looks(toys):
    s = session(toys, networks=("triple",), cap=30)
    s.speed = None
    assert s.play()
    wait_for(lambda: not s.playing)
    assert s.latest_step == 30 and not s.play(), "nothing left to play"
    s = session(toys, networks=("triple",), cap=2000, theta=0.01)
    s.speed = 100.0
    s.play()
    wait_for(lambda: s.latest_step >= 3)
    s.last_poll -= HEARTBEAT_S + 1  # the tab was closed
    wait_for(lambda: not s.playing)
    stopped = s.latest_step
    time.sleep(0.05)
    assert s.latest_step == stopped


def test_play_speed_is_kept(toys):
    s = session(toys, networks=("triple",), cap=2000, theta=0.01)
    s.play(20.0)
    time.sleep(0.5)
    s.pause()
    assert s.speed == 20.0 and 5 <= s.latest_step <= 12, s.latest_step


def test_explanations_are_kept_cached_or_recomputed(toys):
    s = session(toys, networks=("triple",))
    s.step(6)
    assert s.runs["triple"].history[3].explanation is None, "only the newest iterates keep their explanation"
    s.set_scrub(3)
    old = s.explanation()
    assert set(old) == {0, 1, 2} and s.explanation() is old, "cached"
    again = toys.triple.explain(s.frame("triple").image.reshape(1, 1, 64, 64))
    assert np.allclose(old[0]["similarity"], again.similarity[0, 0].numpy())
    s.set_scrub(6)
    assert s.explanation() is s.runs["triple"].latest.explanation


def test_exports_use_class_names_and_caption_every_frame(toys):
    s = session(toys)
    s.step(300)
    csv = s.csv("triple").splitlines()
    assert csv[0] == "step,verdict,distortion,linf,l2,ssim,score_monkey,score_penguin,score_aeroplane"
    assert csv[1].startswith("0,monkey,0,") and csv[-1].startswith(f"{FLIP[0.7]},none,")
    assert s.csv("direct").splitlines()[0].endswith("score_aeroplane,score_none")
    gif = Image.open(io.BytesIO(s.gif("triple")))
    assert gif.n_frames == FLIP[0.7] + 1 and gif.size == (256, 256 + 60)
    gif.seek(gif.n_frames - 1)
    band = np.asarray(gif.convert("L"))[256:]
    assert band.max() > 200, "the last frame carries its step, verdict and distortion as text"


def test_the_adversarially_trained_networks_are_attackable_where_they_ship(toys):
    """direct_at and triple_at run like the paper's networks (the triple one θ-aware); a bundle
    without them says which checkpoints are missing instead of failing later."""
    with pytest.raises(ValueError, match="does not ship|no triple_at"):
        session(toys, networks=("triple_at",))
    toys.direct_at, toys.triple_at = toys.direct, toys.triple  # stand-ins with known flips
    s = session(toys, networks=("triple_at",), theta=0.7)
    s.step(FLIP[0.7])
    assert s.flip("triple_at").step == FLIP[0.7]  # the θ-aware stop of the triple-staged toy
    assert s.runs["triple_at"].victim.name == "triple_at@0.7"
    ex = s.explanation(3, "triple_at")  # an old step: recomputed by the triple_at network, then cached
    want = toys.triple_at.explain(s.frame("triple_at", 3).image.reshape(1, 1, 64, 64))
    assert np.allclose(ex[2]["projection"], want.projection[0, 2].numpy()) and s.explanation(3, "triple_at") is ex
    assert s.explanation(network="triple_at") is s.runs["triple_at"].latest.explanation
    d = session(toys, networks=("direct_at",))
    d.step(5)
    assert d.latest_step == 5
    with pytest.raises(ValueError, match="networks must be some of"):
        new_config(band_image(0)[0].numpy(), 0, networks=("giraffe",))


def test_play_and_pause_presses_say_what_they_do(toys):
    """A press acts on what the button said, not as a toggle: the same press twice is still that press."""
    s = session(toys, networks=("triple",))
    assert s.press("play") and s.playing and s.press("play") and s.playing
    assert not s.press("pause") and not s.playing
    assert not s.press("pause") and not s.playing, "a repeated pause must not play on"
