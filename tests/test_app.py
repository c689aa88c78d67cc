"""Every page of the Streamlit app, driven headless with streamlit.testing.v1.AppTest.

Page rendering uses untrained networks written as real checkpoints (``fake_root``). The
attack page's state transitions use the hand-computable toy networks (tests/toys.py), so
that each test checks that the widgets, the attack session and the pictures agree.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from streamlit.testing.v1 import AppTest
from toys import band_image, toy_models

from aimeye.app import env as app_env

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
PAGES = ("views/home.py", "views/inspect.py", "views/attack.py", "views/theta.py", "views/experiments.py")
TIMEOUT = 60


@pytest.fixture(scope="module", autouse=True)
def keep_torch_threads():
    """app.py sets one torch thread for the process; give the other test modules theirs back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def env(monkeypatch, fake_root):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(fake_root))
    return fake_root


@pytest.fixture
def toys(monkeypatch, tmp_path_factory):
    """The toy networks behind the app (the models cache is keyed by this folder)."""
    monkeypatch.setattr(app_env, "load_models", lambda root=None: toy_models())
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(tmp_path_factory.getbasetemp() / "toys"))


@pytest.fixture(scope="module")
def results_root(tmp_path_factory, fake_root):
    """Fake checkpoints beside the committed metrics.json and results folders."""
    root = tmp_path_factory.mktemp("ckpt_results")
    for f in fake_root.iterdir():
        (root / f.name).symlink_to(f)
    shipped = REPO / "checkpoints"
    for f in (shipped / "metrics.json", *(p for p in shipped.glob("results*") if p.is_dir())):
        if f.exists():
            (root / f.name).symlink_to(f)
    return root


