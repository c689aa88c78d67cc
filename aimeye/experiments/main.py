"""One entry point for every experiment: :func:`run` (called by ``python -m aimeye experiment``).

    python -m aimeye experiment {fig4,fig6,all,robust,fig5} [options]
    torchrun --standalone --nproc_per_node K -m aimeye experiment ...   (K ranks; rank 0 writes)

``fig4``/``fig6``/``all`` run the paper's iterated FGSM (:mod:`.runs`) and, for
``all``, the robust-accuracy evaluation (:mod:`.robust`) too; ``robust`` runs
only the latter; ``fig5`` redraws the figures of an existing folder.
"""

from __future__ import annotations

import copy
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from .. import checkpoints, runtime
from ..paper import CLASSES, STAGES, THETAS
from . import results
from .robust import (
    EPS_255,
    broken_by_class,
    checklist_text,
    earlier_breaks,
    merge_rank_parts,
    merge_runs,
    robust_record,
    run_robust,
    same_weights,
    victims_for,
)
from .runs import TRIPLE_BATCH, cat_gallery, run_goal, sort_rows
from .suite import default_suite, rule_of
from .summary import summarise
from .testset import GOALS, NETWORKS, SEED, TestSet, add_filters, filter_correct, load_test_set

DEFAULT_OUT = results.DEFAULT_ROOT / "results"
WHAT = {"fig4": ("fp",), "fig6": ("fn",), "all": ("fp", "fn"), "robust": (), "fig5": ()}
CONFIG_KEYS = ("n_per_class", "max_steps", "seed")  # rows of another config, or other weights, are stale


def model_shas(models) -> dict:
    """The sha256 of every stage's weights (empty for models without sidecars, e.g. toys)."""
    loaded = STAGES + ("direct-at",) * (getattr(models, "direct_at", None) is not None) + (
        ("estimator-at", "comparator-at") if getattr(models, "triple_at", None) is not None else ())
    try:
        return checkpoints.recorded_shas(loaded, models.root)
    except (AttributeError, checkpoints.CheckpointError):
        return {}


def on_device(models, device: torch.device, names=("direct", "direct_param", "triple")):
    """The models on ``device``: private copies off the CPU (the shared CPU models are never moved)."""
    if device.type == "cpu":
        return models
    get = models.get if isinstance(models, dict) else lambda k: getattr(models, k)
    moved = {k: copy.deepcopy(get(k)).to(device) for k in names}
    return moved if isinstance(models, dict) else SimpleNamespace(**moved)


def machine(device: torch.device, ranks: runtime.Ranks) -> str:
    what = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU ×{os.cpu_count()}"
    return f"{what}, {ranks.world} rank(s)"


def _fgsm_part(models, ts: TestSet, goals, max_steps, batch_size, triple_batch_size, progress, device) -> dict:
    kept, filt = filter_correct(models, ts)
    out = {"rows": [], "filter": filt, "gallery": [], "image_steps": {}, "timings_s": {}}
    for goal in goals:
        t0 = time.time()
        rows, gallery, steps = run_goal(models, kept, goal, max_steps, batch_size, progress, triple_batch_size, device)
        out["rows"] += rows
        if goal == "fp":
            out["gallery"].append(gallery)
        out["image_steps"][goal] = steps
        out["timings_s"][goal] = round(time.time() - t0, 1)
    return out


