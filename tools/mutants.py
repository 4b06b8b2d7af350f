# ruff: noqa: E501  (the mutation table reads best one entry per line)
"""Plant known bugs one at a time and check that the tests catch each.

Each mutation is a textual patch (file, old text, new text) and the tests that
should catch it. For each, the tree is copied to a temporary directory, the patch
is applied there (the text must occur exactly once), and pytest runs the listed
tests against the copy. A mutation whose tests still pass has *survived*: a bug
the suite lets through.

    python tools/mutants.py            # every mutation
    python tools/mutants.py coalesce   # those whose name contains "coalesce"

Adding a mutation is one entry in MUTATIONS. The working tree is never modified.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 600


class Mutation(NamedTuple):
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


PLANNER = "src/fetchcore/planner.py"
CONTENT = "src/fetchcore/content.py"
WIRE = "src/fetchcore/wire.py"
INGEST = "src/fetchcore/ingest.py"
VALIDATION = "src/fetchcore/validation.py"
ERRORS = "src/fetchcore/errors.py"
GRAPH = "src/fetchcore/graph.py"
EXECUTOR = "src/fetchcore/executor.py"
T_PLANNER = ("tests/unit/test_planner.py",)
T_CONTENT = ("tests/unit/test_content.py", "tests/scenarios/test_ingest.py")
T_WIRE = ("tests/unit/test_wire.py", "tests/scenarios/test_ingest.py")
T_INGEST = ("tests/scenarios/test_ingest.py",)
T_ERRORS = ("tests/unit/test_errors.py", "tests/scenarios/test_ingest.py")
T_REQUESTS = ("tests/scenarios/test_hostile_requests.py", "tests/scenarios/test_ingest.py")
T_EXECUTOR = ("tests/unit/test_executor.py", "tests/unit/test_executor_limits.py")
T_LIMITS = (*T_EXECUTOR, "tests/scenarios/test_fetch_limits.py")
T_FAULTS = ("tests/unit/test_fault_properties.py",)

# fmt: off
MUTATIONS: list[Mutation] = [
    Mutation("coalesce gap at the limit no longer joins", PLANNER, "if gap > policy.coalesce_gap_bytes", "if gap >= policy.coalesce_gap_bytes", T_PLANNER),
    Mutation("whole-vs-ranged cost counts one request", PLANNER, "len(ranges) * policy.request_cost_bytes", "policy.request_cost_bytes", T_PLANNER),
    Mutation("whole read at equal cost not chosen", PLANNER, "if size + policy.request_cost_bytes <= ranged_cost", "if size + policy.request_cost_bytes < ranged_cost", T_PLANNER),
    Mutation("zstd frame declaring exactly the limit refused", CONTENT, "if declared > max_bytes:", "if declared >= max_bytes:", T_CONTENT),
    Mutation("identity content of exactly the limit refused", CONTENT, "if len(stored) > max_bytes:", "if len(stored) >= max_bytes:", T_CONTENT),
    Mutation("bytes after the zstd frame accepted", CONTENT, "if length != len(frame):", "if length > len(frame):", T_CONTENT),
    Mutation("decode budget never spent", CONTENT, "self.spent += len(content)", "pass", T_CONTENT),
    Mutation("ingest ignores the push decoded limit", INGEST, "decoded = budget.decode_verified(", "decoded = content.decode_verified(", T_INGEST),
    Mutation("commit cycles accepted", INGEST, "    _refuse_cycles(document)\n", "", T_INGEST),
    Mutation("cycle finder drops the first commit of a cycle", GRAPH, "return path[path.index(parent) :]", "return path[path.index(parent) + 1 :]", ("tests/unit/test_graph.py", *T_INGEST)),
    Mutation("commit/snapshot id with two contents accepted", WIRE, "if kept is not entry and _wire(kept) != _wire(entry):", "if False:", T_WIRE),
    Mutation("map key with two values accepted", WIRE, "if len(built) != len(pairs):", "if False:", T_WIRE),
    Mutation("branch with two heads accepted", WIRE, "if heads.setdefault(name, head) != head:", "if heads.update({name: head}):", T_WIRE),
    Mutation("parsing memory unbounded", WIRE, "if self.memory_left < 0:", "if False:", T_WIRE),
    Mutation("repo id length unchecked", VALIDATION, "0 < len(repo_id) <= MAX_REPO_ID_LENGTH", "0 < len(repo_id)", T_INGEST),
    Mutation("repo id with a lone surrogate accepted", VALIDATION, "and _is_utf8(repo_id)\n", "\n", T_INGEST),
    Mutation("want that is not a collection raises TypeError", VALIDATION, "except TypeError:  # not iterable", "except ZeroDivisionError:  # not iterable", T_REQUESTS),
    Mutation("error messages repeat ids verbatim", ERRORS, "shown = repr(text[:_MAX_ID_CHARS])", "shown = text", T_ERRORS),
    Mutation("error messages show every id", ERRORS, "ids[:_MAX_IDS_IN_MESSAGE]", "ids", T_ERRORS),
    Mutation("zstd pass-through skips decode and verify", EXECUTOR, "    written = needed.as_written[object_id]\n    try:\n", "    written = needed.as_written[object_id]\n    if encoding == 'zstd' and needed.accept_zstd:\n        return OutgoingBlob(written, stored, 'zstd')\n    try:\n", T_EXECUTOR),
    Mutation("streamed zstd pass-through skips verify", EXECUTOR, "                await self._off_loop(decoder.finish)", "                pass_through or await self._off_loop(decoder.finish)", T_EXECUTOR),
    Mutation("request timeout counts the wait for a slot (whole reads)", EXECUTOR, "        async with self.slots, self.budget.hold(expected):", "        async with asyncio.timeout(self.policy.request_timeout_s), self.slots, self.budget.hold(expected):", T_EXECUTOR),
    Mutation("request timeout counts the wait for a slot (ranged reads)", EXECUTOR, "        store = self.store\n        async with self.slots, self.budget.hold(end - start):", "        store = self.store\n        async with asyncio.timeout(self.policy.request_timeout_s), self.slots, self.budget.hold(end - start):", T_EXECUTOR),
    Mutation("one read attempt fewer than configured", EXECUTOR, "else self.policy.read_attempts\n", "else self.policy.read_attempts - 1\n", T_EXECUTOR),
    Mutation("legacy get_object asked with the canonical id", EXECUTOR, "self.store.get_object(written)", "self.store.get_object(object_id)", T_EXECUTOR),
    Mutation("all fail-over deleted", EXECUTOR, "        left = await gather.from_mpacks(left, locations)\n        if left:\n            with seen.phase(FetchPhase.READ):\n                left = await gather.from_legacy_keys(left, locations)\n", "        left = await gather.from_mpacks(left, {o: list(places)[:1] for o, places in locations.items()})\n", T_FAULTS),
    Mutation("fail-over to alternate mpacks deleted", EXECUTOR, "            left = [*plan.legacy, *plan.unresolved, *(o for part in failed for o in part)]", "            return [*plan.legacy, *plan.unresolved, *(o for part in failed for o in part)]", (*T_EXECUTOR, *T_FAULTS)),
    Mutation("fail-over to legacy keys deleted", EXECUTOR, "                left = await gather.from_legacy_keys(left, locations)\n", "                pass\n", T_FAULTS),
    Mutation("fetch decoded limit not enforced", EXECUTOR, "    except content.DecodeBudgetError:\n        # Every source", "    except ZeroDivisionError:\n        # Every source", T_LIMITS),
    Mutation("fetch decoded limit falls back to other sources", EXECUTOR, "        raise FetchTooLargeError(policy.max_fetch_decoded_bytes) from None\n    except content.ContentError:", "        return None\n    except content.ContentError:", T_LIMITS),
    Mutation("fetch decoded limit of exactly the known sizes refused", EXECUTOR, "if known > policy.max_fetch_decoded_bytes:", "if known >= policy.max_fetch_decoded_bytes:", T_LIMITS),
    Mutation("known sizes not checked before reading", EXECUTOR, "    check_decoded_size(needed, cache, locations, policy)\n    seen", "    seen", T_LIMITS),
    Mutation("streamed blobs not charged", EXECUTOR, "        await self._off_loop(functools.partial(self._charge, decoded_size))\n", "", T_LIMITS),
    Mutation("legacy cap exactly at the limit refused", EXECUTOR, "if len(left) > self.policy.max_legacy_gets:", "if len(left) >= self.policy.max_legacy_gets:", T_LIMITS),
    Mutation("legacy cap not enforced", EXECUTOR, "if len(left) > self.policy.max_legacy_gets:", "if False:", T_LIMITS),
]
# fmt: on


def copy_tree(destination: Path) -> None:
    """The tracked and untracked (not ignored) files of the worktree, nothing else."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    # the installed layout: src/adapters is importable as fetchcore.adapters
    (destination / "src/fetchcore/adapters").symlink_to(destination / "src/adapters")


