"""The test tiers' lists in conftest.py name real test modules and functions, so a renamed test
does not slip silently into the fast tier (or a deleted one linger in a list)."""

from __future__ import annotations

import ast
from pathlib import Path

from .conftest import HEAVY_MODULES, HEAVY_TESTS, SLOW_MODULES

TESTS = Path(__file__).parent


def _test_functions(module: str) -> set[str]:
    tree = ast.parse((TESTS / module).read_text(encoding="utf-8"))
    return {
        node.name
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_the_listed_modules_exist():
    listed = HEAVY_MODULES | SLOW_MODULES | HEAVY_TESTS.keys()
    assert sorted(m for m in listed if not (TESTS / m).is_file()) == []


def test_the_listed_heavy_tests_exist_outside_the_heavy_modules():
    missing = {
        module: sorted(names - _test_functions(module))
        for module, names in HEAVY_TESTS.items()
        if names - _test_functions(module)
    }
    assert missing == {}
    assert not HEAVY_TESTS.keys() & (HEAVY_MODULES | SLOW_MODULES)
