"""Figs 4–6 of Berntsen et al. (§4) and robustness curves, with sharding and merging.

    python -m aimeye experiment {fig4,fig5,fig6,robust,all} --n-per-class N [--max-steps M]
                                [--shard i/k] [--out checkpoints/results]
    python -m aimeye experiment merge DIR... [--out checkpoints/results]

Test images: ``make_scenes(4·N, "test", seed=2)`` with the none images dropped
(N per object class), filtered to those that *every* attacked network
classifies correctly (direct, direct_param, triple at θ = 0.2, 0.45, 0.7); the
share each network gets wrong is reported like the paper's Fig. 6 caption.

* fig4 — false positives: the iterated FGSM of §3.2 toward each of the two
  other object classes; success = the verdict is *any* other object class.
* fig6 — false negatives: toward none; success = the verdict is none.
* fig5 — galleries of false positives classified as monkey for direct_param and
  triple@0.7, ordered by distortion, with the monkey re-rendered by the true
  renderer at the network's estimated rotation and blended onto the original.
* robust — PGD (Madry et al. 2018) success vs ε ∈ {0,1,2,4,8,16,32}/255 for
  every network and goal, transfer of direct-crafted adversarials (iterated
  FGSM, one-step FGSM, PGD) to the triple network, and a gradient-masking check
  (PGD on the triple network with the estimator's clip bypassed in the
  backward pass, ``straight_through=True``).

The triple network's three thresholds share one FGSM trajectory per attack (the
descent toward a target score vector does not depend on θ, only the stop rule
does), so each attack runs once and records the stop of every θ.

Files in the output directory: ``attacks.json`` / ``attacks.csv`` (one row per
attack), ``gallery.npz`` (fig5 material), ``robust.json``, ``summary.json``,
``fig4``/``fig6``/``robust`` ``.html`` + ``.png``, ``fig5_*.png`` and
``README.md``. ``--shard i/k`` attacks every k-th image (from the i-th);
``merge`` concatenates shard directories and redraws everything.
"""

from __future__ import annotations

import csv
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import checkpoints
from .attacks import fgsm, iterative_fgsm, make_victim, pgd
from .attacks.victims import goal_reached
from .paper import CLASSES, NONE, THETAS

NETWORKS = ("direct", "direct_param", *(f"triple@{t}" for t in THETAS))
GOALS = ("fp", "fn")
EPS_255 = (0, 1, 2, 4, 8, 16, 32)
SEED = 2
DEFAULT_OUT = checkpoints.DEFAULT_DIR / "results"
GALLERY_NETWORKS = ("direct_param", "triple@0.7")
GALLERY_CLASS = 0  # monkey, as in the paper's Fig. 5
GALLERY_COLUMNS = 10
MASKING_THETA = 0.45
TRIPLE_BATCH = 4  # the triple network runs fastest in small pools (see benchmarks/bench_attacks.py)
PAPER = {"fig4_direct_median_distortion_below": 0.1,
         "fig6_filtered_percent": dict(zip(NETWORKS, (0.00, 0.01, 0.17, 0.77, 4.12))),
         "step_cap": 10_000}
ROW_KEYS = ("goal", "network", "index", "label", "target", "theta", "steps", "success", "verdict", "distortion",
            "linf", "l2", "ssim")


# --- test images -------------------------------------------------------------------------------

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


def load_test_set(n_per_class: int, seed: int = SEED) -> TestSet:
    """``make_scenes(4·N, "test", seed)`` without the none images: N per object class."""
    from .scenes import make_scenes

    s = make_scenes(4 * n_per_class, "test", seed)
    pos = s.labels != NONE
    return TestSet(s.images[pos], s.labels[pos], s.indices[pos])


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    i, _, k = text.partition("/")
    i, k = int(i), int(k)
    if not (k >= 1 and 0 <= i < k):
        raise ValueError(f"--shard must be i/k with 0 ≤ i < k, got {text!r}")
    return i, k


def shard(ts: TestSet, i: int, k: int) -> TestSet:
    return ts.select(slice(i, None, k))


def verdicts(models, x: torch.Tensor, batch: int = 128) -> dict[str, torch.Tensor]:
    """Every network's verdict on clean images."""
    out = {n: [] for n in NETWORKS}
    with torch.no_grad():
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            out["direct"].append(make_victim(models, "direct").verdict(xb))
            out["direct_param"].append(make_victim(models, "direct_param").verdict(xb))
            scores = make_victim(models, "triple").scores(xb)
            for t in THETAS:
                out[f"triple@{t}"].append(make_victim(models, "triple", t).verdict_from(scores))
    return {k: torch.cat(v) if v else torch.zeros(0, dtype=torch.long) for k, v in out.items()}


def filter_correct(models, ts: TestSet) -> tuple[TestSet, dict]:
    """Keep the images every network gets right; count what each gets wrong."""
    v = verdicts(models, ts.images)
    wrong = {n: int((v[n] != ts.labels).sum()) for n in NETWORKS}
    ok = torch.ones(len(ts), dtype=torch.bool)
    for n in NETWORKS:
        ok &= v[n] == ts.labels
    return ts.select(ok), {"n_images": len(ts), "wrong": wrong, "kept": int(ok.sum())}


def filter_shares(f: dict) -> dict:
    n = max(1, f["n_images"])
    return {net: f["wrong"][net] / n for net in NETWORKS}


# --- the attacks ---------------------------------------------------------------------------------

class _Progress:
    def __init__(self, total: int, desc: str, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="attack", dynamic_ncols=True, file=sys.stderr)

    def __call__(self, k: int):
        if self.bar is not None:
            self.bar.update(k)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _rows(result, ts: TestSet, network: str, reps: int = 1) -> list[dict]:
    idx = ts.indices.repeat(reps)
    return [{**{k: r.get(k) for k in ROW_KEYS}, "network": network, "index": int(idx[i]), "scores": r["scores"]}
            for i, r in enumerate(result.records())]