def app_at(page: str | None = None, query: dict | None = None) -> AppTest:
    """The app opened at ``page`` with ``query`` in the URL, as a deep link would."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    if page:
        at.switch_page(page)
    return at.run()


def no_exception(at: AppTest):
    assert not at.exception, [e.value for e in at.exception]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def captions(at: AppTest) -> list[str]:
    return [c for i in at.image for c in i.captions]


def png(im: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


# ----------------------------------------------------------------------------- pages


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(env, page):
    at = app_at(page)
    no_exception(at)
    assert not at.error, texts(at.error)
    assert at.title or at.markdown


def test_home_has_the_diagram_a_live_verdict_and_one_click_to_draw(toys):
    at = app_at()
    no_exception(at)
    assert len(at.get("page_link")) == 4 and at.get("graphviz_chart")
    assert any("Triple-staged" in v for v in texts(at.success) + texts(at.warning))
    assert any("test scene #1: penguin" in c for c in captions(at))
    assert any("Draw your own" in b.label for b in at.button)


def test_inspect_defaults_and_url(toys):
    at = app_at("views/inspect.py")
    no_exception(at)
    assert at.sidebar.radio(key="insp_source").value == "test"
    assert at.sidebar.number_input(key="insp_index").value == 1
    assert len(at.get("plotly_chart")) == 2 + 3  # probabilities, scores vs θ, three similarity maps
    q = at.query_params
    assert (q["source"], q["index"], q["theta"]) == ("test", "1", "0.7") and "network" not in q


def test_inspect_generated_scene_and_theta(toys):
    at = app_at("views/inspect.py")
    at.sidebar.radio(key="insp_source").set_value("scene").run()
    at.sidebar.selectbox(key="insp_cls").set_value(2)
    at.sidebar.slider(key="insp_rx").set_value(0.3)
    at.sidebar.radio(key="insp_bg").set_value("deadleaves")
    at.sidebar.number_input(key="insp_seed").set_value(7)
    at.sidebar.slider(key="insp_theta").set_value(0.2)
    at.run()
    no_exception(at)
    q = at.query_params
    assert q["source"] == "scene" and q["class"] == "aeroplane" and q["rot"].startswith("0.3,")
    assert q["bg"] == "deadleaves" and q["seed"] == "7" and q["theta"] == "0.2" and "index" not in q
    assert any("θ = 0.20" in v for v in texts(at.success) + texts(at.warning))


def test_state_comes_from_the_url(toys):
    at = app_at("views/inspect.py", {"source": "scene", "class": "monkey", "rot": "0.1,-0.2,0.25", "theta": "0.45",
                                     "seed": "3", "bg": "deadleaves"})
    no_exception(at)
    assert at.sidebar.radio(key="insp_source").value == "scene"
    assert at.sidebar.selectbox(key="insp_cls").value == 0
    assert [at.sidebar.slider(key=f"insp_r{a}").value for a in "xyz"] == [0.1, -0.2, 0.25]
    assert at.sidebar.slider(key="insp_theta").value == 0.45
    assert not at.warning


def test_invalid_url_values_show_a_notice(toys):
    at = app_at("views/inspect.py", {"theta": "abc", "class": "giraffe", "index": "123456"})
    no_exception(at)
    notes = [w for w in texts(at.main.warning) if w.startswith("Ignored")]
    assert len(notes) == 3 and any("theta=abc" in n for n in notes) and any("index=123456" in n for n in notes)
    assert at.sidebar.slider(key="insp_theta").value == 0.7 and at.sidebar.number_input(key="insp_index").value == 1


def _upload(at: AppTest, prefix: str, name: str, data: bytes, mime="image/png"):
    at.sidebar.radio(key=f"{prefix}_source").set_value("upload").run()
    at.sidebar.file_uploader(key=f"{prefix}_upload").upload(name, data, mime).run()


def test_inspect_upload(toys):
    at = app_at("views/inspect.py")
    at.sidebar.radio(key="insp_source").set_value("upload").run()
    assert any("Upload an image" in i for i in texts(at.main.info)), "the main area asks for a file"
    rgba = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 160, 4), dtype=np.uint8), "RGBA")
    at.sidebar.file_uploader(key="insp_upload").upload("photo.png", png(rgba), "image/png").run()
    no_exception(at)
    assert not at.error, texts(at.error)
    assert any("upload “photo.png”" in c for c in captions(at))
    assert any("centre" in w for w in texts(at.warning))
    assert "PNG, JPEG, WebP, BMP, GIF or TIFF" in at.sidebar.file_uploader(key="insp_upload").proto.label


@pytest.mark.parametrize("name,data,words", [
    ("empty.png", b"", "empty"), ("notes.png", b"definitely not an image", "not an image"),
    ("dot.png", png(Image.new("L", (1, 1), 0)), "1×1")], ids=["empty", "text", "1x1"])
def test_upload_errors_show_in_the_main_area(toys, name, data, words):
    at = app_at("views/inspect.py")
    _upload(at, "insp", name, data)
    no_exception(at)
    errors = texts(at.main.error)
    assert errors and words in errors[0] and not at.sidebar.error, errors
    if words != "1×1":
        assert "PNG, JPEG, WebP, BMP, GIF or TIFF" in errors[0]
    at.sidebar.file_uploader(key="insp_upload").set_value(
        ("ok.jpg", png(Image.new("RGB", (80, 80), "red"), "JPEG"), "image/jpeg")).run()
    no_exception(at)
    assert not at.error and len(at.get("plotly_chart")) == 5


def test_missing_checkpoints_give_a_friendly_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(tmp_path))
    at = app_at()
    no_exception(at)
    assert any("python -m aimeye train" in e for e in texts(at.error))
    for page in ("views/inspect.py", "views/attack.py"):
        at.switch_page(page).run()
        no_exception(at)
        assert any("python -m aimeye train" in e for e in texts(at.error)), page


# ------------------------------------------------------------------- the attack page


def session(at: AppTest):
    return at.session_state["attack_session"]


def shown_steps(at: AppTest) -> list[int]:
    """The step of every adversarial picture on the page."""
    return [int(m.group(1)) for c in captions(at) if (m := re.match(r"adversarial image, step (\d+)", c))]


def box_steps(at: AppTest) -> list[int]:
    """The step named in every verdict box."""
    boxes = texts(at.success) + texts(at.info) + texts(at.error)
    return [int(m.group(1)) for b in boxes if (m := re.search(r"step (\d+) · distortion", b))]


def agree(at: AppTest):
    """Widgets, session and pictures show one state."""
    no_exception(at)
    s = session(at)
    c = s.config
    sb = at.sidebar
    assert sb.slider(key="atk_theta").value == c.theta
    assert sb.selectbox(key="atk_goal").value == c.goal
    assert sb.radio(key="atk_attack").value == c.attack
    assert sb.number_input(key="atk_cap").value == c.cap
    assert sb.toggle(key="atk_race").value == c.race
    if c.attack == "pgd":
        assert sb.slider(key="atk_eps").value == c.eps
    expected = [min(s.shown_step, len(r.history) - 1) for r in s.runs.values()]
    assert shown_steps(at) == expected and box_steps(at) == expected
    latest = s.latest_step
    if latest:
        assert at.slider(key=f"atk_scrub_{latest}").value == s.shown_step
    q = at.query_params
    assert q["theta"] == format(c.theta, "g") and q["cap"] == str(c.cap) and q["attack"] == c.attack


def test_attack_defaults_race_a_penguin(toys):
    at = app_at("views/attack.py")
    agree(at)
    s = session(at)
    assert s.config.networks == ("direct", "triple") and s.config.goal == 2 and s.config.theta == 0.7
    assert [r["status"] for r in at.table[0].value.to_dict("records")] == ["not started"] * 2
    table = at.table[0].value.astype(str).to_numpy().ravel().tolist()
    assert not {"None", "running", "nan"} & set(table), table
    assert len(at.get("download_button")) == 4


def test_desync_case_settings_survive_a_switch_to_upload(toys):
    at = app_at("views/attack.py")
    at.sidebar.selectbox(key="atk_goal").set_value(3).run()
    at.sidebar.radio(key="atk_attack").set_value("pgd").run()
    at.sidebar.slider(key="atk_eps").set_value(4).run()
    at.sidebar.number_input(key="atk_cap").set_value(300).run()
    agree(at)
    at.sidebar.radio(key="atk_source").set_value("upload").run()
    no_exception(at)
    assert any("Upload an image" in i for i in texts(at.main.info))
    sb = at.sidebar
    assert (sb.selectbox(key="atk_goal").value, sb.radio(key="atk_attack").value, sb.slider(key="atk_eps").value,
            sb.number_input(key="atk_cap").value) == (3, "pgd", 4, 300)
    upload = (band_image(0)[0].numpy() * 255).astype(np.uint8)  # the toy direct network calls it monkey
    at.sidebar.file_uploader(key="atk_upload").upload("band.png", png(Image.fromarray(upload)), "image/png").run()
    agree(at)
    c = session(at).config
    assert (c.goal, c.attack, c.eps, c.cap, c.label) == (3, "pgd", 4, 300, 0)
    assert any("ε = 4/255" in t and "cap 300 steps" in t for t in texts(at.caption))
    assert any("monkey → none" in m for m in texts(at.markdown))


def test_scrub_then_play_jumps_to_the_newest_step(toys):
    at = app_at("views/attack.py")
    at.button(key="atk_step10").click().run()
    at.button(key="atk_step10").click().run()
    agree(at)
    at.slider(key="atk_scrub_20").set_value(5).run()
    agree(at)
    assert session(at).scrub == 5 and shown_steps(at) == [5, 5]
    at.button(key="atk_play").click().run()
    s = session(at)
    assert s.playing and s.following
    # while playing: a progress bar instead of the scrubber, and a static chart (cheaper for the browser)
    assert not [w for w in at.slider if w.key.startswith("atk_scrub")]
    assert any("playing: step" in p.proto.text for p in at.get("progress"))
    charts = at.get("plotly_chart")
    assert charts and all(json.loads(c.proto.config)["staticPlot"] for c in charts)
    deadline = time.time() + 20
    while s.latest_step < 30 and time.time() < deadline:
        time.sleep(0.05)
    at.button(key="atk_play").click().run()  # pause
    assert not s.playing and s.latest_step >= 30
    agree(at)
    assert shown_steps(at) == [s.latest_step] * 2


def test_a_pause_click_pauses_even_when_play_already_stopped(toys):
    """The button acts on what it said when clicked, not as a toggle: in the browser under load a pause
    click's callback could run twice (a fragment tick racing the click), and a toggle then played on
    to the goal. Here the session pauses behind the page's back, then the stale "pause" is clicked."""
    at = app_at("views/attack.py")
    at.button(key="atk_play").click().run()
    s = session(at)
    assert s.playing and at.button(key="atk_play").label == "⏸ pause"
    s.pause()  # the first of two callbacks of one click
    at.button(key="atk_play").click().run()  # the second: still a pause
    assert not s.playing and at.button(key="atk_play").label == "▶ play"


