"""Table 1 and the θ sweep on hand-made predictions whose answers are known."""

from __future__ import annotations

import torch
from torch import nn

from aimeye import checkpoints, evaluate, train
from aimeye.paper import NONE, STAGES

Y = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3])


def test_error_table_counts_errors_confusions_and_theta_verdicts():
    direct = torch.tensor([0, 1, 2, 3, 0, 1, 2, 0])  # one none called monkey
    dparam = Y.clone()
    scores = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.5, 0.1], [0.1, 0.1, 0.3], [0.0, 0.0, 0.0],
                           [0.8, 0.0, 0.0], [0.0, 0.9, 0.0], [0.0, 0.0, 0.6], [0.0, 0.25, 0.0]])
    t = evaluate.error_table({"direct": direct, "direct_param": dparam}, scores, Y)
    assert t["counts"] == {"direct": 1, "direct_param": 0,
                           "triple@0.2": 1,  # the last none (0.25 ≥ 0.2) is accepted as a penguin
                           "triple@0.45": 1,  # the aeroplane at 0.3 is rejected
                           "triple@0.7": 3}  # the penguin at 0.5 and both aeroplanes (0.3, 0.6) are rejected
    assert t["errors"]["direct"] == 1 / 8 and t["errors"]["triple@0.7"] == 3 / 8
    assert t["confusion"]["direct"][NONE][0] == 1 and sum(map(sum, t["confusion"]["direct"])) == 8
    assert t["confusion"]["triple@0.2"][NONE][1] == 1
    sweep = {round(r["theta"], 2): r for r in t["theta_sweep"]}
    assert sweep[0.0]["rejection"] == 0.0 and sweep[1.0]["rejection"] == 1.0
    assert sweep[0.45]["error"] == t["errors"]["triple@0.45"]


class Replay(nn.Module):
    """A stub network that returns prepared outputs in call order (it ignores its input)."""

    def __init__(self, outputs: torch.Tensor, pair: bool = False):
        super().__init__()
        self.outputs, self.pair, self.at = outputs, pair, 0

    def forward(self, x):
        out = self.outputs[self.at:self.at + len(x)]
        self.at += len(x)
        return (out, None) if self.pair else out


def test_table1_scores_the_held_out_scenes_in_order(tmp_path):
    """make_scenes labels scene i as i % 4, so stubs that replay one-hot labels are perfect, and
    triple scores of 0.5 on the true object make exactly the objects fail at θ = 0.7."""
    n_per_class = 3
    y = torch.arange(4 * n_per_class) % 4
    onehot = torch.nn.functional.one_hot(y, 4).float()
    scores = onehot[:, :3] * 0.5
    root = tmp_path
    for stage in STAGES:
        (root / f"{stage}.json").write_text('{"sha256": "test"}')
    models = checkpoints.Models(Replay(onehot), Replay(onehot, pair=True), Replay(scores), root)
    t = evaluate.table1(n_per_class, models, batch=5)
    assert t["counts"] == {"direct": 0, "direct_param": 0, "triple@0.2": 0, "triple@0.45": 0,
                           "triple@0.7": 3 * n_per_class}
    assert t["n_per_class"] == n_per_class and t["processes"] == 1
    assert t["checkpoints_sha256"]["direct"] == "test"


def test_score_anatomy_accounts_for_the_score_by_pooled_alpha_bin():
    torch.manual_seed(0)
    from aimeye import nets

    triple = checkpoints.freeze(nets.TripleStaged(nets.build("estimator", {"in_channels": 4, "widths": [4] * 5,
                                                                           "fc": 8, "dropout": 0.0}),
                                                  nets.build("projector", {"hidden": 8, "base": 4, "widths": [4] * 3}),
                                                  nets.build("comparator", {"widths": [4, 4]})))
    models = checkpoints.Models(None, None, triple, None)
    out = evaluate.score_anatomy(models, n_per_class=2)["anatomy"]
    assert set(out) == {"monkey scenes", "penguin scenes", "aeroplane scenes", "none scenes"}
    row = out["none scenes"]["aeroplane"]
    assert 0 <= row["mass_share_below_0.25"] <= 1 and row["alpha_mass"] > 0
    assert set(row["similarity_by_abar"]) == {"0.0-0.1", "0.1-0.25", "0.25-0.5", "0.5-1.01"}
    assert all(0 <= v <= 1 for v in row["share_above"].values())


