"""Sessions: tests (the whole suite), lint, typecheck, bench, demo, explore, fuzz.

``nox`` alone runs tests, lint and typecheck: what CI runs.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_existing_virtualenvs = True

SOURCES = ["src", "tests", "benchmarks", "examples", "tools", "noxfile.py"]
# src/adapters installs as fetchcore.adapters (a package-dir mapping); setuptools' strict
# editable mode builds a tree of links that both the tests and mypy follow.
EDITABLE = ("--config-settings", "editable_mode=strict", "-e")


@nox.session
def tests(session: nox.Session) -> None:
    """The whole test suite, PostgreSQL and S3 contract tests included."""
    session.install(*EDITABLE, ".[test]")
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
    session.install(*EDITABLE, ".[typecheck]")
    session.run("mypy", "--strict", "-p", "fetchcore")  # the installed package, adapters included
    session.run("mypy", "--strict", "tests", "benchmarks", "examples", "tools")


BENCHMARKS = [
    ("benchmarks.fetch", "--stack", "production", "--blobs", "1000", "10000", "25000", "100000"),
    ("benchmarks.fetch", "--stack", "memory", "--blobs", "25000"),
    ("benchmarks.fetch", "--stack", "embedded", "--blobs", "25000"),
    ("benchmarks.sparse", "--stack", "production"),
    ("benchmarks.ingest", "--stack", "production"),
    ("benchmarks.planner",),
    ("benchmarks.round_trips", "--stack", "production"),
    ("benchmarks.memory_peak",),
    ("benchmarks.fetch_sweep",),
    ("benchmarks.sql_index",),
    ("benchmarks.object_store",),
    ("benchmarks.staged_push",),
    ("benchmarks.ingest_stream",),
    ("benchmarks.plot", "--stack", "production"),
    ("benchmarks.table", "--readme"),
]


@nox.session
def bench(session: nox.Session) -> None:
    """Every figure of SPEC §6, fetchcore and its baselines side by side; results in
    benchmarks/results/ (JSON) and the plot the README shows. ``nox -s bench -- planner``
    runs only the benchmarks whose module name contains "planner"."""
    session.install(*EDITABLE, ".[bench]")
    for module, *arguments in BENCHMARKS:
        if not session.posargs or any(word in module for word in session.posargs):
            session.run("python", "-m", module, *arguments)


@nox.session
def demo(session: nox.Session) -> None:
    """The demo: a synthetic repository ingested and fetched on the embedded default
    (``nox -s demo -- --index postgresql+asyncpg://… --store s3://…`` for another stack)."""
    session.install(*EDITABLE, ".[sql,s3,cli]")
    session.run("fetchcore", "demo", *session.posargs)


@nox.session
def explore(session: nox.Session) -> None:
    """The property tests with new random seeds and more examples (CI derandomizes them).
    A failure prints the example and a @reproduce_failure blob to turn into a test."""
    session.install(*EDITABLE, ".[test]")
    session.env["HYPOTHESIS_PROFILE"] = "explore"
    session.run(
        "pytest", "tests/unit", "-p", "no:cacheprovider", "-k", "not Fuzz", *session.posargs
    )


@nox.session
def fuzz(session: nox.Session) -> None:
    """A long fuzz of the push parser (FETCHCORE_FUZZ_EXAMPLES cases per fuzz test)."""
    session.install(*EDITABLE, ".[test]")
    session.env["FETCHCORE_FUZZ_EXAMPLES"] = session.env.get("FETCHCORE_FUZZ_EXAMPLES", "500000")
    session.run("pytest", "tests/unit/test_wire.py", "-k", "Fuzz", "-p", "no:cacheprovider")
