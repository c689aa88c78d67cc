"""The attack session: everything the Attack page shows, owned by the library (no streamlit).

One :class:`AttackSession` per browser session holds the configuration in use
(:class:`AttackConfig`: the image and its label, the network or the race pair, θ, the
goal, the attack, ε and the step cap), the runs (one :class:`aimeye.attacks.Stepper`
per network), the scrub position, and a cache of the triple-staged network's
explanations. The page only draws it.

* **Changing a setting keeps what still applies.** θ does not change the FGSM
  trajectory against the triple-staged network, only its stop point, so a θ change
  re-reads the stop point along the recorded trajectory; the direct network's run does
  not depend on θ at all. A larger step cap keeps every run; a smaller one cuts them.
  Anything else (image, label, goal, attack, ε) starts the runs again. Either way
  :attr:`AttackSession.message` says what happened.
* **Play never runs out of sight.** Play steps in a background thread (so the display
  can redraw while the next steps are computed) and always shows the newest step:
  pressing play while scrubbed back jumps to the newest step, and scrubbing pauses.
  The thread stops by itself when every run is done, and when nobody has looked for
  :data:`HEARTBEAT_S` seconds (the tab was closed).

Reads are lock-free: a run only ever appends iterates. Everything that changes a run
other than stepping (a new configuration, a single step) first stops the thread.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..attacks import Iterate, Stepper, make_victim
from ..paper import AT_NETWORKS, NETWORKS, NONE, STEP, is_triple
from .analysis import explain_image
from .inputs import class_name
from .state import default_goal
from .wording import network_title

RACE = ("direct", "triple")
HEARTBEAT_S = 10.0  # play stops when the page has not asked for a frame for this long
EXPLANATION_CACHE = 64
FASTEST = "fastest"
SPEEDS = {FASTEST: None, "10 steps/s": 10.0, "2 steps/s": 2.0}  # play speeds, for the page


def image_id(image) -> str:
    return hashlib.sha1(np.ascontiguousarray(image, np.float32).tobytes()).hexdigest()


@dataclass(frozen=True)
class AttackConfig:
    """What is attacked and how. ``goal``: the class the network should say (3 = none, a
    false negative; another object, a false positive); ``eps`` in 1/255 (PGD only)."""

    image_id: str
    label: int
    networks: tuple[str, ...] = RACE
    theta: float = 0.7
    goal: int = 2
    attack: str = "fgsm"
    eps: int = 8
    cap: int = 1000

    def __post_init__(self):
        if not self.networks or any(n not in NETWORKS + AT_NETWORKS for n in self.networks):
            raise ValueError(f"networks must be some of {NETWORKS + AT_NETWORKS}, got {self.networks}")
        if self.goal == self.label or not 0 <= self.goal <= NONE:
            raise ValueError(f"goal must be another class than the label {self.label}, got {self.goal}")

    @property
    def race(self) -> bool:
        return len(self.networks) > 1

    @property
    def kind(self) -> str:
        return "fn" if self.goal == NONE else "fp"

    def run_key(self, network: str) -> tuple:
        """What a network's run depends on: a run survives any change outside its key."""
        theta = self.theta if is_triple(network) and self.attack == "pgd" else None
        return self.image_id, self.label, network, self.goal, self.attack, self.eps if self.attack == "pgd" else 0, theta


@dataclass(frozen=True)
class Flip:
    step: int
    distortion: float
    verdict: int