def test_drawing_attribution_scores_each_object_with_three_drawings():
    """With a comparator that scores 1 exactly where the drawing equals the query, the true render
    matches an object over a black background perfectly, so nothing is below any θ under (c)."""
    from aimeye import nets
    from aimeye.scenes import make_scenes

    class Equal(torch.nn.Module):
        def forward(self, x, img, alpha):
            return torch.where(((x - img).abs() < 1e-3), 20.0, -20.0)[:, :, :55, :55]

    triple = nets.TripleStaged(nets.build("estimator", {"in_channels": 4, "widths": [4] * 5, "fc": 8, "dropout": 0.0}),
                               nets.build("projector", {"hidden": 8, "base": 4, "widths": [4] * 3}), Equal()).eval()
    s = make_scenes(8, "test", 1)
    s.images = s.renders.clone()  # objects over black: the true render is the query itself
    out = evaluate.drawing_attribution(triple, s)
    assert set(out) == {"monkey", "penguin", "aeroplane"} and out["monkey"]["n"] == 2
    assert all(out[c]["true_render"]["below"] == {"0.2": 0, "0.45": 0, "0.7": 0} for c in out)
    assert out["monkey"]["true_render"]["score_mean"] > 0.99
    assert set(out["monkey"]) == {"n", "estimated_rotation", "true_rotation", "true_render"}


def test_validation_split_draws_train_backgrounds_with_an_unused_seed(tmp_path, monkeypatch):
    """``--split val`` scores other scenes than Table 1 (train backgrounds, a seed that training
    never draws) and writes beside metrics.json, never over it."""
    seen = []
    real = evaluate.make_scenes

    def spy(n, split, seed, **kw):
        seen.append((split, seed))
        return real(n, split, seed, **kw)

    monkeypatch.setattr(evaluate, "make_scenes", spy)
    monkeypatch.setattr(checkpoints, "DEFAULT_DIR", tmp_path)
    for stage in STAGES:
        (tmp_path / f"{stage}.json").write_text('{"sha256": "test"}')
    y = torch.arange(8) % 4
    onehot = torch.nn.functional.one_hot(y, 4).float()
    models = checkpoints.Models(Replay(onehot), Replay(onehot, pair=True), Replay(onehot[:, :3]), tmp_path)
    t = evaluate.table1(2, models, batch=4, split="val")
    assert seen == [("train", evaluate.VAL_SEED)] and t["split"] == "val" and t["backgrounds"] == "train"
    assert evaluate.VAL_SEED not in {cfg.seed for cfg in train.DEFAULTS.values()}
    assert t["counts"]["triple@0.7"] == 0
    assert evaluate.write_metrics(t) == tmp_path / "metrics_val.json"
    assert not (tmp_path / "metrics.json").exists()


def test_the_committed_table1_was_made_by_the_shipped_checkpoints():
    """checkpoints/metrics.json and metrics_val.json (the README's Table 1 and validation figures)
    scored exactly the shipped weights, and hold the error counts the README quotes."""
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "checkpoints"
    shipped = {s: checkpoints.read_sidecar(s, root)["sha256"] for s in STAGES}
    want = {"metrics.json": {"direct": 10, "direct_param": 4, "triple@0.2": 45, "triple@0.45": 14, "triple@0.7": 96},
            "metrics_val.json": {"direct": 1, "direct_param": 4, "triple@0.2": 42, "triple@0.45": 17, "triple@0.7": 72}}
    for name, counts in want.items():
        t = json.loads((root / name).read_text())
        assert t["checkpoints_sha256"] == shipped and t["n_per_class"] == 2500, name
        assert t["counts"] == counts, name
