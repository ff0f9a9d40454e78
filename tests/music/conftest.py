"""Music tests run their tiny models on one thread: on a busy machine, spinning OpenMP threads made the
overfit test 40x slower, and tiny LSTMs gain nothing from more threads."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
