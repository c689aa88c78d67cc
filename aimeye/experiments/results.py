"""Results folders: one schema for writing and reading, and the reading API the app uses.

A results folder (``checkpoints/results``, ``checkpoints/results_cap1000``, …) holds

| file | contents |
|---|---|
| ``attacks.json`` | ``meta`` (command, cap, n per class, seed, checkpoint sha256s, timings), ``filter`` and ``attacks``: one row per FGSM attack (:data:`.runs.ROW_KEYS` + final ``scores``) |
| ``attacks.csv`` | the same rows as CSV (``score_0..3``) |
| ``summary.json`` | :func:`.summary.summarise` of the rows (success with CIs, censored box statistics, the FP ratio) |
| ``gallery.npz`` | Fig. 5 material |
| ``robust.json`` | the robust-accuracy table (:mod:`.robust`): per goal, network and ε, the per-image worst case over all attacks |
| ``CHECKLIST.md`` | the evaluation checklist the robustness run followed |
| figures and ``README.md`` | written from the above |

Reading: :func:`list_runs` finds every results folder under a checkpoint
directory, the headline ones first (:func:`headline_key`); :func:`load_run`
returns a :class:`Run` whose summary and robust table are always in the current
schema (version :data:`SCHEMA`): an older summary is recomputed from the rows; a
``robust.json`` of another schema is refused.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..attacks.victims import parse_network
from ..checkpoints import CheckpointError, read_sidecar
from .schema import ROW_KEYS, SCHEMA, normalise_robust, robust_rates, robust_table  # noqa: F401 (re-exported)
from .summary import summarise

DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "checkpoints"


# --- writing -------------------------------------------------------------------------------------

def read_json(path: Path) -> dict | None:
    """The JSON at ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, obj):
    Path(path).write_text(json.dumps(obj, indent=1, ensure_ascii=False) + "\n")


def write_attacks_json(path: Path, attacks: dict):
    """Like json.dump, with one attack per line (thousands of rows stay diff- and grep-friendly)."""
    head = {k: v for k, v in attacks.items() if k != "attacks"}
    body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in attacks["attacks"])
    text = json.dumps(head, indent=1, ensure_ascii=False)[:-2] + ',\n "attacks": [\n' + body + "\n ]\n}\n"
    Path(path).write_text(text)


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
    if not Path(path).exists():
        return None
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


# --- reading -------------------------------------------------------------------------------------

@dataclass
class RunInfo:
    """What a results folder holds, without loading its rows."""

    path: Path
    name: str  # the folder name, e.g. "results_cap1000"
    cap: int | None  # the FGSM step cap (max_steps); None without FGSM rows
    n_per_class: int | None
    n_attacked: int | None  # test images kept by the filter and attacked
    commands: list[str]
    checkpoints_sha256: dict
    parts: tuple[str, ...]  # of "fp", "fn", "gallery", "robust"
    wall_time_s: float | None = None
    robust_n_images: int | None = None
    robust_thetas: tuple[float, ...] = ()  # the triple-staged network's thresholds in the robust table
    robust_goals: tuple[str, ...] = ("fp", "fn")  # the goals in the robust table
    notes: list[str] = field(default_factory=list)
    n_merged: int = 0  # a merge (``experiment merge``): how many runs it takes the worst case over
    other_weights: dict = field(default_factory=dict)  # :func:`other_weights` against the checkpoints beside it

    @property
    def current(self) -> bool:
        """Made with the weights in the checkpoint folder that holds it (no stage's sha256 differs)."""
        return not self.other_weights

    @property
    def label(self) -> str:
        """A short user-facing name: "cap 1000 steps, 8 images/class"."""
        bits = []
        if self.cap is not None:
            bits.append(f"cap {self.cap:,} steps")
        if self.n_per_class is not None:
            bits.append(f"{self.n_per_class} images/class")
        if "robust" in self.parts and self.robust_n_images is not None:
            at = f" at θ = {', '.join(f'{t:g}' for t in self.robust_thetas)}" if self.robust_thetas else ""
            only = {("fp",): " (false positives)", ("fn",): " (false negatives)"}.get(self.robust_goals, "")
            bits.append(f"robustness{only} on {self.robust_n_images} images{at}")
        if self.n_merged:
            bits.append(f"merge of {self.n_merged} runs")
        return ", ".join(bits) or self.name


def headline_key(info: RunInfo) -> tuple:
    """The order a reader wants: results made with the weights beside them before older ones; within
    each, the paper's FGSM runs, then the merges (the per-image worst case over the runs they name;
    the biggest first), then the single runs that feed the merges; then by name."""
    return not info.current, info.cap is None, -info.n_merged, info.name


