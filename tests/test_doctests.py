"""Every docstring example in the package runs and says what the code does."""

import doctest
import importlib
import pkgutil

import pytest

import sltd

MODULES = sorted(m.name for m in pkgutil.iter_modules(sltd.__path__, "sltd."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
