"""Experiments on toy networks (tests/toys.py): the FGSM runs and their summary, the robust table,
the results schema (reading the committed folders too), statistics and figures. No checkpoints
needed. Experiments on torchrun ranks are in test_distributed.py."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from toys import tiny, toy_models, toy_test_set

from aimeye import checkpoints, cli, experiments
from aimeye.experiments import results, stats
from aimeye.paper import AT_STAGES, STAGES

pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROOT = Path(__file__).resolve().parent.parent / "checkpoints"


def test_fgsm_and_robust_run_write_one_schema(tmp_path):
    run = tiny("all", tmp_path)
    s = run.summary
    assert s["schema"] == results.SCHEMA and run.info.parts == ("fp", "fn", "gallery", "robust")
    assert s["filter"]["n_images"] == 9 and s["filter"]["kept"] == 8
    assert s["filter"]["wrong"]["triple@0.7"] == 1 and s["filter"]["wrong"]["direct"] == 0
    assert len(run.rows) == 8 * 2 * 5 + 8 * 5  # fp: two targets, fn: one; five networks
    assert all(r["target"] not in (r["label"], 3) for r in run.rows if r["goal"] == "fp")
    assert s["fp"]["direct"]["success_rate"] == 1.0 and s["fp"]["direct"]["success_ci95"][1] == 1.0
    ratio = s["ratio_fp_median_distortion"]
    assert ratio["value"] == pytest.approx(s["fp"]["triple@0.7"]["distortion"]["median"]
                                           / s["fp"]["direct"]["distortion"]["median"])
    assert ratio["ci95"][0] <= ratio["value"] <= ratio["ci95"][1]
    # the robust table: per-image worst case, monotone in ε, with a Wilson interval per entry
    t = run.robust["table"]
    assert run.robust["n_images"] == 8 and run.robust["eps_255"] == [4, 16, 64]
    for goal in ("fp", "fn"):
        for net, es in t[goal].items():
            acc = [e["accuracy"] for e in es]
            assert acc == sorted(acc, reverse=True), (goal, net)
            assert all(e["ci95"][0] <= e["accuracy"] <= e["ci95"][1] for e in es)
            assert all(e["broken"] == e["by_attack"]["pgd"] for e in es)  # one attack: the union is its own
    assert t["fp"]["direct"][-1]["accuracy"] == 0.0 and t["fp"]["direct"][-1]["strongest"] == "pgd"
    assert run.robust["sanity"]["monotone"] and (tmp_path / "CHECKLIST.md").exists()
    # the files a reader finds, and a reader that ignores the written summary gets the same one
    assert [r.name for r in experiments.list_runs(tmp_path.parent) if r.path == tmp_path] == [tmp_path.name]
    (tmp_path / "summary.json").unlink()
    again = experiments.load_run(tmp_path)
    assert json.dumps(again.summary, sort_keys=True) == json.dumps(s, sort_keys=True)
    readme = (tmp_path / "README.md").read_text()
    assert "Robust accuracy on 8 images" in readme and "Triple-staged, θ = 0.7" in readme


def test_fig6_keeps_fig4_rows_of_the_same_config_only(tmp_path):
    tiny("fig4", tmp_path)
    tiny("fig6", tmp_path)
    assert {r["goal"] for r in experiments.load_run(tmp_path).rows} == {"fp", "fn"}
    experiments.run("fig6", 3, models=toy_models(), testset=toy_test_set(), max_steps=20, out=tmp_path,
                    figures=False, progress=False)  # another cap: the fp rows of cap 60 are stale
    run = experiments.load_run(tmp_path)
    assert {r["goal"] for r in run.rows} == {"fn"} and run.info.cap == 20 and "gallery" not in run.info.parts


def test_per_theta_rows_share_one_trajectory(tmp_path):
    run = tiny("fig6", tmp_path)
    by = {(r["network"], r["index"]): r["steps"] for r in run.rows}
    for i in {r["index"] for r in run.rows}:
        # none is reached sooner when the threshold is higher (the triple toy's scores only fall)
        assert by[("triple@0.7", i)] <= by[("triple@0.45", i)] <= by[("triple@0.2", i)]


def test_censored_medians_and_intervals():
    # 3 of 5 attacks failed at the cap (100): the median is decided by failures, a lower bound
    assert stats.censored_median([5, 7, 100, 100, 100], [1, 1, 0, 0, 0]) == (100.0, False)
    assert stats.censored_median([5, 7, 9, 100, 100], [1, 1, 1, 0, 0]) == (9.0, True)
    # a failure recorded *below* the median needs more than it recorded: it counts as +∞, which
    # moves the median up to a measured value (not the recorded 0.02)
    assert stats.censored_median([0.01, 0.02, 0.03], [0, 1, 1]) == (0.03, True)
    # with an even count, a middle failure makes the median infinite: the recorded one is a lower bound
    assert stats.censored_median([0.01, 0.02, 0.03, 0.04], [1, 0, 0, 1]) == (0.025, False)
    b = stats.box_stats(np.arange(101.0))
    assert (b["p2"], b["q1"], b["median"], b["q3"], b["p98"]) == (2, 25, 50, 75, 98) and b["median_exact"]
    assert stats.box_stats([])["median"] is None
    lo, hi = stats.wilson_ci(0, 100)
    assert lo == 0 and hi == pytest.approx(0.0370, abs=1e-4)  # the textbook value for 0/100
    lo, hi = stats.wilson_ci(50, 100)
    assert (lo, hi) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert results.format_median(100, False) == "≥ 100" and results.format_median(12, True) == "12"


def test_committed_folders_read_in_the_current_schema():
    runs = {r.name: r for r in experiments.list_runs(ROOT)}
    assert {"results", "results_cap1000", "results_robust", "results_robust_restarts",
            "results_robust_n30", "results_robust_n30_low_theta"} <= set(runs)  # all quoted
    assert runs["results_robust_n30"].label == "30 images/class, robustness on 86 images at θ = 0.7"
    assert runs["results_robust_n30_low_theta"].label.endswith("robustness on 86 images at θ = 0.2, 0.45")
    old = experiments.load_run(ROOT / "results")
    assert old.summary["schema"] == results.SCHEMA
    med, exact = old.median("fp", "triple@0.7", "steps")
    assert med == old.info.cap and not exact  # a 100-step cap censors the triple-staged FP median
    robust = experiments.load_run(ROOT / "results_robust").robust
    assert robust["per_image_worst_case"] is True and robust.get("broken")  # per-image sets, not counts
    assert set(robust["table"]) == {"fp", "fn"}
    again = experiments.load_run(ROOT / "results_robust_restarts").robust  # the 5-restart rerun: same images
    assert again["indices"] == robust["indices"] and again["eps_255"] == [16, 32]
    with pytest.raises(ValueError, match="unknown robust.json schema"):
        results.normalise_robust({"schema": 1, "pgd_success": {}})


def test_committed_folders_list_the_headline_results_first():
    """The app's folder picker and ``experiment list``: the shipped weights' results first (the paper's
    FGSM runs, then the merges, biggest first, then the runs that feed them), then the older ones."""
    infos = experiments.list_runs(ROOT)
    current = [i.current for i in infos]
    assert current == sorted(current, reverse=True) and 0 < sum(current) < len(infos)
    assert len(infos) - sum(current) == 42  # the README: kept from earlier comparators
    assert [i.name for i in infos[:4]] == ["results", "results_cap1000", "results_robust_n100_cmp3_merged",
                                           "results_robust_n100_cmp3_low_theta_merged"]
    assert infos[2].n_merged > infos[3].n_merged > 1 and infos[2].label.endswith(f"merge of {infos[2].n_merged} runs")
    older = next(i for i in infos if not i.current)
    assert older.n_merged and set(older.other_weights) == {"comparator"}  # the earlier comparators' merges


def test_the_home_pages_words_hold_in_the_committed_fgsm_run():
    """views/home.py: another object takes far more steps against the triple-staged network than
    against a direct CNN; "nothing" takes fewer at θ = 0.7, and a lower θ holds out longer against it
    but gives in sooner to another object."""
    run = experiments.load_run(ROOT / "results_cap1000")
    fp = {n: run.median("fp", n)[0] for n in ("direct", "triple@0.2", "triple@0.45", "triple@0.7")}
    fn = {n: run.median("fn", n)[0] for n in ("direct", "triple@0.2", "triple@0.45", "triple@0.7")}
    assert fp["triple@0.7"] > 10 * fp["direct"] and fn["triple@0.7"] < fn["direct"]
    assert fn["triple@0.2"] > fn["triple@0.45"] > fn["triple@0.7"]
    assert fp["triple@0.2"] < fp["triple@0.45"] < fp["triple@0.7"]


SUITE = {"apgd-dlr", "apgd-ce", "adaptive-patch", "adaptive-score", "transfer(direct)", "transfer(direct_at)"}


def _triple_cells(robust: dict) -> dict:
    """goal → ε → the plain triple-staged network's (θ = 0.7) cell of a robust table."""
    return {g: {c["eps_255"]: c for c in robust["table"][g]["triple@0.7"]} for g in ("fp", "fn")}


