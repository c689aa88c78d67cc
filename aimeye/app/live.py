"""A small experiment run live in the app: a tiny Fig. 4 (false positives) or Fig. 6 (false negatives)."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from ..attacks import iterative_fgsm, make_victim
from ..paper import CLASSES, N_OBJECTS, network_key, network_label
from .inputs import held_out_index, held_out_scene
from .state import default_goal


def small_experiment(models, networks=("direct", "triple"), theta: float = 0.7, n_images: int = 3,
                     max_steps: int = 60, goal: str = "fp",
                     progress: Callable[[float, str], None] | None = None) -> list[dict]:
    """The paper's iterative FGSM (:func:`aimeye.attacks.iterative_fgsm`) against each network
    on the first ``n_images`` positive held-out test scenes (classes in turn; a false
    positive aims at the next class). ``progress(fraction, text)`` is called as attacks
    finish. One row per attack, with user-facing names."""
    if goal not in ("fp", "fn"):
        raise ValueError(f"goal must be 'fp' or 'fn', got {goal!r}")
    labels = [k % N_OBJECTS for k in range(n_images)]
    indices = [held_out_index(y, k // N_OBJECTS) for k, y in enumerate(labels)]
    x = torch.cat([held_out_scene(i).x for i in indices])
    y = torch.tensor(labels)
    target = torch.tensor([default_goal(v) for v in labels]) if goal == "fp" else None
    total, finished = len(networks) * n_images, 0
    rows = []
    for net in networks:
        key = network_key(net, theta)
        name = network_label(key)

        def tick(k, name=name):
            nonlocal finished
            finished += int(k)
            if progress:
                progress(min(finished / total, 1.0), f"{name}: {finished} of {total} attacks done")

        t0 = time.perf_counter()
        result = iterative_fgsm(make_victim(models, net, float(theta)), x, y, goal, target, max_steps, progress=tick)
        seconds = time.perf_counter() - t0
        for i, idx in enumerate(indices):
            rows.append({"network": name, "key": key, "test scene": idx, "true class": CLASSES[labels[i]],
                         "aimed at": CLASSES[int(result.target[i])], "steps": int(result.steps[i]),
                         "succeeded": bool(result.success[i]), "verdict": CLASSES[int(result.verdict[i])],
                         "distortion": round(float(result.distortion[i]), 5),
                         "seconds (all images)": round(seconds, 2)})
    return rows