def _u8(x: torch.Tensor) -> np.ndarray:
    return np.round(x.detach().numpy().reshape(len(x), 64, 64) * 255).astype(np.uint8)


def _gallery_part(models, network: str, result, x_orig: torch.Tensor, ts_idx: torch.Tensor) -> dict:
    """Successful false positives classified as monkey, with the rotation each network
    estimates for monkey on the adversarial image (triple: its estimator; direct_param:
    its rotation head)."""
    sel = result.success & (result.verdict == GALLERY_CLASS)
    xa = result.x_adv[sel]
    with torch.no_grad():
        if len(xa) == 0:
            rot = torch.zeros(0, 3)
        elif network.startswith("triple"):
            rot = torch.cat([models.triple.explain(xa[i:i + 64]).rotation[:, GALLERY_CLASS]
                             for i in range(0, len(xa), 64)])
        else:
            rot = torch.cat([models.direct_param(xa[i:i + 64])[1] for i in range(0, len(xa), 64)]).clamp(-0.5, 0.5)
    return {"network": np.array([network] * int(sel.sum())), "index": ts_idx[sel].numpy().astype(np.int64),
            "label": result.y[sel].numpy().astype(np.int64), "target": result.target[sel].numpy().astype(np.int64),
            "steps": result.steps[sel].numpy().astype(np.int64),
            "distortion": result.distortion[sel].numpy().astype(np.float64),
            "original": _u8(x_orig[sel]), "adversarial": _u8(xa), "rotation": rot.numpy().astype(np.float32)}


GALLERY_KEYS = ("network", "index", "label", "target", "steps", "distortion", "original", "adversarial", "rotation")


def _cat_gallery(parts: list[dict]) -> dict:
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


def run_goal(models, ts: TestSet, goal: str, max_steps: int, batch_size: int = 64,
             progress: bool = True, triple_batch_size: int = TRIPLE_BATCH) -> tuple[list[dict], dict, int]:
    """Attack every image (fp: toward both other object classes) on every network.
    Returns (rows, gallery arrays, image-steps taken)."""
    reps = 2 if goal == "fp" else 1
    x = ts.images.repeat(reps, 1, 1, 1)
    y = ts.labels.repeat(reps)
    target = torch.cat([(ts.labels + k) % 3 for k in (1, 2)]) if goal == "fp" else None
    bar = _Progress(len(x) * 3, f"{goal} attacks", progress)
    rows, gallery, image_steps = [], [], 0
    for net in ("direct", "direct_param"):
        r = iterative_fgsm(make_victim(models, net), x, y, goal, target=target, max_steps=max_steps,
                           batch_size=batch_size, progress=bar)
        rows += _rows(r, ts, net, reps)
        image_steps += int(r.steps.sum())
        if goal == "fp" and net in GALLERY_NETWORKS:
            gallery.append(_gallery_part(models, net, r, x, ts.indices.repeat(reps)))
    r = iterative_fgsm(make_victim(models, "triple", MASKING_THETA), x, y, goal, target=target, max_steps=max_steps,
                       thetas=THETAS, batch_size=triple_batch_size, progress=bar)
    if len(x):  # the shared trajectory ran until every θ's goal held (or the cap)
        image_steps += int(torch.stack([v.steps for v in r.per_theta.values()]).max(0).values.sum())
    for t in THETAS:
        net = f"triple@{t}"
        rows += _rows(r.per_theta[t], ts, net, reps)
        if goal == "fp" and net in GALLERY_NETWORKS:
            gallery.append(_gallery_part(models, net, r.per_theta[t], x, ts.indices.repeat(reps)))
    bar.close()
    return sort_rows(rows), _cat_gallery(gallery), image_steps


def sort_rows(rows: list[dict]) -> list[dict]:
    def key(r):
        return (GOALS.index(r["goal"]), NETWORKS.index(r["network"]) if r["network"] in NETWORKS else 99,
                r["index"], r["target"])

    return sorted(rows, key=key)


