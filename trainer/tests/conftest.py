"""Shared test setup: 2 CPU threads (the CI machine has 2 cores) and fixed seeds per test."""

import random

import numpy as np
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def single_thread():
    """For modules of tiny tensors: one intra-op thread is as fast when idle and avoids the
    thread hand-off stalls seen when the 2 cores are shared (e.g. suites running in parallel)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
