"""Shared pytest set-up: the markers the test files use, and a one-thread fixture for training tests."""

import pytest
import torch


@pytest.fixture()
def one_thread():
    """One intra-op thread: two pytest-xdist workers and their child processes share two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    config.addinivalue_line("markers", "subprocess: runs training in child processes (own ports and directories; "
                                       "safe under pytest -n)")
