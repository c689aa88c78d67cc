"""Many sessions attacking the one shared, cached set of models at once (as Streamlit does:
one thread per session, one ``st.cache_resource`` models object for all).

Every attack run concurrently must give exactly what it gives alone, the weights must
be bit-identical afterwards, and no parameter may have grown a ``.grad``.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from aimeye import checkpoints
from aimeye.app.analysis import analyse
from aimeye.app.inputs import held_out_index, held_out_scene

attacks = pytest.importorskip("aimeye.attacks")
if not hasattr(attacks, "Stepper"):
    pytest.skip("aimeye.attacks has no Stepper yet", allow_module_level=True)

THREADS = 12
STEPS = 5


@pytest.fixture(scope="module")
def models(fake_root):
    return checkpoints.load_models(fake_root)


@pytest.fixture(scope="module", autouse=True)
def one_thread_per_op():
    """As in the app (aimeye.app.env.configure_torch)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def jobs() -> list[dict]:
    """Different images, networks, goals and attacks; the triple ones also record explanations."""
    nets_ = ("triple", "direct", "direct_param")
    out = []
    for i in range(THREADS):
        label, net = i % 3, nets_[i % 3]
        # goals the untrained test networks do not already meet at step 0, so every attack really steps
        goal = {"direct": "fn", "direct_param": "fp"}.get(net, "fn" if i % 4 == 3 else "fp")
        out.append({"network": net, "index": held_out_index(label, i // 3), "y": label, "goal": goal,
                    "target": None if goal == "fn" else (label + 1 + i % 2) % 3,
                    "attack": "pgd" if i % 5 == 4 else "fgsm", "theta": (0.2, 0.45, 0.7)[i % 3]})
    return out


def run_stepper(models, job: dict, x: torch.Tensor, barrier: threading.Barrier | None = None) -> list:
    victim = attacks.make_victim(models, job["network"], job["theta"])
    st = attacks.Stepper(victim, x, job["y"], job["goal"], job["target"], attack=job["attack"], eps=4 / 255,
                         max_steps=50, explain=True)
    if barrier is not None:
        barrier.wait()
    for _ in range(STEPS):
        st.step(1)
    return st.history


def run_batch(models, network: str, x: torch.Tensor, y: torch.Tensor, barrier=None):
    victim = attacks.make_victim(models, network, 0.45)
    if barrier is not None:
        barrier.wait()
    return attacks.iterative_fgsm(victim, x, y, "fp", None, max_steps=STEPS)


def snapshot(models) -> dict[str, torch.Tensor]:
    out = {}
    for name, m in (("direct", models.direct), ("direct_param", models.direct_param), ("triple", models.triple)):
        for k, v in m.state_dict().items():
            out[f"{name}.{k}"] = v.detach().clone()
    return out


def all_modules(models):
    return (models.direct, models.direct_param, models.triple)


def same_history(a: list, b: list):
    assert len(a) == len(b)
    for p, q in zip(a, b):
        assert p.step == q.step and p.verdict == q.verdict
        assert torch.equal(p.image, q.image) and torch.equal(p.perturbation, q.perturbation)
        assert p.scores == q.scores and p.distortion == q.distortion and p.ssim == q.ssim
        assert (p.explanation is None) == (q.explanation is None)
        for c in (p.explanation or {}):
            for k, v in p.explanation[c].items():
                assert np.array_equal(np.asarray(v), np.asarray(q.explanation[c][k])), (c, k)


def test_concurrent_attacks_match_sequential_ones_and_leave_the_models_alone(models):
    js = jobs()
    images = {j["index"]: held_out_scene(j["index"]).x for j in js}
    before = snapshot(models)
    modes = [m.training for m in all_modules(models) for m in m.modules()]

    alone = [run_stepper(models, j, images[j["index"]]) for j in js]
    xs = torch.cat([images[j["index"]] for j in js[:6]])
    ys = torch.tensor([j["y"] for j in js[:6]])
    batch_alone = {n: run_batch(models, n, xs, ys) for n in ("direct", "triple")}

    barrier = threading.Barrier(THREADS + 2)
    with ThreadPoolExecutor(THREADS + 2) as pool:
        futures = [pool.submit(run_stepper, models, j, images[j["index"]], barrier) for j in js]
        batch_futures = {n: pool.submit(run_batch, models, n, xs, ys, barrier) for n in ("direct", "triple")}
        together = [f.result(timeout=300) for f in futures]
        batch_together = {n: f.result(timeout=300) for n, f in batch_futures.items()}

    for a, b in zip(alone, together):
        same_history(a, b)
        assert len(a) == STEPS + 1  # every attack really stepped
    for n, res in batch_alone.items():
        for field in ("steps", "success", "verdict", "x_adv", "distortion", "scores"):
            assert torch.equal(getattr(res, field), getattr(batch_together[n], field)), (n, field)

    after = snapshot(models)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "weights changed"
    for m in all_modules(models):
        assert all(p.grad is None for p in m.parameters()), "a parameter grew a .grad"
        assert not any(p.requires_grad for p in m.parameters())
    assert [m.training for m in all_modules(models) for m in m.modules()] == modes


def test_concurrent_app_analysis_matches(models):
    """The Inspect page's analysis from many sessions at once."""
    xs = [held_out_scene(i).x for i in range(THREADS)]
    alone = [analyse(models, x) for x in xs]
    barrier = threading.Barrier(THREADS)

    def job(x):
        barrier.wait()
        return analyse(models, x)

    with ThreadPoolExecutor(THREADS) as pool:
        together = list(pool.map(job, xs))
    for a, b in zip(alone, together):
        for field in ("scores", "rotation", "projection", "similarity", "direct_probs", "direct_param_probs"):
            assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert all(p.grad is None for m in all_modules(models) for p in m.parameters())
