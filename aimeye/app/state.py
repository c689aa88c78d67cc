"""What a page shows, as it travels in the URL: :class:`ViewState`, :func:`parse_query`, :func:`to_query`.

A shared link restores the whole view: the image (test scene, or generated scene with
class, rotation, background and seed), θ, and on the Attack page the network or race,
the goal, the attack, ε and the step cap. A value that cannot be used is not replaced
silently: :func:`parse_query` returns a short notice for it, and the page shows it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..paper import AT_NETWORKS, CLASSES, N_OBJECTS, NETWORKS, NONE, ROT_RANGE
from .inputs import BG_SOURCES, MAX_SEED, SOURCES, TEST_SIZE

ATTACK_NAMES = {"fgsm": "Iterative FGSM (1/255 per step, the paper's)", "pgd": "PGD inside an L∞ ball of ε"}
EPS_RANGE = (1, 64)  # ε in grey levels (1/255)
CAP_RANGE = (10, 2000)  # the step cap
DEFAULT_CAP = 1000  # the default race (penguin → aeroplane, θ = 0.7) flips the triple-staged network near step 500


@dataclass(frozen=True)
class ViewState:
    """source: test | scene | upload | draw; index: held-out test index (label = index % 4);
    cls (0..3, 3 = none), rot (radians in [−0.5, 0.5]), bg, seed: a generated scene;
    theta in [0,1]; network: the one network attacked when ``race`` is off; goal: the class
    the attack should make the network say (None: the default for the image's class);
    attack: fgsm | pgd; eps: PGD's L∞ budget in 1/255; cap: the step cap."""

    source: str = "test"
    index: int = 1
    cls: int = 1
    rot: tuple[float, float, float] = (0.2, -0.3, 0.1)
    bg: str = "photos"
    seed: int = 0
    theta: float = 0.7
    network: str = "triple"
    race: bool = True
    goal: int | None = None
    attack: str = "fgsm"
    eps: int = 8
    cap: int = DEFAULT_CAP


def default_goal(label: int) -> int:
    """The default adversarial goal for an image of class ``label``: the next object
    class (penguin → aeroplane); for a none image, the monkey."""
    return 0 if int(label) == NONE else (int(label) + 1) % N_OBJECTS


def goal_options(label: int) -> list[int]:
    """The goals an attack on an image of class ``label`` can have: every other class (none: a false negative)."""
    return [c for c in range(len(CLASSES)) if c != int(label)]


def goal_for(state: ViewState, label: int) -> int:
    """The goal in use for an image of class ``label`` (the state's, unless it is the label itself)."""
    return state.goal if state.goal in goal_options(label) else default_goal(label)


# ----------------------------------------------------------------------------------- parsing


def _last(v: Any) -> str | None:
    if isinstance(v, (list, tuple)):
        v = v[-1] if v else None
    return None if v is None else str(v).strip()


def _finite(s: str | None) -> float | None:
    try:
        f = float(s)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _int(s: str | None, lo: int, hi: int) -> int | None:
    f = _finite(s)
    if f is None or f != int(f) or not lo <= f <= hi:
        return None
    return int(f)


def parse_class(s: Any) -> int | None:
    """A class given by name (any case) or by label 0..3; None when it is neither."""
    s = _last(s)
    if s is None:
        return None
    if s.lower() in CLASSES:
        return CLASSES.index(s.lower())
    return _int(s, 0, len(CLASSES) - 1)


def _parse_rot(s: str) -> tuple[float, float, float] | None:
    vals = [_finite(v) for v in s.split(",")]
    if len(vals) != 3 or any(v is None for v in vals):
        return None
    return tuple(round(min(max(v, -ROT_RANGE), ROT_RANGE), 2) + 0.0 for v in vals)


def _parse_theta(s: str) -> float | None:
    f = _finite(s)
    return None if f is None or not 0.0 <= f <= 1.0 else round(f, 2) + 0.0


def _choice(options):
    def parse(s: str):
        s = s.lower().replace("-", "_").replace("+", "_")
        return s if s in options else None
    return parse


_FLAGS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}

