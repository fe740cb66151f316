"""The layout of tests/ and bench/, and what the markers mean.

- No module in tests/ imports bench/; bench/ imports nothing from tests/ but tests.support.
- No module imports a test module (``test_*``) or a ``conftest``: what tests, fixtures and
  benchmarks share lives in tests/support, each of its modules saying what it holds.
- The ``db`` marker follows the fixtures (tests/support/marks.py): the fixtures it names
  exist, and the check that stops a database test without the marker sees through helpers.
- ``slow`` is declared and nothing deselects it by default: ``make test`` runs everything.
"""

from __future__ import annotations

import ast
import importlib.util
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path

from tests.support.marks import DB_FIXTURES, database_reached

ROOT = Path(__file__).resolve().parents[1]


def sources(folder: str) -> Iterator[tuple[Path, str]]:
    """Each .py file under ``folder`` and its module name (``tests.core.test_audit``)."""
    for path in sorted((ROOT / folder).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        yield path, ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, dotted target) of each import in ``path``; ``from a import b`` gives
    ``a.b`` (a submodule or a name in ``a``: either way under ``a``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                yield node.lineno, f"{base}.{alias.name}"


def is_test_module(target: str) -> bool:
    return any(part.startswith("test_") or part == "conftest" for part in target.split("."))


def test_tests_and_bench_import_each_other_only_through_tests_support() -> None:
    wrong = []
    for folder in ("tests", "bench"):
        for path, module in sources(folder):
            where = path.relative_to(ROOT)
            for line, target in imported(path, module):
                top = target.split(".")[0]
                if folder == "tests" and top == "bench":
                    wrong.append(f"{where}:{line} imports {target} (a test importing bench/)")
                elif (
                    folder == "bench"
                    and top == "tests"
                    and not (target.startswith("tests.support.") or target == "tests.support")
                ):
                    wrong.append(f"{where}:{line} imports {target} (only tests.support)")
                elif is_test_module(target):
                    wrong.append(f"{where}:{line} imports {target} (move it to tests/support)")
    assert wrong == []


def test_every_support_module_says_what_it_holds() -> None:
    missing = [
        path.name
        for path, _ in sources("tests/support")
        if not ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert missing == []


def fixture_names() -> set[str]:
    """Every function in tests/ decorated as a pytest fixture."""
    names = set()
    for path, _ in sources("tests"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                for deco in node.decorator_list:
                    target = deco.func if isinstance(deco, ast.Call) else deco
                    if ast.unparse(target) in ("pytest.fixture", "fixture"):
                        names.add(node.name)
    return names


def test_the_db_fixtures_exist() -> None:
    """A renamed fixture must not quietly drop the db marker from the tests using it."""
    assert DB_FIXTURES - fixture_names() == set()


def test_a_database_is_seen_through_the_helpers_of_a_module(tmp_path: Path) -> None:
    source = tmp_path / "probe_module.py"
    source.write_text(
        "def helper():\n"
        "    return create_database('x')\n"
        "def test_direct():\n"
        "    create_database('x')\n"
        "def test_through_a_helper():\n"
        "    helper()\n"
        "def test_attribute(live):\n"
        "    with servers.running_server(live.url, 'k'):\n"
        "        pass\n"
        "def test_no_database():\n"
        "    assert sum([1, 2]) == 3\n",
        encoding="utf-8",
    )
    spec = importlib.util.spec_from_file_location("probe_module", source)
    assert spec is not None and spec.loader is not None
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    assert database_reached(probe.test_direct) == "create_database"
    assert database_reached(probe.test_through_a_helper) == "helper -> create_database"
    assert database_reached(probe.test_attribute) == "running_server"
    assert database_reached(probe.test_no_database) is None


def test_slow_is_declared_and_the_check_command_runs_every_test() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "pytest"
    ]["ini_options"]
    declared = {marker.split(":")[0] for marker in options["markers"]}
    assert {"db", "browser", "slow"} <= declared
    assert "-m" not in shlex.split(options["addopts"])
    pytest_lines = [
        line
        for line in (ROOT / "scripts" / "test.sh").read_text(encoding="utf-8").splitlines()
        if " pytest " in line
    ]
    assert len(pytest_lines) == 1
    assert "--durations=15" in pytest_lines[0] and " -m " not in pytest_lines[0]
