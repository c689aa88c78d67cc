"""Cross-check our APGD against an independent implementation (torchattacks' APGD and APGDT) on the same
networks, images, ε, steps and restarts, judged by the same goal rule. Ours must find at least as many.

    nice -n 19 python benchmarks/bench_crosscheck.py [--n-per-class 4] [--eps 8 32] [--steps 20] [--restarts 1]
        [--seeds 1] [--goals fp fn] [--networks direct triple@0.7]

For each network (direct; triple-staged at θ = 0.7) and goal (fp: object → another object; fn: object →
none): torchattacks.APGD (CE), APGD (DLR) and APGDT (DLR, every other class as target) run on a
goal-shaped view of the network (:mod:`ta_bridge`: its misclassification *is* the goal); ours runs
apgd (CE, DLR) and APGD-T (DLR) with the θ-aware rule. Every adversarial image, whoever made it, is
judged by :meth:`aimeye.attacks.victims.Victim.judge`. Reported per ε: images each side broke (best over
its attacks), images only one side broke, and ``ours_at_least_as_many``. With ``--seeds k`` both sides
run k times with different random starts (our ``seed``, torchattacks' ``seed``) and a row adds up the
images broken over the k runs (with one restart and a dozen images a single seed decides by luck);
``broken_per_seed`` lists positions in the image list, whose test-set indices are ``test_indices``.
The shared networks' modes and weights are checked unchanged after torchattacks ran (the BatchNorm
pitfall). Writes benchmarks/results/crosscheck.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ta_bridge

from aimeye import checkpoints
from aimeye.attacks import apgd, make_victim
from aimeye.experiments import load_test_set
from aimeye.experiments.testset import filter_correct

OUT = Path(__file__).resolve().parent / "results" / "crosscheck.json"


def theirs(victim, x, y, goal, eps, steps, restarts, seed=0) -> dict[str, torch.Tensor]:
    """torchattacks' adversarials judged by our rule: {attack: success (N,)}; fp runs per true class."""
    import torchattacks

    out = {}
    for name, make in (("APGD-CE", lambda m: torchattacks.APGD(m, eps=eps, steps=steps, n_restarts=restarts,
                                                               loss="ce", seed=seed)),
                       ("APGD-DLR", lambda m: torchattacks.APGD(m, eps=eps, steps=steps, n_restarts=restarts,
                                                                loss="dlr", seed=seed)),
                       ("APGDT-DLR", lambda m: torchattacks.APGDT(m, eps=eps, steps=steps, n_restarts=restarts,
                                                                  n_classes=3, seed=seed))):
        xa = x.clone()
        groups = [None] if goal == "fn" else sorted({int(c) for c in y})
        for c in groups:
            sel = torch.ones(len(y), dtype=torch.bool) if c is None else y == c
            model = ta_bridge.goal_model(victim, goal, c)
            xa[sel] = make(model)(x[sel], ta_bridge.labels_for(goal, y[sel]))
        out[name] = victim.judge(xa, y, goal)[2]
    return out


def ours(victim, x, y, goal, eps, steps, restarts, seed=0) -> dict[str, torch.Tensor]:
    out = {}
    for name, kw in (("apgd-ce", {"loss": "ce"}), ("apgd-dlr", {"loss": "dlr"}),
                     ("apgd-t-dlr", {"loss": "dlr", "targeted": True})):
        if name == "apgd-t-dlr" and goal == "fn":
            continue  # fn has one target (none): APGD-T is APGD
        out[name] = apgd(victim, x, y, goal, eps, steps=steps, restarts=restarts, seed=seed, **kw).success
    return out


def compare(victim, ts, goal, e, args) -> dict:
    """One row: each side's images broken, added up over the seeds (an image counts once per seed)."""
    a_tot, b_tot, ua_tot, ub_tot, only_a, only_b, per_seed = {}, {}, 0, 0, 0, 0, []
    for seed in range(args.seeds):
        a = theirs(victim, ts.images, ts.labels, goal, e / 255, args.steps, args.restarts, seed)
        b = ours(victim, ts.images, ts.labels, goal, e / 255, args.steps, args.restarts, seed)
        ua, ub = torch.stack(list(a.values())).any(0), torch.stack(list(b.values())).any(0)
        for tot, runs in ((a_tot, a), (b_tot, b)):
            for k, v in runs.items():
                tot[k] = tot.get(k, 0) + int(v.sum())
        ua_tot, ub_tot = ua_tot + int(ua.sum()), ub_tot + int(ub.sum())
        only_a, only_b = only_a + int((ua & ~ub).sum()), only_b + int((ub & ~ua).sum())
        per_seed.append({"seed": seed, "torchattacks": ua.nonzero().flatten().tolist(),
                         "ours": ub.nonzero().flatten().tolist()})
    return {"network": victim.name, "goal": goal, "eps_255": e, "n": len(ts), "seeds": args.seeds,
            "torchattacks": a_tot, "ours": b_tot, "torchattacks_any": ua_tot, "ours_any": ub_tot,
            "only_torchattacks": only_a, "only_ours": only_b, "ours_at_least_as_many": ub_tot >= ua_tot,
            "broken_per_seed": per_seed}


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--n-per-class", type=int, default=4)
    p.add_argument("--eps", type=int, nargs="+", default=[8, 32])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--restarts", type=int, default=1)
    p.add_argument("--networks", nargs="+", default=["direct", "triple@0.7"])
    p.add_argument("--goals", nargs="+", default=["fp", "fn"], choices=["fp", "fn"])
    p.add_argument("--seeds", type=int, default=1, help="random starts per side (seeds 0 … k−1)")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    import torchattacks

    models = checkpoints.load_models()
    ts, _ = filter_correct(models, load_test_set(args.n_per_class))
    before = ta_bridge.snapshot(models.direct, models.direct_param, models.triple)
    rows, t0 = [], time.time()
    for net in args.networks:
        victim = make_victim(models, net)
        for goal in args.goals:
            for e in args.eps:
                row = compare(victim, ts, goal, e, args)
                rows.append(row)
                print(f"{net:<11} {goal} ε={e:>2}/255: torchattacks {row['torchattacks_any']:>3}  ours "
                      f"{row['ours_any']:>3}  of {len(ts)} × {args.seeds} seed(s)  (only theirs "
                      f"{row['only_torchattacks']}, only ours {row['only_ours']})  {row['torchattacks']} "
                      f"{row['ours']}", flush=True)
    ta_bridge.assert_untouched(before, models.direct, models.direct_param, models.triple)
    result = {"rows": rows, "all_ours_at_least_as_many": all(r["ours_at_least_as_many"] for r in rows),
              "models_untouched_after_torchattacks": True, "torchattacks": torchattacks.__version__,
              "steps": args.steps, "restarts": args.restarts, "seeds": args.seeds, "n_images": len(ts),
              "test_indices": ts.indices.tolist(),
              "wall_time_s": round(time.time() - t0, 1),
              "command": "python benchmarks/bench_crosscheck.py " + " ".join(argv or sys.argv[1:])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"all ours ≥ torchattacks: {result['all_ours_at_least_as_many']}; wrote {out}")


if __name__ == "__main__":
    main()