SECOND_COMPARATOR = "45a42c6c40efb24feb92d339a6a8fd78e11104292415b76aff4209b680015480"  # 1,000 steps


def _assert_suite_reached_every_quoted_cell(robust: dict, fp_eps=(4, 8, 16, 32), fn_eps=(1, 2, 4),
                                            net: str = "triple@0.7", exact: bool = True):
    """Every attack of the suite reached the triple-staged network ``net`` at every ε the README quotes
    (``fp_eps`` against false positives, ``fn_eps`` against false negatives): the merge's own ``meta.gaps``
    record misses none of them there and, with ``exact``, names exactly the other ε of the grid 1–32/255
    as missing. Each attack is listed in the table's ``by_attack`` at every quoted ε."""
    grid = (1, 2, 4, 8, 16, 32)
    gaps = robust["meta"]["gaps"]
    for goal, quoted, suite in (("fp", fp_eps, SUITE | {"apgd-t-dlr"}), ("fn", fn_eps, SUITE)):
        cells = {c["eps_255"]: c for c in robust["table"][goal][net]}
        gap = gaps.get(goal, {}).get(net)
        missing = [e for e in grid if e not in quoted]
        if exact:
            assert gap == ({"eps_missing": {a: missing for a in suite}} if missing else None), goal
        assert set(robust["broken"][goal][net]) == suite and "never" not in (gap or {}), (goal, net)
        assert not any(set(quoted) & set((gap or {}).get("eps_missing", {}).get(a, ())) for a in suite), (goal, net)
        for eps in quoted:
            assert set(cells[eps]["by_attack"]) == suite, (goal, eps)