def test_theta_change_during_a_race_keeps_both_runs(toys):
    at = app_at("views/attack.py")
    at.button(key="atk_step10").click().run()
    s = session(at)
    direct, triple = s.runs["direct"], s.runs["triple"]
    at.sidebar.slider(key="atk_theta").set_value(0.65).run()
    agree(at)
    assert s.runs["direct"] is direct and s.runs["triple"] is triple and s.latest_step == 10
    assert any("Kept" in i and "θ (0.65)" in i for i in texts(at.info))


def test_scrub_position_survives_a_page_round_trip(toys):
    at = app_at("views/attack.py")
    at.button(key="atk_step10").click().run()
    at.slider(key="atk_scrub_10").set_value(4).run()
    at.switch_page("views/inspect.py").run()
    no_exception(at)
    at.switch_page("views/attack.py").run()
    agree(at)
    assert session(at).scrub == 4 and shown_steps(at) == [4, 4]


def test_goal_already_holding_at_step_zero(toys):
    at = app_at("views/attack.py", {"theta": "1", "goal": "none", "race": "1"})
    agree(at)
    boxes = texts(at.success)
    assert any("Goal already holds at step 0" in b for b in boxes), boxes
    assert not any("Flipped to" in b for b in boxes)
    statuses = [r["status"] for r in at.table[0].value.to_dict("records")]
    assert "goal already holds at step 0" in statuses


