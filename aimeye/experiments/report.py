"""A results folder's README.md and figures, written from the folder's own files (one schema)."""

from __future__ import annotations

from pathlib import Path

from ..paper import GOAL_TITLES, network_label
from . import results
from .robust import network_order
from .runs import GALLERY_NETWORKS
from .schema import EARLIER, accuracy_text
from .testset import GOALS


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
        lines += [f"{GOAL_TITLES[goal]}:", "", ("| network | success [95 % CI] | steps median [2 %, 98 %] | "
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
    lines = [(f"Robust accuracy on {robust['n_images']} images: {worst}; 95 % Wilson intervals; the strongest "
              f"attack per ε in brackets. Attacks: {_names(robust.get('attacks', {}))}."), ""]
    if robust.get("skipped"):
        lines += [(f"This run did not attack again what `{robust['meta'].get('skip_broken', 'an earlier run')}` "
                   f"had broken at the same ε: those images count as broken, under `{EARLIER}`, so the table is "
                   "the worst case over both, and each attack's count covers only the images it attacked. "
                   "Merge the run with the runs it skipped from."), ""]
    for goal in GOALS:
        if goal not in robust["table"]:
            continue
        used = {a for by in robust.get("broken", {}).get(goal, {}).values() for a in by}
        only = f" (attacks: {_names(a for a in robust.get('attacks', {}) if a in used)})" if used and used != set(
            robust.get("attacks", {})) else ""
        lines += [f"{GOAL_TITLES[goal].split(' (')[0]}{only}:", "",
                  "| network | " + " | ".join(f"ε = {e}/255" for e in eps) + " |", "|---|" + "---|" * len(eps)]
        for net in network_order(robust["table"][goal]):
            cells = []
            for e in robust["table"][goal][net]:
                cells.append(accuracy_text(e) + ("" if e["accuracy"] is None else f" ({e['strongest'] or '—'})"))
            lines.append(f"| {network_label(net)} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += _gap_lines(robust, goal)
    return lines + attack_lines(robust)


def attack_lines(robust: dict) -> list[str]:
    """Per goal, network and attack: the images each attack broke at each ε, and in brackets those no
    other attack broke (the table's ``by_attack`` and ``only_by``); "·" where the attack was not run."""
    eps, gaps = robust["eps_255"], robust.get("meta", {}).get("gaps", {})
    lines = [f"Images broken per attack (in brackets: broken by no other attack), out of {robust['n_images']}:",
             ""]
    for goal in GOALS:
        if goal not in robust["table"]:
            continue
        lines += [f"| {GOAL_TITLES[goal].split(' (')[0].lower()} | attack | "
                  + " | ".join(f"ε = {e}/255" for e in eps) + " |", "|---|---|" + "---|" * len(eps)]
        for net in network_order(robust["table"][goal]):
            entries, gap = robust["table"][goal][net], gaps.get(goal, {}).get(net, {})
            earlier = [EARLIER] if any(EARLIER in e["by_attack"] for e in entries) else []
            for attack in [*robust.get("broken", {}).get(goal, {}).get(net, {}), *earlier]:
                missing = set(gap.get("eps_missing", {}).get(attack, ()))
                cells = ["·" if e.get("not_run") or e["eps_255"] in missing or attack not in e["by_attack"]
                         else f"{e['by_attack'][attack]} ({e['only_by'][attack]})" for e in entries]
                lines.append(f"| {network_label(net)} | `{attack}` | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def _names(attacks) -> str:
    return ", ".join(f"`{a}`" for a in attacks)


def _gap_lines(robust: dict, goal: str) -> list[str]:
    """Merged runs: a line naming each network that a run skipped, or that an attack reached at some ε only;
    its worst case is over the attacks that did reach it."""
    gaps = robust.get("meta", {}).get("gaps", {}).get(goal, {})
    parts = []
    for net in network_order(gaps):
        g, said = gaps[net], []
        if g.get("never"):
            said.append(f"not attacked with {_names(g['never'])}")
        by_eps: dict[tuple, list[str]] = {}
        for attack, es in g.get("eps_missing", {}).items():
            by_eps.setdefault(tuple(es), []).append(attack)
        said += [f"{_names(a)} not run at ε = {', '.join(str(e) for e in es)}" for es, a in by_eps.items()]
        parts.append(f"{network_label(net)}: {'; '.join(said)}")
    if not parts:
        return []
    return ["Not every attack reached every network at every ε; the worst case is over the attacks that did. "
            + ". ".join(parts) + ".", ""]


def readme(run: results.Run, drawn: dict | None = None) -> str:
    """The folder's README.md; ``drawn`` ({file: backend}, from the figures' drawing) says what drew each PNG."""
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
    pngs = {f: b for f, b in (drawn or {}).items() if f.endswith(".png")}
    if pngs:
        lines += ["PNG figures drawn by: " + ", ".join(f"`{f}` {b}" for f, b in sorted(pngs.items()))
                  + " (kaleido: plotly's renderer; pil: drawn with PIL, as the Fig. 5 galleries always are and "
                    "the other figures when kaleido fails).", ""]
    if any(run.info.path.glob("*.html")):
        lines += [("The `.html` figures load plotly from its CDN, so they need a connection; the `.png` figures "
                   "and the app's Experiments page draw the same data offline."), ""]
    return "\n".join(lines)


def write_folder(out: Path, figures: bool = True, png: bool = True) -> results.Run:
    """Draw the figures and write README.md from what ``out`` holds; returns the loaded run."""
    run = results.load_run(out)
    drawn = None
    if figures:
        from ..figures.experiments import draw_all

        drawn = draw_all(Path(out), run.summary, run.gallery, run.robust, png=png, gallery_networks=GALLERY_NETWORKS)
    (Path(out) / "README.md").write_text(readme(run, drawn))
    return run