def run(what: str, n_per_class: int = 100, *, models=None, testset: TestSet | None = None, max_steps: int = 10_000,
        out: Path | str = DEFAULT_OUT, batch_size: int = 64, triple_batch_size: int = TRIPLE_BATCH,
        robust_n_per_class: int | None = None, eps_255=EPS_255, suite=None, attack_steps: int = 100,
        restarts: int = 5, extra: dict | None = None, thetas=THETAS, attacks=None, robust_goals=GOALS,
        networks=None, skip_broken: Path | str | None = None, figures: bool = True,
        png: bool = True, progress: bool = True,
        command: str = "", notes: list[str] | None = None, device: str = "auto") -> results.Run | None:
    """Run ``what`` and write the results folder ``out``; returns it loaded (rank 0) or None (other ranks).

    ``testset`` replaces ``load_test_set(n_per_class)`` (tests use toys); ``extra`` maps more result keys
    (e.g. ``{"direct_at": model}``) to more networks for the robustness evaluation; ``suite`` replaces :func:`.suite.default_suite`;
    ``robust_goals`` limits the robustness evaluation to some goals (fp, fn), and ``networks`` to some networks
    by result key (e.g. ``["triple_at@0.7"]``; the image filter and the transfer sources still use them all);
    ``skip_broken`` names a results folder (say, a merge) whose broken images are not attacked again at the
    same ε (:func:`.robust.earlier_breaks`)."""
    if what not in WHAT:
        raise ValueError(f"what must be one of {tuple(WHAT)}, got {what!r}")
    ranks = runtime.start(device)
    try:
        return _run(what, n_per_class, ranks, ranks.device, models=models, testset=testset, max_steps=max_steps,
                    out=Path(out), batch_size=batch_size, triple_batch_size=triple_batch_size,
                    robust_n_per_class=robust_n_per_class, eps_255=tuple(eps_255), suite=suite,
                    attack_steps=attack_steps, restarts=restarts, extra=extra, thetas=tuple(thetas), attacks=attacks,
                    robust_goals=tuple(robust_goals), networks=networks, skip_broken=skip_broken, figures=figures,
                    png=png,
                    progress=progress and ranks.main, command=command, notes=notes or [])
    finally:
        runtime.stop(ranks)


def _run(what, n_per_class, ranks, dev, *, models, testset, max_steps, out, batch_size, triple_batch_size,
         robust_n_per_class, eps_255, suite, attack_steps, restarts, extra, thetas, attacks, robust_goals, networks,
         skip_broken, figures, png,
         progress,
         command, notes):
    from .report import write_folder

    t_start = time.time()
    models = models if models is not None else checkpoints.load_models()
    shas = model_shas(models)
    if what == "fig5":  # the statistics again from the stored attacks (the rules may be newer), then the figures
        if ranks.main and (attacks := results.read_json(out / "attacks.json")) is not None:
            results.write_json(out / "summary.json", summarise(attacks["attacks"], attacks["filter"], attacks["meta"]))
        return write_folder(out, figures=figures, png=png) if ranks.main else None
    dmodels = on_device(models, dev)
    meta = {"seed": SEED, "thetas": list(THETAS), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "machine": machine(dev, ranks), "device": str(dev), "world_size": ranks.world, "n_per_class": n_per_class,
            "max_steps": max_steps, "batch_size": batch_size, "triple_batch_size": triple_batch_size,
            "checkpoints_sha256": shas, "notes": notes, "command": command}
    full = testset if testset is not None else load_test_set(max(n_per_class, robust_n_per_class or 0))
    def mine(ts: TestSet) -> TestSet:  # this rank's contiguous share; rank 0 gathers them in order
        r = ranks.slice(len(ts))
        return ts.select(slice(r.start, r.stop))

    goals = WHAT[what]
    if goals:
        ts = full.first_per_class(n_per_class)
        part = runtime.gather(_fgsm_part(dmodels, mine(ts), goals, max_steps, batch_size, triple_batch_size,
                                       progress, dev), ranks)
        if ranks.main:
            _write_fgsm(out, part, goals, meta, t_start)
    if what in ("robust", "all"):
        t0 = time.time()
        rts = full.first_per_class(robust_n_per_class or n_per_class)
        dextra = on_device(extra or {}, dev, names=tuple(extra or ()))
        victims = victims_for(dmodels, dextra, thetas)
        if unknown := set(networks or ()) - set(victims):
            raise ValueError(f"unknown network(s) {sorted(unknown)}; this run has {list(victims)}")
        kept, filt = filter_correct(dmodels, mine(rts), extra={k: v for k, v in victims.items()
                                                              if k not in NETWORKS})
        suite = suite if suite is not None else default_suite(victims, steps=attack_steps, restarts=restarts,
                                                              only=attacks)
        if networks:
            victims = {k: v for k, v in victims.items() if k in networks}
        skip = None
        if skip_broken is not None:
            earlier = _read_robust(skip_broken)
            if not same_weights(earlier["meta"].get("checkpoints_sha256"), shas):
                raise ValueError(f"{skip_broken} attacked other checkpoints (checkpoints_sha256 differs)")
            skip = earlier_breaks(earlier, eps_255)
            meta["skip_broken"] = str(skip_broken)
        res = run_robust(victims, kept, suite, eps_255, goals=robust_goals, progress=progress, device=dev, skip=skip)
        parts = runtime.gather({"robust": res, "filter": filt}, ranks)
        if ranks.main:
            merged = merge_rank_parts([p["robust"] for p in parts])
            f = parts[0]["filter"]
            for p in parts[1:]:
                f = add_filters(f, p["filter"])
            rmeta = {**meta, "n_per_class": robust_n_per_class or n_per_class, "goals": list(robust_goals), "filter": f,
                     "wall_time_s": round(time.time() - t0, 1), "commands": [command] if command else []}
            rmeta.pop("max_steps")
            _write_robust(out, robust_record(rmeta, eps_255, merged["indices"], victims,
                                             {s.name: s.describe() for s in suite}, merged["image_evaluations"],
                                             merged["broken"], skipped=merged["skipped"] or None))
    if not ranks.main:
        return None
    return write_folder(out, figures=figures, png=png)


