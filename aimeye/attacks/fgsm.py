"""The fast gradient sign method, iterated until the classification flips.

Berntsen, Kuijper & Heskes, §3.2, after Goodfellow, Shlens & Szegedy (ICLR 2015):

    x̃ ← clip(x̃ − sign(∇ₓ J(θ, x̃, y)), 0, 255)

applied "as often as needed" to reach the attacker's goal. Here images are in
[0,1], so one step is 1/255 (one grey level: scenes are 8-bit quantised, so the
iterates stay on the 8-bit grid). J is the victim's loss toward the target (see
:mod:`.victims`), and the stop rules are those of the reference's
``collect_adv_results.py``: a false positive is reached when the verdict is
*any* other object class, a false negative when it is none. The step count is 0
when the goal already holds and equals ``max_steps`` when the attack failed
(the reference capped at 10,000).

The attack is batched: each image stops on its own as soon as its goal is
reached, and a pool of at most ``batch_size`` unfinished images is refilled
from the queue, so long-tailed images do not hold up the rest. Every image's
trajectory is independent of the batch it ran in.

For the triple-staged network the FGSM trajectory toward a target score vector
does not depend on θ (only the stop rule does), so ``thetas=(0.2, 0.45, 0.7)``
records the first step at which each θ's goal holds along one trajectory and
runs until all of them hold or the cap: one run instead of three.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from ..paper import STEP
from .result import AttackResult
from .victims import TripleVictim, Victim, check_goal, goal_reached, resolve_target


def _prep(x: torch.Tensor, y) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().float()
    if x.dim() == 3:
        x = x[:, None]
    y = torch.as_tensor(y).long().reshape(-1).cpu()
    if y.numel() == 1 and len(x) > 1:
        y = y.expand(len(x)).clone()
    if len(y) != len(x):
        raise ValueError(f"{len(x)} images but {len(y)} labels")
    return x, y


def input_grad(loss: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """∇ₓ of a scalar loss, w.r.t. the input only (parameters never receive a .grad)."""
    return torch.autograd.grad(loss, x)[0]


def fgsm(victim: Victim, x: torch.Tensor, y, goal: str = "fp", eps: float = 8 / 255, target=None) -> torch.Tensor:
    """One-step FGSM (Goodfellow et al. 2015) toward the goal: clip(x − ε·sign(∇ₓJ), 0, 1).
    Images in [0,1]; returns the adversarial images."""
    x, y = _prep(x, y)
    t = resolve_target(y, check_goal(goal), target)
    with torch.enable_grad():
        xr = x.clone().requires_grad_(True)
        g = input_grad(victim.loss_of(victim.forward(xr), t, goal).sum(), xr)
    return (x - eps * g.sign()).clamp(0, 1).detach()


def iterative_fgsm(victim: Victim, x: torch.Tensor, y, goal: str = "fp", target=None, max_steps: int = 10_000,
                   step: float = STEP, thetas=None, batch_size: int | None = None,
                   progress: Callable[[int], object] | None = None) -> AttackResult:
    """The paper's attack (§3.2) on a batch of images (N,1,64,64) in [0,1] with labels y (N,).

    ``target``: for fp, the object class to descend toward (N,) or an int; None means
    (y+1) mod 3. Ignored for fn (target none). ``thetas``: only for the triple victim,
    record every θ's stop along one trajectory (see the module docstring); the result's
    top-level fields are for ``victim.theta`` and ``per_theta`` holds each θ.
    ``progress(k)`` is called with the number of images that finished at each iteration.
    ``batch_size``: the pool size (default: the victim's, 64 direct / 4 triple, the fastest on CPU).
    """
    check_goal(goal)
    x, y = _prep(x, y)
    n = len(x)
    batch_size = batch_size or victim.batch_size
    tgt = resolve_target(y, goal, target)
    if thetas is not None and not isinstance(victim, TripleVictim):
        raise ValueError("thetas only applies to the triple-staged victim")
    theta_list = sorted({float(t) for t in (thetas or ())} | ({victim.theta} if victim.theta is not None else set()))
    keys = theta_list or [None]
    nt = len(keys)

    dev = x.device  # the attack runs where the images are; the bookkeeping stays on the CPU
    first = torch.full((n, nt), -1, dtype=torch.long)  # first step at which each θ's goal held
    x_at = x.cpu().unsqueeze(0).repeat(nt, 1, 1, 1, 1)  # the image at each θ's stop
    s_at = torch.zeros(nt, n, victim.n_outputs)

    # the pool: images being attacked now (at most batch_size), refilled from the queue as images finish
    pool, queue = torch.arange(min(n, batch_size)), torch.arange(min(n, batch_size), n)
    xp, sp, fp = x[pool.to(dev)].clone(), torch.zeros(len(pool), dtype=torch.long), first[pool].clone()
    yp, tp = y[pool].to(dev), tgt[pool].to(dev)
    sp_max = 0  # the most steps any pool image has taken (a Python int: no tensor op to test the cap)
    with torch.enable_grad():
        while len(pool):
            xr = xp.requires_grad_(True)
            raw = victim.forward(xr)
            any_hit = False
            for j, th in enumerate(keys):
                hit = goal_reached(victim.verdict_raw(raw.detach(), th), yp, goal).cpu()
                if nt > 1:  # with one θ every pool image is still unfinished
                    hit &= fp[:, j] < 0
                if hit.any():
                    any_hit = True
                    rows = pool[hit]
                    first[rows, j] = sp[hit]
                    fp[hit, j] = sp[hit]
                    x_at[j, rows] = xp.detach()[hit.to(dev)].cpu()
                    s_at[j, rows] = victim.scores_of(raw.detach()[hit.to(dev)]).cpu()
            fin = ((fp >= 0).all(1) | (sp >= max_steps)) if (any_hit or sp_max >= max_steps) else None
            if fin is None or not fin.any():  # the common case: every image in the pool takes a step
                g = input_grad(victim.loss_of(raw, tp, goal).sum(), xr)
                xp = (xp.detach() - step * g.sign()).clamp_(0.0, 1.0)
                sp += 1
                sp_max += 1
                continue
            s = victim.scores_of(raw.detach()).cpu()
            for j in range(nt):  # failures: keep the last iterate
                miss = fin & (fp[:, j] < 0)
                if miss.any():
                    x_at[j, pool[miss]] = xp.detach()[miss.to(dev)].cpu()
                    s_at[j, pool[miss]] = s[miss]
            if progress is not None:
                progress(int(fin.sum()))
            cont = ~fin
            cd = cont.to(dev)
            if cont.any():
                g = input_grad(victim.loss_of(raw, tp, goal)[cd].sum(), xr)[cd]
                x_next = (xp.detach()[cd] - step * g.sign()).clamp_(0.0, 1.0)
            else:
                x_next = xp.detach()[cd]
            new, queue = queue[:int(fin.sum())], queue[int(fin.sum()):]
            pool = torch.cat([pool[cont], new])
            xp = torch.cat([x_next, x[new.to(dev)]])
            sp = torch.cat([sp[cont] + 1, torch.zeros(len(new), dtype=torch.long)])
            fp = torch.cat([fp[cont], first[new]])
            yp, tp = y[pool].to(dev), tgt[pool].to(dev)
            sp_max = int(sp.max()) if len(sp) else 0

    results = {}
    for j, th in enumerate(keys):
        ok = first[:, j] >= 0
        results[th] = AttackResult.build(
            attack="fgsm", network=victim.name, goal=goal, theta=th, y=y, target=tgt,
            steps=torch.where(ok, first[:, j], torch.full_like(first[:, j], max_steps)), success=ok,
            scores=s_at[j], verdict=victim.verdict_from(s_at[j], th), x=x.cpu(), x_adv=x_at[j], max_steps=max_steps)
    top = results[victim.theta if victim.theta is not None else None]
    return replace(top, per_theta=results) if thetas is not None else top