def test_the_second_comparator_met_the_whole_suite():
    """The README's robust figures for the second comparator (shipped until the 3,000-step one): its
    merged folder attacked that comparator, and every attack of the suite reached every cell the
    README quotes."""
    robust = experiments.load_run(ROOT / "results_robust_n100_cmp2_merged").robust
    assert robust["meta"]["checkpoints_sha256"]["comparator"] == SECOND_COMPARATOR and robust["n_images"] == 290
    _assert_suite_reached_every_quoted_cell(robust)
    cells = _triple_cells(robust)
    assert [cells["fp"][e]["broken"] for e in (4, 8, 16, 32)] == [0, 16, 71, 134]
    assert [cells["fn"][e]["broken"] for e in (1, 2, 4)] == [19, 77, 270]
    for folder, eps in (("fp_restarts5_eps4", [4]), ("fp_restarts5_eps8", [8]), ("fp_restarts5", [16, 32])):
        run = experiments.load_run(ROOT / f"results_robust_n100_cmp2_{folder}").robust
        assert run["eps_255"] == eps and run["attacks"]["apgd-dlr"]["options"]["restarts"] == 5


def test_the_shipped_comparator_met_the_whole_suite():
    """The README's robust figures for the shipped comparator: the merged folder attacked the shipped
    weights, every attack of the suite reached every cell of the grid (1–32/255, false positives and false
    negatives), and the broken counts are the README's."""
    robust = experiments.load_run(ROOT / "results_robust_n100_cmp3_merged").robust
    shipped = checkpoints.read_sidecar("comparator", ROOT)["sha256"]
    assert shipped != SECOND_COMPARATOR
    assert robust["meta"]["checkpoints_sha256"]["comparator"] == shipped and robust["n_images"] == 294
    _assert_suite_reached_every_quoted_cell(robust, fp_eps=(1, 2, 4, 8, 16, 32), fn_eps=(1, 2, 4, 8, 16, 32))
    cells = _triple_cells(robust)
    assert [cells["fn"][e]["broken"] for e in (1, 2, 4, 8, 16, 32)] == [17, 92, 277, 294, 294, 294]
    assert [cells["fp"][e]["broken"] for e in (1, 2, 4, 8, 16, 32)] == [0, 0, 0, 8, 66, 133]
    by_class = json.loads((ROOT / "results_robust_n100_cmp3_merged" / "by_class.json").read_text())
    quoted = {("fp", "8"): [8, 0, 0], ("fp", "16"): [64, 0, 2], ("fp", "32"): [98, 0, 35],  # the README's table
              ("fn", "1"): [7, 0, 10], ("fn", "2"): [40, 16, 36], ("fn", "4"): [100, 98, 79]}
    for (goal, eps), counts in quoted.items():
        assert [by_class[goal]["triple@0.7"][eps][c] for c in ("monkey", "penguin", "aeroplane")] == counts, (goal, eps)
    for folder, eps, attack in (("fp_restarts5", [16], "apgd-dlr"), ("fp_restarts5_eps32", [32], "apgd-dlr"),
                                ("fn_restarts5", [2, 4], "apgd-ce")):
        restarts = experiments.load_run(ROOT / f"results_robust_n100_cmp3_{folder}").robust
        assert restarts["eps_255"] == eps and restarts["attacks"][attack]["options"]["restarts"] == 5


