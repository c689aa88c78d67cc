"""L∞ projected gradient descent with a random start (Madry et al., ICLR 2018).

Not in Berntsen et al. (whose §3.2 attack is the iterated FGSM of :mod:`.fgsm`);
it is the standard robustness check of the networks the paper compares. Images
are in [0,1] and so is ε (ε = 8/255 is 8 grey levels).

Each iterate ascends the victim's *margin* (:meth:`Victim.margin_of`), which is
positive exactly when the goal holds under the victim's verdict rule (θ-aware
for the triple-staged network: a false positive needs another object class to
be the argmax *and* above θ; a false negative needs every score below θ):

    x ← Π_{B∞(x₀, ε) ∩ [0,1]} (x + α·sign(∇ₓ margin))

The best iterate over all steps and restarts is kept per image. With
``early_stop`` an image stops at its first successful iterate, which changes
nothing about which images succeed.
"""

from __future__ import annotations

import torch

from .fgsm import _prep, input_grad
from .result import AttackResult
from .victims import Victim, check_goal, goal_reached, resolve_target


def default_alpha(eps: float, steps: int) -> float:
    """Madry et al.'s step: 2.5·ε/steps."""
    return 2.5 * eps / max(1, steps)


def pgd(victim: Victim, x: torch.Tensor, y, goal: str, eps: float, steps: int = 40, alpha: float | None = None,
        restarts: int = 1, seed: int = 0, target=None, batch_size: int | None = None, early_stop: bool = True,
        random_start: bool = True) -> AttackResult:
    """Untargeted (or, with ``target``, targeted) L∞ PGD toward ``goal`` ∈ {"fp", "fn"}.

    Returns an :class:`AttackResult` whose ``steps`` is the iteration (within its
    restart) of the kept iterate and whose ``success`` is the goal under the
    victim's verdict at that iterate."""
    check_goal(goal)
    x, y = _prep(x, y)
    n = len(x)
    batch_size = batch_size or victim.batch_size
    eps = float(eps)
    alpha = default_alpha(eps, steps) if alpha is None else float(alpha)
    tgt = resolve_target(y, goal, target)
    margin_target = tgt if (goal == "fp" and target is not None) else None
    best_m = torch.full((n,), float("-inf"))
    best_x = x.clone()
    best_t = torch.zeros(n, dtype=torch.long)
    gen = torch.Generator().manual_seed(int(seed))
    n_iter = steps if eps > 0 else 0
    with torch.enable_grad():
        for _ in range(max(1, restarts) if eps > 0 else 1):
            noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps if (random_start and eps > 0) else None
            todo = torch.nonzero(best_m <= 0).flatten() if early_stop else torch.arange(n)
            for rows in todo.split(batch_size):
                x0 = x[rows]
                lo, hi = (x0 - eps).clamp(min=0.0), (x0 + eps).clamp(max=1.0)
                xa = x0 if noise is None else torch.minimum(torch.maximum(x0 + noise[rows], lo), hi)
                for t in range(n_iter + 1):
                    xr = xa.detach().requires_grad_(True)
                    m = victim.margin_of(victim.forward(xr), y[rows], goal,
                                         None if margin_target is None else margin_target[rows])
                    md = m.detach()
                    better = md > best_m[rows]
                    if better.any():
                        best_m[rows[better]] = md[better]
                        best_x[rows[better]] = xr.detach()[better]
                        best_t[rows[better]] = t
                    if t == n_iter:
                        break
                    keep = md <= 0 if early_stop else torch.ones_like(md, dtype=torch.bool)
                    if not keep.any():
                        break
                    g = input_grad(m[keep].sum(), xr)[keep]
                    rows, lo, hi = rows[keep], lo[keep], hi[keep]
                    xa = torch.minimum(torch.maximum(xr.detach()[keep] + alpha * g.sign(), lo), hi)
    with torch.no_grad():
        scores = torch.cat([victim.scores(best_x[i:i + batch_size]) for i in range(0, n, batch_size)]
                           or [torch.zeros(0, victim.n_outputs)])
    verdict = victim.verdict_from(scores)
    return AttackResult.build(attack="pgd", network=victim.name, goal=goal, theta=victim.theta, y=y, target=tgt,
                              steps=best_t, success=goal_reached(verdict, y, goal), scores=scores,
                              verdict=verdict, x=x, x_adv=best_x, max_steps=n_iter, eps=eps)
