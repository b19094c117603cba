import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The test tensors are tiny: a second OpenMP thread only adds barrier waits, which cost
    # ~10x on a loaded 2-core machine. Restore the session setting afterwards.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
