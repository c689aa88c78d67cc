"""A results folder's README.md and figures, written from the folder's own files (one schema)."""

from __future__ import annotations

from pathlib import Path

from ..paper import network_label
from . import results
from .robust import network_order
from .runs import GALLERY_NETWORKS
from .testset import GOALS

TITLES = {"fp": "False positives (Fig. 4): object → another object class",
          "fn": "False negatives (Fig. 6): object → none"}


def _median(st: dict, fmt: str) -> str:
    return results.format_median(st["median"], st.get("median_exact", True), fmt)


def fgsm_lines(summary: dict) -> list[str]:
    meta = summary["meta"]
    lines = [(f"Iterated FGSM (§3.2 of the paper): steps of one grey level, cap {meta.get('max_steps')} steps "
              "(the paper's code: 10,000); an attack that reaches the cap failed. Test images: "
              f"make_scenes(4·{meta.get('n_per_class')}, \"test\", seed={meta.get('seed')}) without the none "
              f"images; {summary['filter']['kept']} of {summary['filter']['n_images']} are classified correctly by "
              "every network and were attacked. \"≥\" marks a median that failed attacks decide (a lower bound)."),
             ""]
    for goal in GOALS:
        if goal not in summary:
            continue
        lines += [f"{TITLES[goal]}:", "", ("| network | success [95 % CI] | steps median [2 %, 98 %] | "
                                           "distortion median [2 %, 98 %] |"), "|---|---|---|---|"]
        for net, v in summary[goal].items():
            st, d, ci = v["steps"], v["distortion"], v.get("success_ci95")
            ci_t = f" [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else ""
            lines.append(f"| {network_label(net)} | {v['success_rate']:.1%}{ci_t} | {_median(st, '{:g}')} "
                         f"[{st['p2']:g}, {st['p98']:g}] | {_median(d, '{:.4f}')} [{d['p2']:.4f}, {d['p98']:.4f}] |")
        lines.append("")
    r = summary.get("ratio_fp_median_distortion")
    if r and r.get("value") is not None:
        how = {"exact": "measured", "lower": "a lower bound (the triple-staged median is censored by the cap)",
               "unknown": "not determined (the direct median is censored)"}[r["bound"]]
        ci = f", 95 % CI [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}]" if r.get("ci95") and r["bound"] == "exact" else ""
        names = f"{network_label(r['numerator'])} / {network_label(r['denominator'])}"
        value = f"{'' if r['exact'] else '≥ '}{r['value']:.2f}"
        lines += [f"Median FP distortion, {names}: {value} ({how}{ci}; {r['n_pairs']} paired attacks).", ""]
    return lines


def robust_lines(robust: dict) -> list[str]:
    eps = robust["eps_255"]
    worst = "the per-image worst case over every attack"
    attacks = ", ".join(f"`{a}`" for a in robust.get("attacks", {}))
    lines = [(f"Robust accuracy on {robust['n_images']} images: {worst}; 95 % Wilson intervals; the strongest "
              f"attack per ε in brackets. Attacks: {attacks}."), ""]
    for goal in GOALS:
        if goal not in robust["table"]:
            continue
        lines += [f"{TITLES[goal].split(' (')[0]}:", "", "| network | " + " | ".join(f"ε = {e}/255" for e in eps)
                  + " |", "|---|" + "---|" * len(eps)]
        for net in network_order(robust["table"][goal]):
            cells = []
            for e in robust["table"][goal][net]:
                ci = f" [{e['ci95'][0]:.2f}, {e['ci95'][1]:.2f}]" if e["ci95"] else ""
                cells.append(f"{e['accuracy']:.2f}{ci} ({e['strongest'] or '—'})")
            lines.append(f"| {network_label(net)} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += _partial_suites(robust, goal)
    return lines


def _partial_suites(robust: dict, goal: str) -> list[str]:
    """A line for each network that fewer attacks than the rest reached (merged runs): its worst case is
    over those attacks only."""
    by_net = {net: list(by_attack) for net, by_attack in robust.get("broken", {}).get(goal, {}).items()}
    most = max((len(a) for a in by_net.values()), default=0)
    fewer = [f"{network_label(n)}: {', '.join(f'`{a}`' for a in a_)}" for n, a_ in by_net.items() if len(a_) < most]
    return [f"Attacked with fewer attacks (the worst case is over these only): {'; '.join(fewer)}.", ""] if fewer else []


def readme(run: results.Run) -> str:
    lines = ["# Adversarial experiments (Figs 4–6 of Berntsen et al., and robust accuracy)", "", "Made by:", "",
             "```", *run.info.commands, "```", ""]
    if run.info.wall_time_s:
        lines += [f"Wall time of the FGSM part: {run.info.wall_time_s} s.", ""]
    if run.summary:
        lines += fgsm_lines(run.summary)
    if run.robust:
        lines += robust_lines(run.robust)
        if (run.info.path / "CHECKLIST.md").exists():
            lines += ["The evaluation checklist it follows: [CHECKLIST.md](CHECKLIST.md).", ""]
    if run.info.notes:
        lines += ["Notes:", "", *[f"- {n}" for n in run.info.notes], ""]
    lines += [f"Files: see `aimeye/experiments/results.py` for the schema (version {results.SCHEMA}).", ""]
    return "\n".join(lines)


def write_folder(out: Path, figures: bool = True, png: bool = True) -> results.Run:
    """Draw the figures and write README.md from what ``out`` holds; returns the loaded run."""
    run = results.load_run(out)
    if figures:
        from ..figures.experiments import draw_all

        draw_all(Path(out), run.summary, run.gallery, run.robust, png=png, gallery_networks=GALLERY_NETWORKS)
    (Path(out) / "README.md").write_text(readme(run))
    return run