def run_robust(models, ts: TestSet, eps_255=EPS_255, steps: int = 10, batch_size: int = 64,
               max_steps: int = 10_000, progress: bool = True, triple_batch_size: int = TRIPLE_BATCH) -> dict:
    """PGD success vs ε per network and goal, transfer from direct, and the gradient-masking check.
    Everything is stored as counts over ``n_images`` so shards add up."""
    x, y = ts.images, ts.labels
    n = len(ts)
    eps_list = [e / 255 for e in eps_255]
    triples = [f"triple@{t}" for t in THETAS]
    jobs = len(GOALS) * (len(NETWORKS) + 1) * len(eps_list)
    bar = _Progress(jobs, "robust (PGD runs)", progress)
    pgd_counts = {g: {net: [] for net in NETWORKS} for g in GOALS}
    masking = {g: {f"triple@{MASKING_THETA}+st": []} for g in GOALS}
    transfer = {"pgd": {g: {net: [] for net in ("direct", *triples)} for g in GOALS},
                "fgsm": {g: {net: [] for net in ("direct", *triples)} for g in GOALS},
                "iterative_fgsm": {g: {} for g in GOALS}}
    triple_scores = make_victim(models, "triple")

    def triple_hits(xa, goal) -> dict:
        with torch.no_grad():
            s = torch.cat([triple_scores.scores(xa[i:i + 128]) for i in range(0, len(xa), 128)]
                          or [torch.zeros(0, 3)])
        return {f"triple@{t}": int(goal_reached(triple_scores.verdict_from(s, t), y, goal).sum()) for t in THETAS}

    for goal in GOALS:
        for net in NETWORKS:
            victim = make_victim(models, net)
            for e in eps_list:
                r = pgd(victim, x, y, goal, e, steps=steps, seed=0,
                        batch_size=triple_batch_size if net.startswith("triple") else batch_size)
                pgd_counts[goal][net].append(int(r.success.sum()))
                if net == "direct":
                    transfer["pgd"][goal]["direct"].append(int(r.success.sum()))
                    for k, v in triple_hits(r.x_adv, goal).items():
                        transfer["pgd"][goal][k].append(v)
                bar(1)
        st = make_victim(models, "triple", MASKING_THETA, straight_through=True)
        for e in eps_list:
            r = pgd(st, x, y, goal, e, steps=steps, batch_size=triple_batch_size, seed=0)
            masking[goal][f"triple@{MASKING_THETA}+st"].append(int(r.success.sum()))
            bar(1)
        direct = make_victim(models, "direct")
        target = (y + 1) % 3 if goal == "fp" else None
        for e in eps_list:
            xa = fgsm(direct, x, y, goal, e, target=target) if n else x
            with torch.no_grad():
                hit = goal_reached(direct.verdict(xa), y, goal) if n else torch.zeros(0, dtype=torch.bool)
            transfer["fgsm"][goal]["direct"].append(int(hit.sum()))
            for k, v in triple_hits(xa, goal).items():
                transfer["fgsm"][goal][k].append(v)
        r = iterative_fgsm(direct, x, y, goal, target=target, max_steps=max_steps, batch_size=batch_size)
        transfer["iterative_fgsm"][goal] = {"direct": int(r.success.sum()), **triple_hits(r.x_adv, goal)}
    bar.close()
    masking_ref = {g: {f"triple@{MASKING_THETA}": pgd_counts[g][f"triple@{MASKING_THETA}"],
                       **masking[g]} for g in GOALS}
    return {"n_images": n, "eps_255": list(eps_255), "pgd_steps": steps, "pgd_restarts": 1,
            "pgd_alpha": "2.5·ε/steps (Madry et al.)", "iterative_fgsm_max_steps": max_steps,
            "pgd_success": pgd_counts, "gradient_masking": masking_ref, "transfer_from_direct": transfer}


def robust_rates(robust: dict) -> dict:
    """Success counts → rates, and accuracy under attack = 1 − success rate."""
    n = max(1, robust["n_images"])

    def rate(v):
        return [c / n for c in v] if isinstance(v, list) else v / n

    def walk(d):
        return {k: walk(v) if isinstance(v, dict) else rate(v) for k, v in d.items()}

    return {"success_rate": walk(robust["pgd_success"]),
            "accuracy": {g: {net: [1 - r for r in rate(v)] for net, v in d.items()}
                         for g, d in robust["pgd_success"].items()},
            "gradient_masking_success_rate": walk(robust["gradient_masking"]),
            "transfer_success_rate": walk(robust["transfer_from_direct"])}


def merge_robust(parts: list[dict]) -> dict:
    if not parts:
        return {}

    def add(a, b):
        if isinstance(a, dict):
            return {k: add(a[k], b[k]) for k in a}
        if isinstance(a, list):
            return [add(u, v) for u, v in zip(a, b)]
        return a + b if isinstance(a, int) and not isinstance(a, bool) else a

    out = {k: v for k, v in parts[0].items() if k != "meta"}
    for p in parts[1:]:
        for k in ("eps_255", "pgd_steps", "iterative_fgsm_max_steps"):
            if p[k] != out[k]:
                raise ValueError(f"robust shards differ in {k}: {p[k]} vs {out[k]}")
        for k in ("pgd_success", "gradient_masking", "transfer_from_direct"):
            out[k] = add(out[k], p[k])
        out["n_images"] += p["n_images"]
    return out


# --- statistics ----------------------------------------------------------------------------------

