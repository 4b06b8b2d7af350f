"""Sessions: tests (the whole suite), lint, typecheck, bench, demo, fuzz.

``nox`` alone runs tests, lint and typecheck: what CI runs.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

SOURCES = ["src", "tests", "benchmarks", "noxfile.py"]


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, PostgreSQL and S3 contract tests included."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", *SOURCES)
    session.run("ruff", "format", "--check", *SOURCES)


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the library, the tests and the benchmarks."""
    session.install("-e", ".[typecheck]")
    session.run("mypy", "--strict", *SOURCES[:-1])
