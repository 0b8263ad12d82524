"""The exception tree is the one errors.py draws (issue 14): every error the project raises on
purpose is defined there, with its HTTP status and whether trying again may help."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import glucosestream.errors as errors
from glucosestream.config import EngineSettings
from glucosestream.engines import open_engine

SRC = Path(errors.__file__).parent


def test_every_error_class_is_drawn_in_the_module_docstring():
    classes = [
        name
        for name, value in vars(errors).items()
        if inspect.isclass(value) and issubclass(value, errors.GlucoseStreamError)
    ]
    assert sorted(classes) == sorted(errors.__all__)
    for name in classes:
        assert f" {name} " in errors.__doc__, name


def test_errors_defined_elsewhere_before_issue_14_now_come_from_errors():
    from glucosestream.dashboard import auth
    from glucosestream.lake import lock, privacy_ledger

    assert (auth.LoginRequired, privacy_ledger.BudgetExceeded, lock.RunInProgress) == (
        errors.LoginRequired,
        errors.BudgetExceeded,
        errors.RunInProgress,
    )


def test_no_other_module_defines_an_error_class_of_the_tree():
    names = set(errors.__all__)
    elsewhere = [
        f"{path.relative_to(SRC)}: class {node.name}"
        for path in SRC.rglob("*.py")
        if path.name != "errors.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef) and node.name in names
    ]
    assert elsewhere == []
    assert not issubclass(errors.BudgetExceeded, errors.LakeError)  # the lake did not fail
    assert (errors.BudgetExceeded.status, errors.BudgetExceeded.retryable) == (409, False)
    assert (errors.RunInProgress.status, errors.RunInProgress.retryable) == (409, True)
    assert issubclass(errors.LoginRequired, errors.AuthError)


def test_an_engine_that_is_not_available_says_so():
    with pytest.raises(errors.EngineUnavailable, match="GLUCOSESTREAM_ENGINE__NAME=duckdb"):
        open_engine(EngineSettings(name="spark"))
