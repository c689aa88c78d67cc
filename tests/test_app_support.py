"""The app's library helpers (aimeye.app_support): uploads, URL state, scenes, analysis, charts, results."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import synthetic_attacks, synthetic_robust
from PIL import Image

from aimeye import app_support as A
from aimeye import checkpoints, nets
from aimeye.scenes import generate


@pytest.fixture(scope="module")
def models(fake_root):
    return checkpoints.load_models(fake_root)


def encode(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **kw)
    return buf.getvalue()


def noise_rgb(w=120, h=90, seed=0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def animated_gif() -> bytes:
    frames = [Image.new("L", (70, 70), 0), Image.new("L", (70, 70), 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buf.getvalue()


def assert_model_input(d: A.DecodedImage):
    assert d.x.shape == (1, 1, 64, 64) and d.x.dtype == torch.float32
    assert float(d.x.min()) >= 0.0 and float(d.x.max()) <= 1.0
    q = d.x.numpy() * 255
    assert np.allclose(q, np.round(q), atol=1e-4), "quantised to 8 bits like the scenes"


# ------------------------------------------------------------------ uploads

BAD_UPLOADS = {
    "empty": (b"", "empty"),
    "none": (None, "empty"),
    "text": (b"this is not an image at all", "not an image"),
    "html": (b"<html><body>hi</body></html>", "not an image"),
    "eps (not an allowed format)": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n", "not an image"),
    "truncated png": (encode(noise_rgb())[:200], "truncated or corrupt"),
    "truncated jpeg": (encode(noise_rgb(), "JPEG")[:400], "truncated or corrupt"),
    "png header only": (encode(noise_rgb())[:33], "truncated or corrupt"),
    "1x1": (encode(Image.new("L", (1, 1), 7)), "1×1"),
    "7x300": (encode(Image.new("L", (7, 300), 7)), "7×300"),
    "decompression bomb": (encode(Image.new("1", (10_000, 10_000))), "too many pixels"),
    "bomb in the warning zone": (encode(Image.new("1", (7_000, 7_000))), "too many pixels"),
    "too many bytes": (b"\x89PNG" + b"\0" * (A.MAX_UPLOAD_BYTES + 1), "limit"),
}


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_raise_a_friendly_error(case):
    data, words = BAD_UPLOADS[case]
    with pytest.raises(A.UploadError) as e:
        A.decode_upload(data, "photo.png")
    msg = str(e.value)
    assert words in msg
    assert "Traceback" not in msg and len(msg) < 400
    assert isinstance(e.value, ValueError)


def test_decompression_bomb_is_refused_before_decoding():
    # 20 000 × 20 000 would need 400 MB decoded; the header alone must be enough to refuse it
    data = encode(Image.new("1", (20_000, 20_000)))
    with pytest.raises(A.UploadError, match="too many pixels"):
        A.decode_upload(data)
    assert Image.MAX_IMAGE_PIXELS == A.MAX_PIXELS


def test_decompression_bomb_warning_as_error():
    data = encode(Image.new("1", (7_000, 7_000)))  # 49 MP: PIL itself would only warn
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(A.UploadError, match="too many pixels"):
            A.decode_upload(data)


def _gif_first_frame():
    return animated_gif()


GOOD_UPLOADS = {
    "png rgb": lambda: encode(noise_rgb()),
    "jpeg": lambda: encode(noise_rgb(), "JPEG", quality=90),
    "webp": lambda: encode(noise_rgb(), "WEBP"),
    "bmp": lambda: encode(noise_rgb(), "BMP"),
    "gif animated": animated_gif,
    "tiff": lambda: encode(noise_rgb(), "TIFF"),
    "rgba": lambda: encode(noise_rgb().convert("RGBA")),
    "la": lambda: encode(Image.new("LA", (80, 80), (200, 100))),
    "p with transparency": lambda: encode(Image.new("P", (80, 80), 0), transparency=0),
    "cmyk jpeg": lambda: encode(noise_rgb().convert("CMYK"), "JPEG"),
    "16-bit grey png": lambda: encode(Image.fromarray(np.full((80, 80), 40_000, np.uint16))),
    "32-bit int": lambda: encode(Image.fromarray(np.full((80, 80), 300, np.int32), "I"), "TIFF"),
    "float tiff": lambda: encode(Image.fromarray(np.full((80, 80), 0.25, np.float32), "F"), "TIFF"),
    "1-bit": lambda: encode(Image.new("1", (80, 80), 1)),
    "wide 3000x200": lambda: encode(Image.new("L", (3000, 200), 90)),
    "tall 64x1000": lambda: encode(Image.new("RGB", (64, 1000), (10, 200, 30))),
    "small 8x8": lambda: encode(Image.new("L", (8, 8), 50)),
}


@pytest.mark.parametrize("case", list(GOOD_UPLOADS))
def test_good_uploads_give_a_64x64_grey_image(case):
    d = A.decode_upload(GOOD_UPLOADS[case](), f"{case}.img")
    assert_model_input(d)
    w, h = d.size
    side = min(w, h)
    assert d.box[2] - d.box[0] == side and d.box[3] - d.box[1] == side
    assert d.crop.dtype == np.uint8 and d.crop.shape[0] == d.crop.shape[1] <= A.PREVIEW_SIDE


def test_transparency_is_composited_on_mid_grey():
    d = A.decode_upload(encode(Image.new("RGBA", (80, 80), (255, 0, 0, 0))))
    assert np.allclose(d.image, A.MATTE / 255, atol=1 / 255)
    half = A.decode_upload(encode(Image.new("LA", (80, 80), (255, 128))))
    assert 0.6 < float(half.image.mean()) < 0.9


def test_sixteen_bit_keeps_its_range():
    a = np.zeros((80, 80), np.uint16)
    a[:, 40:] = 65535
    d = A.decode_upload(encode(Image.fromarray(a)))
    assert d.image[:, :24].max() == 0.0 and d.image[:, 40:].min() == 1.0  # not clipped at 255/65535
    mid = A.decode_upload(encode(Image.fromarray(np.full((80, 80), 32768, np.uint16))))
    assert abs(float(mid.image.mean()) - 0.5) < 1 / 255


def test_animated_gif_uses_the_first_frame():
    d = A.decode_upload(animated_gif())
    assert float(d.image.max()) == 0.0  # frame 0 is black, frame 1 white
    assert any("first frame" in n for n in d.notes)


def test_centre_square_crop():
    a = np.zeros((100, 300), np.uint8)
    a[:, 150:] = 255  # the centre 100×100 square (x in 100..200) is half black, half white
    d = A.decode_upload(encode(Image.fromarray(a)))
    assert d.box == (100, 0, 200, 100)
    assert d.image[:, :28].max() < 0.02 and d.image[:, 36:].min() > 0.98
    assert any("centre" in n for n in d.notes)


def test_small_images_are_accepted_with_a_warning():
    d = A.decode_upload(encode(Image.new("L", (20, 20), 100)))
    assert_model_input(d)
    assert any("upscaled" in n for n in d.notes)
    assert not A.decode_upload(encode(Image.new("L", (64, 64), 100))).notes


def test_exif_orientation_is_applied():
    a = np.zeros((60, 120, 3), np.uint8)
    a[:, :60] = 255  # white left half, landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display → portrait, white on top
    d = A.decode_upload(encode(Image.fromarray(a), "JPEG", exif=exif.tobytes(), quality=95))
    assert d.size == (60, 120)
    assert d.image[:20].mean() > 0.9 and d.image[-20:].mean() < 0.1


def test_upload_becomes_an_input_image():
    d = A.decode_upload(encode(noise_rgb()), "cat.png")
    img = A.InputImage.from_upload(d, "cat.png")
    assert img.label is None and img.rotation is None and "cat.png" in img.caption
    assert np.array_equal(A.image_from_key(img.key), img.image)
    assert img.x.shape == (1, 1, 64, 64)


# ------------------------------------------------------------- URL state


def test_query_round_trip_defaults():
    s = A.ViewState()
    assert A.parse_query(A.to_query(s)) == s
    assert A.parse_query({}) == s
    assert A.parse_query(None) == s


def test_query_round_trip_random_states():
    rng = np.random.default_rng(0)
    for _ in range(300):
        s = A.ViewState(source=str(rng.choice(list(A.SOURCES))), cls=int(rng.integers(4)),
                        rot=tuple(float(v) for v in np.round(rng.uniform(-0.5, 0.5, 3), 2)),
                        bg=str(rng.choice(list(A.BG_SOURCES))), seed=int(rng.integers(0, A.MAX_SEED)),
                        index=int(rng.integers(0, A.TEST_SIZE)), theta=float(np.round(rng.uniform(0, 1), 2)),
                        network=str(rng.choice(list(A.NETWORKS))))
        q = A.to_query(s)
        assert all(isinstance(v, str) for v in q.values())
        assert A.parse_query(q) == s
        # as st.query_params hands repeated keys back: lists, last one wins
        assert A.parse_query({k: ["junk", v] for k, v in q.items()}) == s


def test_query_values_are_parsed_robustly():
    d = A.ViewState()
    bad = {"source": "ftp", "class": "giraffe", "rot": "0.1,0.2", "bg": "moon", "seed": "-3", "index": "10000",
           "theta": "nan", "network": "resnet"}
    assert A.parse_query(bad) == d
    for theta in ("inf", "-inf", "", "0x1p-2", "1e400", "abc"):
        assert A.parse_query({"theta": theta}).theta == d.theta
    assert A.parse_query({"seed": "1.5"}).seed == d.seed
    assert A.parse_query({"seed": "12.0"}).seed == 12
    assert A.parse_query({"rot": "nan,0,0"}).rot == d.rot
    assert A.parse_query({"rot": "a,b,c"}).rot == d.rot
    assert A.parse_query({"unknown": "1", "theta": "0.45"}) == A.ViewState(theta=0.45)


def test_query_values_are_normalised():
    s = A.parse_query({"class": "AEROPLANE", "rot": " 0.9 , -2, 0.123", "theta": "1.7", "network": "direct-param",
                       "source": "SCENE"})
    assert s.cls == 2 and s.rot == (0.5, -0.5, 0.12) and s.theta == 1.0
    assert s.network == "direct_param" and s.source == "scene"
    assert A.parse_query({"class": "3"}).cls == 3
    assert A.parse_query({"theta": "-0.2"}).theta == 0.0
    assert A.with_changes(A.ViewState(), theta=0.333333).theta == 0.33


# ------------------------------------------------------------------ scenes


def test_make_scene_is_a_pure_function_of_its_arguments():
    a = A.make_scene(1, (0.1, -0.2, 0.3), "photos", 5)
    b = A.make_scene(1, (0.1, -0.2, 0.3), "photos", 5)
    assert np.array_equal(a.image, b.image)
    assert a.image.shape == (64, 64) and a.image.dtype == np.float32
    assert np.allclose(a.image * 255, np.round(a.image * 255), atol=1e-4)
    assert a.label == 1 and np.allclose(a.rotation, (0.1, -0.2, 0.3))
    assert a.alpha.max() > 0.9 and "penguin" in a.caption
    assert not np.array_equal(a.image, A.make_scene(1, (0.1, -0.2, 0.3), "photos", 6).image)
    assert not np.array_equal(a.image, A.make_scene(1, (0.1, -0.2, 0.3), "deadleaves", 5).image)
    assert not np.array_equal(a.image, A.make_scene(0, (0.1, -0.2, 0.3), "photos", 5).image)


def test_make_scene_edge_cases():
    none = A.make_scene(3, (0.4, 0.4, 0.4), "deadleaves", 1)
    assert none.rotation is None and none.alpha.max() == 0.0
    clipped = A.make_scene(2, (3.0, -3.0, 0.0))
    assert np.allclose(clipped.rotation, (0.5, -0.5, 0.0))
    with pytest.raises(ValueError):
        A.make_scene(4)
    with pytest.raises(ValueError):
        A.make_scene(0, bg="imagenet")


def test_held_out_scene_matches_the_evaluated_test_set():
    for i in (0, 1, 6, 9999):
        s = A.held_out_scene(i)
        ref = generate([i], "test", A.TEST_SEED)
        assert s.label == i % 4 == int(ref.labels[0])
        assert np.array_equal(s.image, ref.images[0, 0].numpy())
    assert A.held_out_index(1) == 1 and A.held_out_index(2, 3) % 4 == 2
    with pytest.raises(ValueError):
        A.held_out_scene(A.TEST_SIZE)


# ---------------------------------------------------------------- analysis


def test_analyse_returns_every_view_and_leaves_models_alone(models):
    before = {k: v.clone() for k, v in models.triple.state_dict().items()}
    scene = A.held_out_scene(1)
    an = A.analyse(models, scene.x)
    assert an.scores.shape == (3,) and an.rotation.shape == (3, 3)
    assert an.projection.shape == an.alpha.shape == an.rerender.shape == (3, 64, 64)
    assert an.similarity.shape == an.pooled_alpha.shape == (3, 55, 55)
    assert np.isclose(an.direct_probs.sum(), 1, atol=1e-5) and np.isclose(an.direct_param_probs.sum(), 1, atol=1e-5)
    assert np.all(np.abs(an.rotation) <= 0.5 + 1e-6)
    with torch.no_grad():
        ref = models.triple(scene.x)[0].numpy()
    assert np.allclose(an.scores, ref, atol=1e-6)
    for theta in (0.0, 0.3, 0.7, 1.0):
        assert an.verdict(theta) == int(nets.verdict_from_scores(torch.from_numpy(ref)[None], theta)[0])
    after = models.triple.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in models.triple.parameters())
    rows = A.rotation_table(an, scene.rotation, scene.label)
    assert len(rows) == 3 and "true rx (rad)" in rows[1] and "true rx (rad)" not in rows[0]


def test_verdict_text():
    assert A.verdict_text([0.8, 0.1, 0.2], 0.7).startswith("monkey")
    t = A.verdict_text([0.5, 0.6, 0.2], 0.7)
    assert t.startswith("none") and "penguin" in t
    assert A.triple_verdict([0.5, 0.6, 0.2], 0.6) == 1
    assert A.direct_verdict_text([0.1, 0.1, 0.1, 0.7]).startswith("none")


def test_amplify():
    assert np.all(A.amplify(np.zeros((64, 64))) == 0.5)
    p = np.zeros((64, 64), np.float32)
    p[0, 0], p[1, 1] = 2 / 255, -4 / 255
    a = A.amplify(torch.from_numpy(p))
    assert a.min() == 0.0 and a[0, 0] == 0.75 and a[5, 5] == 0.5


# ---------------------------------------------------------------- attacks


def test_stepper_wrappers(models):
    pytest.importorskip("aimeye.attacks")
    if A.attacks_module() is None:
        pytest.skip("aimeye.attacks does not provide Stepper yet")
    x = A.held_out_scene(1).x
    s = A.new_stepper(models, "triple", 1.0, x, 1, 3)  # θ = 1: a false negative from the first step
    assert s.goal == "fn"
    assert A.flip_point(s) == {"step": 0, "distortion": 0.0, "verdict": 3}
    s = A.new_stepper(models, "direct", 0.7, x, 1, 2, max_steps=3)
    it = A.step(s, 10)
    assert it.step <= 3 and s.history[-1] is it
    rows = A.history_rows(s.history)
    assert [r["step"] for r in rows] == list(range(len(s.history)))
    assert set(rows[0]) >= {"distortion", "linf", "ssim", "score_none"}
    race = A.race_rows({"direct": s}, 0.7)
    assert race[0]["status"] in ("flipped", "stopped at the cap", "running")
    summ = A.iterate_summary(it, "direct", 0.7)
    assert summ["step"] == it.step and "probability" in summ["verdict_text"]
    with pytest.raises(ValueError):
        A.new_stepper(models, "resnet", 0.7, x, 1, 2)


def test_long_attacks_keep_only_the_newest_explanation(models):
    if A.attacks_module() is None:
        pytest.skip("aimeye.attacks does not provide Stepper yet")
    s = A.new_stepper(models, "triple", 0.7, A.held_out_scene(1).x, 1, 2)
    assert s.history[0].explanation is not None
    A.step(s, 4)
    assert len(s.history) == 5
    assert s.history[0].explanation is not None and s.history[-1].explanation is not None  # original and newest
    assert all(it.explanation is None for it in s.history[1:-1])
    again = A.explain_image(models, s.history[-1].image)  # what the page recomputes when scrubbing back
    kept = A.explanation_arrays(s.history[-1].explanation)
    for c in range(3):
        assert set(again[c]) == set(kept[c])
        for k in ("projection", "similarity", "rotation"):
            assert np.allclose(again[c][k], kept[c][k], atol=1e-5), k
        assert abs(again[c]["score"] - kept[c]["score"]) < 1e-5


def test_goal_rules():
    assert A.goal_for(3) == ("fn", None) and A.goal_for(2) == ("fp", 2)
    assert A.goal_reached(3, 1, "fn") and not A.goal_reached(1, 1, "fn")
    assert A.goal_reached(0, 1, "fp") and not A.goal_reached(3, 1, "fp") and not A.goal_reached(1, 1, "fp")
    assert A.default_target(2) == 0


def test_small_experiment(models):
    if A.attacks_module() is None or not hasattr(A.attacks_module(), "iterative_fgsm"):
        pytest.skip("aimeye.attacks.iterative_fgsm is not available yet")
    seen = []
    rows = A.small_experiment(models, ("direct", "triple"), 0.7, n_images=2, max_steps=2,
                              progress=lambda f, t: seen.append(f))
    assert len(rows) == 4 and {r["network"] for r in rows} == {"direct", "triple@0.7"}
    assert all(0 <= r["steps"] <= 2 for r in rows)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_attacks_module_missing_is_reported(monkeypatch):
    monkeypatch.setitem(sys.modules, "aimeye.attacks", None)  # import fails
    monkeypatch.delattr("aimeye.attacks", raising=False)
    import aimeye

    monkeypatch.delattr(aimeye, "attacks", raising=False)
    assert A.attacks_module() is None
    assert "import failed" in A.attacks_problem()
    with pytest.raises(RuntimeError, match="not available"):
        A.new_stepper(None, "direct", 0.7, torch.zeros(1, 1, 64, 64), 1, 2)


# ----------------------------------------------------------------- charts


def _titles(fig):
    return fig.layout.xaxis.title.text, fig.layout.yaxis.title.text


def test_charts_have_labelled_axes(models):
    an = A.analyse(models, A.held_out_scene(2).x)
    sweep = [{"theta": t, "error": 0.1, "rejection": t, "confusion": np.eye(4, dtype=int).tolist()}
             for t in np.linspace(0, 1, 11)]
    Hist = type("It", (), {})

    def it(k):
        o = Hist()
        o.step, o.distortion, o.scores = k, k / 255, [0.2, 0.5, 0.3]
        return o

    hist = [it(k) for k in range(5)]
    rows = [{"goal": "fp", "network": "triple", "theta": t, "median_steps": 10 * t, "median_distortion": t / 10}
            for t in (0.2, 0.45, 0.7)] + [{"goal": "fp", "network": "direct", "theta": None, "median_steps": 3,
                                            "median_distortion": 0.01}]
    figs = [A.similarity_figure(an.similarity[0], an.pooled_alpha[0]), A.scores_theta_figure(an.scores, 0.5),
            A.probabilities_figure(an.direct_probs, an.direct_param_probs), A.distortion_figure({"a": hist}),
            A.scores_figure(hist, "triple", 0.7), A.scores_figure(hist, "direct", 0.7),
            A.theta_sweep_figure(sweep, 0.45), A.confusion_figure(sweep[0]["confusion"]),
            A.robustness_figure(rows, 0.5), A.robustness_figure(rows, 0.5, "median_distortion"),
            A.effort_box_figure([{"goal": "fp", "network": "direct", "steps": 3, "distortion": 0.01}], "fp"),
            A.accuracy_eps_figure(synthetic_robust(), "fp")]
    for fig in figs:
        x, y = _titles(fig)
        assert x and y, fig.layout.title.text
        assert fig.layout.title.text
        fig.to_json()  # serialisable for st.plotly_chart


def test_pipeline_dot():
    dot = A.pipeline_dot(0.45, "penguin")
    assert dot.startswith("digraph") and "estimate" in dot and "project" in dot and "compare" in dot
    assert "θ = 0.45" in dot and "penguin" in dot


# ---------------------------------------------------------------- results


def synthetic_summary() -> dict:
    E = pytest.importorskip("aimeye.experiments")
    filt = {"n_images": 10, "wrong": dict.fromkeys(E.NETWORKS, 1), "kept": 9}
    return E.summarise(synthetic_attacks(), filt, {"command": "python -m aimeye experiment all"}, synthetic_robust())


def test_results_readers(tmp_path):
    assert A.load_metrics(tmp_path) is None and A.load_summary(tmp_path) is None
    assert A.load_attacks_csv(tmp_path) is None and A.load_robust(tmp_path) is None
    (tmp_path / "metrics.json").write_text("{not json")
    assert A.load_metrics(tmp_path) is None
    metrics = {"errors": {"direct": 0.001, "triple@0.7": 0.05}, "paper_errors": {"direct": 0.0001,
                                                                                "triple@0.7": 0.0309}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    rows = A.table1_rows(A.load_metrics(tmp_path))
    assert rows[0] == {"network": "Direct classification", "ours (error %)": 0.1, "paper (error %)": 0.01}
    assert rows[1]["network"] == "Triple-staged, θ = 0.7" and rows[1]["paper (error %)"] == 3.09
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "robust.json").write_text(json.dumps(synthetic_robust()))
    assert A.load_robust(tmp_path)["n_images"] == 4  # robust.json (counts) when there is no summary
    summary = synthetic_summary()
    (tmp_path / "results" / "summary.json").write_text(json.dumps(summary))
    assert "accuracy" in A.load_robust(tmp_path)  # the summary's rates win


def test_attacks_csv_from_the_experiments_module(tmp_path):
    E = pytest.importorskip("aimeye.experiments")
    (tmp_path / "results").mkdir()
    E.write_csv(synthetic_attacks(), tmp_path / "results" / "attacks.csv")
    rows = A.load_attacks_csv(tmp_path)
    assert len(rows) == 200 and isinstance(rows[0]["steps"], int) and rows[0]["success"] in (True, False)
    rob = A.robustness_rows(None, rows)
    by = {(r["goal"], r["network"], r["theta"]): r for r in rob}
    ref = synthetic_attacks()
    steps = [r["steps"] for r in ref if r["goal"] == "fp" and r["network"] == "triple@0.7"]
    assert by[("fp", "triple", 0.7)]["median_steps"] == float(np.median(steps))
    assert by[("fn", "direct", None)]["n"] == 20
    fig = A.effort_box_figure(rows, "fp", "steps")
    assert len(fig.data) == 5 and all(t.upperfence[0] <= 1500 for t in fig.data)


def test_robustness_rows_from_the_summary():
    summary = synthetic_summary()
    rows = A.robustness_rows(summary)
    assert len(rows) == 10
    by = {(r["goal"], r["network"], r["theta"]): r for r in rows}
    assert by[("fp", "triple", 0.45)]["median_steps"] == summary["fp"]["triple@0.45"]["steps"]["median"]
    assert by[("fn", "direct", None)]["median_distortion"] == summary["fn"]["direct"]["distortion"]["median"]
    assert A.robustness_rows({"something": "else"}) == []
    table = A.success_rows(summary)
    assert {r["network"] for r in table} == {"direct", "direct_param", "triple@0.2", "triple@0.45", "triple@0.7"}
    assert A.filter_rows(summary)[0] == {"network": "direct", "ours (%)": 10.0, "paper (%)": 0.0}
    fig = A.summary_box_figure(summary, "fp", "steps")
    assert len(fig.data) == 5
    tri = next(t for t in fig.data if t.x[0] == "triple@0.7")
    assert tri.median[0] == min(summary["fp"]["triple@0.7"]["steps"]["median"], 1500)
    assert tri.lowerfence[0] == summary["fp"]["triple@0.7"]["steps"]["p2"]


def test_robust_curves_from_counts_and_rates():
    robust = synthetic_robust()
    counts = A.robust_curves(robust, "fp")
    assert counts["direct"] == [(0.0, 1.0), (2.0, 0.5), (8.0, 0.0)]
    assert counts["triple@0.45+st"] == [(0.0, 1.0), (2.0, 0.25), (8.0, 0.0)]
    rates = A.robust_curves(synthetic_summary()["robust"], "fp")
    assert rates["direct"] == counts["direct"]
    assert {k: [round(v, 9) for _, v in p] for k, p in rates.items()} == {
        k: [round(v, 9) for _, v in p] for k, p in counts.items()}
    assert A.robust_curves(None, "fp") == {} and A.robust_curves({"eps_255": [0], "n_images": 0}, "fp") == {}
    tr = A.transfer_rows(robust, "fp")
    assert tr[0]["attack on direct"] == "FGSM" and tr[0]["ε=8/255"] == 75.0
    assert tr[-1]["success (%)"] == 25.0
    assert len(A.accuracy_eps_figure(robust, "fn").data) == 6


def test_sweep_at():
    sweep = [{"theta": t} for t in (0.0, 0.5, 1.0)]
    assert A.sweep_at(sweep, 0.4)["theta"] == 0.5 and A.sweep_at([], 0.4) is None


# ------------------------------------------------------------ checkpoints


def test_checkpoint_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("AIMEYE_CHECKPOINTS", str(tmp_path))
    assert A.checkpoint_dir() == tmp_path.resolve()
    assert A.results_dir() == tmp_path.resolve() / "results"
    monkeypatch.delenv("AIMEYE_CHECKPOINTS")
    assert A.checkpoint_dir() == checkpoints.DEFAULT_DIR


def test_missing_checkpoint_message(tmp_path):
    with pytest.raises(checkpoints.CheckpointError) as e:
        A.load_models(tmp_path)
    msg = A.checkpoint_message(e.value)
    assert "python -m aimeye train" in msg


def test_library_never_imports_streamlit():
    code = "import sys, aimeye.app_support; sys.exit('streamlit' in sys.modules)"
    repo = str(checkpoints.DEFAULT_DIR.parent)
    assert subprocess.run([sys.executable, "-c", code], cwd=repo, check=False).returncode == 0


def test_module_constants():
    assert A.PAPER_THETAS == (0.2, 0.45, 0.7)
    assert set(A.NETWORKS) == {"direct", "direct_param", "triple"}
    assert math.isclose(A.ViewState().theta, 0.7)
