"""Evaluation: per-stage quality metrics, Table 1 and the θ sweep.

Everything here runs on **test** scenes (backgrounds from the test sources only)
and writes the numbers that the sidecars, ``checkpoints/metrics.json``, the
README and the app show. Choices between training recipes are made on the
**validation** split instead (:data:`SPLITS`): train backgrounds, but a scene
seed no training run draws, so the test photographs are never used to choose.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import checkpoints, nets, runtime
from .paper import CLASSES, NONE, PAPER_TABLE1, STAGES, THETAS
from .scenes import make_scenes, projector_targets

STAGE_EVAL_N = 1000
EVAL_SEED = 1
VAL_SEED = 7  # training draws its scenes with the stage seed (0 by default) and never this one
SPLITS = {"test": ("test", EVAL_SEED), "val": ("train", VAL_SEED)}  # name -> (background split, scene seed)


def resolve_split(split: str, seed: int | None) -> tuple[str, int]:
    """``split`` (:data:`SPLITS`) → (background split, scene seed); an explicit ``seed`` wins."""
    bg_split, default_seed = SPLITS[split]
    return bg_split, default_seed if seed is None else seed


def batched(fn, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


def held_out_renders(n: int, seed: int = 12345):
    """Rotations never drawn in training (another seed), rendered over black."""
    return projector_targets(n, seed, 0)


def projector_metrics(projector, n: int = 600) -> dict:
    rot, cls, img, alpha = held_out_renders(n)
    with torch.no_grad():
        p_img, p_alpha = projector(rot, cls)
    a, b = p_alpha > 0.5, alpha > 0.5
    iou = ((a & b).flatten(1).sum(1).float() / (a | b).flatten(1).sum(1).clamp_min(1).float())
    mae = (p_img - img).abs().flatten(1).mean(1)
    names = [CLASSES[c] for c in range(nets.N_OBJECTS)]
    return {"image_mae": mae.mean().item(), "alpha_mae": (p_alpha - alpha).abs().mean().item(),
            "alpha_iou": iou.mean().item(), "n": n,
            "image_mae_per_class": {k: mae[cls == c].mean().item() for c, k in enumerate(names)},
            "alpha_iou_per_class": {k: iou[cls == c].mean().item() for c, k in enumerate(names)}}


def rotation_mae(pred: torch.Tensor, true: torch.Tensor) -> float:
    return (pred - true).abs().mean().item()


def stage_metrics(stage: str, root=None, n: int = STAGE_EVAL_N) -> dict:
    """Quality of one stage's shipped checkpoint on test scenes."""
    if stage == "projector":
        return projector_metrics(checkpoints.load("projector", root))
    s = make_scenes(n, "test", EVAL_SEED)
    pos = s.labels != NONE
    if stage in ("direct", "direct-at"):
        logits = batched(checkpoints.load(stage, root), s.images)
        return {"test_error": (logits.argmax(1) != s.labels).float().mean().item(), "n": n}
    if stage == "direct-param":
        m = checkpoints.load("direct-param", root)
        with torch.no_grad():
            out = [m(s.images[i:i + 256]) for i in range(0, n, 256)]
        logits = torch.cat([o[0] for o in out])
        params = torch.cat([o[1] for o in out]).clamp(-0.5, 0.5)
        return {"test_error": (logits.argmax(1) != s.labels).float().mean().item(),
                "rotation_mae": rotation_mae(params[pos], s.rotations[pos]), "n": n}
    if stage in ("estimator", "estimator-at"):
        est = checkpoints.load(stage, root)
        with torch.no_grad():
            pred = est(s.images[pos], s.labels[pos])
        return {"rotation_mae": rotation_mae(pred, s.rotations[pos]), "n": int(pos.sum())}
    if stage in ("comparator", "comparator-at"):
        at = stage.removeprefix("comparator")
        triple = nets.TripleStaged(checkpoints.load("estimator" + at, root), checkpoints.load("projector", root),
                                   checkpoints.load(stage, root))
        scores = batched(triple, s.images, 128)
        return {f"triple_error@{t}": (nets.verdict_from_scores(scores, t) != s.labels).float().mean().item()
                for t in THETAS} | {"n": n}
    raise ValueError(stage)


