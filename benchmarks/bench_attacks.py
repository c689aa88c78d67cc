"""Attack throughput (image-steps per second), ours side by side with torchattacks, and a FLOP-based
projection of the paper-scale run and of the robustness evaluation.

    OMP_NUM_THREADS=1 python benchmarks/bench_attacks.py [--steps 30] [--reps 6] [--untrained]

Rows (the same networks, images and steps in one process):
* iterated FGSM: ours (:func:`aimeye.attacks.iterative_fgsm`) vs ``torchattacks.BIM``;
* APGD: ours (:func:`aimeye.attacks.apgd`, 1 restart) vs ``torchattacks.APGD`` (1 restart);
on the direct CNN (batch 64) and the triple-staged network (batch 4: its 3 × 55² comparator maps
outgrow the caches in bigger pools). To time the loop itself, ours runs on a victim whose goal never
holds (every image takes every step), as torchattacks' loops do. torchattacks gets the networks
through :mod:`ta_bridge` (an eval-only wrapper), and the shared networks are checked unchanged after.

The same work on both sides: ours returns a *judged* result (its last forward pass decides whether the
last iterate reached the goal; APGD re-judges its kept images), torchattacks returns images only, and a
caller needs one more forward pass to know what it achieved. So torchattacks is timed twice: the attack
alone, and the attack plus that judging pass (``judged``); the ratio is taken against the latter. Each
row's ``passes_per_call`` counts the batched forward passes and input gradients of one call of each
side: ours runs exactly one forward pass more than torchattacks' attack alone, and as many as it with
the judging pass (tests/test_ta_bridge.py checks this on toys). The rows run
in ABBA order (ours, theirs, theirs, ours, …) on a machine whose speed drifts, and the ratio is the
median of the per-repetition ratios (each pair adjacent in time), beside the best of each side.

An image-step is one forward pass and one input gradient of one image. The FLOPs of one image-step
are counted with ``torch.utils.flop_counter``; the projection divides the paper-scale workload by an
assumed effective GPU rate (stated in the JSON), per GPU and over 8 (ranks are independent).
Writes benchmarks/results/attacks.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ta_bridge

from aimeye import checkpoints, nets
from aimeye.attacks import DirectVictim, TripleVictim, apgd, iterative_fgsm
from aimeye.attacks.transfer import NeverDone
from aimeye.experiments import load_run, load_test_set

OUT = Path(__file__).resolve().parent / "results" / "attacks.json"
GPU_TFLOPS = {"pessimistic": 10.0, "expected": 25.0, "optimistic": 50.0}  # effective fp32/TF32 rate, assumed
PAPER = {"images_per_class": 10_000, "cap": 10_000}


def load(untrained: bool):
    if not untrained:
        try:
            m = checkpoints.load_models()
            return m.direct, m.triple, "trained checkpoints"
        except checkpoints.CheckpointError:
            pass
    torch.manual_seed(0)
    triple = nets.TripleStaged(nets.build("estimator"), nets.build("projector"), nets.build("comparator"))
    return checkpoints.freeze(nets.build("direct")), checkpoints.freeze(triple), "untrained (same architecture)"


def step_flops(victim, x) -> int:
    """FLOPs of one image-step (forward + input gradient), per image."""
    xr = x[:1].clone().requires_grad_(True)
    with FlopCounterMode(display=False) as fc:  # (autograd.grad is not supported inside the counter)
        torch.autograd.backward(victim.forward(xr).sum(), inputs=[xr])  # accumulates into xr only
    return int(fc.get_total_flops())


def ours(kind, victim, x, y, steps):
    """Our attack on a victim whose goal never holds (every image takes every step); a judged result.
    APGD: 1 clean pass + the start + ``steps`` steps per image, as torchattacks' APGD, + our judging pass."""
    never = NeverDone(victim, "fn")
    if kind == "bim":
        return iterative_fgsm(never, x, y, "fn", max_steps=steps, batch_size=len(x))
    return apgd(never, x, y, "fn", 8 / 255, steps=steps, restarts=1, batch_size=len(x))


def theirs(kind, victim, x, y, steps, judge: bool = True, clock: list | None = None):
    """torchattacks' attack on the goal-shaped view; with ``judge``, plus the one forward pass that a caller
    needs to know what it achieved. ``clock`` gets the times after the attack and after the judging pass."""
    import torchattacks

    model = ta_bridge.goal_model(victim, "fn")
    lab = torch.zeros_like(y)
    atk = {"bim": lambda: torchattacks.BIM(model, eps=1.0, alpha=1 / 255, steps=steps),
           "apgd": lambda: torchattacks.APGD(model, eps=8 / 255, steps=steps, n_restarts=1, loss="ce")}[kind]()
    adv = atk(x, lab)
    if clock is not None:
        clock.append(time.perf_counter())
    if judge:
        with torch.no_grad():
            (model(adv).argmax(1) != lab).sum().item()
    if clock is not None:
        clock.append(time.perf_counter())
    return adv