def test_an_attack_link_restores_the_whole_setup(toys):
    q = {"source": "test", "index": "2", "race": "0", "network": "direct_param", "goal": "none", "attack": "pgd",
         "eps": "4", "cap": "300", "theta": "0.45"}
    at = app_at("views/attack.py", q)
    agree(at)
    c = session(at).config
    assert c.networks == ("direct_param",) and (c.goal, c.attack, c.eps, c.cap, c.theta) == (3, "pgd", 4, 300, 0.45)
    assert at.sidebar.selectbox(key="atk_network").value == "direct_param"
    assert {k: at.query_params[k] for k in q} == q


def test_attack_steps_and_exports(toys):
    at = app_at("views/attack.py")
    at.button(key="atk_step1").click().run()
    agree(at)
    assert shown_steps(at) == [1, 1]
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["GIF: Direct CNN", "CSV: Direct CNN", "GIF: Triple-staged", "CSV: Triple-staged"]


# --------------------------------------------------------------- θ explorer and results


def test_theta_explorer_without_results(env):
    at = app_at("views/theta.py")
    no_exception(at)
    assert any("python -m aimeye evaluate" in i for i in texts(at.info))


def test_theta_explorer_with_results(monkeypatch, results_root):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(results_root))
    at = app_at("views/theta.py", {"theta": "0.45"})
    no_exception(at)
    assert not at.info, texts(at.info)
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    assert any(m.label == "paper's error at θ = 0.45" for m in at.metric)
    assert at.sidebar.selectbox(key="theta_run").value.cap == 100  # the bigger run by default


def test_experiments_show_every_results_folder(monkeypatch, results_root):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(results_root))
    at = app_at("views/experiments.py")
    no_exception(at)
    picker = at.selectbox(key="exp_run")
    runs = sorted(p.name for p in results_root.iterdir() if p.name.startswith("results"))
    assert sorted(o.split(":")[0] for o in picker.options) == runs
    # the fake checkpoints are not the weights any committed result was made with, and the page says so:
    # every folder is marked as older, the paper's FGSM runs come first, then the merges, biggest first
    assert all(o.endswith("· older weights") for o in picker.options)
    order = [o.split(":")[0] for o in picker.options]
    assert order[:2] == ["results", "results_cap1000"] and picker.value.name == "results"
    merges = [o.split(":")[0] for o in picker.options if "merge of" in o]
    assert merges and order[2:2 + len(merges)] == merges, order
    sizes = [int(o.split("merge of ")[1].split()[0]) for o in picker.options if "merge of" in o]
    assert sizes == sorted(sizes, reverse=True)
    assert f"{len(runs)} folders: the 0 made with the shipped weights first" in " ".join(texts(at.caption))
    warned = texts(at.warning)
    assert len(warned) == 2, "Table 1's and the shown folder's, no other"
    assert all("Made with other weights than the shipped ones" in w for w in warned)
    assert "the comparator (" in warned[1]
    assert len(at.get("plotly_chart")) == 2, "one folder at a time: its Fig. 4 and Fig. 6 boxes"
    cells = [str(v) for d in at.dataframe for v in d.value.to_numpy().ravel()]
    assert "≥ 100" in cells, "a censored median reads ≥ cap"
    assert not any(k in c for c in cells for k in ("triple@", "direct_param"))
    picker.select_index(order.index("results_robust_n100_merged")).run()
    no_exception(at)
    robust = [str(v) for t in at.table for v in t.value.to_numpy().ravel()]
    assert any(c.startswith("0.54 [") for c in robust), "robust accuracy with its interval"
    assert len(at.dataframe) == 1 and len(at.get("plotly_chart")) == 1, "Table 1, then the folder's figure and tables"
    at.number_input[0].set_value(1)  # images
    at.number_input[1].set_value(5)  # step cap
    before = len(at.dataframe)
    at.button[0].click().run()  # the form's submit button
    no_exception(at)
    assert len(at.dataframe) == before + 1 and at.get("progress")


@pytest.mark.parametrize("page,prefix", [("views/inspect.py", "insp"), ("views/attack.py", "atk")])
def test_the_draw_source_offers_a_canvas(toys, page, prefix):
    at = app_at(page, {"source": "draw"})
    no_exception(at)
    assert at.sidebar.radio(key=f"{prefix}_source").value == "draw"
    assert [e.key for e in at.get("bidi_component")] == [f"{prefix}_canvas"]
    assert any("Draw" in i for i in texts(at.main.info)), "asks for a drawing until there is one"
