"""APGD: Auto-PGD with momentum and an adaptive step size (Croce & Hein, *Reliable evaluation of
adversarial robustness with an ensemble of diverse parameter-free attacks*, ICML 2020, Algorithm 1).

Images are (N,1,64,64) float32 in [0,1]; ε is in the same units (ε = 8/255 is 8 grey levels);
the threat model is L∞. The uniform call of every attack in this package::

    result = apgd(victim, x, y, goal, eps, target=None, steps=100, restarts=5, loss="ce", ...)

* ``goal``: "fp" (an object made into *another object*) or "fn" (made into none); success is
  the victim's own verdict rule (θ-aware for the triple network, :func:`.victims.goal_reached`).
* ``loss``: "ce" or "dlr" (see :meth:`.victims.Victim.objective`; the triple network also has
  "score"), or a callable ``objective(x, y, t) -> (value (N,), raw)`` to maximise, whose ``raw`` is
  what ``victim.forward(x)`` returns (the adaptive attacks pass their own).
* ``targeted``: run once per other object class as the target (APGD-T); ``target`` fixes one.
* ``start``: a callable ``start(x, y, t, eps, restart, generator) -> x_start`` (default: uniform
  noise in the ε-ball), projected onto the ball.

The step size starts at 2ε and is halved at the checkpoints w_j = ⌈p_j·N⌉, p_0 = 0, p_1 = 0.22,
p_{j+1} = p_j + max(p_j − p_{j−1} − 0.03, 0.06) (in the integer form of the authors' code, see
:func:`checkpoints`), when (1) the objective rose in fewer than
ρ = 0.75 of the steps since the last checkpoint, or (2) the step size was not halved at the last
checkpoint and the best objective has not improved since; the iterate then restarts from the best
point. Momentum α = 0.75 (the first step has none). As in the authors' code, condition (2) cannot
fire at the first checkpoint.

Every image keeps its own step size and stops as soon as its goal holds; the first successful
iterate is kept (else the iterate with the highest θ-aware margin over all restarts and targets).
Restarts and further targets run only on the images still unbroken. ``steps`` of the result is the
number of objective evaluations the image used. Gradients are taken w.r.t. the input only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..paper import N_OBJECTS, NONE
from .fgsm import _prep, input_grad
from .result import AttackResult
from .victims import Victim, check_goal, goal_reached

RHO = 0.75
MOMENTUM = 0.75


def checkpoints(n_iter: int) -> list[int]:
    """The iterations w_j (j ≥ 1) at which APGD may halve its step size (Croce & Hein 2020, §3.2), in
    the integer form of the authors' code (and torchattacks'): the first after ⌊0.22·N⌋ steps, each
    later gap ⌊0.03·N⌋ shorter than the one before, but at least ⌊0.06·N⌋ (every one at least 1).
    For N = 100 or 1,000 these are the paper's ⌈p_j·N⌉; short runs check more often (N = 20: at every
    step from the 9th), which a 20-step cross-check against torchattacks showed to matter."""
    first, shrink, least = (max(int(f * n_iter), 1) for f in (0.22, 0.03, 0.06))
    out, gap, k = [], first, first
    while k <= n_iter:
        out.append(k)
        gap = max(gap - shrink, least)
        k += gap
    return out


def uniform_start(x, y, t, eps, restart, gen):
    """Uniform noise in the ε-ball (the generator lives on the CPU, so every device draws the same)."""
    return x + (torch.rand(x.shape, generator=gen) * 2 - 1).to(x.device) * eps


def _objective_of(victim: Victim, loss, goal: str) -> Callable:
    if callable(loss):
        return loss

    def f(xr, y, t):
        raw = victim.forward(xr)
        return victim.objective(raw, y, goal, t, loss), raw

    return f


def _evaluate(fn, x, y, t):
    with torch.enable_grad():
        xr = x.detach().clone().requires_grad_(True)
        val, raw = fn(xr, y, t)
        g = input_grad(val.sum(), xr)
    return val.detach(), raw.detach(), g.detach()


class _Best:
    """Per image: the first successful iterate, else the one with the highest θ-aware margin."""

    def __init__(self, victim, x, y, goal):
        self.victim, self.y, self.goal = victim, y, goal
        self.x = x.clone()
        self.margin = torch.full((len(x),), float("-inf"), device=x.device)
        self.done = torch.zeros(len(x), dtype=torch.bool, device=x.device)
        self.evals = torch.zeros(len(x), dtype=torch.long)

    def offer(self, rows: torch.Tensor, xs: torch.Tensor, raw: torch.Tensor) -> torch.Tensor:
        """Record the iterates xs of images ``rows``; returns which of them reached the goal."""
        self.evals[rows.cpu()] += 1
        hit = goal_reached(self.victim.verdict_raw(raw), self.y[rows], self.goal)
        m = self.victim.margin_of(raw, self.y[rows], self.goal)
        better = (hit | (m > self.margin[rows])) & ~self.done[rows]
        self.x[rows[better]] = xs[better]
        self.margin[rows[better]] = torch.where(hit[better], torch.inf, m[better])
        self.done[rows[hit]] = True
        return hit


def _run(fn, best: _Best, x0, y, t, rows, eps, steps, start_x, trace=None):
    """One APGD run of ``steps`` iterations on images ``rows`` from ``start_x``."""
    lo, hi = (x0 - eps).clamp(min=0.0), (x0 + eps).clamp(max=1.0)

    def proj(v):
        return torch.minimum(torch.maximum(v, lo), hi)

    xa = proj(start_x)
    f, raw, g = _evaluate(fn, xa, y, t)
    hit = best.offer(rows, xa, raw)
    act = torch.nonzero(~hit).flatten()  # local indices still running
    n = len(rows)
    eta = torch.full((n,), 2.0 * eps, device=x0.device)
    x_prev = xa.clone()
    f_best, x_best, g_best = f.clone(), xa.clone(), g.clone()
    ups = torch.zeros(n, device=x0.device)  # rises of the objective since the last checkpoint
    f_best_ckpt = f_best.clone()
    halved_ckpt = torch.ones(n, dtype=torch.bool, device=x0.device)  # as in the authors' code
    ckpts, last = checkpoints(steps), 0
    for k in range(steps):
        if not len(act):
            break
        a = act
        e = eta[a].view(-1, 1, 1, 1)
        z = torch.minimum(torch.maximum(xa[a] + e * g[a].sign(), lo[a]), hi[a])
        if k > 0:
            z = torch.minimum(torch.maximum(xa[a] + MOMENTUM * (z - xa[a]) + (1 - MOMENTUM) * (xa[a] - x_prev[a]),
                                            lo[a]), hi[a])
        x_prev[a] = xa[a]
        xa[a] = z
        fa, raw, ga = _evaluate(fn, z, y[a], None if t is None else t[a])
        ups[a] += (fa > f[a]).float()
        f[a], g[a] = fa, ga
        imp = fa > f_best[a]
        f_best[a[imp]], x_best[a[imp]], g_best[a[imp]] = fa[imp], z[imp], ga[imp]
        hit = best.offer(rows[a], z, raw)
        if trace is not None:
            trace.append({"k": k + 1, "eta": eta.clone(), "f": f.clone(), "active": a.clone()})
        if k + 1 in ckpts:
            span = k + 1 - last
            halve = (ups < RHO * span) | (~halved_ckpt & (f_best <= f_best_ckpt))
            eta[halve] /= 2
            xa[halve], g[halve], f[halve] = x_best[halve], g_best[halve], f_best[halve]
            halved_ckpt, f_best_ckpt, last = halve, f_best.clone(), k + 1
            ups.zero_()
        act = a[~hit]


def apgd(victim: Victim, x: torch.Tensor, y, goal: str, eps: float, *, target=None, targeted: bool = False,
         loss: str | Callable = "ce", steps: int = 100, restarts: int = 5, seed: int = 0,
         batch_size: int | None = None, start: Callable | None = None, name: str | None = None,
         trace: list | None = None) -> AttackResult:
    """APGD (Croce & Hein 2020) toward ``goal`` within the L∞ ball of radius ``eps``; see the module
    docstring. Images (N,1,64,64) in [0,1], labels y (N,). Returns an :class:`AttackResult`."""
    check_goal(goal)
    x, y = _prep(x, y)
    dev, n = x.device, len(x)
    yd = y.to(dev)
    eps = float(eps)
    batch_size = batch_size or victim.batch_size
    fn = _objective_of(victim, loss, goal)
    gen = torch.Generator().manual_seed(int(seed))
    start = start or uniform_start
    if goal == "fn" or not (targeted or target is not None):
        targets = [None]
    elif target is not None:
        targets = [torch.as_tensor(target).long().reshape(-1).expand(n).to(dev)]
    else:  # APGD-T: every other object class in turn
        targets = [(yd + k) % N_OBJECTS for k in range(1, N_OBJECTS)]
    best = _Best(victim, x, yd, goal)
    with torch.no_grad():  # the clean images first: those already at the goal take no step
        for i in range(0, n, batch_size):
            rows = torch.arange(i, min(n, i + batch_size), device=dev)
            best.offer(rows, x[rows], victim.forward(x[rows]))
    if eps > 0:
        for t in targets:
            for r in range(max(1, restarts)):
                todo = torch.nonzero(~best.done).flatten()
                for rows in todo.split(batch_size):
                    tr = None if t is None else t[rows]
                    xs = start(x[rows], yd[rows], tr, eps, r, gen)
                    _run(fn, best, x[rows], yd[rows], tr, rows, eps, steps, xs, trace)
    scores, verdict, success = victim.judge(best.x, yd, goal)
    # the result's target: the first target of a targeted run, none for fn, −1 for an untargeted fp run
    tgt = targets[0] if targets[0] is not None else torch.full_like(yd, NONE if goal == "fn" else -1)
    return AttackResult.build(attack=name or f"apgd-{loss if isinstance(loss, str) else 'custom'}"
                              + ("-t" if targets[0] is not None else ""), network=victim.name, goal=goal,
                              theta=victim.theta, y=y, target=tgt.cpu(), steps=best.evals, success=success.cpu(),
                              scores=scores.cpu(), verdict=verdict.cpu(), x=x.cpu(), x_adv=best.x.cpu(),
                              max_steps=steps, eps=eps)
