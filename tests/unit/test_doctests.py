"""The examples in the docstrings of config/, streams/ and producers/ are tests too.

One case per module found on disk: the module is imported (an import error is a
failure), then every doctest in its module, class, method and function
docstrings runs with ``ELLIPSIS | NORMALIZE_WHITESPACE``; ``# doctest: +SKIP``
is honoured. A failure shows doctest's own report.
"""

from __future__ import annotations

import doctest
import importlib
import traceback
from types import ModuleType

import pytest

from tests.unit.support_architecture import discover

OPTIONFLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

MODULE_NAMES = [module.name for module in discover()]


def run_doctests(module: ModuleType) -> tuple[doctest.TestResults, str]:
    """Run every doctest found in ``module``; return the results and doctest's report."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=OPTIONFLAGS)
    report: list[str] = []
    for test in sorted(finder.find(module, module.__name__), key=lambda t: (t.lineno or 0, t.name)):
        runner.run(test, out=report.append)
    return doctest.TestResults(runner.failures, runner.tries), "".join(report)


def test_modules_are_found() -> None:
    assert "config" in MODULE_NAMES and "streams" in MODULE_NAMES and "producers" in MODULE_NAMES


@pytest.mark.parametrize("name", MODULE_NAMES)
def test_doctests(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except (Exception, SystemExit):  # noqa: BLE001 - any import failure fails this case
        module, failure = None, traceback.format_exc()
    if module is None:
        pytest.fail(f"{name} failed to import:\n{failure}", pytrace=False)
    try:
        results, report = run_doctests(module)
    except ValueError as error:  # doctest's parser: a malformed example or directive
        results, report = None, f"{name} has a malformed doctest: {error}"
    if results is None:
        pytest.fail(report, pytrace=False)
    if results.failed:
        pytest.fail(
            f"{results.failed} of {results.attempted} doctest examples failed in {name}:\n{report}",
            pytrace=False,
        )


def test_run_doctests_reports_a_failing_example() -> None:
    fake = ModuleType("fake_doctested")
    fake.__doc__ = """Fake.

    >>> 1 + 1
    3
    >>> print(list(range(20)))
    [0, 1, ..., 19]
    >>> print("a   b")
    a b
    >>> explode()  # doctest: +SKIP
    """
    results, report = run_doctests(fake)
    assert results == doctest.TestResults(failed=1, attempted=3)
    assert "Expected:\n    3\nGot:\n    2" in report


def test_run_doctests_rejects_a_malformed_directive() -> None:
    fake = ModuleType("fake_malformed")
    fake.__doc__ = """Fake.

    >>> explode()  # doctest: +SKIP (not an option)
    """
    with pytest.raises(ValueError, match="invalid option"):
        run_doctests(fake)
