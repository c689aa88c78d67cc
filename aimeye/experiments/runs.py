"""The paper's iterated-FGSM experiments (Berntsen et al. §4, Figs 4–6) and their summary.

* fig4 — false positives: the iterated FGSM of §3.2 toward each of the two
  other object classes; success = the verdict is *any* other object class.
* fig6 — false negatives: toward none; success = the verdict is none.
* fig5 — galleries of false positives classified as monkey for direct_param and
  triple@0.7 (drawn by :mod:`aimeye.figures.experiments`).

The triple network's three thresholds share one FGSM trajectory per attack (the
descent toward a target score vector does not depend on θ, only the stop rule
does), so each attack runs once and records the stop of every θ.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from ..attacks import iterative_fgsm, make_victim
from ..paper import THETAS
from .schema import GALLERY_KEYS, ROW_KEYS
from .testset import GOALS, NETWORKS, TestSet

GALLERY_NETWORKS = ("direct_param", "triple@0.7")
GALLERY_CLASS = 0  # monkey, as in the paper's Fig. 5
FGSM_THETA = 0.45  # the victim θ of the shared triple trajectory (every θ's stop is recorded)
TRIPLE_BATCH = 4  # the triple network runs fastest on CPU in small pools (benchmarks/bench_attacks.py)
class Progress:
    """A tqdm bar on stderr (or nothing); ``bar(k)`` advances by k, ``bar.now(text)`` says what runs now."""

    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="attack", dynamic_ncols=True, file=sys.stderr)

    def __call__(self, k: int = 1):
        if self.bar is not None:
            self.bar.update(k)

    def now(self, text: str):
        if self.bar is not None:
            self.bar.set_postfix_str(text)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _rows(result, indices: torch.Tensor, network: str) -> list[dict]:
    return [{**{k: r.get(k) for k in ROW_KEYS}, "network": network, "index": int(indices[i]), "scores": r["scores"]}
            for i, r in enumerate(result.records())]


def _u8(x: torch.Tensor) -> np.ndarray:
    return np.round(x.detach().cpu().numpy().reshape(len(x), 64, 64) * 255).astype(np.uint8)


def _gallery_part(models, network: str, result, x_orig: torch.Tensor, idx: torch.Tensor) -> dict:
    """Successful false positives classified as monkey, with the rotation each network
    estimates for monkey on the adversarial image (triple: its estimator; direct_param:
    its rotation head)."""
    sel = (result.success & (result.verdict == GALLERY_CLASS)).cpu()
    xa = result.x_adv[sel]
    dev = x_orig.device
    with torch.no_grad():
        if len(xa) == 0:
            rot = torch.zeros(0, 3)
        elif network.startswith("triple"):
            rot = torch.cat([models.triple.explain(xa[i:i + 64].to(dev)).rotation[:, GALLERY_CLASS].cpu()
                             for i in range(0, len(xa), 64)])
        else:
            rot = torch.cat([models.direct_param(xa[i:i + 64].to(dev))[1].cpu()
                             for i in range(0, len(xa), 64)]).clamp(-0.5, 0.5)
    return {"network": np.array([network] * int(sel.sum())), "index": idx[sel].numpy().astype(np.int64),
            "label": result.y[sel].numpy().astype(np.int64), "target": result.target[sel].numpy().astype(np.int64),
            "steps": result.steps[sel].numpy().astype(np.int64),
            "distortion": result.distortion[sel].numpy().astype(np.float64),
            "original": _u8(x_orig.cpu()[sel]), "adversarial": _u8(xa), "rotation": rot.numpy().astype(np.float32)}


def cat_gallery(parts: list[dict]) -> dict:
    """Concatenate gallery parts (from networks or ranks), in a canonical order."""
    g = {}
    for k in GALLERY_KEYS:
        arrs = [p[k] for p in parts if k in p]
        if not arrs:
            g[k] = np.zeros((0, 64, 64), np.uint8) if k in ("original", "adversarial") else np.zeros(0)
        else:
            g[k] = np.concatenate(arrs)
    order = sorted(range(len(g["index"])), key=lambda i: (GALLERY_NETWORKS.index(str(g["network"][i]))
                                                           if str(g["network"][i]) in GALLERY_NETWORKS else 9,
                                                           int(g["index"][i]), int(g["target"][i])))
    return {k: v[order] if len(v) else v for k, v in g.items()}


def run_goal(models, ts: TestSet, goal: str, max_steps: int, batch_size: int = 64, progress: bool = True,
             triple_batch_size: int = TRIPLE_BATCH, device: torch.device | None = None,
             ) -> tuple[list[dict], dict, int]:
    """Attack every image (fp: toward both other object classes) on every network.
    Returns (rows, gallery arrays, image-steps taken)."""
    reps = 2 if goal == "fp" else 1
    x = ts.images.repeat(reps, 1, 1, 1).to(device or "cpu")
    y = ts.labels.repeat(reps)
    idx = ts.indices.repeat(reps)
    target = torch.cat([(ts.labels + k) % 3 for k in (1, 2)]) if goal == "fp" else None
    bar = Progress(len(x) * 3, f"{goal} attacks", progress)
    rows, gallery, image_steps = [], [], 0
    for net in ("direct", "direct_param"):
        r = iterative_fgsm(make_victim(models, net), x, y, goal, target=target, max_steps=max_steps,
                           batch_size=batch_size, progress=bar)
        rows += _rows(r, idx, net)
        image_steps += int(r.steps.sum())
        if goal == "fp" and net in GALLERY_NETWORKS:
            gallery.append(_gallery_part(models, net, r, x, idx))
    r = iterative_fgsm(make_victim(models, "triple", FGSM_THETA), x, y, goal, target=target, max_steps=max_steps,
                       thetas=THETAS, batch_size=triple_batch_size, progress=bar)
    if len(x):  # the shared trajectory ran until every θ's goal held (or the cap)
        image_steps += int(torch.stack([v.steps for v in r.per_theta.values()]).max(0).values.sum())
    for t in THETAS:
        net = f"triple@{t}"
        rows += _rows(r.per_theta[t], idx, net)
        if goal == "fp" and net in GALLERY_NETWORKS:
            gallery.append(_gallery_part(models, net, r.per_theta[t], x, idx))
    bar.close()
    return sort_rows(rows), cat_gallery(gallery), image_steps


def sort_rows(rows: list[dict]) -> list[dict]:
    def key(r):
        return (GOALS.index(r["goal"]), NETWORKS.index(r["network"]) if r["network"] in NETWORKS else 99,
                r["index"], r["target"])

    return sorted(rows, key=key)


