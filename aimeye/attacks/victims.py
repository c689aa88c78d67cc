"""Victims: one uniform face over the three attacked networks.

The attacks of Berntsen, Kuijper & Heskes, *Resisting Adversaries for CNNs using
Internal Projection* (§3.2, §4), need four things from a network: its scores,
its verdict, a loss whose *descent* moves the input toward the attacker's goal
and, for PGD (Madry et al. 2018), a margin that is positive exactly when the goal
is reached. Inputs are images (N,1,64,64) float32 in [0,1].

* direct / direct_param: scores are the softmax over (monkey, penguin,
  aeroplane, none); the verdict is the argmax; the loss is the cross-entropy
  toward the target (label 3 for a false negative), as the reference's
  ``collect_adv_results.py`` does.
* triple: scores (N,3) in [0,1]; the verdict is none when every score is below
  θ, else the argmax; the loss is ½‖scores − t‖² with t the target's one-hot
  (false positive) or zeros (false negative), the reference's EuclideanLoss.

A victim never changes its model: no mode flips, no ``requires_grad_``, no
backward pass into parameters (input gradients only). The clip bypass of the gradient-masking check is the
``straight_through=True`` argument of the triple network's forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import nets
from ..paper import AT_NETWORKS, GOALS, NETWORKS, NONE


def check_goal(goal: str) -> str:
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {tuple(GOALS)}, got {goal!r}")
    return goal


def goal_reached(verdict: torch.Tensor, y: torch.Tensor, goal: str) -> torch.Tensor:
    """The paper's stop rules. fp: the verdict is another *object* class (∉ {y, none});
    fn: the verdict is none."""
    check_goal(goal)
    y = torch.as_tensor(y, device=verdict.device).long()
    if goal == "fn":
        return verdict == NONE
    return (verdict != y) & (verdict != NONE)


def resolve_target(y: torch.Tensor, goal: str, target=None) -> torch.Tensor:
    """Per-image target labels: fn → 3 (none); fp → ``target`` or, if None, (y+1) mod 3."""
    check_goal(goal)
    y = torch.as_tensor(y).long().reshape(-1)
    if goal == "fn":
        return torch.full_like(y, NONE)
    if target is None:
        return (y + 1) % nets.N_OBJECTS
    t = torch.as_tensor(target).long().reshape(-1)
    t = t.expand_as(y).clone() if t.numel() == 1 else t
    if t.shape != y.shape:
        raise ValueError(f"target has shape {tuple(t.shape)}, labels {tuple(y.shape)}")
    if ((t < 0) | (t >= nets.N_OBJECTS) | (t == y)).any():
        raise ValueError("a false-positive target must be another object class (0, 1 or 2, ≠ y)")
    return t


def _max_excluding(v: torch.Tensor, exclude: list[torch.Tensor]) -> torch.Tensor:
    """Row-wise max of v (N,K) over the columns not listed in ``exclude`` (each (N,))."""
    mask = torch.zeros_like(v, dtype=torch.bool)
    for e in exclude:
        mask.scatter_(1, e[:, None], True)
    return v.masked_fill(mask, float("-inf")).max(1).values


class Victim:
    """Base class; see :func:`make_victim`. ``raw`` is what the network returns
    (logits for the direct networks, scores for the triple-staged one)."""

    name: str = "victim"
    n_outputs: int = 0
    theta: float | None = None
    has_explanation: bool = False
    batch_size: int = 64  # the attack pool size that runs fastest on CPU (benchmarks/bench_attacks.py)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # differentiable in x
        raise NotImplementedError

    def scores_of(self, raw: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def loss_of(self, raw: torch.Tensor, target: torch.Tensor, goal: str) -> torch.Tensor:
        raise NotImplementedError

    def margin_of(self, raw: torch.Tensor, y, goal: str, target=None, theta: float | None = None) -> torch.Tensor:
        raise NotImplementedError

    def verdict_from(self, scores: torch.Tensor, theta: float | None = None) -> torch.Tensor:
        raise NotImplementedError

    def verdict_raw(self, raw: torch.Tensor, theta: float | None = None) -> torch.Tensor:
        """The verdict straight from the network's output (skips the softmax where it cannot matter)."""
        return self.verdict_from(self.scores_of(raw), theta)

    # --- the public face -------------------------------------------------------------------
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities (N,4) for the direct networks, scores (N,3) for the triple one."""
        return self.scores_of(self.forward(x))

    def verdict(self, x: torch.Tensor, theta: float | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.verdict_from(self.scores(x), theta)

    def loss(self, x: torch.Tensor, target, goal: str) -> torch.Tensor:
        """Per-sample loss (N,) whose descent moves x toward the goal (``target`` is ignored for fn)."""
        raw = self.forward(x)
        if check_goal(goal) == "fn":
            t = torch.full((len(raw),), NONE, dtype=torch.long)
        else:
            t = torch.as_tensor(target).long().reshape(-1).expand(len(raw))
        return self.loss_of(raw, t, goal)

    def margin(self, scores: torch.Tensor, y, goal: str, target=None) -> torch.Tensor:
        """(N,) > 0 exactly when the goal is reached (θ-aware for the triple network)."""
        raise NotImplementedError

    def judge(self, x: torch.Tensor, y, goal: str, batch_size: int | None = None):
        """(scores, verdict, goal reached) of images x under this victim's true verdict rule (no gradients)."""
        bs = batch_size or max(self.batch_size, 64)
        with torch.no_grad():
            s = torch.cat([self.scores(x[i:i + bs]) for i in range(0, len(x), bs)]) if len(x) else \
                torch.zeros(0, self.n_outputs, device=x.device)
        v = self.verdict_from(s)
        return s, v, goal_reached(v, torch.as_tensor(y, device=v.device), goal)

    def objective(self, raw: torch.Tensor, y, goal: str, target=None, loss: str = "ce") -> torch.Tensor:
        """Per-image quantity (N,) that an attack *maximises* to reach the goal; see the subclasses."""
        raise NotImplementedError

    def explain(self, x: torch.Tensor):
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class DirectVictim(Victim):
    """A 4-way softmax classifier (``direct`` or ``direct_param``: the latter's
    rotation head is ignored). ``model(x)`` → logits (N,4) or (logits, params)."""

    n_outputs = NONE + 1

    def __init__(self, model, name: str = "direct"):
        self.model, self.name = model, name

    def forward(self, x):
        out = self.model(x)
        return out[0] if isinstance(out, tuple) else out

    def scores_of(self, raw):
        return F.softmax(raw, 1)

    def verdict_from(self, scores, theta=None):
        return scores.argmax(1)

    def verdict_raw(self, raw, theta=None):
        return raw.argmax(1)  # softmax is monotone

    def loss_of(self, raw, target, goal):
        check_goal(goal)
        target = torch.full((len(raw),), NONE, dtype=torch.long, device=raw.device) if goal == "fn" else target
        return F.cross_entropy(raw, target.to(raw.device), reduction="none")

    def margin_of(self, raw, y, goal, target=None, theta=None):
        """On logits (= differences of log-probabilities)."""
        check_goal(goal)
        y = torch.as_tensor(y, device=raw.device).long().reshape(-1).expand(len(raw))
        none = torch.full_like(y, NONE)
        if goal == "fn":
            return raw[:, NONE] - _max_excluding(raw, [none])
        if target is not None:
            t = torch.as_tensor(target, device=raw.device).long().reshape(-1).expand(len(raw))
            return raw.gather(1, t[:, None])[:, 0] - _max_excluding(raw, [t])
        own = torch.maximum(raw.gather(1, y[:, None])[:, 0], raw[:, NONE])
        return _max_excluding(raw, [y, none]) - own

    def margin(self, scores, y, goal, target=None):
        return self.margin_of(torch.log(scores.clamp_min(1e-38)), y, goal, target)

    def objective(self, raw, y, goal, target=None, loss="ce"):
        """``ce``: the log-probability of the goal (fn: of none; fp: of the target, or of the set of
        the other object classes when untargeted). ``dlr``: the goal margin (:meth:`margin_of`) over the
        DLR scale of Croce & Hein (2020), z_π1 − ½(z_π3 + z_π4) (their targeted form) for every goal:
        with four classes the untargeted scale z_π1 − z_π3 equals minus the margin whenever the order is
        (own, none, other), which makes the loss constant (−1) and its gradient zero."""
        check_goal(goal)
        y = torch.as_tensor(y, device=raw.device).long().reshape(-1).expand(len(raw))
        if loss == "ce":
            logp = F.log_softmax(raw, 1)
            if goal == "fn":
                return logp[:, NONE]
            if target is not None:
                t = torch.as_tensor(target, device=raw.device).long().reshape(-1).expand(len(raw))
                return logp.gather(1, t[:, None])[:, 0]
            mask = torch.ones_like(logp, dtype=torch.bool)
            mask.scatter_(1, y[:, None], False)
            mask[:, NONE] = False
            return torch.logsumexp(logp.masked_fill(~mask, float("-inf")), 1)
        if loss == "dlr":
            srt = raw.sort(1, descending=True).values
            den = srt[:, 0] - 0.5 * (srt[:, 2] + srt[:, 3])
            return self.margin_of(raw, y, goal, target) / (den + 1e-12)
        raise ValueError(f"the direct networks have no {loss!r} objective (ce or dlr)")