class AttackSession:
    """``AttackSession(models, image, config)``: ``image`` (64,64) float32 in [0,1]."""

    def __init__(self, models, image, config: AttackConfig):
        self.models = models
        self.image = np.asarray(image, np.float32).reshape(64, 64).copy()
        self.config = config
        self.runs: dict[str, Stepper] = {}
        self.scrub: int | None = None  # None: show the newest step
        self.message: str | None = None
        self.speed: float | None = None  # steps per second while playing; None: as fast as possible
        self.last_poll = time.monotonic()
        self._control = threading.RLock()
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._explanations: OrderedDict[tuple[str, int], dict] = OrderedDict()
        self._start_runs(config.networks)

    # --- configuration ----------------------------------------------------------------------
    def _new_run(self, network: str) -> Stepper:
        c = self.config
        victim = make_victim(self.models, network, c.theta)
        target = None if c.goal == NONE else c.goal
        return Stepper(victim, self.image, c.label, c.kind, target, attack=c.attack, eps=c.eps * STEP,
                       max_steps=c.cap, explain=is_triple(network), keep_explanations=2)

    def _start_runs(self, networks):
        for n in networks:
            self.runs[n] = self._new_run(n)
            if is_triple(n):
                for key in [k for k in self._explanations if k[0] == n]:
                    del self._explanations[key]

    def configure(self, image, config: AttackConfig) -> str | None:
        """Switch to ``config`` (and ``image``), keeping every run that still applies.
        Returns (and keeps in :attr:`message`) what happened, or None when nothing changed."""
        image = np.asarray(image, np.float32).reshape(64, 64)
        if config == self.config:
            return None
        with self._control:
            was_playing = self.pause()
            old = self.config
            self.image = image.copy()
            self.config = config
            kept, fresh = [], []
            runs = {}
            for n in config.networks:
                run = self.runs.get(n)
                if run is not None and old.run_key(n) == config.run_key(n):
                    if is_triple(n) and config.theta != old.theta:
                        run.set_theta(config.theta)
                    run.set_max_steps(config.cap)
                    runs[n] = run
                    kept.append(n)
                else:
                    fresh.append(n)
            self.runs = runs
            self._start_runs(fresh)
            self.runs = {n: self.runs[n] for n in config.networks}
            self.scrub = None if self.scrub is None else min(self.scrub, self.latest_step)
            self.message = self._change_message(old, config, kept, fresh)
            if was_playing and kept and not fresh:
                self.play()
            return self.message

    def _change_message(self, old: AttackConfig, new: AttackConfig, kept: list[str], fresh: list[str]) -> str:
        what = [name for name, changed in (
            ("image", old.image_id != new.image_id), ("true class", old.label != new.label),
            (f"goal ({class_name(new.goal)})", old.goal != new.goal), ("attack", old.attack != new.attack),
            (f"ε ({new.eps}/255)", old.eps != new.eps and new.attack == "pgd"),
            (f"θ ({new.theta:.2f})", old.theta != new.theta), (f"step cap ({new.cap})", old.cap != new.cap),
            ("race" if new.race else "network", old.networks != new.networks)) if changed]
        head = "Changed " + ", ".join(what) + "." if what else "Settings changed."
        parts = [head]
        if kept:
            parts.append("Kept " + " and ".join(f"the {network_title(n)} run ({self.runs[n].latest.step} steps)"
                                                for n in kept) + ".")
        if "triple" in kept and old.theta != new.theta:
            flip = self.flip("triple")
            parts.append("Same FGSM trajectory (it does not depend on θ); at θ = "
                         f"{new.theta:.2f} the triple-staged network "
                         + (f"flips at step {flip.step}." if flip else "has not flipped in the recorded steps."))
        if fresh:
            parts.append("Started again from step 0: " + ", ".join(network_title(n) for n in fresh) + ".")
        return " ".join(parts)

    # --- reading ----------------------------------------------------------------------------
    @property
    def latest_step(self) -> int:
        return max(r.latest.step for r in self.runs.values())

    @property
    def shown_step(self) -> int:
        """The step the page shows: the scrub position, or the newest step."""
        latest = self.latest_step
        return latest if self.scrub is None else min(self.scrub, latest)

    @property
    def following(self) -> bool:
        return self.scrub is None

    @property
    def done(self) -> bool:
        return all(r.done for r in self.runs.values())

    def poll(self):
        """The page looked: keeps play going (see :data:`HEARTBEAT_S`)."""
        self.last_poll = time.monotonic()

    def frame(self, network: str, step: int | None = None) -> Iterate:
        """The iterate shown for ``network`` at ``step`` (default: the shown step); a run that
        stopped earlier shows its last iterate."""
        hist = self.runs[network].history
        k = self.shown_step if step is None else int(step)
        return hist[max(0, min(k, len(hist) - 1))]

    def flip(self, network: str) -> Flip | None:
        """Where the run reached its goal, or None."""
        run = self.runs[network]
        if not run.success:
            return None
        it = run.latest
        return Flip(it.step, it.distortion, it.verdict)

    def flips(self) -> dict[str, Flip]:
        return {n: f for n in self.runs if (f := self.flip(n)) is not None}

    def status(self, network: str) -> str:
        """One sentence on where the run stands."""
        run, flip = self.runs[network], self.flip(network)
        if flip is not None and flip.step == 0:
            return f"Goal already holds at step 0: it says {class_name(flip.verdict)} before any attack step."
        if flip is not None:
            return (f"Flipped to {class_name(flip.verdict)} at step {flip.step}, "
                    f"distortion {flip.distortion:.4f}.")
        if run.done:
            return f"Not flipped within the cap of {run.max_steps} steps."
        if run.latest.step == 0:
            return "Ready: press play or step."
        k = run.latest.step
        return f"Not flipped yet after {k} step{'s' if k > 1 else ''}."

    def explanation(self, step: int | None = None, network: str = "triple") -> dict:
        """A triple-staged network's explanation at ``step`` (kept, cached or recomputed)."""
        it = self.frame(network, step)
        kept = it.explanation
        if kept is not None:
            return kept
        key = (network, it.step)
        if key in self._explanations:
            self._explanations.move_to_end(key)
            return self._explanations[key]
        ex = explain_image(self.models, it.image, network)
        self._explanations[key] = ex
        while len(self._explanations) > EXPLANATION_CACHE:
            self._explanations.popitem(last=False)
        return ex

    # --- moving -----------------------------------------------------------------------------
    def set_scrub(self, step: int):
        """Show ``step``; scrubbing back pauses play (it never runs out of sight)."""
        step = int(step)
        if step >= self.latest_step:
            self.scrub = None
        else:
            self.pause()
            self.scrub = max(0, step)

    def step(self, n: int = 1) -> int:
        """Take up to ``n`` steps on every run that is not done (pauses play; shows the newest)."""
        with self._control:
            self.pause()
            self.message = None
            for _ in range(int(n)):
                active = [r for r in self.runs.values() if not r.done]
                if not active:
                    break
                for r in active:
                    r.step(1)
            self.scrub = None
            return self.latest_step

    def reset(self):
        with self._control:
            self.pause()
            self.runs = {}
            self._start_runs(self.config.networks)
            self.scrub, self.message = None, None

    @property
    def playing(self) -> bool:
        w = self._worker
        return w is not None and w.is_alive() and not self._stop.is_set()

    def play(self, speed: float | None = ...) -> bool:
        """Start stepping in the background from the newest step. Returns whether it plays
        (False when every run is done)."""
        with self._control:
            if speed is not ...:
                self.speed = speed
            if self.done:
                return False
            self.scrub, self.message = None, None
            if self.playing:
                return True
            self.poll()
            self._stop = threading.Event()
            # torch's intra-op thread count is per OS thread: give the worker the caller's (the app uses 1)
            self._worker = threading.Thread(target=self._loop, args=(self._stop, torch.get_num_threads()),
                                            name="aimeye-attack-play", daemon=True)
            self._worker.start()
            return True

    def press(self, action: str, speed: float | None = ...) -> bool:
        """The play/pause button: ``action`` is what it said when clicked ("play" or "pause"), not a
        toggle, so a repeated press cannot undo itself. Returns whether it plays afterwards."""
        if action == "play":
            return self.play(speed)
        self.pause()
        return False

    def pause(self) -> bool:
        """Stop the background stepping (after the step in progress). Returns whether it was playing."""
        with self._control:
            was = self.playing
            self._stop.set()
            w = self._worker
            if w is not None and w is not threading.current_thread():
                w.join()
            self._worker = None
            return was

    def _loop(self, stop: threading.Event, threads: int):
        torch.set_num_threads(threads)
        next_at = time.monotonic()
        while not stop.is_set():
            if time.monotonic() - self.last_poll > HEARTBEAT_S:
                break
            active = [r for r in self.runs.values() if not r.done]
            if not active:
                break
            for r in active:
                r.step(1)
            if self.speed:
                next_at += 1.0 / self.speed
                stop.wait(max(0.0, next_at - time.monotonic()))
        stop.set()

    # --- exports ----------------------------------------------------------------------------
    def csv(self, network: str) -> str:
        return self.runs[network].to_csv()

    def gif(self, network: str) -> bytes:
        return self.runs[network].to_gif(4)


def new_config(image, label: int, **settings) -> AttackConfig:
    """An :class:`AttackConfig` for ``image`` with the given settings."""
    goal = settings.pop("goal", None)
    return replace(AttackConfig(image_id(image), int(label), goal=default_goal(label) if goal is None else int(goal)),
                   **settings)
