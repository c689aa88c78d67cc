"""The distributed path, as researchers launch it: ``torchrun`` with 2 gloo processes on the CPU.

One launch does what two separate ones would (a Python start with torch costs seconds on 2 cores):
each rank trains the toy comparator under DDP, then runs a whole toy experiment (FGSM races,
false negatives, gallery, robust table) sharded over the ranks. The parent process runs the same
two jobs alone, on one thread like each rank, and the results must agree. The ranks also report
whether Streamlit was ever imported: the library the app calls must run headless.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from toys import CFG, TOY, tiny, toy_frozen_stages

from aimeye import checkpoints, experiments, train

TESTS = Path(__file__).resolve().parent
WORKER = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import aimeye.app.live, aimeye.app.session, aimeye.app.tables, aimeye.app.uploads, aimeye.figures.app
    from aimeye import runtime, train
    from toys import tiny
    root, toy, cfg = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
    ranks = runtime.start("cpu", threads=1)
    train.train("comparator", train.TrainConfig(**cfg), root=root, runs=root / "runs", evaluate_after=False,
                model_config=toy, ranks=ranks)
    tiny("all", root / "experiment")  # joins the same process group, and leaves it at the end
    (root / f"streamlit-{ranks.rank}.json").write_text(json.dumps("streamlit" in sys.modules))
""")


@pytest.mark.slow
@pytest.mark.usefixtures("one_torch_thread")
def test_two_gloo_ranks_under_torchrun_train_and_experiment_as_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    toy_frozen_stages(one)
    shutil.copytree(one, two)  # the same frozen stages for both runs
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(two), json.dumps(TOY["comparator"]), json.dumps(asdict(CFG))],
                          env=env, timeout=180, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [json.loads((two / f"streamlit-{r}.json").read_text()) for r in (0, 1)] == [False, False]

    # Training. The comparator has no BatchNorm, so DDP over 2 ranks (each half of every global batch,
    # gradients averaged) is the same optimisation as 1 process; only the order of float sums differs.
    # Stages with BatchNorm normalise per rank on the CPU (SyncBatchNorm needs CUDA), a documented difference.
    train.train("comparator", CFG, root=one, runs=one / "runs", evaluate_after=False, model_config=TOY["comparator"])
    assert checkpoints.read_sidecar("comparator", two)["processes"] == 2
    a_net, b_net = checkpoints.load("comparator", one), checkpoints.load("comparator", two)
    for (k, a), (_, b) in zip(a_net.state_dict().items(), b_net.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4, msg=k)

    # The experiment: rank 0 gathers every rank's rows, in the order one process writes them.
    alone, ranked = tiny("all", one / "experiment"), experiments.load_run(two / "experiment")
    assert ranked.summary["meta"]["world_size"] == 2 and len(ranked.rows) == len(alone.rows)
    for a, b in zip(alone.rows, ranked.rows, strict=True):
        # scores come from forward passes over other batches: equal up to float rounding
        assert a["scores"] == pytest.approx(b["scores"], rel=1e-5, abs=1e-7)
        assert {k: v for k, v in a.items() if k != "scores"} == {k: v for k, v in b.items() if k != "scores"}
    assert alone.summary["filter"] == ranked.summary["filter"]
    assert alone.robust["broken"] == ranked.robust["broken"] and alone.robust["table"] == ranked.robust["table"]
    assert set(alone.gallery) == set(ranked.gallery)
    assert all(np.array_equal(alone.gallery[k], ranked.gallery[k]) for k in alone.gallery)
