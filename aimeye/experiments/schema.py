"""The results schema's definitions, shared by writing and reading (no I/O here).

* :data:`SCHEMA`: the version written into summary.json and robust.json.
* :data:`ROW_KEYS`: the fields of one FGSM attack row (attacks.json/.csv; plus ``scores``).
* :data:`GALLERY_KEYS`: the arrays of gallery.npz (Fig. 5 material).
* :func:`robust_table`: per-attack broken sets → the robust-accuracy table (per-image worst case);
  :func:`normalise_robust` converts an old PGD-only robust.json (schema 1) into the current schema.
"""

from __future__ import annotations

from .stats import wilson_ci

SCHEMA = 2
ROW_KEYS = ("goal", "network", "index", "label", "target", "theta", "steps", "success", "verdict", "distortion",
            "linf", "l2", "ssim")
GALLERY_KEYS = ("network", "index", "label", "target", "steps", "distortion", "original", "adversarial", "rotation")


def robust_table(broken: dict, n: int, eps_255: list[int]) -> dict:
    """``broken[goal][network][attack]`` = per ε, the scene indices that attack turned → the table:
    per goal and network, one entry per ε with the per-image worst case over all attacks."""
    table = {}
    for goal, nets_ in broken.items():
        table[goal] = {}
        for net, by_attack in nets_.items():
            entries = []
            for j, e in enumerate(eps_255):
                sets = {a: set(v[j]) for a, v in by_attack.items()}
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


def _robust_from_v1(d: dict) -> dict:
    """An old PGD-only robust.json (counts) → the current schema. Counts per attack cannot give a
    per-image worst case: the accuracy shown is the lowest over the recorded attacks (an upper bound)."""
    n, eps = int(d.get("n_images") or 0), list(d.get("eps_255") or [])
    per: dict = {}

    def put(goal, net, attack, counts):
        per.setdefault(goal, {}).setdefault(net, {})[attack] = [int(c) for c in counts]

    for goal, nets_ in (d.get("pgd_success") or {}).items():
        for net, counts in nets_.items():
            put(goal, net, f"pgd-{d.get('pgd_steps', '?')}", counts)
    for goal, nets_ in (d.get("gradient_masking") or {}).items():
        for net, counts in nets_.items():
            if net.endswith("+st"):
                put(goal, net[:-3], f"pgd-{d.get('pgd_steps', '?')}-bpda", counts)
    for att, goals in (d.get("transfer_from_direct") or {}).items():
        for goal, nets_ in goals.items():
            for net, counts in nets_.items():
                if net != "direct" and isinstance(counts, list):
                    put(goal, net, f"transfer-{att}(direct)", counts)
    table = {}
    for goal, nets_ in per.items():
        table[goal] = {}
        for net, by_attack in nets_.items():
            entries = []
            for j, e in enumerate(eps):
                counts = {a: c[j] for a, c in by_attack.items()}
                k = max(counts.values())
                ci = wilson_ci(n - k, n)
                entries.append({"eps_255": e, "n": n, "broken": k, "accuracy": (n - k) / n if n else None,
                                "ci95": list(ci) if ci else None, "by_attack": counts, "only_by": None,
                                "strongest": max(counts, key=counts.get) if k else None})
            table[goal][net] = entries
    return {"schema": SCHEMA, "converted_from_schema": 1, "per_image_worst_case": False,
            "meta": {**(d.get("meta") or {}), "n_images": n, "pgd_steps": d.get("pgd_steps"),
                     "pgd_restarts": d.get("pgd_restarts")},
            "eps_255": eps, "n_images": n, "attacks": {}, "table": table}


def normalise_robust(d: dict | None) -> dict | None:
    """Any robust.json this project wrote → the current schema (None stays None)."""
    if not d:
        return None
    if d.get("schema") == SCHEMA:
        return d
    if "pgd_success" in d:
        return _robust_from_v1(d)
    raise ValueError(f"unknown robust.json schema {d.get('schema')!r}")


def robust_rates(robust: dict) -> dict:
    """The table of a robust.json (any schema): {eps_255, n_images, table, per_image_worst_case}."""
    r = normalise_robust(robust)
    return {"eps_255": r["eps_255"], "n_images": r["n_images"], "table": r["table"],
            "per_image_worst_case": r.get("per_image_worst_case", True)}
