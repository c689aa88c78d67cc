"""One plain training loop for every stage (nanoGPT style).

A stage is a model, a batch source and a loss. ``python -m aimeye train
<stage>`` trains it from scratch (or resumes ``runs/<stage>/state.pt``),
evaluates it on test scenes and writes ``checkpoints/<stage>.safetensors`` with
its sidecar. Training data comes only from the **train** background sources.
Deterministic on CPU: batch ``k`` is a pure function of (seed, k).
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import checkpoints, evaluate, nets
from .paper import NONE
from .scenes import Scenes, make_scenes, projector_targets

RUNS = Path("runs")


@dataclass
class TrainConfig:
    steps: int
    batch: int = 128
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    seed: int = 0
    pool: int = 32000  # training scenes generated once and sampled with replacement
    ckpt_every: int = 200
    log_every: int = 50


DEFAULTS = {
    "direct": TrainConfig(steps=500),
    "direct-param": TrainConfig(steps=700),
    "estimator": TrainConfig(steps=3000, pool=48000),
    "projector": TrainConfig(steps=3000, batch=64, lr=2e-3, pool=0),
    "comparator": TrainConfig(steps=2000, batch=48, lr=2e-3),
}


@lru_cache(maxsize=2)
def scene_pool(n: int, seed: int) -> Scenes:
    return make_scenes(n, "train", seed)


def _generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def pool_batch(cfg: TrainConfig, step: int, positives: bool = False) -> Scenes:
    pool = scene_pool(cfg.pool, cfg.seed)
    if positives:
        idx = torch.nonzero(pool.labels != NONE).flatten()
        return pool[idx[torch.randint(len(idx), (cfg.batch,), generator=_generator(cfg.seed, step))]]
    return pool[torch.randint(len(pool), (cfg.batch,), generator=_generator(cfg.seed, step))]


# --- losses: (model, cfg, step) -> (loss, logs) -------------------------------------------

def loss_direct(model, cfg, step):
    b = pool_batch(cfg, step)
    logits = model(b.images)
    loss = F.cross_entropy(logits, b.labels)
    return loss, {"acc": (logits.argmax(1) == b.labels).float().mean().item()}


def loss_direct_param(model, cfg, step):
    b = pool_batch(cfg, step)
    logits, params = model(b.images)
    mask = (b.labels != NONE).float()[:, None]  # the parameters of none images are undefined
    mse = ((params - b.rotations) ** 2 * mask).sum() / mask.sum().clamp_min(1) / 3
    ce = F.cross_entropy(logits, b.labels)
    return ce + 100 * mse, {"ce": ce.item(), "rot_rmse": mse.sqrt().item()}


def loss_estimator(model, cfg, step):
    b = pool_batch(cfg, step, positives=True)
    pred = model(b.images, b.labels, straight_through=True)
    mse = F.mse_loss(pred, b.rotations)
    return 100 * mse, {"rot_mae": (pred - b.rotations).abs().mean().item()}


def loss_projector(model, cfg, step):
    rot, cls, img, alpha = projector_targets(cfg.batch, cfg.seed, step)
    p_img, p_alpha = model(rot, cls)
    l1 = (p_img - img).abs().mean()
    bce = F.binary_cross_entropy(p_alpha.clamp(1e-6, 1 - 1e-6), alpha)
    return 10 * l1 + bce, {"img_mae": l1.item(), "alpha_bce": bce.item()}


def comparator_pairs(cfg, step, estimator, projector):
    """Same pairs (positive query, its own class) and different pairs (a wrong class,
    or any class for a none query), projected through the frozen stages 1–2."""
    half = cfg.batch // 2
    same = pool_batch(TrainConfig(steps=0, batch=half, seed=cfg.seed, pool=cfg.pool), 2 * step, positives=True)
    diff = pool_batch(TrainConfig(steps=0, batch=cfg.batch - half, seed=cfg.seed, pool=cfg.pool), 2 * step + 1)
    g = _generator(cfg.seed + 1, step)
    shift = torch.randint(1, nets.N_OBJECTS, (len(diff),), generator=g)
    any_cls = torch.randint(0, nets.N_OBJECTS, (len(diff),), generator=g)
    wrong = torch.where(diff.labels == NONE, any_cls, (diff.labels + shift) % nets.N_OBJECTS)
    x = torch.cat([same.images, diff.images])
    cls = torch.cat([same.labels, wrong])
    target = torch.cat([torch.ones(len(same)), torch.zeros(len(diff))])
    with torch.no_grad():
        proj, alpha = projector(estimator(x, cls), cls)
    return x, proj, alpha, target


def loss_comparator(model, cfg, step, stages):
    x, proj, alpha, target = comparator_pairs(cfg, step, *stages)
    logits = model(x, proj, alpha)
    mask = (nets.pooled_alpha(alpha) >= 0.01).float()  # patches with ≥1% projected alpha
    t = target[:, None, None, None].expand_as(logits)
    bce = (F.binary_cross_entropy_with_logits(logits, t, reduction="none") * mask).sum() / mask.sum().clamp_min(1)
    acc = (((logits > 0).float() == t).float() * mask).sum() / mask.sum().clamp_min(1)
    return bce, {"patch_acc": acc.item()}


# --- the loop --------------------------------------------------------------------------------

def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def train(stage: str, cfg: TrainConfig | None = None, *, root=None, runs: Path = RUNS, fresh: bool = False,
          command: str | None = None, evaluate_after: bool = True) -> dict:
    """Train one stage; returns its sidecar (with metrics when evaluated)."""
    cfg = cfg or DEFAULTS[stage]
    torch.manual_seed(cfg.seed)
    model = nets.build(stage)
    extra = ()
    if stage == "comparator":
        extra = (checkpoints.load("estimator", root), checkpoints.load("projector", root))
    loss_fn = {"direct": loss_direct, "direct-param": loss_direct_param, "estimator": loss_estimator,
               "projector": loss_projector, "comparator": loss_comparator}[stage]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state_path = runs / stage / "state.pt"
    start, elapsed = 0, 0.0
    if state_path.exists() and not fresh:
        state = torch.load(state_path, weights_only=True)
        if state["config"] == asdict(cfg):
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            start, elapsed = state["step"], state["elapsed"]
            print(f"resuming {stage} at step {start}")
    log_path = runs / stage / "log.jsonl"
    state_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time() - elapsed
    model.train()
    bar = tqdm(range(start, cfg.steps), desc=f"train {stage}", initial=start, total=cfg.steps)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        loss, logs = loss_fn(model, cfg, step, extra) if extra else loss_fn(model, cfg, step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            row = {"step": step, "loss": round(loss.item(), 5), **{k: round(v, 5) for k, v in logs.items()},
                   "seconds": round(time.time() - t0, 1)}
            bar.set_postfix({k: v for k, v in row.items() if k not in ("step", "seconds")})
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1,
                        "elapsed": time.time() - t0, "config": asdict(cfg)}, state_path)
    wall = time.time() - t0
    checkpoints.freeze(model)
    info = {"command": command or "python -m aimeye train " + stage, "seed": cfg.seed,
            "train_config": asdict(cfg), "wall_time_s": round(wall, 1),
            "device": "cpu", "torch_threads": torch.get_num_threads()}
    sidecar = checkpoints.save(stage, model, info, root)
    if evaluate_after:
        sidecar = evaluate.stage_metrics_to_sidecar(stage, root)
    state_path.unlink(missing_ok=True)
    return sidecar


def main_command(argv=None) -> str:
    return "python -m aimeye " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