def rate_ours(kind, victim, x, y, steps) -> float:
    """Our image-steps per second of one call, after a one-step warm-up call."""
    ours(kind, victim, x, y, 1)
    t0 = time.perf_counter()
    ours(kind, victim, x, y, steps)
    return len(x) * steps / (time.perf_counter() - t0)


def rates_theirs(kind, victim, x, y, steps) -> tuple[float, float]:
    """torchattacks' rate for the attack alone and with its judging pass, from one call."""
    theirs(kind, victim, x, y, 1)
    clock = [time.perf_counter()]
    theirs(kind, victim, x, y, steps, clock=clock)
    return tuple(len(x) * steps / (c - clock[0]) for c in clock[1:])


class Counting:
    """A victim that counts its forward passes and the input gradients taken through them (a hook on the
    output tensor, so the shared network itself is untouched); everything else is the victim's."""

    def __init__(self, victim):
        self.victim, self.forwards, self.gradients = victim, 0, 0

    def __getattr__(self, name):
        return getattr(self.victim, name)

    def forward(self, x):
        self.forwards += 1
        out = self.victim.forward(x)
        if out.requires_grad:
            out.register_hook(self._count_gradient)
        return out

    def _count_gradient(self, g):
        self.gradients += 1


def passes(kind, victim, x, y, steps) -> dict:
    """Batched forward passes and input gradients of one call of each side."""
    out = {}
    for side, fn, kw in (("ours", ours, {}), ("torchattacks", theirs, {"judge": False}),
                         ("torchattacks_judged", theirs, {})):
        c = Counting(victim)
        fn(kind, c, x, y, steps, **kw)
        out[side] = {"forwards": c.forwards, "input_gradients": c.gradients}
    return out


def time_row(net, kind, v, x, y, steps, reps, have_ta) -> dict:
    """One row: ``reps`` timings of ours and of torchattacks in ABBA order (see the module docstring)."""
    o, t, tj = [], [], []
    for r in range(reps):
        for side in (("ours", "theirs") if r % 2 == 0 else ("theirs", "ours")):
            if side == "ours":
                o.append(rate_ours(kind, v, x, y, steps))
            elif have_ta:
                bare, judged = rates_theirs(kind, v, x, y, steps)
                t.append(bare)
                tj.append(judged)
    row = {"network": net, "attack": {"bim": "iterated FGSM", "apgd": "APGD"}[kind], "batch": len(x), "steps": steps,
           "ours": round(max(o), 1), "ours_median": round(statistics.median(o), 1),
           "all_ours": [round(a, 1) for a in o]}
    if have_ta:
        row["passes_per_call"] = passes(kind, v, x, y, steps)
        row |= {"torchattacks": round(max(t), 1), "torchattacks_median": round(statistics.median(t), 1),
                "torchattacks_judged": round(max(tj), 1), "torchattacks_judged_median": round(statistics.median(tj), 1),
                "ours_over_torchattacks_judged": round(statistics.median(a / b for a, b in zip(o, tj)), 3),
                "ours_over_torchattacks_attack_only": round(statistics.median(a / b for a, b in zip(o, t)), 3),
                "all_torchattacks": [round(a, 1) for a in t], "all_torchattacks_judged": [round(a, 1) for a in tj]}
    print(f"{net:<7} {row['attack']:<14} batch {len(x):>2}, {steps} steps: ours {row['ours']:7.1f} "
          f"({row['ours_median']:.1f})  torchattacks {row.get('torchattacks', 'n/a')} "
          f"({row.get('torchattacks_median', '')}), judged {row.get('torchattacks_judged', 'n/a')} "
          f"({row.get('torchattacks_judged_median', '')})  image-steps/s, best (median); ours/theirs, median of "
          f"pairs: {row.get('ours_over_torchattacks_judged')} judged, {row.get('ours_over_torchattacks_attack_only')} "
          "attack only", flush=True)
    return row


def busy_processes() -> list[str]:
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,ni,args", "--sort=-pcpu"], check=False, capture_output=True,
                             text=True).stdout
    except OSError:
        return []
    return [" ".join(line.split()[:6]) for line in out.splitlines()[1:8] if float(line.split()[0]) > 20]


