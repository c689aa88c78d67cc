"""Every page of the Streamlit app, driven headless with streamlit.testing.v1.AppTest.

The app reads its checkpoints from ``$AIMEYE_CHECKPOINTS``; here that is a folder of
untrained networks written in a fixture, so the tests do not wait for training.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import synthetic_attacks, synthetic_robust
from PIL import Image

from aimeye import app_support as A
from aimeye import evaluate

streamlit_testing = pytest.importorskip("streamlit.testing.v1")
AppTest = streamlit_testing.AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ("pages/home.py", "pages/inspect.py", "pages/attack.py", "pages/theta.py", "pages/experiments.py")
TIMEOUT = 90


@pytest.fixture(scope="module", autouse=True)
def keep_torch_threads():
    """app.py sets one torch thread for the process; give the other test modules theirs back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def results_root(tmp_path_factory, fake_root):
    """Fake checkpoints plus every results file the θ explorer and Experiments pages read."""
    root = tmp_path_factory.mktemp("ckpt_results")
    for f in fake_root.iterdir():
        (root / f.name).write_bytes(f.read_bytes())
    rng = np.random.default_rng(0)
    labels = torch.from_numpy(rng.integers(0, 4, 400))
    scores = torch.from_numpy(rng.random((400, 3)).astype(np.float32))
    metrics = {"n_per_class": 100, "errors": {"direct": 0.001, "direct_param": 0.002, "triple@0.2": 0.02,
                                               "triple@0.45": 0.01, "triple@0.7": 0.04},
               "paper_errors": evaluate.PAPER_TABLE1, "theta_sweep": evaluate.theta_sweep(scores, labels)}
    (root / "metrics.json").write_text(json.dumps(metrics))
    res = root / "results"
    res.mkdir()
    E = pytest.importorskip("aimeye.experiments")
    rows = synthetic_attacks(rng)
    robust = synthetic_robust()
    nets_ = E.NETWORKS
    filt = {"n_images": 100, "wrong": dict.fromkeys(nets_, 1), "kept": 95}
    summary = E.summarise(rows, filt, {"command": "python -m aimeye experiment all"}, robust)
    (res / "summary.json").write_text(json.dumps(summary))
    (res / "robust.json").write_text(json.dumps(robust))
    E.write_csv(rows, res / "attacks.csv")
    buf = io.BytesIO()
    Image.new("L", (64, 32), 128).save(buf, format="PNG")
    (res / "fig5_direct_param.png").write_bytes(buf.getvalue())
    return root


@pytest.fixture
def env(monkeypatch, fake_root):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(fake_root))
    return fake_root