def box_stats(values) -> dict:
    """Box plot statistics with whiskers at the 2nd and 98th percentiles (the paper's Figs 4 and 6)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"n": 0, **{k: None for k in ("p2", "q1", "median", "q3", "p98", "mean")}}
    p2, q1, med, q3, p98 = np.percentile(v, [2, 25, 50, 75, 98])
    return {"n": len(v), "p2": float(p2), "q1": float(q1), "median": float(med), "q3": float(q3),
            "p98": float(p98), "mean": float(v.mean())}


def summarise(rows: list[dict], filt: dict, meta: dict, robust: dict | None = None) -> dict:
    out = {"meta": meta, "filter": {**filt, "misclassified_share": filter_shares(filt)},
           "paper": PAPER, "definitions": {
               "steps": "FGSM steps of one grey level (1/255) until the goal held; the cap (max_steps) = failed",
               "distortion": "RMS of x̃ − x in [0,1] units = the paper's (1/255)·RMS in 0–255 units",
               "fp": "verdict becomes another object class (either), attacked toward each other class",
               "fn": "verdict becomes none",
               "whiskers": "2nd and 98th percentiles; failures count with steps = cap"}}
    for goal in GOALS:
        g = {}
        for net in NETWORKS:
            rs = [r for r in rows if r["goal"] == goal and r["network"] == net]
            ok = [r for r in rs if r["success"]]
            g[net] = {"n": len(rs), "success_rate": (len(ok) / len(rs)) if rs else None,
                      "steps": box_stats([r["steps"] for r in rs]),
                      "distortion": box_stats([r["distortion"] for r in rs]),
                      "distortion_success_only": box_stats([r["distortion"] for r in ok]),
                      "ssim": box_stats([r["ssim"] for r in rs])}
        if any(v["n"] for v in g.values()):
            out[goal] = g
    fp = out.get("fp", {})
    a, b = fp.get("triple@0.7", {}).get("distortion", {}), fp.get("direct", {}).get("distortion", {})
    out["ratio_fp_median_distortion_triple0.7_over_direct"] = (
        a["median"] / b["median"] if a.get("median") is not None and b.get("median") else None)
    if robust:
        out["robust"] = {"n_images": robust["n_images"], "eps_255": robust["eps_255"], **robust_rates(robust)}
    return out


# --- files ---------------------------------------------------------------------------------------

def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _write_json(path: Path, obj):
    path.write_text(json.dumps(obj, indent=1) + "\n")


def _write_attacks_json(path: Path, attacks: dict):
    """Like json.dump, with one attack per line (thousands of rows stay diff- and grep-friendly)."""
    head = {k: v for k, v in attacks.items() if k != "attacks"}
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in attacks["attacks"])
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2] + ',\n "attacks": [\n' + body + "\n ]\n}\n"
    path.write_text(text)


def write_csv(rows: list[dict], path: Path):
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow([*ROW_KEYS, *(f"score_{i}" for i in range(4))])
        for r in rows:
            s = list(r.get("scores") or []) + [""] * (4 - len(r.get("scores") or []))
            w.writerow([r[k] if not isinstance(r[k], float) else f"{r[k]:.6g}" for k in ROW_KEYS]
                       + [f"{v:.6g}" if v != "" else "" for v in s])


def save_gallery(g: dict, path: Path):
    np.savez_compressed(path, **{k: (v.astype("U32") if k == "network" else v) for k, v in g.items()})


def load_gallery(path: Path) -> dict | None:
    if not path.exists():
        return None
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def write_all(out: Path, attacks: dict, gallery: dict | None, robust: dict | None, figures: bool = True,
              png: bool = True) -> dict:
    """Write attacks.json/.csv, gallery.npz, robust.json, summary.json, figures, README."""
    out.mkdir(parents=True, exist_ok=True)
    attacks["attacks"] = sort_rows(attacks["attacks"])
    _write_attacks_json(out / "attacks.json", attacks)
    write_csv(attacks["attacks"], out / "attacks.csv")
    if gallery is not None:
        save_gallery(gallery, out / "gallery.npz")
    if robust is not None:
        _write_json(out / "robust.json", robust)
    summary = summarise(attacks["attacks"], attacks["filter"], attacks["meta"], robust)
    _write_json(out / "summary.json", summary)
    if figures:
        draw_all(out, summary, gallery, robust, png=png)
    write_readme(out, summary, robust)
    return summary


def write_readme(out: Path, summary: dict, robust: dict | None):
    meta = summary["meta"]
    lines = [
        "# Adversarial experiments (Figs 4–6 of Berntsen et al., and robustness checks)", "",
        "Made by:", "", "```", *[c["command"] for c in meta.get("commands", [{"command": meta.get("command", "?")}])],
        "```", "",
        (f"Wall time: {meta.get('wall_time_s', '?')} s on {meta.get('machine', '?')}. "
        f"Step cap: {meta.get('max_steps')} FGSM steps of 1/255 "
        f"(the paper's reference code used 10,000); an attack with steps = cap failed. "
        f"Test images: make_scenes(4·{meta.get('n_per_class')}, \"test\", seed={meta.get('seed', SEED)}) "
        f"without the none images; {summary['filter']['kept']} of {summary['filter']['n_images']} are classified "
        "correctly by every network and were attacked."), "",
        "| file | contents |", "|---|---|",
        ("| `attacks.json` | `meta`, `filter` (images each network got wrong) and `attacks`: one row per attack "
        "(goal, network, scene index, label, target, theta, steps, success, verdict, distortion, linf, l2, ssim, "
        "final scores) |"),
        "| `attacks.csv` | the same rows as CSV (`score_0..3`) |",
        ("| `summary.json` | per goal and network: success rate and box statistics (2nd/25th/50th/75th/98th "
        "percentiles) of steps, distortion and SSIM; the filtered shares; "
        "`ratio_fp_median_distortion_triple0.7_over_direct`; robustness rates |"),
        ("| `gallery.npz` | Fig. 5 material: successful false positives classified as monkey (direct_param, "
        "triple@0.7) with original/adversarial images (uint8) and the estimated monkey rotation |"),
        "| `fig4.html/.png` | false positives: steps and distortion per network (Fig. 4) |",
        "| `fig6.html/.png` | false negatives (Fig. 6) |",
        ("| `fig5_direct_param.png`, `fig5_triple_0.7.png` | galleries ordered by distortion: original, "
        "adversarial, monkey rendered at the estimated rotation and blended onto the original (Fig. 5) |"),
        ("| `robust.json` | PGD success counts vs ε, transfer from direct, gradient-masking check (counts over "
        "`n_images`) |"),
        "| `robust.html/.png` | accuracy under PGD (1 − success rate) vs ε, per goal and network |", "",
        ("Distortion is the RMS of x̃ − x in [0,1] units, equal to the paper's (1/255)·RMS in 0–255 units. "
        "A false positive counts when the verdict becomes either other object class; a false negative when it "
        "becomes none. The triple network's three thresholds share one FGSM trajectory per attack "
        "(the descent does not depend on θ; only the stop rule does)."), "",
    ]
    if robust:
        lines += [(f"Robustness: {robust['n_images']} images, PGD with {robust['pgd_steps']} steps, one random "
                  "start, step 2.5·ε/steps, on a margin that is positive exactly when the goal holds under the "
                  "network's verdict rule (θ-aware for the triple network)."), ""]
    if meta.get("timings_s"):
        lines += ["Timings (s): " + ", ".join(f"{k} {v}" for k, v in meta["timings_s"].items())
                  + "; FGSM image-steps: " + ", ".join(f"{k} {v:,}" for k, v in meta.get("image_steps", {}).items())
                  + " (the triple network's θs share one trajectory; its steps count once).", ""]
    for goal in GOALS:
        if goal not in summary:
            continue
        lines += [f"{GOAL_TITLES[goal]}:", "", ("| network | success | steps median [2%, 98%] | "
                  "distortion median [2%, 98%] |"), "|---|---|---|---|"]
        for net, v in summary[goal].items():
            st, d = v["steps"], v["distortion"]
            if not st["n"]:
                continue
            lines.append(f"| {net} | {v['success_rate']:.1%} | {st['median']:g} [{st['p2']:g}, {st['p98']:g}] | "
                         f"{d['median']:.4f} [{d['p2']:.4f}, {d['p98']:.4f}] |")
        lines.append("")
    ratio = summary.get("ratio_fp_median_distortion_triple0.7_over_direct")
    if ratio is not None:
        lines += [f"Median FP distortion, triple@0.7 / direct: {ratio:.2f}.", ""]
    notes = meta.get("notes")
    if notes:
        lines += ["Notes:", "", *[f"- {n}" for n in notes], ""]
    (out / "README.md").write_text("\n".join(lines))


def _meta(args_meta: dict) -> dict:
    import platform

    return {"seed": SEED, "thetas": list(THETAS), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine": f"{platform.machine()} CPU ×{os.cpu_count()}",
            **args_meta}


def _model_shas(models) -> dict:
    try:
        return {s: models.sidecar(s).get("sha256") for s in checkpoints.STAGES}
    except Exception:  # noqa: BLE001 — toy models have no sidecars
        return {}


def run(what: str, n_per_class: int, *, models=None, testset: TestSet | None = None, max_steps: int = 10_000,
        shard_spec: tuple[int, int] = (0, 1), out: Path | str = DEFAULT_OUT, batch_size: int = 64,
        pgd_steps: int = 10, robust_n_per_class: int | None = None, figures: bool = True, png: bool = True,
        progress: bool = True, command: str | None = None, notes: list[str] | None = None,
        triple_batch_size: int = TRIPLE_BATCH) -> dict:
    """Run ``what`` ∈ {fig4, fig5, fig6, robust, all} and write the files; returns the summary."""
    t_start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    models = models if models is not None else checkpoints.load_models()
    meta = _meta({"n_per_class": n_per_class, "max_steps": max_steps, "shard": list(shard_spec),
                  "command": command or "python -m aimeye experiment " + shlex.join(sys.argv[2:]),
                  "batch_size": batch_size, "triple_batch_size": triple_batch_size, "checkpoints_sha256": _model_shas(models), "notes": notes or []})
    old = _read_json(out / "attacks.json")
    keep_old = old is not None and all(old["meta"].get(k) == meta[k] for k in ("n_per_class", "max_steps", "shard"))
    if what == "robust" and old is not None and not keep_old:
        # robust.json has its own configuration: keep the attack rows, gallery and meta of the figure run
        keep_old = True
        meta.update({k: old["meta"][k] for k in ("n_per_class", "max_steps", "shard") if k in old["meta"]})
    rows = [r for r in old["attacks"]] if keep_old else []
    gallery = load_gallery(out / "gallery.npz") if keep_old else None
    robust = _read_json(out / "robust.json") if keep_old else None
    timings = dict(old["meta"].get("timings_s", {})) if keep_old else {}
    if not keep_old and what != "fig5":  # files of another configuration
        for stale in ("gallery.npz", "robust.json"):
            (out / stale).unlink(missing_ok=True)

    if what == "fig5":
        if old is None:
            raise FileNotFoundError(f"{out / 'attacks.json'} is missing: run `experiment fig4` first")
        return write_all(out, old, load_gallery(out / "gallery.npz"), _read_json(out / "robust.json"),
                         figures=figures, png=png)

    ts = testset if testset is not None else load_test_set(n_per_class)
    ts = shard(ts, *shard_spec)
    kept, filt = filter_correct(models, ts)
    goals = {"fig4": ("fp",), "fig6": ("fn",), "all": ("fp", "fn"), "robust": ()}[what]
    steps_total = dict(old["meta"].get("image_steps", {})) if keep_old else {}
    for goal in goals:
        t0 = time.time()
        new_rows, g, image_steps = run_goal(models, kept, goal, max_steps, batch_size, progress, triple_batch_size)
        rows = [r for r in rows if r["goal"] != goal] + new_rows
        if goal == "fp":
            gallery = g
        timings[goal] = round(time.time() - t0, 1)
        steps_total[goal] = image_steps
    if what in ("robust", "all"):
        t0 = time.time()
        rts = kept  # the first R images of each class of the whole test set, so shards add up
        if robust_n_per_class is not None and robust_n_per_class < n_per_class:
            rts = kept.select(kept.indices < 4 * robust_n_per_class)
        robust = run_robust(models, rts, steps=pgd_steps, batch_size=batch_size, max_steps=max_steps,
                            progress=progress, triple_batch_size=triple_batch_size)
        robust["indices"] = [int(i) for i in rts.indices]
        robust["meta"] = {"n_per_class": n_per_class, "robust_n_per_class": robust_n_per_class or n_per_class,
                          "max_steps": max_steps, "shard": list(shard_spec), "filter": filt}
        if what == "robust" and old is not None:
            filt = old["filter"]  # attacks.json keeps the filter of its own images
        timings["robust"] = round(time.time() - t0, 1)
    meta["timings_s"] = timings
    meta["image_steps"] = steps_total
    wall = round(time.time() - t_start, 1)
    meta["wall_time_s"] = round(old["meta"].get("wall_time_s", 0) + wall, 1) if keep_old else wall
    meta["commands"] = [*(old["meta"].get("commands", []) if keep_old else []), {"command": meta["command"],
                                                                                  "wall_time_s": wall}]
    attacks = {"meta": meta, "filter": filt, "attacks": rows}
    return write_all(out, attacks, gallery, robust, figures=figures, png=png)


def merge(dirs: list[Path | str], out: Path | str = DEFAULT_OUT, figures: bool = True, png: bool = True,
          command: str | None = None) -> dict:
    """Concatenate shard directories (attacks, gallery, filter counts, robust counts) and redraw."""
    dirs = [Path(d) for d in dirs]
    parts = [_read_json(d / "attacks.json") for d in dirs]
    if any(p is None for p in parts):
        raise FileNotFoundError("every directory to merge needs an attacks.json")
    for k in ("n_per_class", "max_steps"):
        vals = {json.dumps(p["meta"].get(k)) for p in parts}
        if len(vals) > 1:
            raise ValueError(f"shards differ in {k}: {sorted(vals)}")
    shards = sorted(tuple(p["meta"]["shard"]) for p in parts)
    if len(set(shards)) != len(shards):
        raise ValueError(f"duplicate shards: {shards}")
    rows = sort_rows([r for p in parts for r in p["attacks"]])
    filt = {"n_images": sum(p["filter"]["n_images"] for p in parts),
            "wrong": {n: sum(p["filter"]["wrong"][n] for p in parts) for n in NETWORKS},
            "kept": sum(p["filter"]["kept"] for p in parts)}
    galleries = [g for g in (load_gallery(d / "gallery.npz") for d in dirs) if g is not None]
    gallery = _cat_gallery(galleries) if galleries else None
    robusts = [r for r in (_read_json(d / "robust.json") for d in dirs) if r is not None]
    robust = None
    if robusts:
        robust = merge_robust(robusts)
        robust["indices"] = sorted(i for r in robusts for i in r.get("indices", []))
        robust["meta"] = {"merged_from": [str(d) for d in dirs]}
    meta = dict(parts[0]["meta"])
    merge_cmd = command or "python -m aimeye experiment merge " + " ".join(str(d) for d in dirs)
    meta["commands"] = [c for p in parts for c in p["meta"].get("commands", [])] + [{"command": merge_cmd}]
    meta.update({"shard": [0, 1], "merged_from": [str(d) for d in dirs], "merged_shards": [list(s) for s in shards],
                 "command": merge_cmd,
                 "wall_time_s": round(sum(p["meta"].get("wall_time_s", 0) for p in parts), 1),
                 "timings_s": {k: round(sum(p["meta"].get("timings_s", {}).get(k, 0) for p in parts), 1)
                               for k in ("fp", "fn", "robust")},
                 "image_steps": {k: sum(p["meta"].get("image_steps", {}).get(k, 0) for p in parts)
                                 for k in GOALS}})
    return write_all(Path(out), {"meta": meta, "filter": filt, "attacks": rows}, gallery, robust,
                     figures=figures, png=png)


# --- command line --------------------------------------------------------------------------------

def cmd_experiment(args):
    command = "python -m aimeye " + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else None
    if args.what == "merge":
        summary = merge(args.dirs, args.out or DEFAULT_OUT, png=not args.no_png, command=command)
    else:
        i, k = parse_shard(args.shard)
        out = args.out or (DEFAULT_OUT if k == 1 else DEFAULT_OUT / f"shard-{i}-of-{k}")
        models = checkpoints.load_models(args.checkpoints)
        summary = run(args.what, args.n_per_class, models=models, max_steps=args.max_steps, shard_spec=(i, k),
                      out=out, batch_size=args.batch, pgd_steps=args.pgd_steps,
                      robust_n_per_class=args.robust_n_per_class, png=not args.no_png, command=command,
                      notes=args.note, triple_batch_size=args.triple_batch)
    short = {g: {n: {"success": v["success_rate"], "median_steps": v["steps"]["median"],
                     "median_distortion": v["distortion"]["median"]} for n, v in summary[g].items()}
             for g in GOALS if g in summary}
    print(json.dumps({"summary": short, "ratio_fp_triple0.7_over_direct":
                      summary["ratio_fp_median_distortion_triple0.7_over_direct"],
                      "filtered_share": summary["filter"]["misclassified_share"]}, indent=1))


def add_parser(subparsers):
    e = subparsers.add_parser("experiment", help="Figs 4–6 and robustness (attacks on test scenes)")
    es = e.add_subparsers(dest="what", required=True)
    for name, text in (("fig4", "false positives (Fig. 4) and the Fig. 5 galleries"),
                       ("fig5", "redraw the Fig. 5 galleries from a fig4 run"),
                       ("fig6", "false negatives (Fig. 6)"),
                       ("robust", "PGD vs ε, transfer, gradient-masking check"),
                       ("all", "fig4, fig5, fig6 and robust")):
        p = es.add_parser(name, help=text)
        p.add_argument("--n-per-class", type=int, default=100)
        p.add_argument("--max-steps", type=int, default=10_000, help="FGSM step cap (the paper's code: 10,000)")
        p.add_argument("--shard", default=None, help="i/k: attack every k-th image starting at the i-th")
        p.add_argument("--out", default=None, help=f"output directory (default {DEFAULT_OUT})")
        p.add_argument("--batch", type=int, default=64, help="images attacked at once (direct networks)")
        p.add_argument("--triple-batch", type=int, default=TRIPLE_BATCH,
                       help="images attacked at once on the triple network (small pools run fastest)")
        p.add_argument("--pgd-steps", type=int, default=10)
        p.add_argument("--robust-n-per-class", type=int, default=None,
                       help="attack only the first images of each class in `robust` (default: all)")
        p.add_argument("--checkpoints", default=None)
        p.add_argument("--no-png", action="store_true", help="skip the PNG figures")
        p.add_argument("--note", action="append", default=[], help="a note for the README (repeatable)")
        p.set_defaults(fn=cmd_experiment)
    m = es.add_parser("merge", help="merge shard directories and redraw the figures")
    m.add_argument("dirs", nargs="+")
    m.add_argument("--out", default=None)
    m.add_argument("--no-png", action="store_true")
    m.set_defaults(fn=cmd_experiment)
    return e


# --- figures -------------------------------------------------------------------------------------

LABELS = {"direct": "Direct classification", "direct_param": "Direct + parameter estimation",
          **{f"triple@{t}": f"Triple-staged, Θ = {t:.2f}" for t in THETAS}}
COLORS = {"direct": "#4c72b0", "direct_param": "#55a868", "triple@0.2": "#c44e52", "triple@0.45": "#dd8452",
          "triple@0.7": "#8172b2", f"triple@{MASKING_THETA}+st": "#937860"}
GOAL_TITLES = {"fp": "False positives (Fig. 4): object → another object class",
               "fn": "False negatives (Fig. 6): object → none"}
PNG_TIMEOUT_S = 90


def _label(summary: dict, goal: str, net: str) -> str:
    g = summary[goal][net]
    rate = g["success_rate"]
    return f"{LABELS[net]} ({'—' if rate is None else f'{rate:.0%}'} ok)"


def box_figure(summary: dict, goal: str):
    """Horizontal box plots of steps and distortion per network; whiskers at the 2nd/98th percentiles."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    cap = summary["meta"].get("max_steps")
    fig = make_subplots(1, 2, shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=(f"steps (1/255 each; cap {cap} = failed)",
                                        "distortion (1/255·RMS in 0–255 units)"))
    for col, key in ((1, "steps"), (2, "distortion")):
        for net in NETWORKS:
            st = summary[goal][net][key]
            if not st["n"]:
                continue
            fig.add_trace(go.Box(y=[_label(summary, goal, net)], q1=[st["q1"]], median=[st["median"]],
                                 q3=[st["q3"]], lowerfence=[st["p2"]], upperfence=[st["p98"]], mean=[st["mean"]],
                                 orientation="h", name=LABELS[net], marker_color=COLORS[net], showlegend=False,
                                 boxmean=False), row=1, col=col)
    n = summary[goal]["direct"]["n"]
    sub = f"{n} attacks per network on {summary['filter']['kept']} test images; whiskers: 2nd/98th percentile"
    if goal == "fn":
        shares = ", ".join(f"{100 * v:.2f}%" for v in summary["filter"]["misclassified_share"].values())
        sub += f"; misclassified first and filtered: {shares}"
    fig.update_layout(title={"text": f"{GOAL_TITLES[goal]}<br><sup>{sub}</sup>"}, width=1200, height=460,
                      margin={"l": 10, "r": 20, "t": 90, "b": 40}, template="plotly_white")
    fig.update_yaxes(autorange="reversed")
    return fig


