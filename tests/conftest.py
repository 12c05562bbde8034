"""Fixtures shared by every test folder."""

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run a test on one torch thread, then restore the count.

    Tiny models run fastest on one thread; on a shared 2-core box two threads can be
    100x slower. Modules opt in with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
