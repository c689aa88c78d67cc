"""The results schema's definitions, shared by writing and reading (no I/O here).

* :data:`SCHEMA`: the version written into summary.json and robust.json.
* :data:`ROW_KEYS`: the fields of one FGSM attack row (attacks.json/.csv; plus ``scores``).
* :data:`GALLERY_KEYS`: the arrays of gallery.npz (Fig. 5 material).
* :func:`robust_table`: per-attack broken sets → the robust-accuracy table (per-image worst case), and
  :func:`accuracy_text` one of its cells;
  :func:`normalise_robust` checks that a robust.json has the current schema.
"""

from __future__ import annotations

from .stats import wilson_ci

SCHEMA = 2
ROW_KEYS = ("goal", "network", "index", "label", "target", "theta", "steps", "success", "verdict", "distortion",
            "linf", "l2", "ssim")
GALLERY_KEYS = ("network", "index", "label", "target", "steps", "distortion", "original", "adversarial", "rotation")
EARLIER = "earlier runs"  # in a run's table: the images it skipped because earlier runs had broken them


def robust_table(broken: dict, n: int, eps_255: list[int], ran: dict | None = None,
                 skipped: dict | None = None) -> dict:
    """``broken[goal][network][attack]`` = per ε, the scene indices that attack turned → the table:
    per goal and network, one entry per ε with the per-image worst case over all attacks.

    ``skipped[goal][network]`` (a run that skipped what earlier runs broke) = per ε, the indices it did not
    attack; they count as broken, under the name :data:`EARLIER`.

    ``ran[goal][network][attack]`` (merged runs) = the ε that attack was run at; an ε where no attack
    was run on a network gets ``not_run: True`` and no accuracy (breaks carried from a smaller ε would
    only bound it), and an attack first run at a larger ε is not listed in ``by_attack`` (it broke
    nothing there because it was not there; its adversarials from a smaller ε do count at larger ones)."""
    table = {}
    for goal, nets_ in broken.items():
        table[goal] = {}
        for net, by_attack in nets_.items():
            entries = []
            for j, e in enumerate(eps_255):
                if ran is not None and not any(e in ran[goal][net][a] for a in by_attack):
                    entries.append({"eps_255": e, "n": n, "broken": None, "accuracy": None, "ci95": None,
                                    "by_attack": {}, "only_by": {}, "strongest": None, "not_run": True})
                    continue
                sets = {a: set(v[j]) for a, v in by_attack.items() if ran is None or min(ran[goal][net][a]) <= e}
                if prior := (skipped or {}).get(goal, {}).get(net):
                    sets[EARLIER] = set(prior[j])
                union = set().union(*sets.values()) if sets else set()
                counts = {a: len(s) for a, s in sets.items()}
                only = {a: len(s - set().union(*(t for b, t in sets.items() if b != a))) for a, s in sets.items()}
                strongest = max(counts, key=lambda a: (counts[a], only[a])) if union else None
                ci = wilson_ci(n - len(union), n)
                entries.append({"eps_255": e, "n": n, "broken": len(union), "accuracy": (n - len(union)) / n if n else None,
                                "ci95": list(ci) if ci else None, "by_attack": counts, "only_by": only,
                                "strongest": strongest})
            table[goal][net] = entries
    return table


def accuracy_text(entry: dict) -> str:
    """One cell of the robust table: "0.95 [0.92, 0.97]", or "not run" (merged runs)."""
    if entry["accuracy"] is None:
        return "not run"
    ci = f" [{entry['ci95'][0]:.2f}, {entry['ci95'][1]:.2f}]" if entry["ci95"] else ""
    return f"{entry['accuracy']:.2f}{ci}"


def normalise_robust(d: dict | None) -> dict | None:
    """A robust.json of the current schema as it is (None stays None); any other schema is refused
    (round 1's PGD-only files were withdrawn with their figures, and none ships)."""
    if not d:
        return None
    if d.get("schema") == SCHEMA:
        return d
    raise ValueError(f"unknown robust.json schema {d.get('schema')!r}; rerun: python -m aimeye experiment robust")


def robust_rates(robust: dict) -> dict:
    """The table of a robust.json: {eps_255, n_images, table}."""
    r = normalise_robust(robust)
    return {"eps_255": r["eps_255"], "n_images": r["n_images"], "table": r["table"]}
