"""The package's import graph: no circles, and storage independent of the HTTP API and the fan-out.

Read from the source (every ``import`` and ``from ... import``, including
those inside functions), so a circle hidden in a lazy import counts too.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "purgebridge"
UPPER_LAYERS = {"purgebridge.app", "purgebridge.routes", "purgebridge.fastpath", "purgebridge.server",
                "purgebridge.cli", "purgebridge.fanout", "purgebridge.transport", "purgebridge.worker",
                "purgebridge.supervisor", "purgebridge.journal", "purgebridge.metrics"}


def modules():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph():
    """module -> the package's modules it imports (anywhere in its source)."""
    found = modules()
    graph = {name: set() for name in found}
    for name, path in found.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    target = full if full in found else node.module
                    if target in found:
                        graph[name].add(target)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name in found)
        graph[name].discard(name)
    return graph


def reachable(graph, start):
    seen, todo = set(), [start]
    while todo:
        for target in graph[todo.pop()]:
            if target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_no_import_circles():
    graph = import_graph()
    circles = sorted(name for name in graph if name in reachable(graph, name))
    assert not circles, f"modules on an import circle: {circles}"


def test_storage_imports_nothing_from_the_http_api_or_the_fan_out():
    graph = import_graph()
    for name in (n for n in graph if n.startswith("purgebridge.store")):
        assert not reachable(graph, name) & UPPER_LAYERS, (name, sorted(reachable(graph, name) & UPPER_LAYERS))


STORAGE_MAY_IMPORT = {"purgebridge.errors", "purgebridge.backoff", "purgebridge.invalidation"}


def test_storage_imports_only_the_shared_leaves():
    """Beyond itself, ``store`` imports only the errors, the backoff rule and the invalidation model (a new
    dependency of storage is a decision, not an accident: add it here with the reason)."""
    graph = import_graph()
    for name in (n for n in graph if n.startswith("purgebridge.store")):
        outside = {m for m in graph[name] if not m.startswith("purgebridge.store")}
        assert outside <= STORAGE_MAY_IMPORT, (name, sorted(outside - STORAGE_MAY_IMPORT))


def test_the_lua_scripts_ship_with_the_package():
    from purgebridge.store import redis as redis_store

    for name in ("append", "store", "claim", "ack", "nack", "dead", "expire", "retry"):
        script = (redis_store.LUA / f"{name}.lua").read_text(encoding="utf-8")
        assert "ARGV" in script and redis_store._script(name).endswith(script), name
