"""Cross-check our APGD against an independent implementation (torchattacks' APGD and APGDT) on the same
networks, images, ε, steps and restarts, judged by the same goal rule. Ours must find at least as many.

    nice -n 19 python benchmarks/bench_crosscheck.py [--n-per-class 4] [--eps 8 32] [--steps 20] [--restarts 1]

For each network (direct; triple-staged at θ = 0.7) and goal (fp: object → another object; fn: object →
none): torchattacks.APGD (CE), APGD (DLR) and APGDT (DLR, every other class as target) run on a
goal-shaped view of the network (:mod:`ta_bridge`: its misclassification *is* the goal); ours runs
apgd (CE, DLR) and APGD-T (DLR) with the θ-aware rule. Every adversarial image, whoever made it, is
judged by :meth:`aimeye.attacks.victims.Victim.judge`. Reported per ε: images each side broke (best over
its attacks), images only one side broke, and ``ours_at_least_as_many``. The shared networks' modes and
weights are checked unchanged after torchattacks ran (the BatchNorm pitfall). Writes
benchmarks/results/crosscheck.json.
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


def theirs(victim, x, y, goal, eps, steps, restarts) -> dict[str, torch.Tensor]:
    """torchattacks' adversarials judged by our rule: {attack: success (N,)}; fp runs per true class."""
    import torchattacks

    out = {}
    for name, make in (("APGD-CE", lambda m: torchattacks.APGD(m, eps=eps, steps=steps, n_restarts=restarts,
                                                               loss="ce")),
                       ("APGD-DLR", lambda m: torchattacks.APGD(m, eps=eps, steps=steps, n_restarts=restarts,
                                                                loss="dlr")),
                       ("APGDT-DLR", lambda m: torchattacks.APGDT(m, eps=eps, steps=steps, n_restarts=restarts,
                                                                  n_classes=3))):
        xa = x.clone()
        groups = [None] if goal == "fn" else sorted({int(c) for c in y})
        for c in groups:
            sel = torch.ones(len(y), dtype=torch.bool) if c is None else y == c
            model = ta_bridge.goal_model(victim, goal, c)
            xa[sel] = make(model)(x[sel], ta_bridge.labels_for(goal, y[sel]))
        out[name] = victim.judge(xa, y, goal)[2]
    return out


def ours(victim, x, y, goal, eps, steps, restarts) -> dict[str, torch.Tensor]:
    out = {}
    for name, kw in (("apgd-ce", {"loss": "ce"}), ("apgd-dlr", {"loss": "dlr"}),
                     ("apgd-t-dlr", {"loss": "dlr", "targeted": True})):
        if name == "apgd-t-dlr" and goal == "fn":
            continue  # fn has one target (none): APGD-T is APGD
        out[name] = apgd(victim, x, y, goal, eps, steps=steps, restarts=restarts, **kw).success
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--n-per-class", type=int, default=4)
    p.add_argument("--eps", type=int, nargs="+", default=[8, 32])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--restarts", type=int, default=1)
    p.add_argument("--networks", nargs="+", default=["direct", "triple@0.7"])
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    import torchattacks

    models = checkpoints.load_models()
    ts, _ = filter_correct(models, load_test_set(args.n_per_class))
    before = ta_bridge.snapshot(models.direct, models.direct_param, models.triple)
    rows, t0 = [], time.time()
    for net in args.networks:
        victim = make_victim(models, net)
        for goal in ("fp", "fn"):
            for e in args.eps:
                a = theirs(victim, ts.images, ts.labels, goal, e / 255, args.steps, args.restarts)
                b = ours(victim, ts.images, ts.labels, goal, e / 255, args.steps, args.restarts)
                ua, ub = torch.stack(list(a.values())).any(0), torch.stack(list(b.values())).any(0)
                row = {"network": net, "goal": goal, "eps_255": e, "n": len(ts),
                       "torchattacks": {k: int(v.sum()) for k, v in a.items()},
                       "ours": {k: int(v.sum()) for k, v in b.items()},
                       "torchattacks_any": int(ua.sum()), "ours_any": int(ub.sum()),
                       "only_torchattacks": int((ua & ~ub).sum()), "only_ours": int((ub & ~ua).sum()),
                       "ours_at_least_as_many": bool(ub.sum() >= ua.sum())}
                rows.append(row)
                print(f"{net:<11} {goal} ε={e:>2}/255: torchattacks {row['torchattacks_any']:>3}  ours "
                      f"{row['ours_any']:>3}  of {len(ts)}  (only theirs {row['only_torchattacks']}, "
                      f"only ours {row['only_ours']})  {row['torchattacks']} {row['ours']}", flush=True)
    ta_bridge.assert_untouched(before, models.direct, models.direct_param, models.triple)
    result = {"rows": rows, "all_ours_at_least_as_many": all(r["ours_at_least_as_many"] for r in rows),
              "models_untouched_after_torchattacks": True, "torchattacks": torchattacks.__version__,
              "steps": args.steps, "restarts": args.restarts, "n_images": len(ts),
              "wall_time_s": round(time.time() - t0, 1),
              "command": "python benchmarks/bench_crosscheck.py " + " ".join(argv or sys.argv[1:])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"all ours ≥ torchattacks: {result['all_ours_at_least_as_many']}; wrote {out}")


if __name__ == "__main__":
    main()