def robust_figure(robust: dict):
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rates = robust_rates(robust)
    eps = [str(e) for e in robust["eps_255"]]
    fig = make_subplots(1, 2, shared_yaxes=True, subplot_titles=("false positive (→ another object)",
                                                                 "false negative (→ none)"))
    for col, goal in ((1, "fp"), (2, "fn")):
        for net in NETWORKS:
            fig.add_trace(go.Scatter(x=eps, y=rates["accuracy"][goal][net], mode="lines+markers", name=LABELS[net],
                                     line={"color": COLORS[net]}, legendgroup=net, showlegend=col == 1),
                          row=1, col=col)
        st = f"triple@{MASKING_THETA}+st"
        acc = [1 - r for r in rates["gradient_masking_success_rate"][goal][st]]
        fig.add_trace(go.Scatter(x=eps, y=acc, mode="lines+markers", name=f"Θ = {MASKING_THETA} PGD through the clip",
                                 line={"color": COLORS[st], "dash": "dash"}, legendgroup=st, showlegend=col == 1),
                      row=1, col=col)
    fig.update_xaxes(title_text="ε (grey levels of 255)", type="category")
    fig.update_yaxes(title_text="accuracy under attack (1 − success)", range=[-0.02, 1.02], row=1, col=1)
    fig.update_layout(title=f"L∞ PGD, {robust['pgd_steps']} steps, {robust['n_images']} images", width=1200,
                      height=460, template="plotly_white")
    return fig


