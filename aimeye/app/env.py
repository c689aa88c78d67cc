"""Where the app finds its checkpoints, how it runs torch, and what to say when something is missing."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .. import checkpoints, runtime

TRAIN_COMMAND = "python -m aimeye train all"
EVALUATE_COMMAND = "python -m aimeye evaluate"
EXPERIMENT_COMMAND = "python -m aimeye experiment all --n-per-class 100"
SWITCH_INTERVAL_S = 0.001  # Python's default is 0.005; see configure_torch


def checkpoint_dir() -> Path:
    """``$AIMEYE_CHECKPOINTS`` or the repo's ``checkpoints/``."""
    env = os.environ.get("AIMEYE_CHECKPOINTS", "").strip()
    return Path(env).expanduser().resolve() if env else checkpoints.DEFAULT_DIR


def load_models(root: Path | str | None = None) -> checkpoints.Models:
    """The shared, frozen models. Raises :class:`aimeye.CheckpointError` when one is missing or broken."""
    return checkpoints.load_models(Path(root) if root else checkpoint_dir())


def configure_torch(threads: int | None = None) -> int:
    """Threads for the app: torch's intra-op threads from :func:`aimeye.runtime.set_threads`
    (``threads``, else ``$AIMEYE_THREADS``, else 1), and a short GIL switch interval.

    The app runs one 64×64 image at a time, often for several sessions at once; one
    thread per operation avoids OpenMP oversubscription, which on a busy 2-core
    machine made one forward pass 30× slower. While an attack plays, its steps run in a
    background thread whose hundreds of small torch calls each give up and take back the
    GIL; with Python's default 5 ms switch interval, every one of them could wait for the
    page's redraw. Returns the thread count set."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    return runtime.set_threads(threads)


def checkpoint_message(err: Exception) -> str:
    """A friendly message for a missing or broken checkpoint."""
    return (f"The networks could not be loaded: {err}\n\n"
            f"Train all of them with `{TRAIN_COMMAND}` (or point `AIMEYE_CHECKPOINTS` at a checkpoint folder).")


def load_metrics(root: Path | str | None = None) -> dict | None:
    """``metrics.json`` (Table 1 and the θ sweep, written by ``python -m aimeye evaluate``), or None."""
    from ..experiments import read_json

    return read_json(Path(root or checkpoint_dir()) / "metrics.json")
