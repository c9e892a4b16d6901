"""The core is pure: no asyncio, sockets, clocks, threads or global randomness, and the
layers import one way only (see DESIGN.md, "Layers")."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "raftlog"
FORBIDDEN_IN_CORE = {
    "asyncio",
    "socket",
    "selectors",
    "threading",
    "multiprocessing",
    "subprocess",
    "concurrent",
    "time",
    "os",
    "pickle",
}
ALLOWED_IN_CORE = {
    "__future__",
    "collections",
    "dataclasses",
    "enum",
    "functools",
    "itertools",
    "math",
    "random",
    "typing",
    "msgspec",
    "raftlog",
}


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
    return found


def test_importing_the_core_loads_no_io_module() -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import raftlog.core\n"
        f"forbidden = {sorted(FORBIDDEN_IN_CORE)!r}\n"
        "bad = sorted(m for m in set(sys.modules) - before if m.split('.')[0] in forbidden)\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "", f"importing raftlog.core loaded {out}"


def core_import_problems(path: Path) -> list[str]:
    problems = []
    for module, line in _imports(path):
        top = module.split(".")[0]
        if top not in ALLOWED_IN_CORE or (
            top == "raftlog" and not module.startswith("raftlog.core")
        ):
            problems.append(f"{path.name}:{line} imports {module}")
    return problems


def global_random_problems(path: Path) -> list[str]:
    return [
        f"{path.name}:{node.lineno} uses random.{node.attr}"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "random"
        and node.attr != "Random"
    ]


LAYER_RULES = {
    # package: the raftlog packages it may import
    "core": {"core"},
    "storage": {"core", "storage"},
    "check": {"check"},
    "sim": {"core", "storage", "sim", "check"},
    "testing": {"core", "storage", "testing"},
    "transport": {"core", "transport", "tls"},
    "statemachine": set(),
    "server": {"core", "storage", "transport", "server", "statemachine"},
    "wire": set(),  # the client API's bodies: shared by the server and its clients
    "tls": set(),  # ssl contexts from PEM files: both planes, nodes and clients
    "api": {"core", "server", "api", "wire", "dashboard", "tls"},  # the node, not its parts
    "dashboard": set(),  # the page's files
    "node": {"core", "storage", "transport", "server", "api", "statemachine", "tls"},
    "local": {"server", "local", "wire", "tls"},
    "timeline": set(),  # a recording's typed records: the chaos report's and the dashboard's
    "chaos": {"check", "local", "chaos", "wire", "timeline"},
    "client": {"client", "wire", "tls"},
    "bench": {"bench", "local", "server"},  # measures processes from outside
    # Judges any lab implementation from outside: namespaces (local) and the timeline's
    # records only; its reference lab node imports nothing of raftlog's.
    "grade": {"grade", "local", "timeline"},
}


def layer_problems(package: str, path: Path) -> list[str]:
    problems = []
    for module, line in _imports(path):
        parts = module.split(".")
        if parts[0] == "raftlog" and len(parts) > 1 and parts[1] not in LAYER_RULES[package]:
            problems.append(f"{path.name}:{line} imports {module}")
    return problems


@pytest.mark.parametrize("path", sorted((SRC / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_module_imports_only_the_allowed(path: Path) -> None:
    assert core_import_problems(path) == []
    assert global_random_problems(path) == []


@pytest.mark.parametrize("package", sorted(LAYER_RULES))
def test_layers_import_one_way(package: str) -> None:
    module = SRC / f"{package}.py"  # a top-level module (raftlog.node) or a package
    paths = [module] if module.exists() else sorted((SRC / package).rglob("*.py"))
    assert paths
    for path in paths:
        assert layer_problems(package, path) == []


def test_nothing_unpickles_or_evals() -> None:
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in {"eval", "exec"}:
                raise AssertionError(f"{path.relative_to(SRC)}:{node.lineno} uses {node.id}")
        for module, line in _imports(path):
            assert module.split(".")[0] != "pickle", (
                f"{path.relative_to(SRC)}:{line} imports pickle"
            )


def test_the_purity_checks_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import asyncio\nimport random\nfrom raftlog.sim import run\nx = random.random()\n"
    )
    assert len(core_import_problems(bad)) == 2  # asyncio, raftlog.sim
    assert global_random_problems(bad) == ["bad.py:4 uses random.random"]
    assert layer_problems("core", bad) == ["bad.py:3 imports raftlog.sim"]