def _font(size: int = 12):
    """DejaVu Sans where installed (it has Θ), else Pillow's default font."""
    from PIL import ImageFont

    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            pass
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()


def pil_boxes(summary: dict, goal: str, path: Path):
    """The box figure drawn with PIL (used when kaleido/Chrome cannot write the PNG)."""
    from PIL import Image, ImageDraw

    w, h, left, top, row_h = 1200, 460, 330, 70, 62
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    d.text((10, 10), GOAL_TITLES[goal], fill="black", font=_font(16))
    panels = ((left, 760, "steps"), (790, w - 20, "distortion"))
    for x0, x1, key in panels:
        vals = [summary[goal][n][key]["p98"] for n in NETWORKS if summary[goal][n][key]["n"]]
        hi = max(vals or [1.0]) * 1.05 or 1.0
        d.text((x0, 40), key + " (whiskers: 2nd/98th pct)", fill="black", font=_font(13))

        def sx(v, x0=x0, x1=x1, hi=hi):
            return x0 + (x1 - x0) * (v / hi)

        d.line([(x0, top + row_h * len(NETWORKS)), (x1, top + row_h * len(NETWORKS))], fill="black")
        for t in np.linspace(0, hi, 5):
            d.text((sx(t) - 10, top + row_h * len(NETWORKS) + 5), f"{t:.3g}", fill="black", font=_font(11))
        for i, net in enumerate(NETWORKS):
            st = summary[goal][net][key]
            yc = top + row_h * i + row_h // 2
            if x0 == left:
                d.text((10, yc - 7), _label(summary, goal, net), fill="black", font=_font(12))
            if not st["n"]:
                continue
            c = COLORS[net]
            d.line([(sx(st["p2"]), yc), (sx(st["p98"]), yc)], fill=c, width=2)
            for v in (st["p2"], st["p98"]):
                d.line([(sx(v), yc - 8), (sx(v), yc + 8)], fill=c, width=2)
            d.rectangle([sx(st["q1"]), yc - 16, max(sx(st["q3"]), sx(st["q1"]) + 1), yc + 16], fill="#eeeeee",
                        outline=c, width=2)
            d.line([(sx(st["median"]), yc - 16), (sx(st["median"]), yc + 16)], fill=c, width=3)
    im.save(path)


