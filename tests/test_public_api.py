from __future__ import annotations

import importlib
import pkgutil

import glucosestream


def isort_order(names):
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then functions."""
    return sorted(names, key=lambda n: (0 if n.isupper() else 1 if n[0].isupper() else 2, n))


def test_all_is_sorted_and_every_name_exists():
    assert list(glucosestream.__all__) == isort_order(glucosestream.__all__)
    for name in glucosestream.__all__:
        assert hasattr(glucosestream, name), name


def test_every_module_all_is_sorted_and_resolves():
    for info in pkgutil.walk_packages(glucosestream.__path__, "glucosestream."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        if names is None:
            continue
        assert list(names) == isort_order(names), info.name
        for name in names:
            assert hasattr(module, name), f"{info.name}.{name}"
