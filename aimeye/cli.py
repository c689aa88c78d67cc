"""Command line: ``python -m aimeye {sheet,train,evaluate,experiment}``. No logic lives here."""

from __future__ import annotations

import argparse
import json
import sys

from .paper import AT_STAGES, STAGES


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
    command = train.main_command()
    ranks = runtime.start(args.device, args.threads)
    try:
        for stage in stages:
            overrides = {k: v for k, v in (("steps", args.steps), ("seed", args.seed), ("batch", args.batch))
                         if v is not None}
            cfg = replace(train.DEFAULTS[stage], **overrides)
            sidecar = train.train(stage, cfg, root=args.out, fresh=args.fresh, command=command, ranks=ranks,
                                  evaluate_after=not args.no_eval)
            if ranks.main:
                print(json.dumps({"stage": stage, "wall_time_s": sidecar["wall_time_s"],
                                  "metrics": sidecar.get("metrics")}))
    finally:
        runtime.stop(ranks)


def cmd_evaluate(args):
    from . import evaluate, runtime
    from .checkpoints import load_models

    if args.stage:
        print(json.dumps(evaluate.stage_metrics_to_sidecar(args.stage, args.checkpoints)["metrics"], indent=1))
        return
    if args.anatomy:
        result = evaluate.score_anatomy(load_models(args.checkpoints))
        print(json.dumps(result, indent=1))
        if args.out:
            evaluate.write_metrics(result, args.out)
        return

    ranks = runtime.start(args.device, args.threads)
    try:
        result = evaluate.table1(args.n_per_class, load_models(args.checkpoints), ranks=ranks)
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
    t.add_argument("--out", default=None, help="checkpoint directory (default: checkpoints/)")
    t.add_argument("--no-eval", action="store_true", help="skip the stage's test-scene evaluation")
    add_device_args(t)
    t.set_defaults(fn=cmd_train)
    e = sub.add_parser("evaluate", help="Table 1 and the θ sweep on held-out test scenes")
    e.add_argument("--n-per-class", type=int, default=2500)
    e.add_argument("--stage", choices=(*STAGES, *AT_STAGES), default=None, help="only this stage's quality metrics")
    e.add_argument("--anatomy", action="store_true",
                   help="where each class's score comes from (alpha mass, similarity by pooled-alpha bin)")
    e.add_argument("--checkpoints", default=None)
    e.add_argument("--out", default=None)
    add_device_args(e)
    e.set_defaults(fn=cmd_evaluate)
    try:
        from .experiments import add_parser
        add_parser(sub)
    except ImportError:
        pass
    args = p.parse_args(argv)
    from .checkpoints import CheckpointError
    from .runtime import DeviceError

    try:
        args.fn(args)
    except (DeviceError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
