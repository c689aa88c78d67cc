"""Experiments: a tiny run on toy networks (aimeye.attacks.toys), sharding + merge equals
the unsharded run, statistics and the figure fallbacks. No checkpoints needed."""

import json

import numpy as np
import pytest
import torch

from aimeye import cli, experiments
from aimeye.attacks.toys import band_image, toy_models
from aimeye.experiments import TestSet

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def toy_test_set(n_per_class=3):
    """Band images, label = index % 4 like make_scenes (index 3, 7, … would be none and are skipped)."""
    imgs, labels, idx = [], [], []
    for i in range(4 * n_per_class):
        c = i % 4
        if c == 3:
            continue
        imgs.append(band_image(c, on=0.75 + 0.02 * (i % 5), off=0.15 + 0.02 * (i % 3)))
        labels.append(c)
        idx.append(i)
    imgs[-1] = band_image(2, on=0.55)  # triple@0.7 calls this one none: it must be filtered out
    return TestSet(torch.stack(imgs), torch.tensor(labels), torch.tensor(idx))


def tiny(what, out, shard=(0, 1)):
    return experiments.run(what, 3, models=toy_models(), testset=toy_test_set(), max_steps=150, shard_spec=shard,
                           out=out, pgd_steps=4, png=False, progress=False, command="test")


def test_merge_of_shards_equals_unsharded(tmp_path):
    whole = tiny("all", tmp_path / "whole")
    tiny("all", tmp_path / "s0", (0, 2))
    tiny("all", tmp_path / "s1", (1, 2))
    cli.main(["experiment", "merge", str(tmp_path / "s0"), str(tmp_path / "s1"), "--out", str(tmp_path / "m"),
              "--no-png"])
    a, m = tmp_path / "whole", tmp_path / "m"
    ja, jm = (json.loads((d / "attacks.json").read_text()) for d in (a, m))
    assert ja["filter"] == jm["filter"] and len(ja["attacks"]) == len(jm["attacks"])
    for ra_, rm_ in zip(ja["attacks"], jm["attacks"]):
        # scores come from a forward pass whose batch differs between runs: equal up to float rounding;
        # everything else (steps, success, verdict, distortion, …) is bit-identical
        assert ra_["scores"] == pytest.approx(rm_["scores"], rel=1e-5, abs=1e-7)
        assert {k: v for k, v in ra_.items() if k != "scores"} == {k: v for k, v in rm_.items() if k != "scores"}
    ca, cm = ((d / "attacks.csv").read_text().splitlines() for d in (a, m))
    assert [r.split(",")[:13] for r in ca] == [r.split(",")[:13] for r in cm]
    sa, sm = (json.loads((d / "summary.json").read_text()) for d in (a, m))
    assert {k: v for k, v in sa.items() if k != "meta"} == {k: v for k, v in sm.items() if k != "meta"}
    ra, rm = (json.loads((d / "robust.json").read_text()) for d in (a, m))
    assert {k: v for k, v in ra.items() if k != "meta"} == {k: v for k, v in rm.items() if k != "meta"}
    ga, gm = (experiments.load_gallery(d / "gallery.npz") for d in (a, m))
    assert set(ga) == set(gm) and all(np.array_equal(ga[k], gm[k]) for k in ga)
    for name in ("fig4.html", "fig6.html", "robust.html", "fig5_direct_param.png", "fig5_triple_0.7.png",
                 "README.md"):
        assert (m / name).exists(), name
    # the content is what the experiment promises
    assert whole["filter"]["n_images"] == 9 and whole["filter"]["kept"] == 8
    assert whole["filter"]["wrong"]["triple@0.7"] == 1 and whole["filter"]["wrong"]["direct"] == 0
    assert len(ja["attacks"]) == 8 * 2 * 5 + 8 * 5  # fp: two targets, fn: one; five networks
    fp = [r for r in ja["attacks"] if r["goal"] == "fp"]
    assert all(r["target"] not in (r["label"], 3) for r in fp)
    assert all(r["target"] == 3 for r in ja["attacks"] if r["goal"] == "fn")
    assert whole["fp"]["direct"]["success_rate"] == 1.0
    ratio = whole["ratio_fp_median_distortion_triple0.7_over_direct"]
    assert ratio == pytest.approx(whole["fp"]["triple@0.7"]["distortion"]["median"]
                                  / whole["fp"]["direct"]["distortion"]["median"])
    assert len(ga["index"]) > 0 and set(ga["network"]) <= {"direct_param", "triple@0.7"}
    assert ra["n_images"] == 8 and ra["pgd_success"]["fp"]["direct"][0] == 0  # ε = 0 never succeeds


