"""End to end: the real app in a real (headless) Chromium.

Starts ``streamlit run app.py`` on a free port (with the shipped checkpoints when they
are all there, else untrained ones written here), then with Playwright: uploads an
image on the Inspect page, moves θ, goes to the Attack page, steps five times and
checks that the verdict line and the distortion change. Leaves a screenshot in
``tests/artifacts/e2e.png``. Skipped only when /usr/bin/chromium is missing.
"""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import write_fake_checkpoints
from PIL import Image

from aimeye import checkpoints

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "tests" / "artifacts"
TIMEOUT_MS = 60_000

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def checkpoint_root(tmp_path_factory) -> Path:
    if all(checkpoints.paths(s)[1].exists() for s in checkpoints.STAGES):
        return checkpoints.DEFAULT_DIR
    return write_fake_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port = free_port()
    env = dict(os.environ, AIMEYE_CHECKPOINTS=str(checkpoint_root(tmp_path_factory)), PYTHONPATH=str(REPO))
    log = tmp_path_factory.mktemp("log") / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"streamlit did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the process group we started, nothing else
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def metric_values(page, label: str) -> list[str]:
    metrics = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=re.compile(f"^{re.escape(label)}$")))
    return [v.strip() for v in metrics.locator('[data-testid="stMetricValue"]').all_inner_texts()]


def verdict_lines(page) -> list[str]:
    return [t.strip() for t in page.locator('[data-testid="stMarkdownContainer"] p').filter(
        has_text=re.compile(r"^verdict:")).all_inner_texts()]


def wait_for(predicate, what: str, timeout_s: float = 60):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_upload_theta_and_attack_in_a_browser(server, browser, tmp_path):
    photo = tmp_path / "e2e.png"
    rgb = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    photo.write_bytes(buf.getvalue())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        # Inspect: upload an image
        page.goto(f"{server}/inspect")
        page.get_by_text("Inspect: the mind's eye").wait_for()
        sidebar = page.locator('[data-testid="stSidebar"]')
        sidebar.get_by_text("Upload", exact=True).click()
        page.locator('input[type="file"]').set_input_files(str(photo))
        page.get_by_text("upload “e2e.png”", exact=False).first.wait_for()
        assert not page.locator('[data-testid="stException"]').count()
        assert "source=upload" in page.url

        # move θ with the keyboard: 0.70 → 0.60
        verdict = page.locator('[data-testid="stAlert"]').filter(has_text="Triple-staged").first
        assert "θ = 0.70" in verdict.inner_text()
        slider = sidebar.locator('[data-testid="stSlider"]').filter(has_text="threshold θ").get_by_role("slider")
        slider.focus()
        for _ in range(10):
            slider.press("ArrowLeft")
        wait_for(lambda: "θ = 0.60" in verdict.inner_text(), "the verdict to follow θ")
        wait_for(lambda: "theta=0.6" in page.url, "θ in the URL")
        page.screenshot(path=str(ARTIFACTS / "e2e_inspect.png"), full_page=True)

        # Attack: step five times
        page.get_by_role("link", name="Attack stepper").click()
        page.get_by_text("uploaded earlier", exact=False).wait_for()  # the upload came along
        page.get_by_role("button", name="step", exact=True).wait_for()
        sidebar.get_by_text("Held-out test set", exact=True).click()  # the default: a penguin test scene
        page.get_by_text("start: penguin").wait_for()
        wait_for(lambda: metric_values(page, "step") == ["0", "0"], "fresh attacks")
        verdicts0, dist0 = verdict_lines(page), metric_values(page, "distortion")
        assert len(verdicts0) == 2 and dist0 == ["0.0000", "0.0000"]
        for k in range(1, 6):
            page.get_by_role("button", name="step", exact=True).click()
            wait_for(lambda k=k: (s := metric_values(page, "step")) and max(int(v) for v in s) == k,
                     f"step {k}")
        verdicts5, dist5 = verdict_lines(page), metric_values(page, "distortion")
        assert verdicts5 != verdicts0, (verdicts0, verdicts5)
        assert dist5 != dist0 and max(float(d) for d in dist5) > 0, dist5
        assert not page.locator('[data-testid="stException"]').count()
        page.screenshot(path=str(ARTIFACTS / "e2e.png"), full_page=True)

        # play runs the fragment on a timer until paused
        def latest():
            s = metric_values(page, "step")
            return max(int(v) for v in s) if s else -1

        page.get_by_role("button", name="▶ play").click()
        wait_for(lambda: latest() >= 15, "play to keep stepping", 60)
        page.get_by_role("button", name="⏸ pause").click()
        page.get_by_role("button", name="▶ play").wait_for()
        time.sleep(1.5)
        paused_at = latest()
        time.sleep(2.5)
        assert latest() == paused_at, "pause stops the stepping"
        assert not page.locator('[data-testid="stException"]').count()
    finally:
        page.close()
    assert not errors, errors
