"""The app's library half (aimeye.app, aimeye.figures.app): URL state, inputs, analysis, words, tables, charts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from toys import toy_models

from aimeye import checkpoints, nets
from aimeye.app import env, state
from aimeye.app.analysis import amplify, analyse, explain_image, rotation_table, weighted_similarity
from aimeye.app.inputs import (
    SOURCES,
    TEST_SEED,
    TEST_SIZE,
    InputImage,
    held_out_index,
    held_out_scene,
    image_from_key,
    is_blank,
    make_scene,
)
from aimeye.app.session import AttackSession, new_config
from aimeye.app.tables import attack_rows, filter_rows, race_rows, success_rows, sweep_at, table1_rows
from aimeye.app.wording import direct_verdict_text, drawing_heading, goal_label, network_title, verdict_text
from aimeye.experiments import format_median, list_runs, load_run
from aimeye.figures import app as F
from aimeye.paper import CLASSES, NETWORK_LABELS, PAPER_TABLE1
from aimeye.scenes import generate

REPO = Path(__file__).resolve().parent.parent
INTERNAL = ("direct_param", "triple@", "fp", "fn")  # result keys a user must never read


@pytest.fixture(scope="module")
def models(fake_root):
    return checkpoints.load_models(fake_root)


# ------------------------------------------------------------------ URL state


def test_query_round_trip_for_every_page():
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = state.ViewState(source=str(rng.choice(["test", "scene"])), index=int(rng.integers(0, TEST_SIZE)),
                            cls=int(rng.integers(4)), rot=tuple(float(v) for v in np.round(rng.uniform(-.5, .5, 3), 2)),
                            bg=str(rng.choice(["photos", "deadleaves"])), seed=int(rng.integers(0, 2**31 - 1)),
                            theta=float(np.round(rng.uniform(0, 1), 2)), network=str(rng.choice(nets_())),
                            race=bool(rng.integers(2)), goal=int(rng.integers(4)), attack="pgd",
                            eps=int(rng.integers(1, 65)), cap=int(rng.integers(10, 2001)))
        q = state.to_query(s, "attack")
        assert all(isinstance(v, str) for v in q.values())
        back, notices = state.parse_query(q)
        assert not notices
        keep = {"index"} if s.source == "test" else {"cls", "rot", "bg", "seed"}
        d = state.ViewState()
        assert back == replace(s, **{k: getattr(d, k) for k in ("index", "cls", "rot", "bg", "seed") if k not in keep})
        # as st.query_params hands repeated keys back: lists, the last one wins
        assert state.parse_query({k: ["junk", v] for k, v in q.items()})[0] == back


def nets_():
    return list(NETWORK_LABELS)[:3]


def test_attack_urls_restore_the_whole_setup():
    s = state.ViewState(race=False, network="direct_param", goal=3, attack="pgd", eps=4, cap=300, theta=0.45)
    q = state.to_query(s, "attack")
    assert q == {"source": "test", "index": "1", "theta": "0.45", "race": "0", "network": "direct_param",
                      "attack": "pgd", "cap": "300", "goal": "none", "eps": "4"}
    assert state.parse_query(q)[0] == s
    assert "network" not in state.to_query(s, "inspect") and set(state.to_query(s, "theta")) == {"theta"}


def test_invalid_link_values_give_a_notice_each():
    bad = {"theta": "abc", "class": "giraffe", "index": "123456", "source": "ftp", "rot": "1,2", "seed": "-3",
           "network": "resnet", "race": "maybe", "goal": "cat", "attack": "cw", "eps": "0", "cap": "5",
           "unknown": "x"}
    s, notices = state.parse_query(bad)
    assert s == state.ViewState()
    assert len(notices) == len(bad) - 1  # unknown keys are ignored, every bad value is named
    assert any("theta=abc" in n and "0 to 1" in n for n in notices)
    assert any("class=giraffe" in n for n in notices) and any("index=123456" in n for n in notices)
    for theta in ("inf", "nan", "", "1e400", "1.5", "-0.1"):
        assert state.parse_query({"theta": theta})[1], theta


def test_query_values_are_normalised():
    s, notices = state.parse_query({"class": "AEROPLANE", "rot": " 0.9 , -2, 0.123", "theta": "0.333",
                                    "network": "direct-param", "source": "SCENE", "goal": "None", "race": "off"})
    assert not notices
    assert s.cls == 2 and s.rot == (0.5, -0.5, 0.12) and s.theta == 0.33 and s.goal == 3 and s.race is False
    assert s.network == "direct_param" and s.source == "scene"
    assert state.with_changes(state.ViewState(), theta=0.333333).theta == 0.33


def test_default_goals():
    assert [state.default_goal(c) for c in range(4)] == [1, 2, 0, 0]
    s = state.ViewState(goal=2)
    assert state.goal_for(s, 1) == 2 and state.goal_for(s, 2) == 0  # the goal cannot be the image's own class


# ----------------------------------------------------------------------- inputs


def test_make_scene_is_a_pure_function_of_its_arguments():
    a = make_scene(1, (0.1, -0.2, 0.3), "photos", 5)
    assert np.array_equal(a.image, make_scene(1, (0.1, -0.2, 0.3), "photos", 5).image)
    assert a.image.shape == (64, 64) and a.image.dtype == np.float32
    assert np.allclose(a.image * 255, np.round(a.image * 255), atol=1e-4)
    assert a.label == 1 and np.allclose(a.rotation, (0.1, -0.2, 0.3)) and "penguin" in a.caption
    assert not np.array_equal(a.image, make_scene(1, (0.1, -0.2, 0.3), "photos", 6).image)
    assert not np.array_equal(a.image, make_scene(1, (0.1, -0.2, 0.3), "deadleaves", 5).image)
    none = make_scene(3, (0.4, 0.4, 0.4), "deadleaves", 1)
    assert none.rotation is None and none.alpha.max() == 0.0
    assert np.allclose(make_scene(2, (3.0, -3.0, 0.0)).rotation, (0.5, -0.5, 0.0))
    with pytest.raises(ValueError):
        make_scene(4)
    with pytest.raises(ValueError):
        make_scene(0, bg="imagenet")


def test_held_out_scene_matches_the_evaluated_test_set():
    for i in (0, 1, 6, TEST_SIZE - 1):
        s = held_out_scene(i)
        ref = generate([i], "test", TEST_SEED)
        assert s.label == i % 4 == int(ref.labels[0])
        assert np.array_equal(s.image, ref.images[0, 0].numpy())
    assert held_out_index(1) == 1 and held_out_index(2, 3) == 14
    with pytest.raises(ValueError):
        held_out_scene(TEST_SIZE)


def test_a_drawing_becomes_a_64x64_grey_image():
    canvas = np.full((256, 256, 4), (128, 128, 128, 255), np.uint8)
    assert is_blank(InputImage.from_drawing(canvas))
    canvas[64:192, 120:136] = (0, 0, 0, 255)  # a black bar, 4 network pixels wide
    img = InputImage.from_drawing(canvas)
    assert img.image.shape == (64, 64) and img.label is None and not is_blank(img)
    assert img.image[16:48, 31:33].max() < 0.05 and abs(float(img.image[5, 5]) - 128 / 255) < 1e-6
    assert np.array_equal(image_from_key(img.key), img.image)
    clear = np.zeros((256, 256, 4), np.uint8)  # transparent: the mid-grey matte
    assert abs(float(InputImage.from_drawing(clear).image.mean()) - 128 / 255) < 1e-6
    with pytest.raises(ValueError):
        InputImage.from_drawing(np.zeros((4, 4), np.uint8))
    assert "draw" in SOURCES


# --------------------------------------------------------------------- analysis


def test_analyse_returns_every_view_and_leaves_models_alone(models):
    before = {k: v.clone() for k, v in models.triple.state_dict().items()}
    scene = held_out_scene(1)
    an = analyse(models, scene.x)
    assert an.scores.shape == (3,) and an.rotation.shape == (3, 3)
    assert an.projection.shape == an.alpha.shape == an.rerender.shape == (3, 64, 64)
    assert an.similarity.shape == an.pooled_alpha.shape == (3, 55, 55)
    assert np.isclose(an.direct_probs.sum(), 1, atol=1e-5) and np.isclose(an.direct_param_probs.sum(), 1, atol=1e-5)
    with torch.no_grad():
        ref = models.triple(scene.x)[0].numpy()
    assert np.allclose(an.scores, ref, atol=1e-6)
    for theta in (0.0, 0.3, 0.7, 1.0):
        assert an.verdict(theta) == int(nets.verdict_from_scores(torch.from_numpy(ref)[None], theta)[0])
    after = models.triple.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in models.triple.parameters())
    rows = rotation_table(an, scene.rotation, scene.label)
    assert len(rows) == 3 and "true rx (rad)" in rows[1] and "true rx (rad)" not in rows[0]
    ex = explain_image(models, scene.image)
    assert set(ex) == {0, 1, 2} and np.allclose(ex[1]["projection"], an.projection[1], atol=1e-6)
    w = weighted_similarity(ex[1])
    assert w.shape == (55, 55) and 0 <= w.min() and w.max() <= 1 + 1e-6


def test_words():
    assert verdict_text([0.8, 0.1, 0.2], 0.7).startswith("monkey: score 0.800")
    t = verdict_text([0.5, 0.6, 0.2], 0.7)
    assert t.startswith("none") and "penguin 0.600" in t
    assert direct_verdict_text([0.1, 0.1, 0.1, 0.7]) == "none: probability 0.700"
    assert goal_label(3) == "none (false negative)" and goal_label(0) == "monkey (false positive)"
    assert network_title("triple", 0.7) == "Triple-staged (θ = 0.70)" and network_title("direct") == "Direct CNN"
    assert drawing_heading("triple", 3).startswith("**Triple-staged: what it draws at step 3")
    assert drawing_heading("triple_at", 0).startswith("**Triple-staged, adversarially trained stages: what it draws at step 0")


def test_amplify():
    assert np.all(amplify(np.zeros((64, 64))) == 0.5)
    p = np.zeros((64, 64), np.float32)
    p[0, 0], p[1, 1] = 2 / 255, -4 / 255
    a = amplify(torch.from_numpy(p))
    assert a.min() == 0.0 and a[0, 0] == 0.75 and a[5, 5] == 0.5


# ----------------------------------------------------------------------- tables


def test_race_rows_before_any_step_have_no_empty_cells():
    toy = toy_models()
    img = np.full((64, 64), 0.2, np.float32)
    img[:21] = 0.8
    s = AttackSession(toy, img, new_config(img, 0, theta=0.7, goal=3, cap=20))
    rows = race_rows(s)
    assert [r["status"] for r in rows] == ["not started", "not started"]
    cells = [str(v) for r in rows for v in r.values()]
    assert not any(c in ("None", "running", "nan", "") for c in cells), cells
    assert rows[1]["network"] == "Triple-staged (θ = 0.70)" and rows[0]["steps to flip"] == "–"
    s.step(100)
    rows = race_rows(s)
    assert rows[1]["status"] == "not flipped within the cap (20)" and rows[1]["steps taken"] == "20"


@pytest.fixture(scope="module")
def committed_runs():
    infos = list_runs(REPO / "checkpoints")
    if not infos:
        pytest.skip("no committed results folders")
    return {i.name: load_run(i.path) for i in infos}


def test_tables_from_the_committed_results(committed_runs):
    for run in committed_runs.values():
        if run.summary is None:
            continue
        rows = success_rows(run.summary, format_median)
        assert rows and all(isinstance(v, str) and v for r in rows for v in r.values())
        assert not any(k in r["network"] for r in rows for k in INTERNAL)
        for r in rows:
            steps = run.summary["fp" if r["goal"] == "false positive" else "fn"]
            cens = [v["steps"] for v in steps.values() if not v["steps"].get("median_exact", True)]
            if r["median steps"].startswith("≥"):
                assert cens, r
        ar = attack_rows(run.summary, run.info.cap)
        assert {r["network"] for r in ar} <= {"direct", "direct_param", "triple"}
        assert sorted({r["theta"] for r in ar if r["network"] == "triple"}) == [0.2, 0.45, 0.7]
        assert all(r["cap"] == run.info.cap for r in ar)
        assert all(not any(k in r["network"] for k in INTERNAL) for r in filter_rows(run.summary))
    capped = [r for run in committed_runs.values() if run.summary and run.info.cap == 100
              for r in success_rows(run.summary, format_median)]
    if capped:
        assert any(r["median steps"] == "≥ 100" for r in capped), "censored medians read ≥ cap"


def test_table1_and_sweep():
    rows = table1_rows({"errors": {"direct": 0.001, "triple@0.7": 0.05}, "paper_errors": PAPER_TABLE1})
    assert rows[0] == {"network": "Direct CNN", "ours (error %)": "0.10", "paper (error %)": "0.01"}
    assert {r["network"] for r in rows} >= {"Triple-staged, θ = 0.7", "Direct CNN + rotation head"}
    assert next(r for r in rows if r["network"] == "Direct CNN + rotation head")["ours (error %)"] == "–"
    sweep = [{"theta": t} for t in (0.0, 0.5, 1.0)]
    assert sweep_at(sweep, 0.4)["theta"] == 0.5 and sweep_at([], 0.4) is None


# ----------------------------------------------------------------------- charts


def _sweep():
    return [{"theta": round(t, 2), "error": 0.1 * t, "rejection": t / 2, "confusion": (np.eye(4, dtype=int) * 9).tolist()}
            for t in np.linspace(0, 1, 11)]


def test_attack_figure_marks_flips_and_uses_the_network_colours():
    class It:
        def __init__(self, k):
            self.step, self.distortion, self.scores = k, k / 255, [0.2, 0.9 - k / 20, 0.1 + k / 20]

    class Flip:
        step, distortion = 3, 3 / 255

    hist = {"direct": [It(k) for k in range(4)], "triple": [It(k) for k in range(9)]}
    fig = F.attack_figure(hist, 0.7, {"direct": Flip()}, shown=2)
    lines = {t.name: t for t in fig.data if t.mode == "lines"}
    assert lines["Direct CNN"].line.color == F.network_colour("direct")
    assert lines["Triple-staged"].line.color == F.network_colour("triple")
    assert set(lines) >= {"monkey", "penguin", "aeroplane"}
    stars = [t for t in fig.data if t.mode == "markers+text"]
    assert len(stars) == 1 and stars[0].x == (3,) and stars[0].marker.symbol == "star"
    colours = {F.network_colour(n) for n in ("direct", "triple")}
    assert not colours & {F.CLASS_COLOURS[c] for c in CLASSES}, "a class never wears a network's colour"
    shapes = [s for s in fig.layout.shapes if s.x0 == 2]
    assert len(shapes) == 2, "the step on screen is marked on both panels"
    assert {fig.layout.xaxis.title.text, fig.layout.yaxis.title.text} == {"step", "RMS change (0–1)"}
    fig.to_json()


def test_inspect_figures_have_labelled_axes(models):
    an = analyse(models, held_out_scene(2).x)
    for fig in (F.similarity_figure(an.similarity[0], an.pooled_alpha[0]), F.scores_theta_figure(an.scores, 0.5),
                F.probabilities_figure(an.direct_probs, an.direct_param_probs)):
        assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text and fig.layout.title.text
        fig.to_json()
    probs = F.probabilities_figure(an.direct_probs, an.direct_param_probs)
    assert [t.name for t in probs.data] == ["Direct CNN", "Direct CNN + rotation head"]
    assert [t.marker.color for t in probs.data] == [F.network_colour("direct"), F.network_colour("direct_param")]


def test_theta_explorer_links_every_view_to_one_selection(committed_runs):
    run = next(r for r in committed_runs.values() if r.summary)
    chart = F.theta_explorer_chart(_sweep(), attack_rows(run.summary, run.info.cap), 0.42)
    spec = chart.to_dict()
    text = json.dumps(spec)
    params = [p for p in spec.get("params", []) if p["name"] == "pick"]
    assert len(params) == 1 and params[0]["value"] == [{"theta": 0.4}], "starts at the sweep's nearest θ"
    assert text.count('"filter": {"param": "pick"}') >= 4, "confusion + every panel's cursor follow the pick"
    shown = [v for k, v in _items(spec) if k in ("title", "text") and isinstance(v, str)]
    assert shown and not [t for t in shown if any(w in t for w in ("triple@", "direct_param", "_"))], shown
    names = {r["name"] for rows in spec["datasets"].values() for r in rows if "name" in r}
    assert names == {"Direct CNN", "Direct CNN + rotation head", "Triple-staged"}
    assert "Direct CNN" in text and "Triple-staged" in text
    assert F.theta_explorer_chart(_sweep(), [], 0.7).to_dict()  # without attack results: the top row only


def _items(obj):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v
            yield from _items(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _items(v)


def test_live_figure_and_pipeline():
    rows = [{"key": "direct", "network": "Direct CNN", "steps": 3, "distortion": 0.01, "succeeded": True},
            {"key": "triple@0.7", "network": "Triple-staged, θ = 0.7", "steps": 60, "distortion": 0.1,
             "succeeded": False}]
    fig = F.live_figure(rows, 60)
    assert [t.marker.symbol for t in fig.data[2:4]] == [("circle-open",), ("circle-open",)]
    dot = F.pipeline_dot(0.45, "penguin")
    assert dot.startswith("digraph") and "θ = 0.45" in dot and "penguin" in dot


# ---------------------------------------------------------------- environment


def test_checkpoint_dir_and_messages(monkeypatch, tmp_path):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(tmp_path))
    assert env.checkpoint_dir() == tmp_path.resolve()
    assert env.load_metrics() is None
    with pytest.raises(checkpoints.CheckpointError) as e:
        env.load_models()
    assert env.TRAIN_COMMAND in env.checkpoint_message(e.value)
    monkeypatch.delenv("AIMEYE_CHECKPOINTS")
    assert env.checkpoint_dir() == checkpoints.DEFAULT_DIR


def test_no_module_is_over_400_lines():
    files = [*(REPO / "aimeye" / "app").glob("*.py"), REPO / "aimeye" / "figures" / "app.py",
             REPO / "aimeye" / "attacks" / "stepper.py", *(REPO / "views").glob("*.py"), REPO / "app.py"]
    long = {f.name: n for f in files if (n := len(f.read_text().splitlines())) > 400}
    assert not long, long


def test_long_attacks_are_thinned_for_drawing():
    class It:
        def __init__(self, k):
            self.step, self.distortion, self.scores = k, k / 255, [0.1, 0.2, 0.3]

    fig = F.attack_figure({"triple": [It(k) for k in range(2001)]}, 0.7)
    line = next(t for t in fig.data if t.name == "Triple-staged")
    assert len(line.x) == 400 and line.x[0] == 0 and line.x[-1] == 2000