def app_at(page: str | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    if query:
        at.query_params.update(query)
    at.run()
    if page and page != "pages/home.py":
        at.switch_page(page).run()
    return at


def no_exception(at: AppTest):
    assert not at.exception, [e.value for e in at.exception]


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def png(im: Image.Image, fmt="PNG") -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


def metric(at: AppTest, label: str) -> list[str]:
    return [m.value for m in at.metric if m.label == label]


# ------------------------------------------------------------------- pages


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(env, page):
    at = app_at(page)
    no_exception(at)
    assert at.title, "every page has a title"
    assert not at.error, texts(at.error)


def test_home_shows_diagram_links_and_a_live_verdict(env):
    at = app_at()
    no_exception(at)
    assert len(at.get("page_link")) == 4
    assert at.get("graphviz_chart")
    verdicts = texts(at.success) + texts(at.warning)
    assert any("Triple-staged" in v for v in verdicts)
    assert at.image and any("test scene #1: penguin" in c for i in at.image for c in i.captions)


def test_inspect_test_scene_default(env):
    at = app_at("pages/inspect.py")
    no_exception(at)
    assert at.sidebar.radio(key="insp_source").value == "test"
    assert at.sidebar.number_input(key="insp_index").value == 1
    assert len(at.get("plotly_chart")) == 2 + 3  # probabilities, scores vs θ, three similarity maps
    assert any("true rotation" in m for m in texts(at.markdown))
    assert at.query_params["source"] == "test" and at.query_params["theta"] == "0.7"


def test_inspect_generated_scene_and_theta(env):
    at = app_at("pages/inspect.py")
    at.sidebar.radio(key="insp_source").set_value("scene").run()
    no_exception(at)
    at.sidebar.selectbox(key="insp_cls").set_value(2)
    at.sidebar.slider(key="insp_rx").set_value(0.3)
    at.sidebar.radio(key="insp_bg").set_value("deadleaves")
    at.sidebar.number_input(key="insp_seed").set_value(7)
    at.sidebar.slider(key="insp_theta").set_value(0.2)
    at.run()
    no_exception(at)
    q = at.query_params
    assert q["source"] == "scene" and q["class"] == "aeroplane" and q["rot"].startswith("0.3,")
    assert q["bg"] == "deadleaves" and q["seed"] == "7" and q["theta"] == "0.2"
    assert any("θ = 0.20" in v for v in texts(at.success) + texts(at.warning))


def test_state_comes_from_the_url(env):
    at = app_at("pages/inspect.py", {"source": "scene", "class": "monkey", "rot": "0.1,-0.2,0.25", "theta": "0.45",
                                     "seed": "3", "bg": "deadleaves"})
    no_exception(at)
    assert at.sidebar.radio(key="insp_source").value == "scene"
    assert at.sidebar.selectbox(key="insp_cls").value == 0
    assert [at.sidebar.slider(key=f"insp_r{a}").value for a in "xyz"] == [0.1, -0.2, 0.25]
    assert at.sidebar.slider(key="insp_theta").value == 0.45


def test_garbage_in_the_url_falls_back_to_defaults(env):
    at = app_at("pages/inspect.py", {"source": "nope", "class": "giraffe", "rot": "x", "theta": "NaN",
                                     "index": "-5", "seed": "1e99", "network": "<script>"})
    no_exception(at)
    assert not at.error
    assert at.sidebar.radio(key="insp_source").value == "test"
    assert at.sidebar.slider(key="insp_theta").value == 0.7


def _upload(at: AppTest, name: str, data: bytes, mime="image/png"):
    at.sidebar.radio(key="insp_source").set_value("upload").run()
    assert at.sidebar.info, "asks for a file before one is there"
    at.sidebar.file_uploader(key="insp_upload").upload(name, data, mime).run()


def test_inspect_upload(env):
    at = app_at("pages/inspect.py")
    rgba = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 160, 4), dtype=np.uint8), "RGBA")
    _upload(at, "photo.png", png(rgba))
    no_exception(at)
    assert not at.error, texts(at.error)
    assert any("upload “photo.png”" in c for i in at.image for c in i.captions)
    assert any("centre" in w for w in texts(at.warning))  # 160×90 → centre square, the user is told
    assert len(at.get("plotly_chart")) == 5


BAD = {
    "empty.png": (b"", "empty"),
    "notes.png": (b"definitely not an image", "not an image"),
    "cut.png": (png(Image.new("RGB", (100, 100), (1, 2, 3)))[:60], "truncated"),
    "dot.png": (png(Image.new("L", (1, 1), 0)), "1×1"),
    "bomb.png": (png(Image.new("1", (9000, 9000))), "too many pixels"),
}


@pytest.mark.parametrize("name,data,words", [(k, *v) for k, v in BAD.items()], ids=list(BAD))
def test_bad_upload_shows_an_error_and_the_page_keeps_working(env, name, data, words):
    at = app_at("pages/inspect.py")
    _upload(at, name, data)
    no_exception(at)
    errors = texts(at.error)
    assert errors and words in errors[0], errors
    # the page still works: another source, then a good upload
    at.sidebar.file_uploader(key="insp_upload").set_value(("ok.jpg", png(Image.new("RGB", (80, 80), "red"), "JPEG"),
                                                           "image/jpeg")).run()
    no_exception(at)
    assert not at.error
    at.sidebar.radio(key="insp_source").set_value("test").run()
    no_exception(at)
    assert len(at.get("plotly_chart")) == 5


def test_missing_checkpoints_give_a_friendly_error(monkeypatch, tmp_path):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(tmp_path))
    at = app_at()
    no_exception(at)
    assert any("python -m aimeye train" in e for e in texts(at.error))
    for page in PAGES[1:]:
        at.switch_page(page).run()
        no_exception(at)
        if page in ("pages/inspect.py", "pages/attack.py"):
            assert any("python -m aimeye train" in e for e in texts(at.error)), page


# ------------------------------------------------------------------ attack


def test_attack_defaults_race_a_penguin(env):
    at = app_at("pages/attack.py")
    no_exception(at)
    assert at.sidebar.toggle(key="atk_race").value is True
    assert at.sidebar.slider(key="atk_theta").value == 0.7
    assert at.sidebar.selectbox(key="atk_target").value == 2  # penguin → aeroplane
    assert metric(at, "step") == ["0", "0"]
    assert len(at.get("download_button")) == 4
    assert at.dataframe, "the race table"