LOW_THETA = {  # the merge's broken counts per ε, 1–32/255 (None: not run, θ = 0.45 was at 0.00 from 16/255)
    "fp": {"triple@0.2": [0, 0, 22, 121, 168, 240], "triple@0.45": [0, 0, 10, 78, 116, 160]},
    "fn": {"triple@0.2": [0, 2, 30, 180, 292, 294], "triple@0.45": [3, 15, 131, 286, 294, None]},
}
LOW_THETA_RUNS = ("fp", "fp_suite_eps8", "fp_eps1_2", "fn", "fn_eps32", "fn_suite", "fp_suite_eps4", "fn_suite_eps2")
LOW_THETA_BY_CLASS = {  # (goal, network, ε) → broken monkeys / penguins / aeroplanes, as the README quotes them
    ("fp", "triple@0.2", "4"): [17, 0, 5], ("fp", "triple@0.2", "8"): [90, 0, 31], ("fp", "triple@0.2", "32"): [100, 52, 88],
    ("fp", "triple@0.45", "8"): [75, 0, 3], ("fp", "triple@0.45", "32"): [99, 0, 61],
    ("fn", "triple@0.2", "8"): [95, 19, 66], ("fn", "triple@0.45", "4"): [69, 16, 46],
}


def test_the_shipped_comparator_at_the_lower_thresholds():
    """The README's θ = 0.2 and 0.45 figures for the shipped comparator: eight runs on the same 294 images as
    the θ = 0.7 suite, every one on the shipped weights, merged; the whole suite met false positives at
    4 and 8/255 and false negatives at 4 and 8/255 (and 2/255 at θ = 0.45); and the broken counts the
    README quotes."""
    shipped = checkpoints.recorded_shas(STAGES + AT_STAGES, ROOT)  # every stage, not only the comparator
    at_07 = experiments.load_run(ROOT / "results_robust_n100_cmp3_merged").robust
    for name in LOW_THETA_RUNS:
        robust = experiments.load_run(ROOT / f"results_robust_n100_cmp3_low_theta_{name}").robust
        assert robust["meta"]["checkpoints_sha256"] == shipped, name
        assert robust["indices"] == at_07["indices"], name
    merged = experiments.load_run(ROOT / "results_robust_n100_cmp3_low_theta_merged").robust
    assert merged["indices"] == at_07["indices"] and merged["eps_255"] == [1, 2, 4, 8, 16, 32]
    for goal, nets in LOW_THETA.items():
        for net, broken in nets.items():
            assert [c["broken"] for c in merged["table"][goal][net]] == broken, (goal, net)
    for net, fn_eps in (("triple@0.2", (4, 8)), ("triple@0.45", (2, 4, 8))):  # the README's bold cells
        _assert_suite_reached_every_quoted_cell(merged, fp_eps=(4, 8), fn_eps=fn_eps, net=net, exact=False)
    by_class = json.loads((ROOT / "results_robust_n100_cmp3_low_theta_merged" / "by_class.json").read_text())
    for (goal, net, eps), counts in LOW_THETA_BY_CLASS.items():
        assert [by_class[goal][net][eps][c] for c in ("monkey", "penguin", "aeroplane")] == counts, (goal, net, eps)


def test_figures_and_png_fallbacks(tmp_path):
    from PIL import Image

    from aimeye.figures import experiments as F

    run = tiny("all", tmp_path, figures=True)  # html only (png=False); no gallery drawing: no trimesh import
    assert (tmp_path / "fig4.html").exists() and (tmp_path / "robust.html").exists()
    F.pil_boxes(run.summary, "fp", tmp_path / "b.png")
    F.pil_robust(run.robust, tmp_path / "r.png")
    assert Image.open(tmp_path / "b.png").size[0] == F.WIDTH and Image.open(tmp_path / "r.png").size == (1200, 480)
    fig = F.box_figure(run.summary, "fp")
    names = {t.name for t in fig.data}
    assert "Direct CNN" in names and "triple@0.7" not in names and "clipped" not in fig.layout.title.text
    assert {t.marker.color for t in fig.data if t.name == "Direct CNN"} == {F.network_colour("direct")}
    rf = F.robust_figure(run.robust)
    assert rf.layout.xaxis.title.text.startswith("ε") and len(rf.data) == 2 * 5

    class Broken:
        layout = fig.layout

        def write_image(self, *a, **k):
            raise RuntimeError("no Chrome")

    how = F.write_png(Broken(), tmp_path / "c.png", lambda p: F.pil_boxes(run.summary, "fn", p))
    assert how.startswith("pil") and (tmp_path / "c.png").exists()
    # the folder's README says what drew each PNG
    from aimeye.experiments.report import readme

    text = readme(run, {"fig4.png": how, "fig4.html": "plotly"})
    assert f"PNG figures drawn by: `fig4.png` {how}" in text and "fig4.html" not in text.split("PNG figures")[1]