# query key → (field, parser, what a valid value looks like)
PARSERS = {
    "source": ("source", _choice(SOURCES), "one of " + ", ".join(SOURCES)),
    "index": ("index", lambda s: _int(s, 0, TEST_SIZE - 1), f"a whole number from 0 to {TEST_SIZE - 1}"),
    "class": ("cls", parse_class, "a class name: " + ", ".join(CLASSES)),
    "rot": ("rot", _parse_rot, "three numbers in radians, like 0.2,-0.3,0.1"),
    "bg": ("bg", _choice(BG_SOURCES), "one of " + ", ".join(BG_SOURCES)),
    "seed": ("seed", lambda s: _int(s, 0, MAX_SEED), f"a whole number from 0 to {MAX_SEED}"),
    "theta": ("theta", _parse_theta, "a number from 0 to 1"),
    "network": ("network", _choice(NETWORKS + AT_NETWORKS), "one of " + ", ".join(NETWORKS + AT_NETWORKS)),
    "race": ("race", lambda s: _FLAGS.get(s.lower()), "1 or 0"),
    "goal": ("goal", parse_class, "a class name: " + ", ".join(CLASSES)),
    "attack": ("attack", _choice(ATTACK_NAMES), "one of " + ", ".join(ATTACK_NAMES)),
    "eps": ("eps", lambda s: _int(s, *EPS_RANGE), f"a whole number from {EPS_RANGE[0]} to {EPS_RANGE[1]}"),
    "cap": ("cap", lambda s: _int(s, *CAP_RANGE), f"a whole number from {CAP_RANGE[0]} to {CAP_RANGE[1]}"),
}


def parse_query(params: Mapping[str, Any] | None, base: ViewState | None = None) -> tuple[ViewState, list[str]]:
    """A :class:`ViewState` from query parameters, and a notice for every value that could
    not be used (that field keeps ``base``'s value, by default the default). Unknown keys
    are ignored. Never raises."""
    state = base or ViewState()
    changes, notices = {}, []
    for key, raw in (params or {}).items():
        if key not in PARSERS:
            continue
        name, parse, valid = PARSERS[key]
        text = _last(raw)
        value = parse(text) if text is not None else None
        if value is None:
            shown = (text or "")[:40]
            notices.append(f"Ignored `{key}={shown}` in the link: it should be {valid}.")
        else:
            changes[name] = value
    return replace(state, **changes), notices


def _fmt(v: float) -> str:
    return format(round(float(v), 2) + 0.0, "g")


def to_query(state: ViewState, page: str = "inspect") -> dict[str, str]:
    """The query parameters that restore ``state`` on ``page`` (inspect | attack | theta):
    the image's own keys only, θ, and on the Attack page the whole attack setup.
    ``parse_query(to_query(s, "attack"))`` gives back ``s`` for the keys it writes."""
    q: dict[str, str] = {}
    if page in ("inspect", "attack"):
        q["source"] = state.source
        if state.source == "test":
            q["index"] = str(state.index)
        elif state.source == "scene":
            q |= {"class": CLASSES[state.cls], "rot": ",".join(_fmt(v) for v in state.rot), "bg": state.bg,
                  "seed": str(state.seed)}
    q["theta"] = _fmt(state.theta)
    if page == "attack":
        q |= {"race": "1" if state.race else "0", "network": state.network, "attack": state.attack,
              "cap": str(state.cap)}
        if state.goal is not None:
            q["goal"] = CLASSES[state.goal]
        if state.attack == "pgd":
            q["eps"] = str(state.eps)
    return q


def normalise(state: ViewState) -> ViewState:
    """Rounded and clipped as it would come back from the URL (θ to 0.01, rotations to 0.01 rad)."""
    return replace(state, theta=round(min(max(float(state.theta), 0.0), 1.0), 2) + 0.0,
                   rot=tuple(round(min(max(float(v), -ROT_RANGE), ROT_RANGE), 2) + 0.0 for v in state.rot))


def with_changes(state: ViewState, **changes) -> ViewState:
    return normalise(replace(state, **changes))
