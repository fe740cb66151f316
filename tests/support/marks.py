"""What the ``db`` marker means and how tests get it.

A test needs PostGIS when its fixture closure (the fixtures it asks for, theirs, and so on)
holds one of ``DB_FIXTURES``: tests/conftest.py marks those ``db`` at collection. A test
that reaches a database another way (it calls ``create_database`` itself, say) carries
``@pytest.mark.db`` in its module. ``database_reached`` is the check behind both: it reads
a function's source (and the helpers of its module that it calls) for the calls in
``DB_CALLS``; collection stops if a test reaches one of them without the marker, so
``pytest -m "not db"`` never selects a test that needs the database.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

# Fixtures that hold or reach a database. Listing the fixtures that depend on these is not
# needed (the closure is transitive), but the shared ones are named for the reader.
DB_FIXTURES = frozenset(
    {
        # tests/conftest.py: the per-run database, and what stands on it
        "database_url",
        "engine",
        "connection",
        "session_factory",
        "session",
        "settings",
        "app",
        "client",
        "world",
        "count",
        # tests/realtime/conftest.py: a committed database per module
        "live_db",
        # tests/frontend/conftest.py (and test_browser.py): the demo city, its live server
        "demo_database",
        "live_server",
        # modules' own databases with the skip-or-fail guard of database_url
        "cli_db",  # tests/command/test_cli.py
        "empty_db",  # tests/command/test_migrations.py
    }
)

# Calls that reach a database: a new one (``create_database``, ``make_live_db``), the
# server's admin connection (``admin_url``), or the real server on a database URL.
DB_CALLS = frozenset({"create_database", "make_live_db", "admin_url", "running_server"})


def _called(node: ast.AST) -> set[str]:
    """Names called in ``node``: ``f(...)`` and ``x.f(...)`` both give ``f``."""
    names = set()
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            if isinstance(call.func, ast.Name):
                names.add(call.func.id)
            elif isinstance(call.func, ast.Attribute):
                names.add(call.func.attr)
    return names


@cache
def _module(filename: str) -> tuple[dict[int, ast.AST], dict[str, set[str]]]:
    """A source file's functions by first line (``def`` and decorator lines), and what
    each of its module-level functions calls."""
    with open(filename, encoding="utf-8") as f:
        tree = ast.parse(f.read(), filename)
    by_line: dict[int, ast.AST] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            for line in (node.lineno, *(d.lineno for d in node.decorator_list)):
                by_line[line] = node
    helpers = {
        node.name: _called(node)
        for node in tree.body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    return by_line, helpers


def database_reached(func: Callable[..., Any]) -> str | None:
    """The call in ``DB_CALLS`` that ``func`` makes, itself or through module-level
    helpers of its module ("helper -> create_database"); None if it makes none."""
    func = inspect.unwrap(func)
    try:
        filename = inspect.getsourcefile(func)
        line = func.__code__.co_firstlineno
    except (TypeError, AttributeError):
        return None
    if filename is None or not filename.endswith(".py"):
        return None
    by_line, helpers = _module(filename)
    node = by_line.get(line)
    if node is None:
        return None
    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = [("", _called(node))]
    while todo:
        path, calls = todo.pop()
        if hit := sorted(calls & DB_CALLS):
            return f"{path}{hit[0]}"
        for name in sorted(calls & helpers.keys() - seen):
            seen.add(name)
            todo.append((f"{path}{name} -> ", helpers[name]))
    return None


def first_database_reach(funcs: Iterable[tuple[str, Callable[..., Any]]]) -> str | None:
    """The first of ``(label, function)`` that reaches a database, as "label: call"."""
    for label, func in funcs:
        if reached := database_reached(func):
            return f"{label}: {reached}"
    return None
