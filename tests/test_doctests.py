"""Every docstring example runs (under the suite's warnings-as-errors settings)."""

import doctest
import importlib

import pytest

MODULES = [
    "torchrl_mst.modules.blocks",
    "torchrl_mst.objectives.mrq",
    "torchrl_mst.data.replay",
    "torchrl_mst.diagnostics",
    "torchrl_mst.sparse.apply",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
