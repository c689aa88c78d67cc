"""Shared fixtures: untrained networks written as real checkpoints, so tests never depend on
the shipped ones (which may be retraining) unless they say so."""

import numpy as np
import pytest
import torch

from aimeye import checkpoints, nets


def write_fake_checkpoints(root):
    torch.manual_seed(0)
    for stage in checkpoints.STAGES:
        checkpoints.save(stage, nets.build(stage), {"command": "test", "seed": 0, "wall_time_s": 0}, root=root)
    return root


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory):
    return write_fake_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """Toy-sized tensors gain nothing from threads, and the CPU may be shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def synthetic_attacks(rng=None) -> list[dict]:
    """Rows shaped like ``python -m aimeye experiment``'s attacks.csv / attacks.json."""
    rng = rng or np.random.default_rng(0)
    rows = []
    for goal in ("fp", "fn"):
        for net, scale in (("direct", 5), ("direct_param", 6), ("triple@0.2", 50), ("triple@0.45", 150),
                           ("triple@0.7", 400)):
            for i in range(20):
                steps = int(rng.integers(1, 2 * scale))
                rows.append({"goal": goal, "network": net, "index": i, "label": i % 3, "target": (i + 1) % 3,
                             "theta": float(net.split("@")[1]) if "@" in net else None, "steps": steps,
                             "success": steps < 700, "verdict": 0, "distortion": steps / 2000, "linf": steps / 255,
                             "l2": 0.1, "ssim": 0.9, "scores": [0.1, 0.2, 0.3]})
    return rows


@pytest.hookimpl(wrapper=True)
def pytest_sessionstart(session):
    """Compile the renderer's numba kernels once, in the controller, before any test runs.

    On a fresh clone there is no numba cache yet (``cache=True`` writes it under ``aimeye/__pycache__``),
    and every process that renders first would compile the same kernels (about 11 s each): both xdist
    workers, the Streamlit server of the browser tests and each torchrun rank. Compiled here once, they
    all load the cache instead (about 1 s). Run after xdist's own hook has started the workers, it
    overlaps their start-up (imports and collection), and they get no test before it ends."""
    yield
    if not hasattr(session.config, "workerinput"):
        from aimeye import backgrounds, scenes

        scenes.make_scenes(1, "test", seed=0)  # a monkey on a photograph: the rasterizer and the crop
        backgrounds.Backgrounds("test", photos=False).sample(np.random.default_rng(0))  # the dead leaves


def pytest_collection_modifyitems(config, items):
    """Slow checks first (a stable sort keeps the order within each kind): they start at once, and the
    quick tests fill in around them on the other xdist worker instead of queueing behind them."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
