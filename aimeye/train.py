"""One plain training loop for every stage (nanoGPT style), on one process or many.

A stage is a model, a batch source and a loss. ``python -m aimeye train <stage>``
trains it from scratch (or resumes ``runs/<stage>/state.pt``), evaluates it on
test scenes and writes ``checkpoints/<stage>.safetensors`` with its sidecar.

* Data: every step draws **fresh** scenes from the *train* backgrounds (about
  5,000 scenes/s on one core, so the data never repeats and never runs out).
  Step ``k``'s global batch is a pure function of (seed, k); under torchrun,
  rank r trains on its contiguous slice of that same batch and DDP averages the
  gradients, so 1 process and K processes see the same samples.
* Scale: ``torchrun --nproc_per_node K -m aimeye train all --device cuda --steps S
  --batch B`` reaches the paper's scale (e.g. ``--batch 128 --steps 40000``).
"""

from __future__ import annotations

import json
import math
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import adversarial_training as adv
from . import checkpoints, evaluate, nets, runtime
from .paper import N_OBJECTS, NONE
from .scenes import generate, projector_targets

RUNS = Path("runs")


@dataclass(frozen=True)
class TrainConfig:
    steps: int
    batch: int = 128  # global batch, split across ranks
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    seed: int = 0
    ckpt_every: int = 200
    log_every: int = 50


DEFAULTS = {
    "direct": TrainConfig(steps=700),
    "direct-param": TrainConfig(steps=700),
    "estimator": TrainConfig(steps=1800),
    "projector": TrainConfig(steps=1800, batch=64),
    "comparator": TrainConfig(steps=3000, batch=48),
    "direct-at": TrainConfig(steps=400),
    "estimator-at": TrainConfig(steps=500, lr=5e-4, warmup=20),
    "comparator-at": TrainConfig(steps=400, batch=32, lr=5e-4, warmup=20),
}


def _rng(seed: int, step: int, stream: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 1_000_003 + step * 7 + stream)


def scene_batch(cfg: TrainConfig, step: int, ranks: runtime.Ranks, classes=(0, 1, 2, 3), stream: int = 0):
    """This rank's slice of step ``step``'s global batch of fresh train scenes."""
    lo = (step * 4 + stream) * cfg.batch  # disjoint index ranges per (step, stream)
    idx = np.arange(lo, lo + cfg.batch)[list(ranks.slice(cfg.batch))]
    s = generate(idx, "train", cfg.seed, classes=classes)
    d = ranks.device
    return s.images.to(d), s.labels.to(d), s.rotations.to(d)


# --- stages: batch(cfg, step, ranks, frozen) -> tuple; loss(model, batch) -> (loss, logs) ----------

def loss_direct(model, batch):
    x, y, _ = batch
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    return loss, {"acc": (logits.argmax(1) == y).float().mean().item()}


def loss_direct_param(model, batch):
    x, y, rot = batch
    logits, params = model(x)
    mask = (y != NONE).float()[:, None]  # the parameters of none images are undefined
    mse = ((params - rot) ** 2 * mask).sum() / mask.sum().clamp_min(1) / 3
    ce = F.cross_entropy(logits, y)
    return ce + 100 * mse, {"ce": ce.item(), "rot_rmse": mse.sqrt().item()}


def loss_estimator(model, batch):
    x, y, rot = batch
    pred = model(x, y, straight_through=True)
    mse = F.mse_loss(pred, rot)
    return 100 * mse, {"rot_mae": (pred - rot).abs().mean().item()}


def batch_projector(cfg, step, ranks, frozen=None):
    rot, cls, img, alpha = (t[list(ranks.slice(cfg.batch))].to(ranks.device)
                            for t in projector_targets(cfg.batch, cfg.seed, step))
    return rot, cls, img, alpha


def loss_projector(model, batch):
    rot, cls, img, alpha = batch
    p_img, p_alpha = model(rot, cls)
    l1 = (p_img - img).abs().mean()
    bce = F.binary_cross_entropy(p_alpha.clamp(1e-6, 1 - 1e-6), alpha)
    # soft Dice per image: thin parts (wings, tail, flippers) weigh as much as bulk
    inter = (p_alpha * alpha).flatten(1).sum(1)
    dice = 1 - (2 * inter + 1) / (p_alpha.flatten(1).sum(1) + alpha.flatten(1).sum(1) + 1)
    return 10 * l1 + bce + dice.mean(), {"img_mae": l1.item(), "alpha_bce": bce.item(), "dice": dice.mean().item()}