def pil_robust(robust: dict, path: Path):
    from PIL import Image, ImageDraw

    rates = robust_rates(robust)
    w, h = 1200, 460
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    d.text((10, 10), f"Accuracy under L∞ PGD ({robust['pgd_steps']} steps, {robust['n_images']} images) vs ε·255",
           fill="black", font=_font(16))
    eps = robust["eps_255"]
    for p, goal in enumerate(GOALS):
        x0, x1, y0, y1 = 60 + p * 580, 560 + p * 580, 60, 400
        d.rectangle([x0, y0, x1, y1], outline="black")
        d.text((x0, y1 + 25), goal, fill="black", font=_font(13))
        for j, e in enumerate(eps):
            d.text((x0 + (x1 - x0) * j / max(1, len(eps) - 1) - 5, y1 + 5), str(e), fill="black", font=_font(11))
        series = {net: rates["accuracy"][goal][net] for net in NETWORKS}
        st = f"triple@{MASKING_THETA}+st"
        series[st] = [1 - r for r in rates["gradient_masking_success_rate"][goal][st]]
        for net, acc in series.items():
            pts = [(x0 + (x1 - x0) * j / max(1, len(eps) - 1), y1 - (y1 - y0) * a) for j, a in enumerate(acc)]
            d.line(pts, fill=COLORS[net], width=2)
            if p == 0:
                k = list(series).index(net)
                d.text((x1 + 5 if False else 70, 70 + 16 * k), LABELS.get(net, net + " (through clip)"),
                       fill=COLORS[net], font=_font(12))
    im.save(path)