@dataclass
class Run:
    """A loaded results folder, in the current schema."""

    info: RunInfo
    summary: dict | None  # see summary.summarise; None without FGSM rows
    rows: list[dict]
    robust: dict | None  # see robust.py; None without robust.json
    gallery: dict | None

    def median(self, goal: str, network: str, key: str = "steps") -> tuple[float | None, bool]:
        """(median, exact) of ``key`` ∈ {steps, distortion, ssim}; exact False: a lower bound."""
        st = ((self.summary or {}).get(goal) or {}).get(network, {}).get(key) or {}
        return st.get("median"), bool(st.get("median_exact", True))


def other_weights(made_with: dict, root: Path | str | None = None) -> dict[str, tuple[str, str | None]]:
    """The stages whose weights differ between a result (its recorded ``checkpoints_sha256``) and
    the checkpoints in ``root``: ``{stage: (sha256 it was made with, sha256 in root or None)}``.
    Such a result describes other networks than the ones that would run now."""
    out = {}
    for stage, sha in sorted(made_with.items()):
        try:
            now = read_sidecar(stage, root).get("sha256")
        except CheckpointError:
            now = None
        if sha and sha != now:
            out[stage] = (sha, now)
    return out


def format_median(value: float | None, exact: bool, fmt: str = "{:g}") -> str:
    """"≥ 100" for a censored median, "12" for an exact one, "—" for none."""
    if value is None:
        return "—"
    return fmt.format(value) if exact else "≥ " + fmt.format(value)


def _info(path: Path, attacks_head: dict | None, robust: dict | None) -> RunInfo:
    meta = (attacks_head or {}).get("meta") or {}
    rows_goals = set((attacks_head or {}).get("_goals") or ())
    parts = tuple(g for g in ("fp", "fn") if g in rows_goals)
    parts += ("gallery",) * (path / "gallery.npz").exists() + ("robust",) * (robust is not None)
    cmds = [c["command"] for c in meta.get("commands", []) if "command" in c] or (
        [meta["command"]] if meta.get("command") else [])
    if robust:
        cmds += [c for c in (robust.get("meta") or {}).get("commands", []) if c not in cmds]
    shas = meta.get("checkpoints_sha256") or (robust or {}).get("meta", {}).get("checkpoints_sha256") or {}
    has_rows = "fp" in parts or "fn" in parts
    return RunInfo(path=path, name=path.name, cap=meta.get("max_steps") if has_rows else None,
                   n_per_class=meta.get("n_per_class") if has_rows else (robust or {}).get("meta", {}).get("n_per_class"),
                   n_attacked=((attacks_head or {}).get("filter") or {}).get("kept"),
                   commands=cmds, checkpoints_sha256=shas, parts=parts, wall_time_s=meta.get("wall_time_s"),
                   robust_n_images=(robust or {}).get("n_images"),
                   robust_thetas=tuple(sorted({th for n in (robust or {}).get("networks", [])
                                               if (th := parse_network(n)[1]) is not None})),
                   robust_goals=tuple(g for g in ("fp", "fn") if g in (robust or {}).get("table", {})),
                   notes=list(meta.get("notes") or []),
                   n_merged=len((robust or {}).get("meta", {}).get("merged_from") or ()),
                   other_weights=other_weights(shas, path.parent))


def _read_attacks(path: Path) -> dict | None:
    d = read_json(path / "attacks.json")
    if d is not None:
        d["_goals"] = sorted({r["goal"] for r in d.get("attacks", [])})
    return d


def is_run(path: Path) -> bool:
    return (path / "attacks.json").exists() or (path / "robust.json").exists()


def list_runs(root: Path | str | None = None) -> list[RunInfo]:
    """Every results folder directly under ``root`` (default: checkpoints/), in :func:`headline_key`
    order."""
    root = Path(root) if root else DEFAULT_ROOT
    if not root.is_dir():
        return []
    out = []
    for p in sorted(q for q in root.iterdir() if q.is_dir() and is_run(q)):
        try:
            out.append(_info(p, _read_attacks(p), normalise_robust(read_json(p / "robust.json"))))
        except (KeyError, TypeError, ValueError):
            continue  # not a folder this project wrote
    return sorted(out, key=headline_key)


def load_run(path: Path | str) -> Run:
    """A results folder in the current schema (see the module docstring)."""
    path = Path(path)
    if not is_run(path):
        raise FileNotFoundError(f"{path} holds no attacks.json or robust.json: not a results folder")
    attacks = _read_attacks(path)
    robust = normalise_robust(read_json(path / "robust.json"))
    rows = (attacks or {}).get("attacks", [])
    summary = read_json(path / "summary.json") if attacks else None
    if attacks and (summary or {}).get("schema") != SCHEMA:
        summary = summarise(rows, attacks["filter"], attacks["meta"])
    return Run(_info(path, attacks, robust), summary, rows, robust, load_gallery(path / "gallery.npz"))
