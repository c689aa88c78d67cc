"""What the app says: verdicts, goals and network names in words a student reads.

User-facing network names come from :data:`aimeye.paper.NETWORK_LABELS` (via
:func:`aimeye.figures.palette.network_label`); internal keys never reach the page.
"""

from __future__ import annotations

import numpy as np

from ..paper import CLASSES, NETWORK_LABELS, NONE, is_triple
from .analysis import triple_verdict
from .inputs import class_name


def network_title(network: str, theta: float | None = None) -> str:
    """``triple`` at θ 0.7 → "Triple-staged (θ = 0.70)"; ``direct`` → "Direct CNN"."""
    label = NETWORK_LABELS.get(network, network.replace("_", " "))
    return f"{label} (θ = {theta:.2f})" if is_triple(network) and theta is not None else label


def goal_kind(goal: int) -> str:
    return "false negative" if int(goal) == NONE else "false positive"


def goal_label(goal: int) -> str:
    """A goal class as the goal selector shows it: "aeroplane (false positive)"."""
    return f"{class_name(goal)} ({goal_kind(goal)})"


def verdict_text(scores, theta: float, digits: int = 3) -> str:
    """A one-line verdict of the triple-staged network, with the score that decided it."""
    s = np.asarray(scores, np.float64).reshape(-1)
    best = int(np.argmax(s))
    v = triple_verdict(s, theta)
    if v == NONE:
        return f"none: the best score, {CLASSES[best]} {s[best]:.{digits}f}, is below θ = {theta:.2f}"
    return f"{CLASSES[v]}: score {s[v]:.{digits}f} ≥ θ = {theta:.2f}"


def direct_verdict_text(probs, digits: int = 3) -> str:
    p = np.asarray(probs, np.float64).reshape(-1)
    k = int(np.argmax(p))
    return f"{CLASSES[k]}: probability {p[k]:.{digits}f}"


def iterate_verdict_text(scores, network: str, theta: float) -> str:
    """The verdict line under an attack iterate (four digits: the live view shows the score creeping)."""
    return verdict_text(scores, theta, 4) if is_triple(network) else direct_verdict_text(scores, 4)


def drawing_heading(network: str, step: int) -> str:
    """The heading over a triple-staged network's drawings and match maps at ``step`` (the network's
    user-facing name from :data:`aimeye.paper.NETWORK_LABELS`)."""
    return (f"**{network_title(network)}: what it draws at step {step}, and how well it matches** "
            "(similarity × where the drawing counts)")


def run_title(info) -> str:
    """A results folder (:class:`aimeye.experiments.RunInfo`) as the folder picker lists it."""
    return f"{info.name}: {info.label}" + ("" if info.current else " · older weights")


def other_weights_text(changed: dict[str, tuple[str, str | None]]) -> str:
    """A warning over a result made with other weights than the shipped ones (``changed`` from
    :func:`aimeye.experiments.other_weights`): which stages, by the first digits of their sha256."""
    parts = [f"the {stage.replace('-', ' + ')} ({made[:8]}…, shipped: {now[:8] + '…' if now else 'none'})"
             for stage, (made, now) in changed.items()]
    return ("Made with other weights than the shipped ones for " + ", ".join(parts) + ". These figures describe "
            "that earlier network, not the one the other pages run; rerunning the commands measures the shipped one.")
