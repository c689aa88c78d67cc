"""Where the app finds its checkpoints, and what to say when something is missing."""

from __future__ import annotations

import os
from pathlib import Path

from .. import checkpoints

TRAIN_COMMAND = "python -m aimeye train all"
EVALUATE_COMMAND = "python -m aimeye evaluate"
EXPERIMENT_COMMAND = "python -m aimeye experiment all --n-per-class 100"


def checkpoint_dir() -> Path:
    """``$AIMEYE_CHECKPOINTS`` or the repo's ``checkpoints/``."""
    env = os.environ.get("AIMEYE_CHECKPOINTS", "").strip()
    return Path(env).expanduser().resolve() if env else checkpoints.DEFAULT_DIR


def load_models(root: Path | str | None = None) -> checkpoints.Models:
    """The shared, frozen models. Raises :class:`aimeye.CheckpointError` when one is missing or broken."""
    return checkpoints.load_models(Path(root) if root else checkpoint_dir())


def checkpoint_message(err: Exception) -> str:
    """A friendly message for a missing or broken checkpoint."""
    return (f"The networks could not be loaded: {err}\n\n"
            f"Train all of them with `{TRAIN_COMMAND}` (or point `AIMEYE_CHECKPOINTS` at a checkpoint folder).")


def load_metrics(root: Path | str | None = None) -> dict | None:
    """``metrics.json`` (Table 1 and the θ sweep, written by ``python -m aimeye evaluate``), or None."""
    from ..experiments import read_json

    return read_json(Path(root or checkpoint_dir()) / "metrics.json")