def _write_png(fig, path: Path, fallback, width: int = 1200, height: int = 460) -> str:
    """PNG via kaleido (Chrome), else the PIL drawing; never raises."""
    import threading

    if Path("/usr/bin/chromium").exists():
        os.environ.setdefault("BROWSER_PATH", "/usr/bin/chromium")
    err: list = []

    def work():
        try:
            fig.write_image(str(path), width=width, height=height)
        except Exception as e:  # noqa: BLE001
            err.append(e)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    th.join(PNG_TIMEOUT_S)
    if th.is_alive() or err or not path.exists():
        try:
            fallback(path)
            return f"pil ({type(err[0]).__name__ if err else 'timeout'})"
        except Exception as e:  # noqa: BLE001
            return f"failed ({e})"
    return "kaleido"


def gallery_image(gallery: dict, network: str, columns: int = GALLERY_COLUMNS, factor: int = 2):
    """Fig. 5: original / adversarial / monkey rendered at the network's estimated rotation and blended
    onto the original, for false positives classified as monkey, ordered by distortion."""
    from PIL import Image, ImageDraw

    from .render import render_mesh, resolve_mesh
    from .scenes import blend

    sel = np.nonzero(np.asarray(gallery["network"]).astype(str) == network)[0] if gallery else np.zeros(0, int)
    sel = sel[np.argsort(gallery["distortion"][sel], kind="stable")] if len(sel) else sel
    pick = sel[np.unique(np.linspace(0, len(sel) - 1, min(columns, len(sel))).round().astype(int))] if len(sel) else sel
    tile, pad, head, foot = 64 * factor, 6, 34, 36
    ncol = max(1, len(pick))
    w = max(ncol * (tile + pad) + pad, 520)
    h = head + 3 * (tile + pad) + foot
    im = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(im)
    title = f"{LABELS.get(network, network)}: false positives classified as {CLASSES[GALLERY_CLASS]}"
    d.text((pad, 4), title, fill=0, font=_font(13))
    d.text((pad, 19), "rows: original · adversarial · monkey rendered at the estimated rotation, blended",
           fill=80, font=_font(11))
    if not len(pick):
        d.text((pad, head + 20), "no successful false positive classified as monkey within the step cap",
               fill=0, font=_font(13))
        return im
    rots = np.asarray(gallery["rotation"][pick], np.float32)
    ren, alpha = render_mesh(resolve_mesh(GALLERY_CLASS), rots)
    for j, i in enumerate(pick):
        orig = gallery["original"][i].astype(np.float32) / 255
        adv = gallery["adversarial"][i].astype(np.float32) / 255
        proj = blend(ren[j], alpha[j], orig)
        x = pad + j * (tile + pad)
        for r, img in enumerate((orig, adv, proj)):
            t = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).resize((tile, tile),
                                                                                          Image.NEAREST)
            im.paste(t, (x, head + r * (tile + pad)))
        y = head + 3 * (tile + pad)
        d.text((x, y), f"d={gallery['distortion'][i]:.3f}", fill=0, font=_font(11))
        d.text((x, y + 14), f"n={int(gallery['steps'][i])} {CLASSES[int(gallery['label'][i])][:4]}", fill=0,
               font=_font(11))
    return im


def draw_all(out: Path, summary: dict, gallery: dict | None, robust: dict | None, png: bool = True) -> dict:
    """Write every figure that the data allows; returns {file: backend}."""
    done = {}
    for goal, name in (("fp", "fig4"), ("fn", "fig6")):
        if goal not in summary:
            continue
        fig = box_figure(summary, goal)
        fig.write_html(out / f"{name}.html", include_plotlyjs="cdn")
        done[f"{name}.html"] = "plotly"
        if png:
            done[f"{name}.png"] = _write_png(fig, out / f"{name}.png", lambda p, g=goal: pil_boxes(summary, g, p))
    if gallery is not None:
        for net in GALLERY_NETWORKS:
            name = f"fig5_{net.replace('@', '_')}.png"
            gallery_image(gallery, net).save(out / name)
            done[name] = "pil"
    if robust:
        fig = robust_figure(robust)
        fig.write_html(out / "robust.html", include_plotlyjs="cdn")
        done["robust.html"] = "plotly"
        if png:
            done["robust.png"] = _write_png(fig, out / "robust.png", lambda p: pil_robust(robust, p))
    return done