def _pair_scenes(cfg, step, ranks):
    """Half *same* scenes (objects), half *different* candidates (half none, half objects)."""
    half = cfg.batch // 2
    xs, ys, _ = scene_batch(replace(cfg, batch=half), step, ranks, classes=(0, 1, 2), stream=0)
    xd, yd, _ = scene_batch(replace(cfg, batch=cfg.batch - half), step, ranks, classes=(3, 0, 3, 1, 3, 2), stream=1)
    return xs, ys, xd, yd


def comparator_pairs(cfg, step, ranks):
    """Query/class pairs (the paper's §3.1 recipe): *same* pairs are objects with their own class,
    *different* pairs none scenes with a random class or objects with a random wrong class.
    Returns (images, classes, target 1 = same / 0 = different)."""
    xs, ys, xd, yd = _pair_scenes(cfg, step, ranks)
    g = _rng(cfg.seed + 1, step, 0)
    shift = torch.randint(1, N_OBJECTS, (len(yd),), generator=g).to(yd.device)
    any_cls = torch.randint(0, N_OBJECTS, (len(yd),), generator=g).to(yd.device)
    wrong = torch.where(yd == NONE, any_cls, (yd + shift) % N_OBJECTS)
    target = torch.cat([torch.ones(len(xs)), torch.zeros(len(xd))]).to(ranks.device)
    return torch.cat([xs, xd]), torch.cat([ys, wrong]), target


def _project(frozen, x, cls):
    estimator, projector = frozen
    with torch.no_grad():
        return projector(estimator(x, cls), cls)


def batch_comparator(cfg, step, ranks, frozen):
    """Same pairs, plus every *different* candidate drawn for all three classes through the frozen
    stages 1–2; the loss trains on the hardest one (online hard-negative mining)."""
    xs, ys, xd, yd = _pair_scenes(cfg, step, ranks)
    ps, als = _project(frozen, xs, ys)
    cand = [_project(frozen, xd, torch.full_like(yd, k)) for k in range(N_OBJECTS)]
    valid = torch.stack([yd != k for k in range(N_OBJECTS)], 1)  # a none scene may take any class
    return xs, ps, als, xd, torch.stack([c[0] for c in cand], 1), torch.stack([c[1] for c in cand], 1), valid


def batch_comparator_at(cfg, step, ranks, frozen):
    return (*comparator_pairs(cfg, step, ranks), *frozen)


def hardest_negatives(model, xd, proj, alpha, valid):
    """For each different-pair query, the wrong class whose projection the comparator now scores
    highest: the pairs it finds hardest to reject (e.g. a monkey drawn over by an aeroplane)."""
    with torch.no_grad():
        scores = torch.stack([nets.drawing_score(model, xd, proj[:, k], alpha[:, k]) for k in range(N_OBJECTS)], 1)
    pick = scores.masked_fill(~valid, -1.0).argmax(1)
    rows = torch.arange(len(xd), device=xd.device)
    return proj[rows, pick], alpha[rows, pick]


def loss_comparator(model, batch):
    """The paper's patch classification: BCE on every stride-1 patch that the score judges
    (pooled alpha ≥ nets.MIN_PATCH_COVER), each patch taking its pair's label; the different
    pairs are the hardest of the candidate classes.

    Two changes from a plain mean over patches (README, "Differences from the paper"): the patch
    BCE is averaged per pair, so a thin aeroplane with a third of a monkey's covered patches weighs
    as much as the monkey, and a BCE on each pair's score (the quantity θ thresholds) is added."""
    xs, ps, als, xd, pd, ad, valid = batch
    pd, ad = hardest_negatives(getattr(model, "module", model), xd, pd, ad, valid)
    x, proj, alpha = torch.cat([xs, xd]), torch.cat([ps, pd]), torch.cat([als, ad])
    target = torch.cat([torch.ones(len(xs)), torch.zeros(len(xd))]).to(x.device)
    logits = model(x, proj, alpha)
    mask = (nets.patch_weights(nets.pooled_alpha(alpha)) > 0).float()
    t = target[:, None, None, None].expand_as(logits)
    per_pair = mask.flatten(1).sum(1).clamp_min(1)
    bce = ((F.binary_cross_entropy_with_logits(logits, t, reduction="none") * mask).flatten(1).sum(1) / per_pair).mean()
    acc = (((logits > 0).float() == t).float() * mask).sum() / mask.sum().clamp_min(1)
    score = nets.weighted_score(torch.sigmoid(logits), nets.pooled_alpha(alpha)).clamp(1e-6, 1 - 1e-6)
    score_bce = F.binary_cross_entropy(score, target)
    return bce + score_bce, {"patch_acc": acc.item(), "score_bce": score_bce.item()}


def _scene_source(classes=(0, 1, 2, 3)):
    return lambda cfg, step, ranks, frozen=None: scene_batch(cfg, step, ranks, classes)