def stage_metrics_to_sidecar(stage: str, root=None) -> dict:
    """Evaluate a shipped stage and store the metrics in its sidecar."""
    metrics = stage_metrics(stage, root)
    _, jpath = checkpoints.paths(stage, root)
    sidecar = checkpoints.read_sidecar(stage, root)
    sidecar["metrics"] = metrics
    sidecar["metrics_command"] = f"python -m aimeye evaluate --stage {stage}"
    jpath.write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def confusion(pred: torch.Tensor, true: torch.Tensor, k: int = 4) -> list[list[int]]:
    m = torch.zeros(k, k, dtype=torch.long)
    m.index_put_((true, pred), torch.ones_like(true), accumulate=True)
    return m.tolist()


def theta_sweep(scores: torch.Tensor, labels: torch.Tensor, thetas=None) -> list[dict]:
    """Error, rejection rate (share judged none) and confusion matrix for each θ."""
    thetas = np.round(np.linspace(0, 1, 101), 2) if thetas is None else thetas
    rows = []
    for t in thetas:
        v = nets.verdict_from_scores(scores, float(t))
        rows.append({"theta": float(t), "error": (v != labels).float().mean().item(),
                     "rejection": (v == NONE).float().mean().item(), "confusion": confusion(v, labels)})
    return rows


def table1(n_per_class: int = 2500, models=None, seed: int | None = None, batch: int = 250,
           ranks: runtime.Ranks | None = None, split: str = "test") -> dict:
    """Error rates of every network on held-out scenes of ``split`` (:data:`SPLITS`; Table 1 is
    ``test``) plus the θ sweep. Under torchrun each rank scores its slice of the scenes and every
    rank returns the whole table."""
    bg_split, seed = resolve_split(split, seed)
    models = models or checkpoints.load_models()
    ranks = ranks or runtime.Ranks()
    dev = ranks.device
    direct, dparam, triple = (m if dev.type == "cpu" else copy.deepcopy(m).to(dev)
                              for m in (models.direct, models.direct_param, models.triple))
    t0 = time.time()
    mine = ranks.slice(4 * n_per_class)
    s = make_scenes(len(mine), bg_split, seed, start=mine.start)
    gen_s = time.time() - t0
    out = {"direct": [], "direct_param": [], "scores": []}
    with torch.no_grad():
        for i in tqdm(range(0, len(s), batch), desc="evaluate", disable=not ranks.main):
            x = s.images[i:i + batch].to(dev)
            out["direct"].append(direct(x).argmax(1).cpu())
            out["direct_param"].append(dparam(x)[0].argmax(1).cpu())
            out["scores"].append(triple(x).cpu())
    pred = {k: runtime.gather_cat(torch.cat(v), ranks) for k, v in out.items()}
    y = runtime.gather_cat(s.labels, ranks)
    scores = pred.pop("scores")
    return {
        "n_per_class": n_per_class, "classes": list(CLASSES), "split": split,
        "backgrounds": bg_split, "seed": seed,
        **error_table(pred, scores, y),
        "seconds": round(time.time() - t0, 1), "scene_seconds": round(gen_s, 1),
        "device": str(dev), "processes": ranks.world,
        "checkpoints_sha256": checkpoints.recorded_shas(STAGES, models.root),
    }


