"""The attacked test images and the filter of the paper's Fig. 6 caption.

Test images are ``make_scenes(4·N, "test", seed=2)`` with the none images
dropped (N per object class). Only images that *every* attacked network
classifies correctly are attacked (the paper filters "misclassified first"),
and the share each network gets wrong is reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..attacks import make_victim
from ..paper import NONE, THETAS

SEED = 2
NETWORKS = ("direct", "direct_param", *(f"triple@{t}" for t in THETAS))  # result keys, in figure order
GOALS = ("fp", "fn")


@dataclass
class TestSet:
    """Positive test images (N,1,64,64) in [0,1], labels (N,), and their scene indices (N,)."""

    __test__ = False  # not a pytest class

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, item) -> TestSet:
        return TestSet(self.images[item], self.labels[item], self.indices[item])

    def first_per_class(self, n_per_class: int) -> TestSet:
        """The first ``n_per_class`` images of each object class (in scene order)."""
        keep = torch.zeros(len(self), dtype=torch.bool)
        for c in self.labels.unique():
            keep[torch.nonzero(self.labels == c).flatten()[:n_per_class]] = True
        return self.select(keep)


def load_test_set(n_per_class: int, seed: int = SEED) -> TestSet:
    """``make_scenes(4·N, "test", seed)`` without the none images: N per object class."""
    from ..scenes import make_scenes

    s = make_scenes(4 * n_per_class, "test", seed)
    pos = s.labels != NONE
    return TestSet(s.images[pos], s.labels[pos], s.indices[pos])


def verdicts(models, x: torch.Tensor, batch: int = 128, extra: dict | None = None) -> dict[str, torch.Tensor]:
    """Every network's verdict on clean images ({key: (N,)}); ``extra`` maps more keys to victims."""
    victims = {"direct": make_victim(models, "direct"), "direct_param": make_victim(models, "direct_param"),
               **(extra or {})}
    triple = make_victim(models, "triple")
    out = {n: [] for n in (*victims, *NETWORKS[2:])}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            for k, v in victims.items():
                out[k].append(v.verdict(xb).cpu())
            scores = triple.scores(xb)
            for t in THETAS:
                out[f"triple@{t}"].append(triple.verdict_from(scores, t).cpu())
    return {k: torch.cat(v) if v else torch.zeros(0, dtype=torch.long) for k, v in out.items()}


def filter_correct(models, ts: TestSet, extra: dict | None = None) -> tuple[TestSet, dict]:
    """Keep the images every network gets right; count what each gets wrong."""
    v = verdicts(models, ts.images, extra=extra)
    wrong = {n: int((v[n] != ts.labels).sum()) for n in v}
    ok = torch.ones(len(ts), dtype=torch.bool)
    for n in v:
        ok &= v[n] == ts.labels
    return ts.select(ok), {"n_images": len(ts), "wrong": wrong, "kept": int(ok.sum())}


def filter_shares(f: dict) -> dict:
    """The share of the test images each network misclassified before any attack."""
    n = max(1, f["n_images"])
    return {net: w / n for net, w in f["wrong"].items()}


def add_filters(a: dict, b: dict) -> dict:
    """Two filter records of disjoint image sets → the record of their union."""
    return {"n_images": a["n_images"] + b["n_images"], "kept": a["kept"] + b["kept"],
            "wrong": {k: a["wrong"].get(k, 0) + b["wrong"].get(k, 0) for k in {**a["wrong"], **b["wrong"]}}}
