"""Command line: ``python -m aimeye {sheet,train,evaluate,experiment}``. No logic lives here.

Experiments scale with torchrun: ``torchrun --standalone --nproc_per_node K -m aimeye experiment ...``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from .paper import AT_STAGES, STAGES, THETAS


def cmd_sheet(args):
    from .sheets import contact_sheet, projection_sheet

    if args.projections:
        from .checkpoints import load

        projection_sheet(load("projector", args.checkpoints), args.n).save(args.out)
    else:
        contact_sheet(args.n, seed=args.seed).save(args.out)
    print(f"wrote {args.out}")


def cmd_train(args):
    from dataclasses import replace

    from . import runtime, train

    stages = {"all": STAGES, "all-at": AT_STAGES}.get(args.stage, (args.stage,))
    if args.model_config and len(stages) > 1:
        raise UsageError("--model-config applies to one stage; name the stage, not 'all'")
    model_config = parse_model_config(args.model_config, stages[0]) if args.model_config else None
    command = train.main_command()
    ranks = runtime.start(args.device, args.threads)
    try:
        for stage in stages:
            overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed), ("batch", args.batch))
                         if v is not None}
            cfg = replace(train.DEFAULTS[stage], **overrides)
            sidecar = train.train(stage, cfg, root=args.out, fresh=args.fresh, command=command, ranks=ranks,
                                  evaluate_after=not args.no_eval, model_config=model_config)
            if ranks.main:
                print(json.dumps({"stage": stage, "wall_time_s": sidecar["wall_time_s"],
                                  "metrics": sidecar.get("metrics")}))
    finally:
        runtime.stop(ranks)


class UsageError(ValueError):
    """A bad option: printed as one line, exit status 2."""


def parse_model_config(text: str, stage: str) -> dict:
    """``--model-config`` checked by building the network once: a clear message, not a traceback."""
    from .nets import build

    try:
        config = json.loads(text)
        build(stage, config)
    except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as e:
        raise UsageError(f"--model-config {text!r} does not fit the {stage} stage: {e}") from None
    return config


def cmd_evaluate(args):
    from . import evaluate, runtime
    from .checkpoints import load_models

    if args.stage:
        print(json.dumps(evaluate.stage_metrics_to_sidecar(args.stage, args.checkpoints)["metrics"], indent=1))
        return
    if args.anatomy:
        result = evaluate.score_anatomy(load_models(args.checkpoints), split=args.split)
        print(json.dumps(result, indent=1))
        if args.out:
            evaluate.write_metrics(result, args.out)
        return

    ranks = runtime.start(args.device, args.threads)
    try:
        result = evaluate.table1(args.n_per_class, load_models(args.checkpoints), ranks=ranks, split=args.split)
        if ranks.main:
            path = evaluate.write_metrics(result, args.out)
            print(json.dumps({"errors": result["errors"], "paper": result["paper_errors"]}, indent=1))
            print(f"wrote {path}")
    finally:
        runtime.stop(ranks)


def add_device_args(p):
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: CUDA when PyTorch sees a GPU, else the CPU")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per process (default 1: robust when the cores are shared; "
                        "use torchrun --nproc_per_node K for K cores)")


def cmd_experiment(args):
    import shlex

    from . import checkpoints, experiments
    from .experiments.robust import load_extra

    if args.what == "list":
        for r in experiments.list_runs(args.checkpoints):
            older = f"; made with other weights ({', '.join(r.other_weights)})" if r.other_weights else ""
            print(f"{r.path}: {r.label}; parts: {', '.join(r.parts)}{older}")
        return
    if args.what == "merge":
        try:
            command = "python -m aimeye experiment merge " + shlex.join(
                [*args.runs, "--out", args.out, *(["--no-png"] if args.no_png else [])])
            run = experiments.merge(args.runs, args.out, command=command, png=not args.no_png)
        except (FileNotFoundError, ValueError) as e:
            sys.exit(f"error: {e}")
        print(f"wrote {run.info.path}: {run.info.label}")
        return
    if args.what == "classes":
        try:
            counts = experiments.by_class(args.run)
        except (FileNotFoundError, KeyError, ValueError) as e:
            sys.exit(f"error: {e}")
        n = counts.pop("n")
        print("images per class: " + ", ".join(f"{c} {k}" for c, k in n.items()))
        for goal, nets_ in counts.items():
            for net, by_eps in nets_.items():
                cells = [f"ε {e}: " + ("not run" if c is None else " ".join(f"{k}/{n[cls]}" for cls, k in c.items()))
                         for e, c in by_eps.items()]
                print(f"{goal} {net} broken ({'/'.join(n)}): " + "; ".join(cells))
        print(f"wrote {os.path.join(args.run, 'by_class.json')}")
        return
    world = int(os.environ.get("WORLD_SIZE", "1"))
    launcher = f"torchrun --nproc_per_node {world} -m aimeye " if world > 1 else "python -m aimeye "
    command = launcher + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else ""
    try:
        models = checkpoints.load_models(args.checkpoints)
        run = experiments.run(
            args.what, args.n_per_class, models=models, max_steps=args.max_steps,
            out=args.out or experiments.main.DEFAULT_OUT, batch_size=args.batch, triple_batch_size=args.triple_batch,
            robust_n_per_class=args.robust_n_per_class, eps_255=args.eps, attack_steps=args.steps,
            restarts=args.restarts, extra=load_extra(args.extra, args.checkpoints), thetas=args.thetas,
            attacks=args.attacks, robust_goals=args.goals, networks=args.networks, skip_broken=args.skip_broken,
            png=not args.no_png,
            command=command, notes=args.note, device=args.device)
    except (experiments.DeviceError, checkpoints.CheckpointError, FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    if run is not None:  # rank 0
        print(f"wrote {run.info.path}: {run.info.label}; parts: {', '.join(run.info.parts)}")


def add_experiment_parser(sub):
    e = sub.add_parser("experiment", help="Figs 4–6 and robust accuracy (attacks on test scenes); torchrun-ready")
    es = e.add_subparsers(dest="what", required=True)
    es.add_parser("list", help="list the results folders").add_argument("--checkpoints", default=None)
    m = es.add_parser("merge", help="one per-image worst case from the robust runs of several results folders "
                                    "(the same checkpoints; the images they share, every ε)")
    c = es.add_parser("classes", help="the broken images of a robust run per object class (→ by_class.json)")
    c.add_argument("run", help="a results folder holding robust.json")
    m.add_argument("runs", nargs="+", help="results folders holding robust.json")
    m.add_argument("--out", required=True, help="the merged results folder")
    m.add_argument("--no-png", action="store_true", help="skip the PNG figures")
    for name, text in (("fig4", "false positives (Fig. 4) and the Fig. 5 galleries"),
                       ("fig6", "false negatives (Fig. 6)"),
                       ("robust", "robust accuracy vs ε: per-image worst case over the attack suite"),
                       ("all", "fig4, fig6 and robust"),
                       ("fig5", "redraw the figures and README of a results folder")):
        p = es.add_parser(name, help=text)
        p.add_argument("--n-per-class", type=int, default=100, help="test images per object class (FGSM)")
        p.add_argument("--max-steps", type=int, default=10_000, help="FGSM step cap (the paper's code: 10,000)")
        p.add_argument("--robust-n-per-class", type=int, default=None, help="images per class for robust "
                       "(default: --n-per-class)")
        p.add_argument("--eps", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32], help="ε in grey levels of 255")
        p.add_argument("--steps", type=int, default=100, help="iterations of each robustness attack")
        p.add_argument("--restarts", type=int, default=5, help="restarts of each robustness attack")
        p.add_argument("--extra", action="append", default=[], metavar="STAGE",
                       help="evaluate one more checkpointed network: direct-at or triple-at (repeatable)")
        p.add_argument("--thetas", type=float, nargs="+", default=list(THETAS),
                       help="θs at which the triple-staged networks are attacked (robust; default: the paper's)")
        p.add_argument("--attacks", nargs="+", default=None, metavar="NAME",
                       help="robust: only these attacks of the suite (default: all; see robust.json 'attacks')")
        p.add_argument("--goals", nargs="+", choices=("fp", "fn"), default=["fp", "fn"],
                       help="robust: only these goals (fp: object → another object; fn: object → none)")
        p.add_argument("--networks", nargs="+", default=None, metavar="KEY",
                       help="robust: attack only these networks (result keys, e.g. triple_at@0.7; default: all)")
        p.add_argument("--skip-broken", default=None, metavar="DIR",
                       help="robust: do not attack again the images that the robust run in DIR (e.g. a merge) "
                            "broke at the same ε; they count as broken ('earlier runs'); merge with DIR's runs")
        p.add_argument("--out", default=None, help="output directory (default: checkpoints/results)")
        p.add_argument("--batch", type=int, default=64, help="images attacked at once (direct networks)")
        p.add_argument("--triple-batch", type=int, default=4, help="images attacked at once (triple network)")
        p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="auto: this rank's GPU if there is one")
        p.add_argument("--checkpoints", default=None)
        p.add_argument("--no-png", action="store_true", help="skip the PNG figures")
        p.add_argument("--note", action="append", default=[], help="a note for the README (repeatable)")
    e.set_defaults(fn=cmd_experiment)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m aimeye", description="The Artificial Mind's Eye")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sheet", help="contact sheet of every class, raw and blended")
    s.add_argument("--out", default="sheet.png")
    s.add_argument("--n", type=int, default=8, help="views per class")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--projections", action="store_true",
                   help="true renders (odd rows) vs the projector's drawings (even rows) at held-out rotations")
    s.add_argument("--checkpoints", default=None)
    s.set_defaults(fn=cmd_sheet)
    t = sub.add_parser("train", help="train one stage or all five")
    t.add_argument("stage", choices=(*STAGES, *AT_STAGES, "all", "all-at"),
                   help="one stage; 'all' = the paper's five, 'all-at' = the adversarially trained three")
    t.add_argument("--steps", type=int, default=None, help="override the number of steps")
    t.add_argument("--batch", type=int, default=None, help="override the global batch (split across torchrun ranks)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--fresh", action="store_true", help="ignore a resumable state in runs/")
    t.add_argument("--model-config", default=None, metavar="JSON",
                   help='the architecture\'s config as JSON, e.g. \'{"widths": [64, 64, 64]}\' for the comparator '
                        "(default: the shipped architecture; stored in the sidecar)")
    t.add_argument("--out", default=None, help="checkpoint directory (default: checkpoints/)")
    t.add_argument("--no-eval", action="store_true", help="skip the stage's test-scene evaluation")
    add_device_args(t)
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("evaluate", help="Table 1 and the θ sweep on held-out test scenes")
    e.add_argument("--n-per-class", type=int, default=2500)
    e.add_argument("--stage", choices=(*STAGES, *AT_STAGES), default=None, help="only this stage's quality metrics")
    e.add_argument("--anatomy", action="store_true",
                   help="where each class's score comes from (alpha mass, similarity by pooled-alpha bin)")
    e.add_argument("--split", choices=("test", "val"), default="test",
                   help="test: Table 1 (test backgrounds; writes metrics.json). val: train backgrounds with a "
                        "scene seed no training uses, for choosing between recipes (writes metrics_val.json); "
                        "also for --anatomy")
    e.add_argument("--checkpoints", default=None)
    e.add_argument("--out", default=None)
    add_device_args(e)
    e.set_defaults(fn=cmd_evaluate)
    add_experiment_parser(sub)
    args = p.parse_args(argv)
    from .checkpoints import CheckpointError
    from .runtime import DeviceError

    try:
        args.fn(args)
    except (DeviceError, CheckpointError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