def error_table(pred: dict[str, torch.Tensor], scores: torch.Tensor, y: torch.Tensor) -> dict:
    """Table 1 from predictions: ``pred`` maps a network to its labels (N,), ``scores`` are the
    triple-staged network's (N,3) class scores (judged at each paper θ), ``y`` the true labels."""
    pred = dict(pred) | {f"triple@{t}": nets.verdict_from_scores(scores, t) for t in THETAS}
    return {"errors": {k: (v != y).float().mean().item() for k, v in pred.items()},
            "counts": {k: int((v != y).sum()) for k, v in pred.items()},
            "paper_errors": PAPER_TABLE1,
            "confusion": {k: confusion(v, y) for k, v in pred.items()},
            "theta_sweep": theta_sweep(scores, y)}


def write_metrics(result: dict, path: Path | str | None = None) -> Path:
    """Default: ``checkpoints/metrics.json`` for the test split, ``metrics_val.json`` for validation."""
    name = "metrics.json" if result.get("split", "test") == "test" else f"metrics_{result['split']}.json"
    path = Path(path) if path else checkpoints.DEFAULT_DIR / name
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


ABAR_BINS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 1.01))


def drawing_attribution(triple, s) -> dict:
    """Which stage holds an object's own score down: each object's scenes scored three ways, with
    (a) the estimator's rotation (the network as it is), (b) the true rotation through the projector
    (a perfect estimator) and (c) the true render and alpha (a perfect estimator *and* projector).
    What stays below θ under (c) is the comparator's alone."""
    out = {}
    with torch.no_grad():
        for c in range(NONE):
            sel = s.labels == c
            x, cls = s.images[sel], s.labels[sel]
            drawings = {"estimated_rotation": triple.projector(triple.estimator(x, cls), cls),
                        "true_rotation": triple.projector(s.rotations[sel], cls),
                        "true_render": (s.renders[sel], s.alphas[sel])}
            rows = {}
            for name, (img, alpha) in drawings.items():
                sc = nets.drawing_score(triple.comparator, x, img, alpha)
                rows[name] = {"score_mean": sc.mean().item(),
                              "below": {str(t): int((sc < t).sum()) for t in THETAS}}
            out[CLASSES[c]] = {"n": int(sel.sum()), **rows}
    return out


def score_anatomy(models, n_per_class: int = 300, seed: int | None = None, split: str = "test") -> dict:
    """Where each class's score comes from, on none scenes and on each object's own scenes: the
    projection's alpha mass Σā, the share of it in background-dominated patches (ā < 0.25), and the
    mean similarity per ā bin (ā-weighted, as the score weighs it). A class whose score leans on
    patches the comparator cannot judge (similarity near 0.5 whatever the query) has a floor under
    its score on none scenes and a ceiling on its own. ``attribution``: :func:`drawing_attribution`."""
    bg_split, seed = resolve_split(split, seed)
    s = make_scenes(4 * n_per_class, bg_split, seed)
    out = {}
    with torch.no_grad():
        for q in range(NONE + 1):
            e = models.triple.explain(s.images[s.labels == q])
            rows = {}
            for c in range(NONE):
                a, sim = e.pooled_alpha[:, c], e.similarity[:, c]
                mass = a.flatten(1).sum(1).clamp_min(1e-9)
                rows[CLASSES[c]] = {
                    "score_mean": e.scores[:, c].mean().item(),
                    "share_above": {str(t): (e.scores[:, c] >= t).float().mean().item() for t in THETAS},
                    "alpha_mass": mass.mean().item(),
                    "mass_share_below_0.25": ((a * (a < 0.25)).flatten(1).sum(1) / mass).mean().item(),
                    "similarity_by_abar": {f"{lo}-{hi}": ((sim * a * ((a >= lo) & (a < hi))).sum()
                                                         / (a * ((a >= lo) & (a < hi))).sum().clamp_min(1e-9)).item()
                                           for lo, hi in ABAR_BINS}}
            out[f"{CLASSES[q]} scenes"] = rows
    return {"n_per_class": n_per_class, "split": split, "seed": seed, "anatomy": out,
            "attribution": drawing_attribution(models.triple, s)}
