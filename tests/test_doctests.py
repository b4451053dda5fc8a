"""Every module's docstring examples run as tests, imported by their one package name
(``basketflow.flows.live``, not ``flows.live``), so an example shows what a user types."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import basketflow


def _modules() -> list[str]:
    """Every module of the package, by its dotted name."""
    return sorted(info.name for info in pkgutil.walk_packages(basketflow.__path__, "basketflow."))


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                             verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