def apply(mutation: Mutation, tree: Path) -> None:
    target = tree / mutation.path
    text = target.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(f"{mutation.name}: the old text occurs {count} times in {mutation.path}")
    target.write_text(text.replace(mutation.old, mutation.new))


def run_tests(tree: Path, tests: tuple[str, ...], *, show_failure: bool = False) -> bool:
    """Whether the tests pass on ``tree`` (which must import its own copy of fetchcore)."""
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}", "CI": "true"}
    command = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    try:
        result = subprocess.run(
            command, cwd=tree, env=env, capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:  # a mutant that hangs is caught, by the clock
        return False
    if result.returncode != 0 and show_failure:
        print("\n".join(result.stdout.splitlines()[-40:]))
    return result.returncode == 0


def check_copy_imports_itself(tree: Path) -> None:
    env = {**os.environ, "PYTHONPATH": f"{tree / 'src'}{os.pathsep}{tree}"}
    code = "import fetchcore, fetchcore.adapters.memory as m; print(fetchcore.__file__, m.__file__)"
    paths = subprocess.run(
        [sys.executable, "-c", code], cwd=tree, env=env, check=True, capture_output=True, text=True
    ).stdout.split()
    if not all(Path(path).resolve().is_relative_to(tree.resolve()) for path in paths):
        raise SystemExit(f"the copy imports fetchcore from elsewhere: {paths}")


def main(words: list[str]) -> int:
    chosen = [m for m in MUTATIONS if not words or any(w in m.name for w in words)]
    survived: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fetchcore-mutants-") as scratch:
        pristine = Path(scratch) / "pristine"
        copy_tree(pristine)
        check_copy_imports_itself(pristine)
        baseline = sorted({test for mutation in chosen for test in mutation.tests})
        if not run_tests(pristine, tuple(baseline), show_failure=True):
            print("the unmutated tree fails its tests; fix that first")
            return 2
        for mutation in chosen:
            tree = Path(scratch) / "mutant"
            shutil.copytree(pristine, tree, symlinks=True)
            apply(mutation, tree)
            started = time.monotonic()
            caught = not run_tests(tree, mutation.tests)
            verdict = "caught" if caught else "SURVIVED"
            print(f"{verdict:8}  {time.monotonic() - started:5.1f}s  {mutation.name}", flush=True)
            if not caught:
                survived.append(mutation.name)
            shutil.rmtree(tree)
    print(f"{len(chosen) - len(survived)} of {len(chosen)} caught")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
