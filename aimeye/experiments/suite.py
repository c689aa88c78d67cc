"""The attack suite of the robustness evaluation (see :mod:`.robust`)."""

from __future__ import annotations

from ..attacks import pgd
from .robust import AttackSpec


def default_suite(victims: dict | None = None, steps: int = 100, restarts: int = 5) -> list[AttackSpec]:
    """Every attack, each with the uniform call ``fn(victim, x, y, goal, eps, **options)``."""
    return [AttackSpec("pgd", pgd, {"steps": steps, "restarts": restarts}, about="L∞ PGD on the θ-aware margin")]
