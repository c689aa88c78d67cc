"""Renders/s per class (4×4 anti-aliasing, 64×64) and blended scene samples/s.

    python benchmarks/bench_render.py [--n 4000]

Prints the figures and writes benchmarks/results/render.json.
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere without installing

import numpy as np

from aimeye.meshes import BUILTIN
from aimeye.render import render_mesh, resolve_mesh
from aimeye.scenes import generate


def best_rate(fn, n, repeats=3):
    fn(8)  # compile / warm caches
    return max(n / timed(fn, n) for _ in range(repeats))


def timed(fn, n):
    t = time.perf_counter()
    fn(n)
    return time.perf_counter() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=4000)
    args = p.parse_args()
    rng = np.random.default_rng(0)
    rot = rng.uniform(-0.5, 0.5, (args.n, 3))
    out = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "n": args.n,
           "renders_per_s": {}}
    for name in BUILTIN:
        mesh = resolve_mesh(name)
        rate = best_rate(lambda k, m=mesh: render_mesh(m, rot[:k]), args.n)
        out["renders_per_s"][name] = round(rate, 1)
        print(f"render {name:10s} {len(mesh.faces):5d} faces  {rate:8.0f} renders/s (4x4 AA)")
    start = [10_000_000]

    def scenes(k):
        generate(np.arange(start[0], start[0] + k), "train", 0)
        start[0] += k

    rate = best_rate(scenes, 2000)
    out["blended_samples_per_s"] = round(rate, 1)
    print(f"blended scenes          {rate:8.0f} samples/s (render + background crop + blend, 4 classes)")
    path = Path(__file__).parent / "results" / "render.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