class TripleVictim(Victim):
    """The triple-staged network at threshold θ. ``model(x)`` → scores (N,3)."""

    n_outputs = nets.N_OBJECTS
    has_explanation = True
    batch_size = 4  # its comparator maps (3 classes × 55² × width) outgrow the caches in bigger pools

    def __init__(self, model, theta: float = 0.45, straight_through: bool = False, name: str | None = None):
        self.model, self.theta, self.straight_through = model, float(theta), bool(straight_through)
        self.name = name or f"triple@{self.theta:g}" + ("+st" if straight_through else "")

    def forward(self, x):
        return self.model(x, straight_through=True) if self.straight_through else self.model(x)

    def forward_explain(self, x):
        """One pass giving (scores, Explanation); differentiable in x."""
        e = self.model.explain(x, straight_through=True) if self.straight_through else self.model.explain(x)
        return e.scores, e

    def explain(self, x):
        with torch.no_grad():
            return self.forward_explain(x)[1]

    def scores_of(self, raw):
        return raw

    def verdict_from(self, scores, theta=None):
        return nets.verdict_from_scores(scores, self.theta if theta is None else float(theta))

    def loss_of(self, raw, target, goal):
        check_goal(goal)
        if goal == "fn":
            t = torch.zeros_like(raw)
        else:
            t = F.one_hot(target.to(raw.device), nets.N_OBJECTS).to(raw.dtype)
        return 0.5 * ((raw - t) ** 2).sum(1)

    def margin_of(self, raw, y, goal, target=None, theta=None):
        check_goal(goal)
        th = self.theta if theta is None else float(theta)
        if goal == "fn":
            return th - raw.max(1).values
        y = torch.as_tensor(y, device=raw.device).long().reshape(-1).expand(len(raw))
        if target is not None:
            t = torch.as_tensor(target, device=raw.device).long().reshape(-1).expand(len(raw))
            st = raw.gather(1, t[:, None])[:, 0]
            return torch.minimum(st - _max_excluding(raw, [t]), st - th)
        other = _max_excluding(raw, [y])
        return torch.minimum(other - raw.gather(1, y[:, None])[:, 0], other - th)

    def margin(self, scores, y, goal, target=None):
        return self.margin_of(scores, y, goal, target)

    def objective(self, raw, y, goal, target=None, loss="ce"):
        """``ce``: minus the reference's Euclidean loss ½‖s − t‖² (t: zeros for fn, the target's one-hot
        for fp; untargeted fp takes the currently best other object class). ``dlr``: the θ-aware margin
        (the scores are bounded in [0,1] already, so the DLR scale does not apply). ``score``: the
        target's score itself, minus the gap to the leading class while another class leads (fn: minus
        the highest score; untargeted fp: the target is the best other object class)."""
        check_goal(goal)
        y = torch.as_tensor(y, device=raw.device).long().reshape(-1).expand(len(raw))
        if goal == "fp" and target is None:
            other = raw.detach().scatter(1, y[:, None], float("-inf")).argmax(1)
        elif goal == "fp":
            other = torch.as_tensor(target, device=raw.device).long().reshape(-1).expand(len(raw))
        if loss == "ce":
            t = torch.zeros_like(raw) if goal == "fn" else F.one_hot(other, nets.N_OBJECTS).to(raw.dtype)
            return -0.5 * ((raw - t) ** 2).sum(1)
        if loss == "dlr":
            return self.margin_of(raw, y, goal, target)
        if loss == "score":
            if goal == "fn":
                return -raw.max(1).values
            st = raw.gather(1, other[:, None])[:, 0]
            return st + torch.clamp(st - _max_excluding(raw, [other]), max=0.0)
        raise ValueError(f"the triple-staged network has no {loss!r} objective (ce, dlr or score)")

    def bpda(self) -> TripleVictim:
        """The same network and θ with the estimator's clip bypassed in the backward pass (BPDA)."""
        return TripleVictim(self.model, self.theta, straight_through=True, name=self.name + "+bpda")


