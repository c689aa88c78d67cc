"""End to end: the real app in a real (headless) Debian Chromium, through Playwright.

Starts ``streamlit run app.py`` on a free port (with the shipped checkpoints when they are
all there, else untrained ones written here). The first test opens an attack deep link as
the very first page request of that fresh server. Then: every image the app serves is a
PNG; at 1920×1080 the attack page's images, verdicts and chart lie in the first viewport;
play advances and pause stops; a drawing yields a verdict. Screenshots go to
``tests/artifacts/``. Skipped only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import write_fake_checkpoints

from aimeye import checkpoints
from aimeye.paper import STAGES

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
TIMEOUT_MS = 90_000
W, H = 1920, 1080

if os.environ.get("CI") and not Path(CHROMIUM).exists():  # CI installs it: a missing browser must fail, not skip
    raise RuntimeError(f"CI: no Chromium at {CHROMIUM}; .ci/run installs Debian's chromium")
# one worker, one server and one browser for the whole module (pytest -n 2 --dist loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser"),
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shipped() -> bool:
    """Every stage's checkpoint ships, so the server runs on them (and the committed results beside them)."""
    return all(checkpoints.paths(s)[1].exists() for s in STAGES)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = checkpoints.DEFAULT_DIR if shipped() else write_fake_checkpoints(tmp_path_factory.mktemp("ckpt"))
    port = free_port()
    env = dict(os.environ, AIMEYE_CHECKPOINTS=str(root), PYTHONPATH=str(REPO))
    log = tmp_path_factory.mktemp("log") / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:  # the health endpoint runs no script and opens no session
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group we started, nothing else
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def context(browser):
    """One browser profile for the module; every test still opens its own tab, so its own Streamlit
    session."""
    ctx = browser.new_context(viewport={"width": W, "height": H})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context):
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert not errors, errors


def wait_for(predicate, what: str, timeout_s: float = 60):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def href(page) -> str:
    """The address bar now (Playwright's page.url misses the app's history.replaceState)."""
    return page.evaluate("location.href")


def no_exception(page):
    assert not page.locator('[data-testid="stException"]').count()


def triple_box(page):
    return page.locator('[data-testid="stAlert"]').filter(has_text="score").last


def shown_step(page) -> int:
    m = re.search(r"step (\d+) · distortion", triple_box(page).inner_text())
    return int(m.group(1)) if m else -1


def all_images_loaded(page):
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")


def settled_step(page, quiet_s: float = 1.5, timeout_s: float = 30) -> int:
    """The step shown once it has not changed for ``quiet_s`` (three play ticks)."""
    step, since, deadline = shown_step(page), time.time(), time.time() + timeout_s
    while time.time() - since < quiet_s:
        assert time.time() < deadline, "the shown step never settled: play goes on after pause"
        time.sleep(0.1)
        if (now := shown_step(page)) != step:
            step, since = now, time.time()
    return step


# ------------------------------------------------------------------------------------------ tests


def test_deep_link_as_the_first_request_of_a_fresh_server(server, page):
    """Must run first in this module: nothing but the health check has reached the server yet."""
    q = "source=test&index=2&race=0&network=direct_param&goal=none&attack=pgd&eps=4&cap=300&theta=0.45"
    page.goto(f"{server}/attack?{q}")
    page.get_by_text("Attack: aeroplane → none (false negative)", exact=False).wait_for()
    nav = page.locator('[data-testid="stSidebarNav"]')
    for name in ("Home", "Inspect", "Attack stepper", "θ explorer", "Experiments"):
        assert nav.get_by_text(name, exact=True).count() == 1, name
    page.get_by_text("Attack: aeroplane → none (false negative) · Direct CNN + rotation head").wait_for()
    page.get_by_text("PGD inside an L∞ ball of ε, ε = 4/255; θ = 0.45; cap 300 steps.").wait_for()
    sidebar = page.locator('[data-testid="stSidebar"]')
    theta = sidebar.locator('[data-testid="stSlider"]').filter(has_text="threshold θ").get_by_role("slider")
    assert theta.input_value() == "0.45"
    assert sidebar.locator('input[type="number"]').last.input_value() == "300"
    assert sidebar.get_by_role("switch", name="race: direct vs triple-staged").is_checked() is False
    for part in q.split("&"):
        assert part in href(page), (part, href(page))
    no_exception(page)


