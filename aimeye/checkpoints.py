"""Checkpoint I/O: safetensors weights + a JSON sidecar, sha256-verified, no pickle.

``checkpoints/<stage>.safetensors`` holds the weights (fp16 for large float
tensors, fp32 for BatchNorm statistics and small tensors); ``<stage>.json``
holds the architecture config, the exact training command, the seed, the wall
time, the metrics from the repo's own evaluation and the sha256 of the weights.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from . import nets
from .paper import STAGES

__all__ = ["STAGES", "CheckpointError", "Models", "freeze", "load", "load_models", "paths", "read_sidecar", "save",
           "sha256"]

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
FP16_MIN_NUMEL = 4096


class CheckpointError(RuntimeError):
    """A checkpoint is missing, corrupt or does not match its sidecar."""


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def paths(stage: str, root: Path | str | None = None) -> tuple[Path, Path]:
    root = Path(root) if root else DEFAULT_DIR
    return root / f"{stage}.safetensors", root / f"{stage}.json"


def save(stage: str, model: torch.nn.Module, info: dict, root: Path | str | None = None) -> dict:
    """Write weights and sidecar; returns the sidecar dict."""
    wpath, jpath = paths(stage, root)
    wpath.parent.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for k, v in model.state_dict().items():
        v = v.detach().contiguous()
        if v.is_floating_point() and v.numel() >= FP16_MIN_NUMEL:
            v = v.half()
        tensors[k] = v.contiguous()
    save_file(tensors, str(wpath))
    sidecar = {"stage": stage, "config": nets.config_dict(model), **info, "sha256": sha256(wpath)}
    jpath.write_text(json.dumps(sidecar, indent=2) + "\n")
    return sidecar


def read_sidecar(stage: str, root: Path | str | None = None) -> dict:
    _, jpath = paths(stage, root)
    if not jpath.exists():
        raise CheckpointError(f"no checkpoint for '{stage}' in {jpath.parent}: "
                              f"train it with `python -m aimeye train {stage}`")
    try:
        return json.loads(jpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"sidecar {jpath} is corrupt ({e}); retrain with "
                              f"`python -m aimeye train {stage}`") from e


def recorded_shas(stages, root: Path | str | None = None) -> dict[str, str | None]:
    """``{stage: the sha256 its sidecar in root records}``: what a result or a sidecar names as the
    weights it was made with."""
    return {s: read_sidecar(s, root).get("sha256") for s in stages}


def load(stage: str, root: Path | str | None = None) -> torch.nn.Module:
    """A stage's network in eval mode with frozen parameters, after checking its sha256."""
    wpath, _ = paths(stage, root)
    sidecar = read_sidecar(stage, root)
    hint = f"retrain with `python -m aimeye train {stage}`"
    if not wpath.exists():
        raise CheckpointError(f"weights {wpath} are missing; {hint}")
    if sha256(wpath) != sidecar.get("sha256"):
        raise CheckpointError(f"weights {wpath} do not match the sha256 in their sidecar "
                              f"(corrupt or replaced); {hint}")
    model = nets.build(stage, sidecar.get("config"))
    try:
        state = load_file(str(wpath))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (SafetensorError, RuntimeError, OSError) as e:
        raise CheckpointError(f"could not read {wpath}: {e}; {hint}") from e
    return freeze(model)


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    model.eval()
    model.requires_grad_(False)
    return model


@dataclass
class Models:
    """The shipped networks, shared read-only: ``direct(x)``, ``direct_param(x)``,
    ``triple(x)``, ``triple.verdict(x, θ)``, ``triple.explain(x)``; and, where their
    checkpoints ship, the adversarially trained ``direct_at`` and ``triple_at``."""

    direct: nets.DirectClassifier
    direct_param: nets.DirectParam
    triple: nets.TripleStaged
    root: Path
    direct_at: nets.DirectClassifier | None = None
    triple_at: nets.TripleStaged | None = None

    def sidecar(self, stage: str) -> dict:
        return read_sidecar(stage, self.root)


_CACHE: dict[Path, Models] = {}
_LOCK = threading.Lock()


def _has(stage: str, root: Path) -> bool:
    return all(p.exists() for p in paths(stage, root))


def load_models(path: Path | str | None = None) -> Models:
    """Load (once per directory) every shipped checkpoint into eval-mode, frozen models."""
    root = Path(path) if path else DEFAULT_DIR
    with _LOCK:
        if root not in _CACHE:
            triple = nets.TripleStaged(load("estimator", root), load("projector", root), load("comparator", root))
            models = Models(load("direct", root), load("direct-param", root), freeze(triple), root)
            if _has("direct-at", root):
                models.direct_at = load("direct-at", root)
            if _has("estimator-at", root) and _has("comparator-at", root):
                models.triple_at = freeze(nets.TripleStaged(load("estimator-at", root), triple.projector,
                                                            load("comparator-at", root)))
            _CACHE[root] = models
        return _CACHE[root]