def parse_network(network: str) -> tuple[str, float | None]:
    """``"triple@0.7"`` → ("triple", 0.7); ``"direct"`` → ("direct", None)."""
    base, _, th = network.partition("@")
    return base, (float(th) if th else None)


def make_victim(models, network: str, theta: float = 0.45, straight_through: bool = False) -> Victim:
    """A victim for ``network`` ∈ {"direct", "direct_param", "triple"} (or "triple@θ"), or an adversarially
    trained one ("direct_at", "triple_at"), of a :class:`aimeye.checkpoints.Models`-like object."""
    base, th = parse_network(network)
    if base in AT_NETWORKS:
        model = getattr(models, base, None)
        if model is None:
            raise ValueError(f"no {base} network: its checkpoints do not ship here (python -m aimeye train all-at)")
        if base == "direct_at":
            return DirectVictim(model, base)
        th = theta if th is None else th
        return TripleVictim(model, th, straight_through, name=f"{base}@{th:g}")
    if base == "direct":
        return DirectVictim(models.direct, "direct")
    if base in ("direct_param", "direct-param"):
        return DirectVictim(models.direct_param, "direct_param")
    if base == "triple":
        return TripleVictim(models.triple, theta if th is None else th, straight_through)
    raise ValueError(f"network must be one of {NETWORKS} (or 'triple@θ'), got {network!r}")