@dataclass(frozen=True)
class Stage:
    batch: Callable  # (cfg, step, ranks, frozen) -> this rank's batch
    loss: Callable  # (model, batch) -> (loss, logs)
    needs: tuple[str, ...] = ()  # frozen shipped stages the batches are made with
    init: str | None = None  # fine-tune from this shipped stage instead of from scratch


STAGES = {
    "direct": Stage(_scene_source(), loss_direct),
    "direct-param": Stage(_scene_source(), loss_direct_param),
    "estimator": Stage(_scene_source((0, 1, 2)), loss_estimator),
    "projector": Stage(batch_projector, loss_projector),
    "comparator": Stage(batch_comparator, loss_comparator, ("estimator", "projector")),
    # adversarial training (see adversarial_training.py)
    "direct-at": Stage(_scene_source(), adv.loss_direct_at),
    "estimator-at": Stage(_scene_source((0, 1, 2)), adv.loss_estimator_at, init="estimator"),
    "comparator-at": Stage(batch_comparator_at, adv.loss_comparator_at, ("estimator-at", "projector"),
                           init="comparator"),
}


# --- the loop --------------------------------------------------------------------------------

def lr_at(cfg: TrainConfig, step: int) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * t))


def train(stage: str, cfg: TrainConfig | None = None, *, root=None, runs: Path = RUNS, fresh: bool = False,
          command: str | None = None, evaluate_after: bool = True, model_config: dict | None = None,
          ranks: runtime.Ranks | None = None) -> dict:
    """Train one stage; returns its sidecar (with metrics when evaluated). Under torchrun every rank
    calls this; rank 0 writes the state, the checkpoint and the sidecar."""
    cfg = cfg or DEFAULTS[stage]
    ranks = ranks or runtime.Ranks()
    if cfg.batch % ranks.world:
        raise ValueError(f"--batch {cfg.batch} must be divisible by the {ranks.world} processes")
    torch.manual_seed(cfg.seed)
    spec = STAGES[stage]
    # provenance for the sidecar: the weights this run starts from and the frozen stages it trains against
    lineage = {"trained_against": checkpoints.recorded_shas(spec.needs, root)} if spec.needs else {}
    if spec.init and model_config is None:
        model = checkpoints.load(spec.init, root).requires_grad_(True)
        lineage["initialised_from"] = checkpoints.recorded_shas((spec.init,), root)
    else:
        model = nets.build(stage, model_config)
    model = model.to(ranks.device)
    frozen = tuple(checkpoints.load(s, root).to(ranks.device) for s in spec.needs)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state_path, log_path = runs / stage / "state.pt", runs / stage / "log.jsonl"
    start, elapsed = 0, 0.0
    if state_path.exists() and not fresh:
        state = torch.load(state_path, weights_only=True, map_location=ranks.device)
        if state["config"] == asdict(cfg) and state.get("world", 1) == ranks.world:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["opt"])
            start, elapsed = state["step"], state["elapsed"]
            if ranks.main:
                print(f"resuming {stage} at step {start}")
    step_model = DistributedDataParallel(model) if ranks.distributed else model
    if ranks.main:
        state_path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.time() - elapsed
    model.train()
    bar = tqdm(range(start, cfg.steps), desc=f"train {stage}", initial=start, total=cfg.steps,
               disable=not ranks.main)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, step)
        loss, logs = spec.loss(step_model, spec.batch(cfg, step, ranks, frozen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ranks.main and (step % cfg.log_every == 0 or step == cfg.steps - 1):
            row = {"step": step, "loss": round(loss.item(), 5), **{k: round(v, 5) for k, v in logs.items()},
                   "seconds": round(time.time() - t0, 1)}
            bar.set_postfix({k: v for k, v in row.items() if k not in ("step", "seconds")})
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        if ranks.main and (step + 1) % cfg.ckpt_every == 0 and step + 1 < cfg.steps:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step + 1, "world": ranks.world,
                        "elapsed": time.time() - t0, "config": asdict(cfg)}, state_path)
    wall = time.time() - t0
    model = checkpoints.freeze(model.cpu())
    sidecar = None
    if ranks.main:
        info = {"command": command or "python -m aimeye train " + stage, "seed": cfg.seed,
                "train_config": asdict(cfg), "wall_time_s": round(wall, 1), "device": str(ranks.device),
                "processes": ranks.world, "torch_threads": torch.get_num_threads(),
                "device_name": device_name(ranks.device), **lineage}
        sidecar = checkpoints.save(stage, model, info, root)
        if evaluate_after:
            sidecar = evaluate.stage_metrics_to_sidecar(stage, root)
        state_path.unlink(missing_ok=True)
    if ranks.distributed:
        sidecar = runtime.gather(sidecar, ranks)[0]  # every rank returns rank 0's sidecar
    return sidecar


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()


def main_command(argv=None) -> str:
    return "python -m aimeye " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
