"""The training loop on toy widths: every stage learns, runs are deterministic and resumable, and
the distributed path is in test_distributed.py."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from toys import CFG, TOY, toy_frozen_stages

from aimeye import checkpoints, nets, runtime, train
from aimeye.cli import main as cli_main
from aimeye.paper import AT_STAGES, STAGES


@pytest.mark.parametrize("stage", list(TOY))
def test_each_stage_trains_and_ships_a_checkpoint(stage, tmp_path):
    if stage == "comparator":
        toy_frozen_stages(tmp_path)
    sidecar = train.train(stage, CFG, root=tmp_path, runs=tmp_path / "runs", evaluate_after=False,
                          model_config=TOY[stage])
    assert sidecar["train_config"]["steps"] == 3 and sidecar["processes"] == 1
    assert sidecar["device"] == "cpu" and sidecar["wall_time_s"] >= 0
    if stage == "comparator":  # the frozen stages that made its training data, by their sha256
        assert sidecar["trained_against"] == {s: checkpoints.read_sidecar(s, tmp_path)["sha256"]
                                              for s in ("estimator", "projector")}
    log = [json.loads(line) for line in (tmp_path / "runs" / stage / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 2] and all(torch.isfinite(torch.tensor(r["loss"])) for r in log)
    model = checkpoints.load(stage, tmp_path)
    assert not model.training and not any(p.requires_grad for p in model.parameters())


def test_the_loss_falls_over_a_few_steps_on_fresh_scenes():
    torch.manual_seed(0)
    model = nets.build("projector", TOY["projector"])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    cfg, ranks = replace(CFG, batch=16), runtime.Ranks()
    batch = train.batch_projector(cfg, 0, ranks)
    first = train.loss_projector(model, batch)[0].item()
    for _ in range(15):
        loss = train.loss_projector(model, batch)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.8 * first


def test_training_is_deterministic_and_resumes_where_it_stopped(tmp_path, monkeypatch):
    def run(name):
        return train.train("direct", CFG, root=tmp_path / name, runs=tmp_path / f"runs_{name}",
                           evaluate_after=False, model_config=TOY["direct"])

    a, b = run("a"), run("b")
    assert a["sha256"] == b["sha256"]  # batch k is a pure function of (seed, k)
    spec = train.STAGES["direct"]

    def interrupted(cfg, step, ranks, frozen=None):
        if step == 2:
            raise KeyboardInterrupt
        return spec.batch(cfg, step, ranks, frozen)

    monkeypatch.setitem(train.STAGES, "direct", replace(spec, batch=interrupted))
    with pytest.raises(KeyboardInterrupt):
        run("c")
    assert torch.load(tmp_path / "runs_c" / "direct" / "state.pt", weights_only=True)["step"] == 2
    monkeypatch.setitem(train.STAGES, "direct", spec)
    assert run("c")["sha256"] == a["sha256"]
    assert not (tmp_path / "runs_c" / "direct" / "state.pt").exists()


def test_a_comparator_batch_trains_on_the_hardest_wrong_class(tmp_path):
    toy_frozen_stages(tmp_path)
    frozen = (checkpoints.load("estimator", tmp_path), checkpoints.load("projector", tmp_path))
    xs, ps, als, xd, pd, ad, valid = train.batch_comparator(replace(CFG, batch=24), 5, runtime.Ranks(), frozen)
    assert xs.shape == ps.shape == als.shape == (12, 1, 64, 64)
    assert pd.shape == ad.shape == (12, 3, 1, 64, 64) and valid.shape == (12, 3)
    assert valid.sum(1).tolist() == [3, 2] * 6  # none scenes may take any class, objects only a wrong one
    model = nets.build("comparator", TOY["comparator"])
    hp, _ = train.hardest_negatives(model, xd, pd, ad, valid)
    with torch.no_grad():
        scores = torch.stack([nets.weighted_score(torch.sigmoid(model(xd, pd[:, k], ad[:, k])),
                                                  nets.pooled_alpha(ad[:, k])) for k in range(3)], 1)
    pick = scores.masked_fill(~valid, -1).argmax(1)
    assert torch.equal(hp, pd[torch.arange(12), pick]) and valid[torch.arange(12), pick].all()
    loss, logs = train.loss_comparator(model, (xs, ps, als, xd, pd, ad, valid))
    assert torch.isfinite(loss) and loss.item() >= 0 and 0 <= logs["patch_acc"] <= 1


def test_rank_slices_tile_the_global_batch():
    shares = [list(runtime.Ranks(r, 3).slice(10)) for r in range(3)]
    assert [i for s in shares for i in s] == list(range(10)) and [len(s) for s in shares] == [3, 3, 4]


def test_cuda_without_a_gpu_is_a_clear_message_not_a_traceback(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli_main(["train", "direct", "--device", "cuda", "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err and "--device cpu" in err and "Traceback" not in err
    with pytest.raises(runtime.DeviceError, match="unknown device"):
        runtime.resolve_device("tpu")
    assert runtime.resolve_device("auto").type == "cpu"


def test_adversarial_stages_train_on_perturbed_images_inside_the_eps_ball(tmp_path):
    from aimeye import adversarial_training as adv

    x = torch.rand(4, 1, 64, 64)
    model = nets.build("direct", TOY["direct"]).eval()
    y = torch.tensor([0, 1, 2, 3])
    x_adv = adv.fgsm_rs(x, lambda z: torch.nn.functional.cross_entropy(model(z), y))
    assert (x_adv - x).abs().max() <= adv.EPS + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert not any(p.grad is not None for p in model.parameters())  # input gradients only
    shas = {}
    for stage in (*STAGES, *AT_STAGES):  # the AT stages need the shipped ones they start from
        fine_tuned = stage in ("estimator-at", "comparator-at")  # from the toy checkpoint, at its widths
        sidecar = train.train(stage, replace(CFG, steps=1), root=tmp_path, runs=tmp_path / "runs",
                              evaluate_after=False,
                              model_config=None if fine_tuned else TOY[stage.removesuffix("-at")])
        shas[stage] = sidecar["sha256"]
        if fine_tuned:  # the sidecar names the weights it started from
            assert sidecar["initialised_from"] == {stage.removesuffix("-at"): shas[stage.removesuffix("-at")]}
    assert checkpoints.read_sidecar("comparator-at", tmp_path)["trained_against"] == {
        "estimator-at": shas["estimator-at"], "projector": shas["projector"]}
    models = checkpoints.load_models(tmp_path)
    assert isinstance(models.direct_at, nets.DirectClassifier) and not models.direct_at.training
    assert models.triple_at.projector is models.triple.projector  # the drawing stage is shared
    assert models.triple_at.comparator is not models.triple.comparator
    assert models.triple_at(x).shape == (4, 3)


def test_model_config_flag_reaches_the_network_and_bad_values_are_one_line(capsys, tmp_path, monkeypatch):
    from aimeye import cli

    seen = {}
    monkeypatch.setattr(train, "train", lambda stage, cfg, **kw: seen.update(kw) or {"wall_time_s": 0})
    assert cli_main(["train", "comparator", "--steps", "1", "--model-config", '{"widths": [8, 8]}']) == 0
    assert seen["model_config"] == {"widths": [8, 8]}
    assert cli.parse_model_config('{"widths": [8, 8]}', "comparator") == {"widths": [8, 8]}
    capsys.readouterr()
    for bad in ('{"width": 3}', "not json"):
        assert cli_main(["train", "comparator", "--model-config", bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: --model-config") and "Traceback" not in err
    assert cli_main(["train", "all", "--model-config", "{}"]) == 2
    assert "one stage" in capsys.readouterr().err
