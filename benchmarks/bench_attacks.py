"""Throughput of the batched iterated FGSM (image-steps per second).

Rows: our ``iterative_fgsm`` on the direct and triple victims at batch 64 and 1,
and ``torchattacks.BIM`` (the same iterated FGSM, Kurakin et al. 2017) on the same
direct network in the same process. To measure the loop itself, our attack runs
with a stop rule that never fires (every image takes every step), like BIM.
torchattacks calls ``model.eval()`` on whatever it is given, so it gets a private
copy of the network, never the shared one.

    python benchmarks/bench_attacks.py [--steps 20] [--untrained]

Each row is the best of ``--reps`` interleaved runs (the CPU may be shared). The
triple-staged network runs fastest in small pools (its comparator maps for 3
classes × 55² positions outgrow the caches), hence the batch-4 row: the
experiments attack it 4 images at a time. Prints a table and writes
benchmarks/results/attacks.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aimeye import checkpoints, nets
from aimeye.attacks import iterative_fgsm
from aimeye.attacks.victims import DirectVictim, TripleVictim
from aimeye.scenes import make_scenes

OUT = Path(__file__).resolve().parent / "results" / "attacks.json"


class NoStop:
    """Wraps a victim so that no goal is ever reached: fn needs verdict none, this says monkey."""

    def __init__(self, victim):
        self.v = victim
        self.name, self.n_outputs, self.theta = victim.name, victim.n_outputs, victim.theta
        self.batch_size = victim.batch_size

    def forward(self, x):
        return self.v.forward(x)

    def scores_of(self, raw):
        return self.v.scores_of(raw)

    def loss_of(self, raw, target, goal):
        return self.v.loss_of(raw, target, goal)

    def verdict_from(self, scores, theta=None):
        return torch.zeros(len(scores), dtype=torch.long)

    def verdict_raw(self, raw, theta=None):
        return torch.zeros(len(raw), dtype=torch.long)


def models(untrained: bool):
    if not untrained:
        try:
            m = checkpoints.load_models()
            return m.direct, m.triple, "trained checkpoints"
        except checkpoints.CheckpointError:
            pass
    torch.manual_seed(0)
    triple = nets.TripleStaged(nets.build("estimator"), nets.build("projector"), nets.build("comparator"))
    return checkpoints.freeze(nets.build("direct")), checkpoints.freeze(triple), "untrained (same architecture)"


def time_ours(victim, x, y, steps: int) -> float:
    iterative_fgsm(NoStop(victim), x, y, "fn", max_steps=1, batch_size=len(x))  # warm-up
    t0 = time.perf_counter()
    iterative_fgsm(NoStop(victim), x, y, "fn", max_steps=steps, batch_size=len(x))
    dt = time.perf_counter() - t0
    return len(x) * steps / dt


def time_bim(model, x, y, steps: int):
    try:
        import torchattacks
    except Exception as e:  # noqa: BLE001
        return None, f"torchattacks import failed: {type(e).__name__}: {e}"
    private = copy.deepcopy(model)  # torchattacks flips modes on the model it is given
    atk = torchattacks.BIM(private, eps=1.0, alpha=1 / 255, steps=1)
    atk(x, y)  # warm-up
    atk = torchattacks.BIM(private, eps=1.0, alpha=1 / 255, steps=steps)
    t0 = time.perf_counter()
    atk(x, y)
    dt = time.perf_counter() - t0
    return len(x) * steps / dt, f"torchattacks {torchattacks.__version__}"


def busy_processes() -> list[str]:
    try:
        out = subprocess.run(["ps", "-eo", "pcpu,args", "--sort=-pcpu"], check=False, capture_output=True,
                             text=True).stdout
    except OSError:
        return []
    return [line.strip() for line in out.splitlines()[1:6] if float(line.split()[0]) > 20]


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20, help="steps per timed run at batch 64 (×5 at batch 1)")
    p.add_argument("--reps", type=int, default=3, help="interleaved repetitions; the best is reported")
    p.add_argument("--untrained", action="store_true", help="use untrained networks even if checkpoints exist")
    p.add_argument("--out", default=str(OUT))
    args = p.parse_args(argv)
    direct, triple, which = models(args.untrained)
    s = make_scenes(4 * 22, "test", 2)
    pos = s.labels != 3
    x, y = s.images[pos][:64], s.labels[pos][:64]
    rows = []

    def add(name, batch, value, note=""):
        rows.append({"name": name, "batch": batch, "image_steps_per_s": None if value is None else round(value, 1),
                     "note": note})
        print(f"{name:<34} batch {batch:>3}  {'n/a' if value is None else f'{value:9.1f}'} image-steps/s  {note}",
              flush=True)

    for batch in (64, 1):
        k = args.steps if batch == 64 else args.steps * 5
        xb, yb = x[:batch], y[:batch]
        ours, bim, note = [], [], ""
        for _ in range(args.reps):  # interleaved, best of reps: the CPU may be shared
            ours.append(time_ours(DirectVictim(direct), xb, yb, k))
            b, note = time_bim(direct, xb, yb, k)
            bim.append(b)
        add("ours iterative_fgsm direct", batch, max(ours), f"best of {args.reps}; all: {[round(v) for v in ours]}")
        add("torchattacks.BIM direct", batch, None if None in bim else max(bim),
            note + ("" if None in bim else f"; best of {args.reps}; all: {[round(v) for v in bim]}"))
    for batch in (64, 4, 1):
        xb, yb = x[:batch], y[:batch]
        kt = max(4, 256 // batch) if batch > 1 else args.steps * 2
        add("ours iterative_fgsm triple", batch, max(time_ours(TripleVictim(triple, 0.45), xb, yb, kt)
                                                    for _ in range(args.reps)), f"best of {args.reps}")
    result = {"rows": rows, "models": which, "torch": torch.__version__, "threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "platform": platform.platform(), "steps": args.steps,
              "busy_processes_at_end": busy_processes(),
              "command": "python benchmarks/bench_attacks.py " + " ".join(argv or sys.argv[1:]),
              "unit": "image-steps/s: images × FGSM steps (one forward + one input-gradient each) per second"}
    ours = {r["batch"]: r["image_steps_per_s"] for r in rows if r["name"] == "ours iterative_fgsm direct"}
    bim = {r["batch"]: r["image_steps_per_s"] for r in rows if r["name"] == "torchattacks.BIM direct"}
    result["ours_over_bim"] = {b: (round(ours[b] / bim[b], 3) if bim.get(b) else None) for b in ours}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"ours/BIM: {result['ours_over_bim']}  wrote {out}")


if __name__ == "__main__":
    main()
