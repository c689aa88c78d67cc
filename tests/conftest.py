"""Shared fixtures: untrained networks written as real checkpoints, so tests never depend on
the shipped ones (which may be retraining) unless they say so."""

import pytest
import torch

from aimeye import checkpoints, nets


def write_fake_checkpoints(root):
    torch.manual_seed(0)
    for stage in checkpoints.STAGES:
        checkpoints.save(stage, nets.build(stage), {"command": "test", "seed": 0, "wall_time_s": 0}, root=root)
    return root


@pytest.fixture(scope="session")
def fake_root(tmp_path_factory):
    return write_fake_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture
def one_torch_thread():
    """Toy-sized tensors gain nothing from threads, and the CPU may be shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
