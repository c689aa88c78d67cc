"""The paper's attack experiments (Figs 4–6) and the robust-accuracy evaluation.

Modules: :mod:`.testset` (test images and the correctly-classified filter),
:mod:`.runs` (the iterated-FGSM runs), :mod:`.summary` (their statistics), :mod:`.robust` (robust
accuracy vs ε, per-image worst case over :mod:`.suite`), :mod:`.stats` (box
statistics with censoring, Wilson and bootstrap intervals), :mod:`.schema` (the
one on-disk schema) and :mod:`.results` (its I/O; :func:`list_runs` and :func:`load_run` for the app),
:mod:`.report` (README; ranks come from :mod:`aimeye.runtime`), :mod:`.main` (:func:`run`).
Figures live in :mod:`aimeye.figures.experiments`, the command line in
:mod:`aimeye.cli`.
"""

from ..runtime import DeviceError
from .main import by_class, merge, run
from .results import (
    SCHEMA,
    Run,
    RunInfo,
    format_median,
    list_runs,
    load_gallery,
    load_run,
    other_weights,
    read_json,
    write_csv,
)
from .robust import EPS_255
from .stats import box_stats, wilson_ci
from .summary import summarise
from .testset import GOALS, NETWORKS, TestSet, load_test_set

__all__ = ["EPS_255", "GOALS", "NETWORKS", "SCHEMA", "DeviceError", "Run", "RunInfo", "TestSet", "box_stats", "by_class",
           "format_median", "list_runs", "load_gallery", "load_run", "load_test_set", "merge", "other_weights",
           "read_json", "run", "summarise", "wilson_ci", "write_csv"]