def merge(paths, out: Path | str, command: str = "", figures: bool = True, png: bool = True) -> results.Run:
    """Merge the robust.json of several results folders (the same checkpoints; see :func:`.robust.merge_runs`)
    into ``out``: one per-image worst case over every attack of every run."""
    merged = merge_runs([_read_robust(p) for p in paths], rule_of)
    if command:
        merged["meta"]["commands"].append(command)
    _write_robust(Path(out), merged)
    from .report import write_folder

    return write_folder(out, figures=figures, png=png)


def by_class(path: Path | str) -> dict:
    """The broken images of a robust run per object class (:func:`.robust.broken_by_class`), with the
    classes read from its test set (the same ``n_per_class`` and seed), written to ``by_class.json``."""
    robust = _read_robust(path)
    meta = robust["meta"]
    ts = load_test_set(meta["n_per_class"], meta["seed"])
    label_of = {int(i): CLASSES[int(c)] for i, c in zip(ts.indices, ts.labels, strict=True)}
    if missing := set(robust["indices"]) - set(label_of):
        raise ValueError(f"{len(missing)} attacked scene(s) are not in the test set of this run's meta")
    counts = broken_by_class(robust, label_of)
    results.write_json(Path(path) / "by_class.json", counts)
    return counts


def _read_robust(path: Path | str) -> dict:
    r = results.read_json(Path(path) / "robust.json")
    if r is None:
        raise FileNotFoundError(f"{path} holds no robust.json")
    return results.normalise_robust(r)


def _write_robust(out: Path, robust: dict):
    """robust.json and the checklist it follows."""
    out.mkdir(parents=True, exist_ok=True)
    results.write_json(out / "robust.json", robust)
    (out / "CHECKLIST.md").write_text(checklist_text())


def _write_fgsm(out: Path, parts: list[dict], goals, meta: dict, t_start: float):
    """Merge the ranks' FGSM parts with the rows of the other goal already in ``out`` (same config only)."""
    out.mkdir(parents=True, exist_ok=True)
    filt = parts[0]["filter"]
    for p in parts[1:]:
        filt = add_filters(filt, p["filter"])
    rows = [r for p in parts for r in p["rows"]]
    old = results.read_json(out / "attacks.json")
    same = old is not None and all(old["meta"].get(k) == meta[k] for k in CONFIG_KEYS) and same_weights(
        old["meta"].get("checkpoints_sha256"), meta["checkpoints_sha256"])
    if same:
        rows += [r for r in old["attacks"] if r["goal"] not in goals]
    else:
        for stale in ("attacks.json", "attacks.csv", "summary.json", "gallery.npz"):
            (out / stale).unlink(missing_ok=True)
    wall = round(time.time() - t_start, 1)
    timings = {**(old["meta"].get("timings_s", {}) if same else {}),
               **{g: round(max(p["timings_s"].get(g, 0) for p in parts), 1) for g in goals}}
    steps = {**(old["meta"].get("image_steps", {}) if same else {}),
             **{g: sum(p["image_steps"].get(g, 0) for p in parts) for g in goals}}
    commands = [*(old["meta"].get("commands", []) if same else []), {"command": meta["command"], "wall_time_s": wall}]
    meta = {**meta, "timings_s": timings, "image_steps": steps, "commands": commands,
            "wall_time_s": round((old["meta"].get("wall_time_s", 0) if same else 0) + wall, 1)}
    results.write_attacks_json(out / "attacks.json", {"meta": meta, "filter": filt, "attacks": sort_rows(rows)})
    results.write_csv(sort_rows(rows), out / "attacks.csv")
    if "fp" in goals:
        results.save_gallery(cat_gallery([g for p in parts for g in p["gallery"]]), out / "gallery.npz")
    results.write_json(out / "summary.json", summarise(sort_rows(rows), filt, meta))
