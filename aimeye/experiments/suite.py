"""The attack suite of the robustness evaluation (:mod:`.robust`): every attack has the uniform call
``fn(victim, x, y, goal, eps, **options) -> AttackResult`` of :mod:`aimeye.attacks`."""

from __future__ import annotations

from ..attacks import adaptive_patch, adaptive_score, apgd, transfer
from ..attacks.victims import Victim
from .robust import AttackSpec, is_direct


def default_suite(victims: dict[str, Victim], steps: int = 100, restarts: int = 5,
                  transfer_sources=("direct",), only=None) -> list[AttackSpec]:
    """APGD-CE, APGD-DLR and APGD-T (DLR, each other object class as target) on every network; the two
    adaptive attacks on the triple-staged networks; transfer from the direct CNN and from every extra
    4-way classifier (e.g. the adversarially trained ``direct_at``) to every other network. ``only`` keeps
    the named attacks (in the suite's order; ``transfer(...)`` names the source)."""
    budget = {"steps": steps, "restarts": restarts}
    suite = [
        AttackSpec("apgd-ce", apgd, {**budget, "loss": "ce"}, about="APGD, cross-entropy (triple: −½‖s − t‖²)"),
        AttackSpec("apgd-dlr", apgd, {**budget, "loss": "dlr"}, about="APGD, DLR (triple: θ-aware margin)"),
        AttackSpec("apgd-t-dlr", apgd, {**budget, "loss": "dlr", "targeted": True}, goals=("fp",),
                   about="APGD-T: each other object class as target"),
        AttackSpec("adaptive-score", adaptive_score, budget, triple_only=True,
                   about="target score maximised, projector start, BPDA over the estimator's clip"),
        AttackSpec("adaptive-patch", adaptive_patch, budget, triple_only=True,
                   about="comparator patch logits weighted by pooled alpha, projector start, BPDA"),
    ]
    sources = [k for k in victims if k in transfer_sources or (is_direct(victims[k]) and k not in
                                                              ("direct", "direct_param"))]
    suite += [_transfer(src, victims[src], budget) for src in sources]
    if only:
        unknown = set(only) - {s.name for s in suite}
        if unknown:
            hint = ("; transfer from an extra network needs that network loaded (on the command line: "
                    "--extra direct-at for transfer(direct_at))" if any(u.startswith("transfer(") for u in unknown)
                    else "")
            raise ValueError(f"unknown attack(s) {sorted(unknown)}; the suite has {[s.name for s in suite]}{hint}")
        suite = [s for s in suite if s.name in only]
    return suite


def _transfer(src: str, source: Victim | None, budget: dict) -> AttackSpec:
    return AttackSpec(f"transfer({src})", transfer, {**budget, "restarts": 1, "source": source}, not_on=src,
                      about=f"APGD-CE on {src} for its whole budget, judged on the attacked network")


def rule_of(name: str) -> dict | None:
    """The default suite's declaration (:meth:`.robust.AttackSpec.rule`) of the attack called ``name``, for
    results folders written before robust.json recorded it; None for a name the suite does not have."""
    if name.startswith("transfer(") and name.endswith(")"):
        return _transfer(name[len("transfer("):-1], None, {}).rule()
    return next((s.rule() for s in default_suite({}) if s.name == name), None)
