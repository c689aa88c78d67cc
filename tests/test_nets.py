"""Networks: shapes, ranges, gradients, checkpoints and a few training steps per stage."""

import json
import shutil

import pytest
import torch
from conftest import write_fake_checkpoints

import aimeye
from aimeye import checkpoints, nets
from aimeye.paper import STAGES
from aimeye.scenes import make_scenes


@pytest.fixture(scope="module")
def x():
    return make_scenes(8, "test", 0).images


def untrained_triple():
    torch.manual_seed(0)  # untrained weights from a fixed seed, whatever ran before (not every draw covers a patch)
    return checkpoints.freeze(nets.TripleStaged(nets.build("estimator"), nets.build("projector"),
                                                nets.build("comparator")))


def test_shapes_and_ranges(x):
    torch.manual_seed(0)
    d = checkpoints.freeze(nets.build("direct"))
    assert d(x).shape == (8, 4)
    logits, params = checkpoints.freeze(nets.build("direct-param"))(x)
    assert logits.shape == (8, 4) and params.shape == (8, 3)
    est = checkpoints.freeze(nets.build("estimator"))
    rot = est(x * 100, torch.arange(8) % 3)  # wild inputs still give clipped rotations
    assert rot.shape == (8, 3) and rot.abs().max() <= 0.5
    img, alpha = checkpoints.freeze(nets.build("projector"))(rot, torch.arange(8) % 3)
    assert img.shape == alpha.shape == (8, 1, 64, 64)
    assert 0 <= alpha.min() and alpha.max() <= 1 and 0 <= img.min() and (img <= alpha + 1e-6).all()
    sim = checkpoints.freeze(nets.build("comparator"))(x, img, alpha)
    assert sim.shape == (8, 1, 55, 55)
    t = untrained_triple()
    scores = t(x)
    assert scores.shape == (8, 3) and 0 <= scores.min() and scores.max() <= 1
    assert set(t.verdict(x, 0.5).tolist()) <= {0, 1, 2, 3}
    e = t.explain(x[:2])
    assert e.rotation.shape == (2, 3, 3) and e.projection.shape == (2, 3, 64, 64)
    assert e.similarity.shape == e.pooled_alpha.shape == (2, 3, 55, 55)
    assert set(e.for_class(0, 1)) >= {"rotation", "projection", "alpha", "similarity", "pooled_alpha", "scores"}


def test_score_is_alpha_weighted_mean_and_guards_empty_alpha():
    sim = torch.tensor([[[[1.0, 0.0]]], [[[0.3, 0.9]]]])
    abar = torch.tensor([[[[3.0, 1.0]]], [[[0.0, 0.0]]]])
    torch.testing.assert_close(nets.weighted_score(sim, abar), torch.tensor([0.75, 0.0]))
    # a patch covered less than MIN_PATCH_COVER does not count
    abar = torch.tensor([[[[0.9, nets.MIN_PATCH_COVER - 0.01]]]])
    torch.testing.assert_close(nets.weighted_score(sim[:1], abar), torch.tensor([1.0]))


def test_verdict_threshold():
    s = torch.tensor([[0.1, 0.8, 0.3], [0.1, 0.2, 0.3], [0.5, 0.5, 0.49]])
    assert nets.verdict_from_scores(s, 0.45).tolist() == [1, 3, 0]
    assert nets.verdict_from_scores(s, 0.0).tolist() == [1, 2, 0]


def test_input_gradient_through_triple_is_finite_and_nonzero(x):
    t = untrained_triple()
    xi = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(t(xi).sum(), xi)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    assert all(p.grad is None for p in t.parameters())


def test_straight_through_clip_passes_gradient():
    p = torch.tensor([0.9, -0.2], requires_grad=True)
    (g,) = torch.autograd.grad(nets.clip_rotation(p).sum(), p)
    assert g.tolist() == [0.0, 1.0]
    (g,) = torch.autograd.grad(nets.clip_rotation(p, straight_through=True).sum(), p)
    assert g.tolist() == [1.0, 1.0]
    assert nets.clip_rotation(p, True).tolist() == pytest.approx([0.5, -0.2])


def test_checkpoint_round_trip_and_sha(tmp_path):
    write_fake_checkpoints(tmp_path)
    m = checkpoints.load("direct", tmp_path)
    assert not m.training and not any(p.requires_grad for p in m.parameters())
    side = json.loads((tmp_path / "direct.json").read_text())
    assert side["sha256"] == checkpoints.sha256(tmp_path / "direct.safetensors")
    assert side["config"]["widths"] == [16, 64, 96, 96, 64]
    models = aimeye.load_models(tmp_path)
    assert models.triple(make_scenes(4, "test", 0).images).shape == (4, 3)


def test_missing_and_corrupt_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(aimeye.CheckpointError, match="python -m aimeye train direct"):
        checkpoints.load("direct", tmp_path)
    write_fake_checkpoints(tmp_path)
    w = tmp_path / "projector.safetensors"
    w.write_bytes(w.read_bytes()[:-100] + b"\0" * 100)
    with pytest.raises(aimeye.CheckpointError, match="sha256.*python -m aimeye train projector"):
        checkpoints.load("projector", tmp_path)
    (tmp_path / "estimator.json").write_text("{not json")
    with pytest.raises(aimeye.CheckpointError, match="corrupt"):
        checkpoints.load("estimator", tmp_path)
    # garbage weights whose sha256 was recorded: still a clear error, not a crash
    garbage = tmp_path / "g"
    shutil.copytree(tmp_path, garbage, ignore=shutil.ignore_patterns("estimator.*"))
    (garbage / "direct.safetensors").write_bytes(b"garbage")
    side = json.loads((garbage / "direct.json").read_text())
    side["sha256"] = checkpoints.sha256(garbage / "direct.safetensors")
    (garbage / "direct.json").write_text(json.dumps(side))
    with pytest.raises(aimeye.CheckpointError, match="could not read"):
        checkpoints.load("direct", garbage)


@pytest.mark.slow
def test_shipped_checkpoints_reach_their_recorded_quality():
    models = aimeye.load_models()
    s = make_scenes(200, "test", 1)  # the first 200 of the evaluation set behind the sidecars
    with torch.no_grad():
        err = (models.direct(s.images).argmax(1) != s.labels).float().mean().item()
        assert err <= models.sidecar("direct")["metrics"]["test_error"] + 0.02
        err = (models.direct_param(s.images)[0].argmax(1) != s.labels).float().mean().item()
        assert err <= models.sidecar("direct-param")["metrics"]["test_error"] + 0.02
        pos = s.labels != 3
        mae = (models.triple.estimator(s.images[pos], s.labels[pos]) - s.rotations[pos]).abs().mean().item()
        assert mae <= models.sidecar("estimator")["metrics"]["rotation_mae"] * 1.5 + 0.005
        v = torch.cat([models.triple.verdict(x, 0.45) for x in s.images.split(16)])  # small chunks run fastest
        err = (v != s.labels).float().mean().item()
        assert err <= models.sidecar("comparator")["metrics"]["triple_error@0.45"] + 0.03
    for stage in STAGES:
        side = models.sidecar(stage)
        assert side["sha256"] == checkpoints.sha256(checkpoints.paths(stage)[0])
        assert {"config", "command", "seed", "wall_time_s", "metrics"} <= set(side)
