"""The tables the pages show, as lists of row dicts with user-facing column names and no empty cells."""

from __future__ import annotations

from ..experiments.schema import accuracy_text
from ..paper import PAPER_TABLE1, network_label
from .session import AttackSession
from .wording import network_title

DASH = "–"


def race_rows(session: AttackSession) -> list[dict]:
    """One row per attacked network: where its run stands, steps and distortion at the flip."""
    rows = []
    for name, run in session.runs.items():
        flip = session.flip(name)
        if flip is not None and flip.step == 0:
            status = "goal already holds at step 0"
        elif flip is not None:
            status = "flipped"
        elif run.done:
            status = f"not flipped within the cap ({run.max_steps})"
        elif run.latest.step == 0:
            status = "not started"
        else:
            status = "playing" if session.playing else "paused"
        rows.append({"network": network_title(name, session.config.theta), "status": status,
                     "steps to flip": str(flip.step) if flip else DASH,
                     "distortion at flip": f"{flip.distortion:.4f}" if flip else DASH,
                     "steps taken": str(run.latest.step)})
    return rows


def _pct(v) -> str:
    return DASH if v is None else f"{100.0 * float(v):.2f}"


def table1_rows(metrics: dict) -> list[dict]:
    """Table 1: our error rates next to the paper's, in percent."""
    ours = metrics.get("errors", {})
    paper = metrics.get("paper_errors", PAPER_TABLE1)
    return [{"network": network_label(key), "ours (error %)": _pct(ours.get(key)),
             "paper (error %)": _pct(paper.get(key))} for key in dict.fromkeys([*paper, *ours])]


def sweep_at(sweep: list[dict], theta: float) -> dict | None:
    """The θ-sweep row nearest to ``theta``."""
    if not sweep:
        return None
    return min(sweep, key=lambda r: abs(float(r["theta"]) - float(theta)))




# --------------------------------------------------------------------- attack experiment results

GOAL_WORDS = {"fp": "false positive", "fn": "false negative"}


def attack_rows(summary: dict | None, cap: int | None) -> list[dict]:
    """One row per (goal, network, θ) of an attack run's summary, for the θ explorer:
    ``goal``, ``network`` (direct | direct_param | triple), ``theta`` (None for the direct
    networks), ``n``, ``success_rate``, ``median_steps``, ``median_exact`` (False: failed
    attacks decide the median, a lower bound) and ``cap``."""
    rows = []
    for goal in ("fp", "fn"):
        for key, r in ((summary or {}).get(goal) or {}).items():
            base, _, th = key.partition("@")
            steps = r.get("steps") or {}
            if not r.get("n") or steps.get("median") is None:
                continue
            rows.append({"goal": goal, "network": base, "theta": float(th) if th else None, "n": int(r["n"]),
                         "success_rate": float(r["success_rate"]), "median_steps": float(steps["median"]),
                         "median_exact": bool(steps.get("median_exact", True)), "cap": cap})
    return rows


def success_rows(summary: dict, fmt_median) -> list[dict]:
    """The attack table of one run: per goal and network, attacks, success with its 95 % interval,
    and the medians (a censored median reads "≥ value", via ``fmt_median(value, exact, fmt)``)."""
    out = []
    for goal in ("fp", "fn"):
        for key, r in (summary.get(goal) or {}).items():
            steps, dist = r.get("steps") or {}, r.get("distortion") or {}
            ci = r.get("success_ci95")
            out.append({"goal": GOAL_WORDS[goal], "network": network_label(key), "attacks": str(r["n"]),
                        "succeed (%)": f"{100 * r['success_rate']:.0f}"
                                       + (f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci else ""),
                        "median steps": fmt_median(steps.get("median"), steps.get("median_exact", True), "{:g}"),
                        "median distortion": fmt_median(dist.get("median"), dist.get("median_exact", True),
                                                        "{:.4f}")})
    return out


def filter_rows(summary: dict) -> list[dict]:
    """Share of the positive test images each network gets wrong before any attack (the paper's Fig. 6 caption)."""
    shares = (summary.get("filter") or {}).get("misclassified_share") or {}
    paper = (summary.get("paper") or {}).get("fig6_filtered_percent") or {}
    return [{"network": network_label(k), "ours (%)": _pct(v),
             "paper (%)": DASH if paper.get(k) is None else f"{paper[k]:.2f}"} for k, v in shares.items()]


def robust_rows(robust: dict, goal: str) -> list[dict]:
    """Robust accuracy per network (rows) and ε (columns), with the 95 % interval; "not run" where no
    attack reached that network at that ε (merged runs)."""
    rows = []
    for net, entries in robust["table"].get(goal, {}).items():
        row = {"network": network_label(net)}
        for e in entries:
            row[f"ε = {e['eps_255']}/255"] = accuracy_text(e)
        rows.append(row)
    return rows