def test_attack_stepping_advances_the_iterate(env):
    at = app_at("pages/attack.py")
    at.sidebar.toggle(key="atk_race").set_value(False).run()
    at.sidebar.selectbox(key="atk_network").set_value("triple").run()
    no_exception(at)
    assert metric(at, "step") == ["0"] and metric(at, "distortion") == ["0.0000"]
    verdict0 = [m for m in texts(at.markdown) if m.startswith("**verdict:**")]
    at.button(key="atk_step1").click().run()
    no_exception(at)
    assert metric(at, "step") == ["1"]
    assert metric(at, "distortion") == [f"{1 / 255:.4f}"]  # every pixel moved by one grey level
    at.button(key="atk_step10").click().run()
    assert metric(at, "step") == ["11"]
    verdict11 = [m for m in texts(at.markdown) if m.startswith("**verdict:**")]
    assert verdict11 != verdict0, "the scores in the verdict line moved"
    scrub = at.slider(key="atk_scrub")
    assert scrub.value == 11 and scrub.max == 11
    scrub.set_value(4).run()
    assert metric(at, "step") == ["4"]
    captions = [c for i in at.image for c in i.captions]
    assert sum("projection" in c for c in captions) == 3, "an old step's drawing is recomputed"
    run = at.session_state["atk_run"]
    assert len(run["steppers"]["triple"].history) == 12


def test_attack_play_pause_and_reset(env):
    at = app_at("pages/attack.py")
    at.button(key="atk_play").click().run()
    no_exception(at)
    assert at.session_state["atk_playing"]
    steps = [int(v) for v in metric(at, "step")]
    assert max(steps) > 0, "a play tick steps the attacks"
    at.button(key="atk_play").click().run()
    assert not at.session_state["atk_playing"]
    at.button(key="atk_reset").click().run()
    no_exception(at)
    assert metric(at, "step") == ["0", "0"]


def test_attack_pgd_and_false_negative(env):
    at = app_at("pages/attack.py")
    at.sidebar.selectbox(key="atk_target").set_value(3)
    at.sidebar.radio(key="atk_attack").set_value("pgd").run()
    at.sidebar.slider(key="atk_eps").set_value(4).run()
    no_exception(at)
    at.button(key="atk_step10").click().run()
    no_exception(at)
    linf = metric(at, "L∞")
    assert all(int(v.split("/")[0]) <= 4 for v in linf), linf


def test_attack_upload_asks_for_the_true_class(env):
    at = app_at("pages/attack.py")
    at.sidebar.radio(key="atk_source").set_value("upload").run()
    at.sidebar.file_uploader(key="atk_upload").upload("x.png", png(Image.new("L", (64, 64), 90))).run()
    no_exception(at)
    assert at.sidebar.selectbox(key="atk_label") is not None
    at.button(key="atk_step1").click().run()
    no_exception(at)


def test_attack_page_without_the_attack_code(env, monkeypatch):
    monkeypatch.setattr(A, "attacks_module", lambda: None)
    at = app_at("pages/attack.py")
    no_exception(at)
    assert any("not available" in i for i in texts(at.info))


# --------------------------------------------------------- θ and results


def test_theta_explorer_without_results(env):
    at = app_at("pages/theta.py")
    no_exception(at)
    infos = texts(at.info)
    assert any("python -m aimeye evaluate" in i for i in infos)
    assert any("python -m aimeye experiment" in i for i in infos)


def test_theta_explorer_with_results(monkeypatch, results_root):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(results_root))
    at = app_at("pages/theta.py")
    no_exception(at)
    assert not at.info, texts(at.info)
    assert len(at.get("plotly_chart")) == 4  # sweep, confusion, steps vs θ, distortion vs θ
    at.sidebar.slider(key="theta_theta").set_value(0.45).run()
    no_exception(at)
    assert at.query_params["theta"] == "0.45"
    assert any(m.label.startswith("paper's error at θ = 0.45") for m in at.metric)


def test_experiments_with_results_and_a_live_run(monkeypatch, results_root):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(results_root))
    at = app_at("pages/experiments.py")
    no_exception(at)
    assert not at.info, texts(at.info)
    assert at.dataframe  # Table 1
    assert len(at.get("plotly_chart")) == 6  # Fig. 4 ×2, Fig. 6 ×2, accuracy vs ε ×2
    assert len(at.dataframe) >= 3  # Table 1, success rates, filter shares
    at.number_input[0].set_value(1)  # images
    at.number_input[1].set_value(5)  # step cap
    before = len(at.dataframe)
    at.button[0].click().run()  # the form's submit button
    no_exception(at)
    assert len(at.dataframe) == before + 1
    assert len(at.get("plotly_chart")) == 8
    assert at.get("progress")