def test_fig5_redraws_from_a_fig4_run_and_fig6_keeps_fig4(tmp_path):
    tiny("fig4", tmp_path)
    tiny("fig6", tmp_path)  # same configuration: the fp rows stay
    rows = json.loads((tmp_path / "attacks.json").read_text())["attacks"]
    assert {r["goal"] for r in rows} == {"fp", "fn"}
    # robust with another configuration keeps the figure run's rows and records its own settings
    experiments.run("robust", 3, models=toy_models(), testset=toy_test_set(), max_steps=20, out=tmp_path,
                    pgd_steps=2, robust_n_per_class=2, png=False, progress=False)
    after = json.loads((tmp_path / "attacks.json").read_text())
    assert after["attacks"] == rows and after["meta"]["max_steps"] == 150
    robust = json.loads((tmp_path / "robust.json").read_text())
    assert robust["meta"]["max_steps"] == 20 and robust["n_images"] == 6  # indices < 8: two per class
    (tmp_path / "fig5_triple_0.7.png").unlink()
    experiments.run("fig5", 3, models=toy_models(), out=tmp_path, png=False, progress=False)
    assert (tmp_path / "fig5_triple_0.7.png").exists()


def test_per_theta_rows_share_one_trajectory(tmp_path):
    tiny("fig6", tmp_path)
    rows = json.loads((tmp_path / "attacks.json").read_text())["attacks"]
    by = {(r["network"], r["index"]): r["steps"] for r in rows}
    for i in {r["index"] for r in rows}:
        # none is reached sooner when the threshold is higher (the triple toy's scores only fall)
        assert by[("triple@0.7", i)] <= by[("triple@0.45", i)] <= by[("triple@0.2", i)]


def test_box_stats_and_shards():
    v = np.arange(101, dtype=float)
    s = experiments.box_stats(v)
    assert (s["p2"], s["q1"], s["median"], s["q3"], s["p98"]) == (2, 25, 50, 75, 98)
    assert experiments.box_stats([])["median"] is None
    assert experiments.parse_shard("1/3") == (1, 3) and experiments.parse_shard(None) == (0, 1)
    with pytest.raises(ValueError):
        experiments.parse_shard("3/3")
    ts = toy_test_set()
    parts = [experiments.shard(ts, i, 3) for i in range(3)]
    assert sorted(int(i) for p in parts for i in p.indices) == sorted(ts.indices.tolist())


def test_png_fallbacks_draw(tmp_path):
    tiny("all", tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    robust = json.loads((tmp_path / "robust.json").read_text())
    experiments.pil_boxes(summary, "fp", tmp_path / "b.png")
    experiments.pil_robust(robust, tmp_path / "r.png")
    from PIL import Image

    assert Image.open(tmp_path / "b.png").size == (1200, 460)
    assert Image.open(tmp_path / "r.png").size == (1200, 460)

    class Broken:
        def write_image(self, *a, **k):
            raise RuntimeError("no Chrome")

    how = experiments._write_png(Broken(), tmp_path / "c.png", lambda p: experiments.pil_boxes(summary, "fn", p))
    assert how.startswith("pil") and (tmp_path / "c.png").exists()
