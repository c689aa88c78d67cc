"""The summary of FGSM rows (summary.json): success with 95 % CIs, box statistics with censored
medians, the filtered shares, and the false-positive median-distortion ratio triple@0.7 / direct."""

from __future__ import annotations

from .schema import SCHEMA, robust_rates
from .stats import bootstrap_ci, box_stats, censored_median, median_ratio, wilson_ci
from .testset import GOALS, NETWORKS, filter_shares

PAPER = {"fig4_direct_median_distortion_below": 0.1,
         "fig6_filtered_percent": dict(zip(NETWORKS, (0.00, 0.01, 0.17, 0.77, 4.12), strict=True)),
         "step_cap": 10_000}
DEFINITIONS = {
    "steps": "FGSM steps of one grey level (1/255) until the goal held; the cap (max_steps) = failed",
    "distortion": "RMS of x̃ − x in [0,1] units = the paper's (1/255)·RMS in 0–255 units",
    "fp": "verdict becomes another object class (either), attacked toward each other class",
    "fn": "verdict becomes none",
    "whiskers": "2nd and 98th percentiles; failures count with steps = cap",
    "median_exact": "false when failed attacks decide the median: it is then a lower bound (≥)",
    "ci95": "success: Wilson score interval; ratio: paired percentile bootstrap over attacks (2,000 resamples)"}



def _ratio(fp: dict[str, list[dict]], num: str = "triple@0.7", den: str = "direct") -> dict | None:
    """Median FP distortion of ``num`` over ``den``, paired by (image, target), with a bootstrap CI.
    ``exact`` is False when either median is censored (then the ratio is a bound, see ``bound``)."""
    a, b = fp.get(num) or [], fp.get(den) or []
    pairs = {(r["index"], r["target"]): r for r in b}
    pa = [(r, pairs[(r["index"], r["target"])]) for r in a if (r["index"], r["target"]) in pairs]
    if not pa or not any(q["distortion"] for _, q in pa):
        return None
    da = [r["distortion"] for r, _ in pa]
    db = [q["distortion"] for _, q in pa]
    ma, ea = censored_median(da, [r["success"] for r, _ in pa])
    mb, eb = censored_median(db, [q["success"] for _, q in pa])
    value = ma / mb if mb else None
    bound = "exact" if ea and eb else ("lower" if eb else "unknown")  # a censored numerator → ratio ≥ value
    return {"numerator": num, "denominator": den, "value": value, "exact": ea and eb, "bound": bound,
            "n_pairs": len(pa), "ci95": bootstrap_ci(median_ratio, da, db)}


def summarise(rows: list[dict], filt: dict, meta: dict, robust: dict | None = None) -> dict:
    """Per goal and network: success rate (with its 95 % CI) and box statistics of steps,
    distortion and SSIM; the filtered shares; the FP median-distortion ratio triple@0.7/direct."""
    out = {"schema": SCHEMA, "meta": meta, "filter": {**filt, "misclassified_share": filter_shares(filt)},
           "paper": PAPER, "definitions": DEFINITIONS}
    by: dict[str, dict[str, list[dict]]] = {g: {} for g in GOALS}
    for r in rows:
        by[r["goal"]].setdefault(r["network"], []).append(r)
    for goal in GOALS:
        g = {}
        for net in [n for n in NETWORKS if n in by[goal]] + [n for n in by[goal] if n not in NETWORKS]:
            rs = by[goal][net]
            ok = [r["success"] for r in rs]
            k = sum(ok)
            g[net] = {"n": len(rs), "success_rate": k / len(rs), "success_ci95": wilson_ci(k, len(rs)),
                      "steps": box_stats([r["steps"] for r in rs], ok),
                      "distortion": box_stats([r["distortion"] for r in rs], ok),
                      "distortion_success_only": box_stats([r["distortion"] for r in rs if r["success"]]),
                      "ssim": box_stats([r["ssim"] for r in rs])}
        if g:
            out[goal] = g
    ratio = _ratio(by["fp"])
    out["ratio_fp_median_distortion"] = ratio
    out["ratio_fp_median_distortion_triple0.7_over_direct"] = ratio["value"] if ratio else None
    if robust:
        out["robust"] = robust_rates(robust)
    return out