def test_fallback_axis_ticks_are_round_and_cover_the_range():
    from aimeye.figures.experiments import nice_ticks

    assert nice_ticks(1050) == [0, 200, 400, 600, 800, 1000]  # was 0, 262, 525, 788, 1.05e3
    assert nice_ticks(0.233) == [0, 0.05, 0.1, 0.15, 0.2]
    assert nice_ticks(1.0) == [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(0) == [0] and nice_ticks(float("nan")) == [0]


def test_cli_messages_instead_of_tracebacks(tmp_path, capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as e:
        cli.main(["experiment", "fig4", "--device", "cuda", "--checkpoints", str(tmp_path)])
    assert "error:" in str(e.value)
    monkeypatch.setattr(experiments.main, "DEFAULT_OUT", tmp_path)
    with pytest.raises(SystemExit) as e:
        cli.main(["experiment", "fig5", "--out", str(tmp_path / "nothing"), "--checkpoints", str(ROOT)])
    assert "not a results folder" in str(e.value) or "checkpoint" in str(e.value)


def test_default_suite_covers_every_network_and_extra_sources():
    from toys import BandClassifier, weak_triple

    from aimeye.experiments.robust import victims_for
    from aimeye.experiments.suite import default_suite

    models = toy_models()
    models.triple = weak_triple()
    victims = victims_for(models, {"direct_at": BandClassifier()})
    suite = default_suite(victims, steps=3, restarts=1)
    names = {s.name for s in suite}
    assert {"apgd-ce", "apgd-dlr", "apgd-t-dlr", "adaptive-score", "adaptive-patch", "transfer(direct)",
            "transfer(direct_at)"} <= names
    on = {(s.name, k, g) for s in suite for k, v in victims.items() for g in ("fp", "fn") if s.applies(k, v, g)}
    assert ("adaptive-patch", "triple@0.7", "fn") in on and ("adaptive-patch", "direct", "fp") not in on
    assert ("apgd-t-dlr", "direct_at", "fp") in on and ("apgd-t-dlr", "direct_at", "fn") not in on
    assert ("transfer(direct)", "direct", "fp") not in on and ("transfer(direct_at)", "direct", "fp") in on
    assert all(s.describe()["options"]["steps"] == 3 for s in suite)
    assert next(s for s in suite if s.name == "transfer(direct)").describe()["applies"] == {
        "goals": ["fp", "fn"], "networks": "all", "not_on": "direct"}
    # asking for transfer from a network that was not loaded says how to load it
    with pytest.raises(ValueError, match=r"unknown attack.*--extra direct-at"):
        default_suite(victims_for(models, {}), only=["transfer(direct_at)"])


def _robust(indices, eps, broken, sha="a", attacks=("pgd",)):
    """A hand-made robust.json: ``broken[goal][net][attack]`` = per ε, the broken scene indices."""
    return {"meta": {"checkpoints_sha256": {"direct": sha}, "commands": [f"run {sha}"], "wall_time_s": 1.0},
            "indices": indices, "eps_255": eps, "n_images": len(indices), "networks": ["direct", "triple@0.7"],
            "attacks": {a: {} for a in attacks}, "image_evaluations": 10, "broken": broken}


def test_merge_is_the_union_of_breaks_on_shared_images_at_every_eps(tmp_path):
    from aimeye.experiments.report import robust_lines
    from aimeye.experiments.robust import broken_by_class, merge_runs
    from aimeye.figures.experiments import pil_robust, robust_figure

    a = _robust([0, 1, 2, 3, 4], [4, 8, 16], {"fp": {"direct": {"apgd": [[0], [0, 1], [0, 1, 2]]},
                                                     "triple@0.7": {"apgd": [[], [], [3]]},
                                                     "direct_at": {"apgd": [[], [], []]}},
                                              "fn": {"direct": {"apgd": [[1], [1], [1, 2]]}}}, attacks=("apgd",))
    b = _robust([0, 1, 2, 3, 5], [8, 16], {"fp": {"direct": {"apgd-t": [[2], [2, 5]]},
                                                  "triple@0.7": {"apgd-t": [[0], [0, 3, 5]],
                                                                 "apgd": [[1], [1]]}}}, attacks=("apgd-t", "apgd"))
    m = merge_runs([a, b])
    assert m["indices"] == [0, 1, 2, 3] and m["eps_255"] == [4, 8, 16] and m["n_images"] == 4
    t = m["table"]
    assert [e["broken"] for e in t["fp"]["direct"]] == [1, 3, 3]  # {0}; {0,1} ∪ {2}; image 5 is not shared
    assert t["fp"]["direct"][1]["only_by"] == {"apgd": 2, "apgd-t": 1}
    assert set(t["fp"]["direct"][0]["by_attack"]) == {"apgd"}  # apgd-t first ran at 8/255: no count at 4
    assert [e["broken"] for e in t["fp"]["triple@0.7"]] == [0, 2, 3]  # {0} ∪ {1}; {3} ∪ {0, 3} ∪ {1}
    assert m["broken"]["fp"]["triple@0.7"]["apgd"] == [[], [1], [1, 3]]  # one attack's breaks united over runs
    assert [e["accuracy"] for e in t["fn"]["direct"]] == [0.75, 0.75, 0.5]  # a goal only one run attacked
    assert m["meta"]["commands"] == ["run a", "run a"] and len(m["meta"]["merged_from"]) == 2
    assert m["meta"]["goals"] == ["fp", "fn"]  # the merged run's goals, not the first run's
    assert m["sanity"]["monotone"] and t["fp"]["direct_at"][1]["accuracy"] == 1.0
    assert m["meta"]["gaps"] == {"fp": {"direct": {"eps_missing": {"apgd-t": [4]}},
                                        "triple@0.7": {"eps_missing": {"apgd-t": [4]}},
                                        "direct_at": {"never": ["apgd-t"]}}}  # run b left direct_at out
    lines = robust_lines(m)
    gap = [line for line in lines if line.startswith("Not every attack")]
    assert len(gap) == 1 and "Direct CNN, adversarially trained: not attacked with `apgd-t`" in gap[0]
    assert "`apgd-t` not run at ε = 4" in gap[0]
    assert "False negatives (attacks: `apgd`):" in lines  # the goal run b never attacked
    # per attack: breaks (only this attack's); "·" where it was not run (apgd-t at 4, apgd-t on direct_at)
    assert "| Direct CNN | `apgd` | 1 (1) | 2 (2) | 3 (2) |" in lines
    assert "| Direct CNN | `apgd-t` | · | 1 (1) | 1 (0) |" in lines
    assert "| Triple-staged, θ = 0.7 | `apgd` | 0 (0) | 1 (1) | 2 (1) |" in lines
    assert not any(line.startswith("| Direct CNN, adversarially trained | `apgd-t`") for line in lines)
    # a break at a smaller ε of another run counts at every larger ε
    c = _robust([0, 1, 2, 3], [4], {"fp": {"direct": {"apgd-t": [[3]]}}}, attacks=("apgd-t",))
    m2 = merge_runs([b, c])
    assert [e["broken"] for e in m2["table"]["fp"]["direct"]] == [1, 2, 2]
    assert "direct" not in m2["meta"]["gaps"].get("fp", {})  # apgd-t reached it at 4 (c), 8 and 16 (b)
    first = m2["table"]["fp"]["triple@0.7"][0]  # no attack reached the triple-staged network at 4: no figure
    assert first["not_run"] and first["accuracy"] is None and first["broken"] is None
    assert [e["broken"] for e in m2["table"]["fp"]["triple@0.7"][1:]] == [2, 3] and m2["sanity"]["monotone"]
    row = next(line for line in robust_lines(m2) if line.startswith("| Triple-staged, θ = 0.7"))
    assert row.split(" | ")[1] == "not run"
    trace = next(t for t in robust_figure(m2).data if t.name == "Triple-staged, θ = 0.7")
    assert list(trace.y) == [None, 0.5, 0.25]  # a gap in the line, not a point
    pil_robust(m2, tmp_path / "robust.png")
    assert (tmp_path / "robust.png").stat().st_size > 0
    by = broken_by_class(m2, {0: "monkey", 1: "penguin", 2: "monkey", 3: "aeroplane"})
    assert by["n"] == {"monkey": 2, "penguin": 1, "aeroplane": 1}
    assert by["fp"]["triple@0.7"] == {"4": None, "8": {"monkey": 1, "penguin": 1, "aeroplane": 0},
                                      "16": {"monkey": 1, "penguin": 1, "aeroplane": 1}}
    assert by["fp"]["direct"]["4"] == {"monkey": 0, "penguin": 0, "aeroplane": 1}  # run c's break of image 3
    with pytest.raises(ValueError, match="different checkpoints"):
        merge_runs([a, _robust([0], [8], {}, sha="b")])
    # a run that also recorded the adversarially trained stages merges with one that did not, and the
    # merge keeps every stage's sha256
    later = _robust([0], [8], {})
    later["meta"]["checkpoints_sha256"] = {**later["meta"]["checkpoints_sha256"], "comparator-at": "c"}
    assert merge_runs([a, later])["meta"]["checkpoints_sha256"] == {
        **a["meta"]["checkpoints_sha256"], "comparator-at": "c"}
    with pytest.raises(ValueError, match="share no image"):
        merge_runs([a, _robust([9], [8], {})])


def test_merge_names_no_gap_where_an_attack_is_not_aimed():
    from aimeye.experiments.robust import merge_runs
    from aimeye.experiments.suite import rule_of

    a = _robust([0, 1], [8], {"fn": {"direct": {"apgd-dlr": [[0]]}, "triple@0.7": {"apgd-dlr": [[]]}}},
                attacks=("apgd-dlr",))
    b = _robust([0, 1], [8], {"fn": {"triple@0.7": {"adaptive-patch": [[1]]}}}, attacks=("adaptive-patch",))
    assert merge_runs([a, b])["meta"]["gaps"] == {"fn": {"direct": {"never": ["adaptive-patch"]}}}  # rule unknown
    m = merge_runs([a, b], rule_of)  # the patch attack is aimed at triple-staged networks only
    assert m["meta"]["gaps"] == {} and m["attacks"]["adaptive-patch"]["applies"]["networks"] == "triple-staged"
    b["attacks"]["adaptive-patch"]["applies"] = {"goals": ["fp", "fn"], "networks": "triple-staged"}
    assert merge_runs([a, b])["meta"]["gaps"] == {}  # a run that recorded its rule needs no rule_of
    c = _robust([0, 1], [8], {"fn": {"triple@0.7": {"transfer(direct)": [[1]]}}}, attacks=("transfer(direct)",))
    assert merge_runs([a, c], rule_of)["meta"]["gaps"] == {}  # not aimed at its own source
    d = _robust([0, 1], [8], {"fn": {"triple@0.7": {"apgd-ce": [[1]]}}}, attacks=("apgd-ce",))
    assert merge_runs([a, d], rule_of)["meta"]["gaps"] == {"fn": {"direct": {"never": ["apgd-ce"]}}}  # a real gap
    assert rule_of("apgd-t-dlr") == {"goals": ["fp"], "networks": "all"} and rule_of("giraffe") is None


def test_merge_command_on_two_toy_runs(tmp_path, capsys):
    from toys import AttackSpec, pgd

    tiny("robust", tmp_path / "a")
    experiments.run("robust", 3, models=toy_models(), testset=toy_test_set(), out=tmp_path / "b", eps_255=(16, 64),
                    suite=[AttackSpec("pgd-few", pgd, {"steps": 2, "restarts": 1})], robust_goals=("fp",),
                    figures=False, png=False, progress=False, command="test b")
    b = experiments.load_run(tmp_path / "b")
    assert set(b.robust["table"]) == {"fp"} and b.robust["meta"]["goals"] == ["fp"]
    assert b.info.label == "3 images/class, robustness (false positives) on 8 images at θ = 0.2, 0.45, 0.7"
    cli.main(["experiment", "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m"),
              "--no-png"])
    m = experiments.load_run(tmp_path / "m").robust
    assert m["eps_255"] == [4, 16, 64] and set(m["attacks"]) == {"pgd", "pgd-few"}
    assert m["meta"]["commands"][-1].startswith("python -m aimeye experiment merge")
    readme = (tmp_path / "m" / "README.md").read_text()
    assert "`pgd`, `pgd-few`" in readme and "`pgd-few` not run at ε = 4" in readme  # run b skipped ε = 4
    assert "False negatives (attacks: `pgd`):" in readme  # run b attacked false positives only
    assert (tmp_path / "m" / "robust.html").exists() and "CDN, so they need a connection" in readme
    assert not any((tmp_path / "b").glob("*.html")) and "CDN" not in (tmp_path / "b" / "README.md").read_text()
    c = experiments.run("robust", 3, models=toy_models(), testset=toy_test_set(), out=tmp_path / "c", eps_255=(16,),
                        suite=[AttackSpec("pgd-few", pgd, {"steps": 2, "restarts": 1})], robust_goals=("fp",),
                        networks=["triple@0.7"], figures=False, png=False, progress=False, command="test c")
    assert list(c.robust["table"]["fp"]) == ["triple@0.7"] and c.robust["meta"]["filter"] == b.robust["meta"]["filter"]
    m3 = experiments.merge([tmp_path / "a", tmp_path / "c"], tmp_path / "m3", png=False).robust
    assert m3["meta"]["gaps"]["fp"]["direct"] == {"never": ["pgd-few"]}  # run c left the direct CNN out
    with pytest.raises(ValueError, match="unknown network"):
        experiments.run("robust", 3, models=toy_models(), testset=toy_test_set(), out=tmp_path / "d",
                        networks=["giraffe"], figures=False, png=False, progress=False)
    with pytest.raises(SystemExit) as e:
        cli.main(["experiment", "merge", str(tmp_path / "a"), str(tmp_path / "nothing"), "--out", str(tmp_path / "x")])
    assert "holds no robust.json" in str(e.value)


def test_skip_broken_attacks_only_what_stands_and_merges_only_with_its_source(tmp_path):
    """``skip_broken``: a later run does not attack again what an earlier run broke at the same ε; the
    skipped images count as broken ("earlier runs"), and a merge must include the runs it skipped from."""
    from toys import AttackSpec, pgd

    from aimeye.experiments.schema import EARLIER

    def suite(log):
        def spy(victim, x, y, goal, eps, **kw):
            log.append(len(x))
            return pgd(victim, x, y, goal, eps, **kw)
        return [AttackSpec("pgd-more", spy, {"steps": 4, "restarts": 1})]

    a = tiny("robust", tmp_path / "a").robust
    full, skipping = [], []
    kw = {"models": toy_models(), "testset": toy_test_set(), "eps_255": (4, 16, 64), "robust_goals": ("fp",),
              "figures": False, "png": False, "progress": False}
    experiments.run("robust", 3, out=tmp_path / "full", suite=suite(full), **kw)
    s = experiments.run("robust", 3, out=tmp_path / "s", suite=suite(skipping), skip_broken=tmp_path / "a",
                        **kw).robust
    assert sum(skipping) < sum(full)  # fewer images attacked
    assert s["meta"]["skip_broken"] == str(tmp_path / "a") and set(s["skipped"]) == {"fp"}
    for net, entries in s["table"]["fp"].items():
        earlier = [set().union(*(set(v[j]) for v in a["broken"]["fp"][net].values())) for j in range(3)]
        assert [set(li) for li in s["skipped"]["fp"][net]] == earlier
        assert all(e["broken"] >= len(earlier[j]) for j, e in enumerate(entries))  # the worst case over both
        assert all(e["by_attack"].get(EARLIER, 0) == len(earlier[j]) for j, e in enumerate(entries))
    readme = (tmp_path / "s" / "README.md").read_text()
    assert f"`{EARLIER}`" in readme and "did not attack again" in readme
    m = experiments.merge([tmp_path / "a", tmp_path / "s"], tmp_path / "m", png=False).robust
    assert EARLIER not in m["attacks"] and "skipped" not in m
    assert [e["broken"] for e in m["table"]["fp"]["direct"]] == [e["broken"] for e in s["table"]["fp"]["direct"]]
    from aimeye.experiments.robust import merge_runs

    other = {k: v for k, v in s.items() if k != "skipped"} | {"broken": {"fp": {"direct": {"x": [[], [], []]}}}}
    with pytest.raises(ValueError, match="skipped"):  # without the run it skipped from
        merge_runs([s, other])


def test_classes_command_counts_the_shipped_24_image_run_per_class(tmp_path, capsys):
    """`experiment classes` on a copy of the shipped whole-suite run (8 images per class): the labels come
    from rendering its test set; the README's "all 8 monkeys and 5 of 8 aeroplanes at 32/255"."""
    shutil.copy(Path(__file__).parents[1] / "checkpoints/results_robust/robust.json", tmp_path / "robust.json")
    cli.main(["experiment", "classes", str(tmp_path)])
    out = capsys.readouterr().out
    assert "images per class: monkey 8, penguin 8, aeroplane 8" in out
    by = json.loads((tmp_path / "by_class.json").read_text())
    assert by["fp"]["triple@0.7"]["32"] == {"monkey": 8, "penguin": 0, "aeroplane": 5}
    assert by["fp"]["direct"]["32"] == {"monkey": 8, "penguin": 8, "aeroplane": 8}  # the direct CNN falls entirely
    with pytest.raises(SystemExit) as e:
        cli.main(["experiment", "classes", str(tmp_path / "nothing")])
    assert "holds no robust.json" in str(e.value)


def test_other_weights_names_the_stages_a_result_was_not_made_with(fake_root):
    from aimeye import checkpoints

    shipped = {s: checkpoints.read_sidecar(s, fake_root)["sha256"] for s in ("comparator", "direct")}
    assert experiments.other_weights(shipped, fake_root) == {}
    made = shipped | {"comparator": "0" * 64, "no-such-stage": "1" * 64}
    assert experiments.other_weights(made, fake_root) == {"comparator": ("0" * 64, shipped["comparator"]),
                                                          "no-such-stage": ("1" * 64, None)}
    assert experiments.other_weights({}, fake_root) == {}  # nothing recorded: nothing to warn about


def test_results_record_the_weights_of_every_network_loaded():
    from aimeye.checkpoints import load_models, read_sidecar
    from aimeye.experiments.main import model_shas
    from aimeye.paper import AT_STAGES, STAGES

    shas = model_shas(load_models())  # the shipped checkpoints, adversarially trained stages included
    assert set(shas) == {*STAGES, *AT_STAGES}
    assert all(shas[s] == read_sidecar(s)["sha256"] for s in shas)