def test_every_image_is_a_png_and_the_attack_page_fits_a_projector(server, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # A media file that a newer rerun superseded is evicted by the server, and a fetch that
    # was still in flight gets "404 File not found" (text/plain): that is not an image served.
    served: dict[str, str] = {}
    evicted: list[str] = []
    page.on("response", lambda r: (served.__setitem__(r.url, r.headers.get("content-type", "")) if r.ok
                                   else evicted.append(r.url) if r.status == 404 and "/media/" in r.url
                                   else served.__setitem__(r.url, f"HTTP {r.status}"))
            if r.request.resource_type == "image" else None)
    page.goto(f"{server}/attack?source=test&index=1&race=1&theta=0.7&goal=aeroplane&attack=fgsm&cap=1000")
    page.get_by_role("button", name="step", exact=True).click()
    wait_for(lambda: shown_step(page) == 1, "step 1")
    page.get_by_text("Triple-staged: what it draws at step 1").wait_for()
    page.screenshot(path=str(ARTIFACTS / "attack_1920x1080.png"))
    main = page.locator('[data-testid="stMain"]')
    images = main.locator('[data-testid="stImage"] img')
    boxes = main.locator('[data-testid="stAlert"]')
    chart = main.locator('[data-testid="stPlotlyChart"]').first
    first_screen = [images.nth(k) for k in range(5)] + [boxes.filter(has_text="distortion").nth(k) for k in range(2)]
    for el in [*first_screen, chart]:
        b = el.bounding_box()
        assert b and b["y"] >= 0 and b["y"] + b["height"] <= H and b["x"] + b["width"] <= W, b
    nav = page.locator('[data-testid="stSidebarNav"]')
    for name, heading in (("Home", "The Artificial Mind's Eye"), ("Inspect", "Inspect: the mind's eye")):
        nav.get_by_text(name, exact=True).click()  # in-app navigation: no reload
        page.get_by_role("heading", name=heading).first.wait_for()
        page.locator('[data-testid="stImage"] img').first.wait_for()
        all_images_loaded(page)
    srcs = page.locator("img").evaluate_all("els => els.map(e => e.currentSrc || e.src)")
    assert served and srcs
    for url, kind in served.items():
        assert kind == "image/png", (url, kind)
    assert not (set(evicted) - set(served)) & set(srcs), "an image on screen was never served"
    for src in srcs:
        if src.startswith("data:"):
            assert src.startswith("data:image/png"), src[:40]
        else:
            assert page.request.get(src).body()[:8] == b"\x89PNG\r\n\x1a\n", src


def test_play_follows_the_newest_step_and_pause_stops(server, page):
    page.goto(f"{server}/attack?source=test&index=1&race=0&network=triple&theta=0.7&goal=aeroplane&cap=1000")
    page.get_by_role("button", name="▶ play").click()
    page.get_by_role("button", name="⏸ pause").wait_for()
    wait_for(lambda: shown_step(page) >= 5, "play to show new steps", 60)
    page.get_by_role("button", name="⏸ pause").click()
    page.get_by_role("button", name="▶ play").wait_for()
    paused_at = settled_step(page)  # the redraw after the pause may land a moment later, then nothing moves
    time.sleep(1.5)  # three more play ticks
    assert shown_step(page) == paused_at, "pause stops the stepping"
    slider = page.locator('[data-testid="stSlider"]').filter(has_text="scrub").get_by_role("slider")
    assert slider.input_value() == str(paused_at), "paused on the newest step"
    no_exception(page)


def test_a_drawing_yields_a_verdict(server, page):
    page.goto(f"{server}/inspect?source=draw&theta=0.7")
    canvas = page.locator("canvas").last
    canvas.wait_for()
    time.sleep(1)
    b = canvas.bounding_box()
    page.mouse.move(b["x"] + 60, b["y"] + 60)
    page.mouse.down()
    for k in range(30):
        page.mouse.move(b["x"] + 60 + 5 * k, b["y"] + 60 + 4 * k)
    page.mouse.up()
    verdict = page.locator('[data-testid="stAlert"]').filter(has_text="Triple-staged (θ = 0.70)")
    verdict.wait_for()
    assert "→" in verdict.inner_text()
    page.get_by_text("what the networks see: 64×64 grey").wait_for()
    assert page.get_by_text("Direct CNN →", exact=False).count()
    page.screenshot(path=str(ARTIFACTS / "draw_1920x1080.png"))
    no_exception(page)


def test_picking_theta_on_the_curve_moves_the_linked_views(server, page):
    page.goto(f"{server}/theta?theta=0.7")
    chart = page.locator('[data-testid="stVegaLiteChart"]').first
    chart.locator("canvas, svg").first.wait_for()
    page.get_by_text("error at θ = 0.70", exact=True).wait_for()
    time.sleep(1)
    b = chart.bounding_box()
    page.mouse.click(b["x"] + 0.25 * 440, b["y"] + 200)  # the curve's plot is 440 px wide, left in the chart
    wait_for(lambda: "theta=0.7" not in href(page), "θ to follow the pick", 60)
    theta = float(re.search(r"theta=([0-9.]+)", href(page)).group(1))
    assert 0.0 <= theta < 0.5, href(page)
    page.get_by_text(f"error at θ = {theta:.2f}", exact=True).wait_for()
    slider = page.locator('[data-testid="stSidebar"] [data-testid="stSlider"]').get_by_role("slider")
    assert float(slider.input_value()) == theta
    no_exception(page)
    # on a 1366×768 laptop the curve and the confusion matrix still fit beside the sidebar
    page.set_viewport_size({"width": 1366, "height": 768})
    time.sleep(1)
    inner = chart.locator("canvas, svg").first.bounding_box()
    assert inner["x"] + inner["width"] <= 1366, inner


def test_the_experiments_page_shows_the_folder_picked(server, page):
    merged = checkpoints.DEFAULT_DIR / "results_robust_n100_cmp3_merged"
    if not (merged / "robust.json").exists() or not shipped():
        pytest.skip("the server runs on fake checkpoints: no committed results beside them")
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto(f"{server}/experiments")
    picker = page.get_by_role("combobox", name="results folder")
    page.get_by_text("False positives (Fig. 4)", exact=False).first.wait_for()
    assert picker.input_value() == "results: cap 100 steps, 50 images/class"  # the paper's run by default
    picker.click()
    page.keyboard.type("cmp3_merged")
    page.keyboard.press("Enter")
    page.get_by_text("robust accuracy against ε").wait_for()
    assert picker.input_value().startswith("results_robust_n100_cmp3_merged: ")
    page.get_by_text("0.97 [0.95, 0.99]", exact=True).first.wait_for()  # θ = 0.7, false positives, 8/255
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 1, "one folder at a time"
    page.get_by_text("robust accuracy against ε").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "experiments_1366x768.png"))
    no_exception(page)
    page.set_viewport_size({"width": W, "height": H})