def mean_steps() -> dict:
    """Mean FGSM steps per attack from the committed runs (failures at their cap: a lower bound)."""
    out = {}
    for folder, goal in (("results_cap1000", "fp"), ("results", "fn")):
        try:
            run = load_run(checkpoints.DEFAULT_DIR / folder)
        except FileNotFoundError:
            continue
        for net in ("direct", "direct_param", "triple@0.7"):
            rows = [r["steps"] for r in run.rows if r["goal"] == goal and r["network"] == net]
            if rows:
                out.setdefault(goal, {})[net] = {"mean": sum(rows) / len(rows), "cap": run.info.cap, "from": folder}
    return out


def projection(flops: dict, rates: dict) -> dict:
    """The paper-scale FGSM run (Figs 4–6) and the default robustness evaluation, on CPU and GPUs."""
    n_img = 3 * PAPER["images_per_class"]
    attacks = {"fp": 2 * n_img, "fn": n_img}
    steps = mean_steps()
    work = {}
    for bound in ("upper", "estimate"):
        total = 0.0
        for goal, k in attacks.items():
            for net, key in (("direct", "direct"), ("direct_param", "direct"), ("triple@0.7", "triple")):
                s = PAPER["cap"] if bound == "upper" else steps.get(goal, {}).get(net, {}).get("mean", PAPER["cap"])
                total += k * s * flops[key]  # the triple's θs share one trajectory: it counts once
        work[bound] = total
    # robustness, default suite (steps 100, restarts 5), 100 images/class, 6 ε, every attack at full budget
    per = 5 * (1 + 100)
    triple_evals = 300 * 6 * 3 * (8 + 4) * per  # 3 θ × (fp: ce, dlr, 2 targeted, 2 score, 2 patch; fn: 4)
    direct_evals = 300 * 6 * 2 * (4 + 2) * per + 300 * 6 * 2 * 5 * (1 + 100)  # 2 nets; + transfer crafting
    robust = triple_evals * flops["triple"] + direct_evals * flops["direct"]
    cpu = {k: work[k] / flops["triple"] / rates["triple"] for k in work}  # as if all work ran at the triple rate
    out = {"workload_flop": {"fgsm_paper_scale_upper": work["upper"], "fgsm_paper_scale_estimate": work["estimate"],
                             "robust_default_upper": robust},
           "mean_steps_used": steps,
           "assumed_gpu_effective_tflops": GPU_TFLOPS,
           "cpu_hours_this_machine_at_measured_triple_rate": {k: round(v / 3600, 1) for k, v in cpu.items()},
           "robust_default_upper_cpu_hours": round((triple_evals / rates["triple"] + direct_evals / rates["direct"])
                                                   / 3600, 1)}
    for name, tf in GPU_TFLOPS.items():
        for g in (1, 8):
            out[f"gpu_hours_{g}x_{name}"] = {k: round(v / (tf * 1e12 * g) / 3600, 2)
                                             for k, v in (("fgsm_upper", work["upper"]),
                                                          ("fgsm_estimate", work["estimate"]),
                                                          ("robust_default_upper", robust))}
    return out


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=30, help="steps per timed run")
    p.add_argument("--triple-steps", type=int, default=None, help="steps per timed run of the triple-staged "
                   "network (default: --steps)")
    p.add_argument("--reps", type=int, default=6, help="repetitions, in ABBA order")
    p.add_argument("--untrained", action="store_true")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", torch.get_num_threads())))
    direct, triple, which = load(args.untrained)
    ts = load_test_set(22)
    x, y = ts.images[:64], ts.labels[:64]
    victims = {"direct": DirectVictim(direct), "triple": TripleVictim(triple, 0.45)}
    flops = {k: step_flops(v, x) for k, v in victims.items()}
    try:
        import torchattacks

        ta = f"torchattacks {torchattacks.__version__}"
    except ImportError as e:
        ta = f"torchattacks not installed ({e}): pip install --no-deps torchattacks"
    before = ta_bridge.snapshot(direct, triple)
    rows = [time_row(net, kind, victims[net], x[:batch], y[:batch], steps, args.reps, ta.startswith("torchattacks "))
            for net, batch, steps in (("direct", 64, args.steps), ("triple", 4, args.triple_steps or args.steps))
            for kind in ("bim", "apgd")]
    ta_bridge.assert_untouched(before, direct, triple)
    rates = {net: max(r["ours"] for r in rows if r["network"] == net) for net in ("direct", "triple")}
    result = {"rows": rows, "models": which, "torchattacks": ta, "torch": torch.__version__,
              "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
              "busy_processes_at_end": busy_processes(), "flop_per_image_step": flops,
              "command": "python benchmarks/bench_attacks.py " + " ".join(argv or sys.argv[1:]),
              "unit": "image-steps/s: images × steps (one forward + one input gradient each) per second",
              "projection": projection(flops, rates)}
    print(json.dumps({"flop_per_image_step": flops, "projection": result["projection"]}, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
