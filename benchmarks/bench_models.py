"""Latency of one triple-staged verdict (3 classes, one image) and of the direct classifier,
next to their parameter and multiply-accumulate counts.

    python benchmarks/bench_models.py [--repeats 200]

Prints the figures and writes benchmarks/results/models.json.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import numpy as np
import torch
from torch import nn

import aimeye


def macs(model, *inputs) -> int:
    """Multiply-accumulates of one forward pass, counted on Conv/ConvTranspose/Linear layers."""
    total = [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            total[0] += out.numel() * mod.in_channels // mod.groups * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.ConvTranspose2d):
            total[0] += inp[0].numel() * mod.out_channels * mod.kernel_size[0] * mod.kernel_size[1]
        elif isinstance(mod, nn.Linear):
            total[0] += out.numel() * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    with torch.no_grad():
        model(*inputs)
    for h in handles:
        h.remove()
    return total[0]


def latency_ms(fn, repeats):
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times)), float(np.percentile(times, 95))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=200)
    args = p.parse_args()
    m = aimeye.load_models()
    x = aimeye.make_scenes(4, "test", 0).images[1:2]
    out = {"torch_threads": torch.get_num_threads()}
    for name, model, fn in [
        ("triple_verdict", m.triple, lambda: m.triple.verdict(x, 0.45)),
        ("direct", m.direct, lambda: m.direct(x)),
    ]:
        with torch.no_grad():
            p50, p95 = latency_ms(fn, args.repeats)
        n_mac = macs(model, x)
        n_par = sum(p.numel() for p in model.parameters())
        out[name] = {"median_ms": round(p50, 2), "p95_ms": round(p95, 2), "macs": n_mac,
                     "gflop": round(2 * n_mac / 1e9, 3), "parameters": n_par}
        print(f"{name:15s} median {p50:6.2f} ms  p95 {p95:6.2f} ms  {2 * n_mac / 1e9:.3f} GFLOP  {n_par:,} params")
    path = Path(__file__).parent / "results" / "models.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
