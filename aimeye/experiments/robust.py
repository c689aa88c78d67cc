"""Robust accuracy against ε: the per-image worst case over a suite of attacks.

For every network (direct, direct_param, the triple-staged network at each θ of
the paper, and any extra network such as an adversarially trained CNN), each
goal (fp: an object made into another object; fn: an object made into none) and
each ε in :data:`EPS_255` (grey levels of 255, L∞), an image counts as *broken*
when **any** attack of the suite found an adversarial for it within the ε-ball,
judged by the network's own verdict rule (θ-aware for the triple network,
:func:`aimeye.attacks.victims.goal_reached`). Robust accuracy is the share of
images no attack broke, with a 95 % Wilson interval; each entry also records how
many images every attack broke and which attack broke the most (the strongest).

Two shortcuts that never weaken the evaluation:

* ε ascending: an adversarial found inside a smaller ball lies inside every
  larger one, so an image broken at ε stays broken at every larger ε and is not
  attacked again (its attacks' counts carry over).
* θ sharing: every adversarial crafted against the triple network at one θ is
  also judged at the other θs (a forward pass); where it meets that θ's goal it
  counts there too, under the same attack's name.

And one that a later run may ask for (``skip``, from :func:`earlier_breaks`): images that
an earlier run (or a merge) already broke at ε are not attacked again at ε; they count
as broken under the name ``earlier runs``, so the run's table is still the worst case
over both, and :func:`merge_runs` insists on merging the run with what it skipped from.

The checklist of Carlini et al. (2019) and Tramèr et al. (2020) this follows is
:data:`CHECKLIST`, written beside the table as ``CHECKLIST.md``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..attacks import make_victim
from ..attacks.victims import DirectVictim, TripleVictim, Victim
from ..paper import THETAS
from .runs import Progress
from .schema import SCHEMA, robust_table
from .testset import GOALS, NETWORKS, TestSet

EPS_255 = (1, 2, 4, 8, 16, 32)


@dataclass
class AttackSpec:
    """One attack of the suite: ``fn(victim, x, y, goal, eps, **options) -> AttackResult`` (the uniform call).
    Which networks and goals it attacks is declared, so that a results folder can record it: ``goals``,
    ``triple_only`` (only the triple-staged networks) and ``not_on`` (a network it is not aimed at, e.g. a
    transfer attack's own source)."""

    name: str
    fn: Callable
    options: dict = field(default_factory=dict)
    goals: tuple[str, ...] = GOALS
    triple_only: bool = False
    not_on: str | None = None
    about: str = ""

    def applies(self, key: str, victim: Victim, goal: str) -> bool:
        return goal in self.goals and key != self.not_on and (is_triple(victim) or not self.triple_only)

    def rule(self) -> dict:
        """The declaration as robust.json records it (``attacks[name]["applies"]``; see :func:`rule_applies`)."""
        return {"goals": list(self.goals), "networks": "triple-staged" if self.triple_only else "all",
                **({"not_on": self.not_on} if self.not_on else {})}

    def describe(self) -> dict:
        opts = {k: (v if isinstance(v, (int, float, str, bool, type(None))) else getattr(v, "name", repr(v)))
                for k, v in self.options.items()}
        return {"about": self.about, "function": f"{self.fn.__module__}.{self.fn.__name__}", "options": opts,
                "applies": self.rule()}


def rule_applies(rule: dict | None, key: str, goal: str) -> bool:
    """Whether an attack with the recorded ``rule`` (:meth:`AttackSpec.rule`; None: unknown, so yes) is aimed
    at the network with result key ``key`` for ``goal``. A merge knows networks only by their keys; the
    triple-staged ones are those with ``@θ`` (:func:`victims_for`, :func:`extra_victims`)."""
    if rule is None:
        return True
    return goal in rule["goals"] and key != rule.get("not_on") and (rule["networks"] == "all" or "@" in key)


def extra_victims(extra: dict | None, thetas=THETAS) -> dict[str, Victim]:
    """Extra networks by name (e.g. ``{"direct_at": model}``) → victims: a model with ``explain`` is
    triple-staged and evaluated at every θ of ``thetas`` (``name@θ``), any other is a 4-way classifier."""
    out = {}
    for name, model in (extra or {}).items():
        if hasattr(model, "explain"):
            out.update({f"{name}@{t}": TripleVictim(model, t, name=f"{name}@{t}") for t in thetas})
        else:
            out[name] = DirectVictim(model, name)
    return out


def victims_for(models, extra: dict | None = None, thetas=THETAS) -> dict[str, Victim]:
    """The evaluated networks by result key: direct, direct_param, triple@θ for every θ of ``thetas``
    (the paper's three by default), then the extra ones."""
    out = {"direct": make_victim(models, "direct"), "direct_param": make_victim(models, "direct_param")}
    out.update({f"triple@{t}": make_victim(models, "triple", t) for t in thetas})
    out.update(extra_victims(extra, thetas))
    return out


def load_extra(stages, root=None) -> dict:
    """Extra networks from checkpoints by result key: a single stage (e.g. the adversarially trained
    ``direct-at``) or ``triple-at`` (estimator-at + the projector + comparator-at)."""
    from .. import checkpoints

    out = {}
    for s in stages or ():
        if s == "triple-at":
            out["triple_at"] = checkpoints.load_models(root).triple_at
            if out["triple_at"] is None:
                raise checkpoints.CheckpointError("triple-at needs the estimator-at and comparator-at checkpoints; "
                                                  "train them with: python -m aimeye train all-at")
        else:
            out[s.replace("-", "_")] = checkpoints.load(s, root)
    return out


def is_triple(victim: Victim) -> bool:
    return isinstance(victim, TripleVictim)


def is_direct(victim: Victim) -> bool:
    return isinstance(victim, DirectVictim)


def _siblings(victims: dict[str, Victim], key: str) -> dict[str, Victim]:
    """The other θs of the same triple model (for θ sharing)."""
    v = victims[key]
    if not is_triple(v):
        return {}
    return {k: w for k, w in victims.items() if k != key and is_triple(w) and w.model is v.model}


def earlier_breaks(robust: dict, eps_255) -> dict:
    """What an earlier robust run (or a merge) broke, as a later run's ``skip``: ``{goal: {network: [a set
    per ε of eps_255]}}``, the union over its attacks (and what it skipped) at the largest of its ε that is
    ≤ that ε (broken inside a smaller ball is broken inside every larger one); empty below its smallest ε."""
    lists: dict = {}  # (goal, network) → the broken lists of every attack, and the skipped ones
    for goal, nets_ in robust["broken"].items():
        for net, by_attack in nets_.items():
            lists.setdefault((goal, net), []).extend(by_attack.values())
    for goal, nets_ in robust.get("skipped", {}).items():
        for net, li in nets_.items():
            lists.setdefault((goal, net), []).append(li)
    last = [max((j for j, e2 in enumerate(robust["eps_255"]) if e2 <= e), default=None) for e in eps_255]
    out: dict = {}
    for (goal, net), ls in lists.items():
        out.setdefault(goal, {})[net] = [set() if j is None else set().union(*(set(li[j]) for li in ls)) for j in last]
    return out


def run_robust(victims: dict[str, Victim], ts: TestSet, suite: list[AttackSpec], eps_255=EPS_255,
               goals=GOALS, progress: bool = True, device: torch.device | None = None, skip: dict | None = None) -> dict:
    """Attack this rank's images; returns ``{"indices", "broken", "skipped", "image_evaluations"}`` where
    ``broken[goal][network][attack]`` lists, per ε, the scene indices that attack broke at that ε or below, and
    ``skipped[goal][network]`` those of ``skip`` (:func:`earlier_breaks`) that were not attacked."""
    x, y, idx = ts.images.to(device or "cpu"), ts.labels, ts.indices
    n = len(ts)
    mine_idx = {int(i) for i in idx}
    skipped = {g: {k: [sorted(s & mine_idx) for s in skip[g][k]] for k in victims if k in skip.get(g, {})}
               for g in goals if skip and g in skip}
    jobs = sum(s.applies(k, v, g) for s in suite for k, v in victims.items() for g in goals) * len(eps_255)
    bar = Progress(jobs, "robust (attack runs)", progress)
    broken: dict = {g: {k: {s.name: [set() for _ in eps_255] for s in suite if s.applies(k, v, g)}
                        for k, v in victims.items()} for g in goals}
    evaluations = 0
    for goal in goals:
        for key, victim in victims.items():
            mine = broken[goal][key]
            sibs = _siblings(victims, key)
            for j, e in enumerate(eps_255):
                done = set().union(*(s[j] for s in mine.values()), *(s[j - 1] for s in mine.values() if j),
                                   skipped.get(goal, {}).get(key, [()] * len(eps_255))[j])
                for spec in suite:
                    if not spec.applies(key, victim, goal):
                        continue
                    cand = torch.tensor([i for i in range(n) if int(idx[i]) not in done], dtype=torch.long)
                    if not len(cand):
                        bar(1)
                        continue
                    bar.now(f"{goal} {key} ε={e}/255 {spec.name} on {len(cand)} image(s)")
                    r = spec.fn(victim, x[cand], y[cand], goal, e / 255, **spec.options)
                    bar(1)
                    evaluations += int(r.steps.sum())
                    hit = {int(idx[cand[i]]) for i in torch.nonzero(r.success.cpu()).flatten()}
                    mine[spec.name][j] |= hit
                    done |= hit
                    for k2, v2 in sibs.items():  # θ sharing: the same adversarials, judged at another θ
                        if spec.name in broken[goal][k2]:
                            ok = v2.judge(r.x_adv.to(x.device), y[cand], goal)[2].cpu()
                            broken[goal][k2][spec.name][j] |= {int(idx[cand[i]]) for i in torch.nonzero(ok).flatten()}
    bar.close()
    for goal in goals:  # carry every attack's breaks up to the larger ε
        for key in broken[goal]:
            for name, sets in broken[goal][key].items():
                for j in range(1, len(sets)):
                    sets[j] |= sets[j - 1]
                broken[goal][key][name] = [sorted(s) for s in sets]
    return {"indices": [int(i) for i in idx], "broken": broken, "skipped": skipped, "image_evaluations": evaluations}


def merge_rank_parts(parts: list[dict]) -> dict:
    """Rank results (disjoint images) → one: indices, broken and skipped lists concatenated."""
    out = {"indices": sorted(i for p in parts for i in p["indices"]), "broken": {}, "skipped": {},
           "image_evaluations": sum(p["image_evaluations"] for p in parts)}
    for p in parts:
        for goal, nets_ in p.get("skipped", {}).items():
            for net, lists in nets_.items():
                _concat(out["skipped"].setdefault(goal, {}), net, lists)
        for goal, nets_ in p["broken"].items():
            for net, by_attack in nets_.items():
                for name, lists in by_attack.items():
                    _concat(out["broken"].setdefault(goal, {}).setdefault(net, {}), name, lists)
    return out


def _concat(into: dict, key: str, lists: list[list[int]]):
    """``into[key]`` (per ε, sorted indices) extended by another rank's ``lists``."""
    cur = into.setdefault(key, [[] for _ in lists])
    for j, li in enumerate(lists):
        cur[j] = sorted(cur[j] + li)


def network_order(keys) -> list[str]:
    return [k for k in NETWORKS if k in keys] + sorted(k for k in keys if k not in NETWORKS)


CHECKLIST = """# Robustness evaluation checklist

Following Carlini et al., *On Evaluating Adversarial Robustness* (2019, arXiv:1902.06705) and
Tramèr et al., *On Adaptive Attacks to Adversarial Example Defenses* (NeurIPS 2020). Written by
`aimeye.experiments.robust`; the numbers are in `robust.json`.

- [x] **Threat model stated**: L∞ perturbations of at most ε ∈ {EPS}/255 on images in [0,1];
  the attacker knows the architecture and weights (white box); goals: false positive (object →
  another object class) and false negative (object → none) under each network's own verdict rule.
- [x] **Success judged by the real decision rule**: the θ-aware verdict of the triple-staged network
  (`aimeye.attacks.victims.goal_reached`), on the final iterate, with the plain (non-BPDA) forward pass.
- [x] **Per-image worst case over all attacks** (not the best single attack's average).
- [x] **Strong iterative attacks with restarts**: APGD (Croce & Hein 2020) with CE and DLR/margin losses,
  untargeted and targeted, step-size schedule with checkpoints, momentum, best-iterate keeping.
- [x] **Adaptive attacks aimed at this defence**: the target score maximised directly; a start from the
  projector's own drawing of the target blended into the image; a loss on the comparator's per-patch
  logits weighted by the pooled alpha (no sigmoid saturation); BPDA (straight-through) over the
  estimator's clip.
- [x] **Transfer attacks** from the direct CNN (and from any other network passed in) — a check for
  gradient masking: transfer must not beat white-box attacks by much.
- [x] **Gradient-masking sanity checks** (see `sanity` in `robust.json`): accuracy falls monotonically
  with ε (a consequence of the ε-ascending reuse, checked against the per-attack counts); the largest ε
  breaks the undefended direct CNN almost always; iterative attacks beat one-step ones; BPDA versions are
  reported separately so a masked clip would show.
- [x] **No test-time randomness or non-differentiable preprocessing left unhandled**: the networks are
  deterministic in eval mode; the only non-differentiable step (the estimator's clip) is bypassed by BPDA.
- [x] **Confidence intervals**: 95 % Wilson intervals on every robust accuracy; ≥ 100 images per class
  by default.
- [x] **Attack settings recorded** with the results (`attacks` in `robust.json`), with the command, the
  checkpoints' sha256 and the wall time.
- [ ] Not done: a certified bound, or attacks outside L∞ (rotations, patches); a hard-label
  (decision-based) attack.
"""


def checklist_text() -> str:
    return CHECKLIST.replace("{EPS}", ", ".join(str(e) for e in EPS_255))


def sanity_checks(robust: dict) -> dict:
    """Signs of a weak evaluation or of gradient masking (Carlini et al. 2019, §5; Tramèr et al. 2020):

    * ``monotone``: robust accuracy never rises with ε (per network and goal);
    * ``direct_accuracy_at_max_eps``: the undefended direct CNN at the largest ε (should be near 0);
    * ``transfer_only``: images that only a transfer attack broke (white-box attacks should find them too;
      many would point at masked gradients)."""
    table = robust["table"]
    measured = [[e for e in es if e["accuracy"] is not None] for nets_ in table.values() for es in nets_.values()]
    mono = all(all(a["accuracy"] >= b["accuracy"] for a, b in itertools.pairwise(es)) for es in measured)
    direct = {g: (nets_["direct"][-1]["accuracy"] if nets_.get("direct") else None) for g, nets_ in table.items()}
    transfer_only = {}
    for goal, nets_ in robust.get("broken", {}).items():
        for net, by_attack in nets_.items():
            for j, e in enumerate(robust["eps_255"]):
                tr = set().union(*(set(v[j]) for a, v in by_attack.items() if a.startswith("transfer")))
                wb = set().union(*(set(v[j]) for a, v in by_attack.items() if not a.startswith("transfer")))
                if tr - wb:
                    transfer_only.setdefault(goal, {}).setdefault(net, {})[str(e)] = len(tr - wb)
    return {"monotone": mono, "direct_accuracy_at_max_eps": direct, "transfer_only": transfer_only}


def same_weights(a: dict | None, b: dict | None) -> bool:
    """Whether two results attacked the same networks: every stage both recorded has the same sha256.
    (Runs before the adversarially trained stages were recorded name only the five paper stages.)"""
    a, b = a or {}, b or {}
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def merge_runs(robusts: list[dict], rule_of: Callable[[str], dict | None] = lambda name: None) -> dict:
    """Several robust.json of the same networks (same checkpoints) → one per-image worst case.

    An image counts as broken at ε when an attack of *any* of the runs broke it at that ε or below (an
    adversarial inside a smaller ball lies inside every larger one); the same attack name in two runs (say,
    more restarts, or other ε) is one attack whose breaks are united. Only the images every run kept are
    scored (the runs' filters may keep different images); the ε are those of any run. Where an attack did
    not reach a network at every ε, or at all (a run that left the network out), ``meta["gaps"]`` says so,
    and the README names it; an attack not aimed at a network (its ``applies`` rule; ``rule_of(name)`` for runs
    that did not record one, e.g. :func:`.suite.rule_of`) is no gap there."""
    if len(robusts) < 2:
        raise ValueError("merge takes two robust runs or more")
    if not all(same_weights(r["meta"].get("checkpoints_sha256"), robusts[0]["meta"].get("checkpoints_sha256"))
               for r in robusts):
        raise ValueError("the runs attacked different checkpoints (checkpoints_sha256 differs); they cannot be merged")
    keep = set.intersection(*(set(r["indices"]) for r in robusts))
    eps = sorted(set().union(*(r["eps_255"] for r in robusts)))
    if not keep:
        raise ValueError("the runs share no image")
    broken: dict = {}
    ran: dict = {}  # goal → network → attack → the ε it was run at
    for r in robusts:
        for goal, nets_ in r["broken"].items():
            for net, by_attack in nets_.items():
                for name, lists in by_attack.items():
                    cur = broken.setdefault(goal, {}).setdefault(net, {}).setdefault(name, [set() for _ in eps])
                    ran.setdefault(goal, {}).setdefault(net, {}).setdefault(name, set()).update(r["eps_255"])
                    for e, hits in zip(r["eps_255"], lists, strict=True):
                        for j, e2 in enumerate(eps):
                            if e2 >= e:
                                cur[j] |= set(hits) & keep
    _check_skips_covered(robusts, broken, eps, keep)
    broken = {g: {n: {a: [sorted(s) for s in v] for a, v in by.items()} for n, by in nets_.items()}
              for g, nets_ in broken.items()}
    first = robusts[0]["meta"]
    meta = {**first, "commands": [c for r in robusts for c in r["meta"].get("commands", [])],
            "checkpoints_sha256": {k: v for r in robusts for k, v in (r["meta"].get("checkpoints_sha256") or {}).items()},
            "wall_time_s": round(sum(r["meta"].get("wall_time_s", 0) for r in robusts), 1),
            "merged_from": [{"n_images": r["n_images"], "eps_255": r["eps_255"], "attacks": list(r["attacks"]),
                             "filter": r["meta"].get("filter"), "commands": r["meta"].get("commands", [])}
                            for r in robusts]}
    meta.pop("filter", None)
    meta["goals"] = [g for g in GOALS if g in broken]
    attacks = {a: d for r in robusts for a, d in r["attacks"].items()}
    attacks = {a: d if "applies" in d or rule_of(a) is None else {**d, "applies": rule_of(a)}
               for a, d in attacks.items()}
    meta["gaps"] = _gaps(robusts, ran, eps, attacks)
    return robust_record(meta, eps, sorted(keep), {n for r in robusts for n in r["networks"]}, attacks,
                         sum(r["image_evaluations"] for r in robusts), broken, ran)


def _check_skips_covered(robusts: list[dict], broken: dict, eps: list[int], keep: set):
    """A run that skipped what earlier runs broke merges only with runs that break those images again."""
    for r in robusts:
        for goal, nets_ in r.get("skipped", {}).items():
            for net, lists in nets_.items():
                by_attack = broken.get(goal, {}).get(net, {})
                for e, li in zip(r["eps_255"], lists, strict=True):
                    union = set().union(*(v[eps.index(e)] for v in by_attack.values()))
                    if missing := (set(li) & keep) - union:
                        raise ValueError(
                            f"a run skipped {len(missing)} image(s) at ε = {e}/255 ({goal}, {net}) because "
                            f"{r['meta'].get('skip_broken', 'an earlier run')} had broken them; merge it with the "
                            "runs that broke them")


def _gaps(robusts: list[dict], ran: dict, eps: list[int], attacks: dict) -> dict:
    """Per goal and network: ``never`` (attacks of the goal that no run aimed at this network, although
    their rule aims them at it and no run that had both found the attack inapplicable to it) and
    ``eps_missing`` (attack → the ε it was not run at on this network)."""
    gaps: dict = {}
    for goal, nets_ in ran.items():
        runs = [r["broken"][goal] for r in robusts if goal in r["broken"]]
        for net, by_attack in nets_.items():
            never = [a for a in sorted({a for by in nets_.values() for a in by} - set(by_attack))
                     if rule_applies(attacks.get(a, {}).get("applies"), net, goal)
                     and not any(net in r and any(a in by for by in r.values()) for r in runs)]
            missing = {a: [e for e in eps if e not in done] for a, done in by_attack.items() if set(eps) - done}
            g = {k: v for k, v in (("never", never), ("eps_missing", missing)) if v}
            if g:
                gaps.setdefault(goal, {})[net] = g
    return gaps


def robust_record(meta: dict, eps_255, indices: list[int], networks, attacks: dict, image_evaluations: int,
                  broken: dict, ran: dict | None = None, skipped: dict | None = None) -> dict:
    """The robust.json of a run (or of merged runs, with ``ran``: which ε each attack reached on each
    network; of a run that skipped what earlier runs broke, with ``skipped``): the broken sets, their table
    and the sanity checks."""
    robust = {"schema": SCHEMA, "per_image_worst_case": True, "meta": meta, "eps_255": list(eps_255),
              "n_images": len(indices), "indices": indices, "networks": network_order(networks), "attacks": attacks,
              "image_evaluations": image_evaluations, "broken": broken,
              "table": robust_table(broken, len(indices), list(eps_255), ran, skipped)}
    if skipped:
        robust["skipped"] = skipped
    robust["sanity"] = sanity_checks(robust)
    return robust


def broken_by_class(robust: dict, label_of: dict[int, str]) -> dict:
    """Per goal, network and ε: how many images of each object class no longer stand (the per-image worst
    case over every attack; None where no attack ran), with ``n``, the images of each class.
    ``label_of`` maps a scene index to its class name."""
    classes = list(dict.fromkeys(label_of[i] for i in sorted(robust["indices"])))
    out: dict = {"n": {c: sum(label_of[i] == c for i in robust["indices"]) for c in classes}}
    for goal, nets_ in robust["broken"].items():
        for net, by_attack in nets_.items():
            rows = out.setdefault(goal, {}).setdefault(net, {})
            for j, entry in enumerate(robust["table"][goal][net]):
                skipped = robust.get("skipped", {}).get(goal, {}).get(net, [()] * len(robust["eps_255"]))
                union = set().union(*(set(v[j]) for v in by_attack.values()), skipped[j])
                rows[str(entry["eps_255"])] = None if entry["accuracy"] is None else {
                    c: sum(label_of[i] == c for i in union) for c in classes}
    return out
