"""The wheel: fetchcore's adapters live inside fetchcore, so a hub's own ``adapters`` is free.

Before 0.2.0 the wheel installed a top-level package named ``adapters``, which
collided with the ``adapters`` package of a hub built in the ports-and-adapters
style (``python -m adapters.sql.migrate`` from such a checkout failed).
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(arguments: list[str], cwd: Path, **environment: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        arguments, cwd=cwd, capture_output=True, text=True, timeout=300, env=environment or None
    )


def test_the_wheel_has_no_top_level_adapters_and_ships_the_migrations(tmp_path: Path) -> None:
    built = run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(tmp_path)],
        tmp_path,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("fetchcore-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top_level == {"fetchcore"}
    assert "fetchcore/adapters/sql/migrations/env.py" in names
    assert "fetchcore/adapters/sql/migrations/script.py.mako" in names
    for revision in ("v0001", "v0002"):
        assert any(
            n.startswith(f"fetchcore/adapters/sql/migrations/versions/{revision}") for n in names
        )
    assert not any("seaweed" in name for name in names), "the test S3 launcher is not shipped"
    assert "fetchcore/py.typed" in names
    assert "fetchcore/adapters/py.typed" in names


def write_hub_adapters(checkout: Path) -> None:
    """A hub checkout with its own ``adapters.sql.migrate``."""
    sql = checkout / "adapters" / "sql"
    sql.mkdir(parents=True)
    (checkout / "adapters" / "__init__.py").write_text("OWNER = 'hub'\n")
    (sql / "__init__.py").write_text("")
    (sql / "migrate.py").write_text("print('the hub migrates its own tables')\n")


def test_a_hubs_own_adapters_package_imports_beside_fetchcore_adapters(tmp_path: Path) -> None:
    write_hub_adapters(tmp_path)
    program = (
        "import adapters, adapters.sql\n"
        "import fetchcore.adapters.sql, fetchcore.adapters.memory\n"
        "assert adapters.OWNER == 'hub'\n"
        f"assert adapters.__file__.startswith({str(tmp_path)!r})\n"
        "assert fetchcore.adapters.sql.SqlIndexRepo.__module__ == 'fetchcore.adapters.sql.repo'\n"
        "print('side by side')\n"
    )
    ran = run([sys.executable, "-c", program], tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "side by side"


def test_each_migrate_command_runs_its_own_module_from_a_hub_checkout(tmp_path: Path) -> None:
    write_hub_adapters(tmp_path)
    hub = run([sys.executable, "-m", "adapters.sql.migrate"], tmp_path)
    assert hub.returncode == 0, hub.stderr
    assert hub.stdout.strip() == "the hub migrates its own tables"
    ours = run([sys.executable, "-m", "fetchcore.adapters.sql.migrate"], tmp_path)
    assert ours.returncode == 2
    assert "usage: python -m fetchcore.adapters.sql.migrate URL" in ours.stderr
