"""The package's import graph: no circles, and storage independent of the HTTP API and the fan-out.

Read from the source (every ``import`` and ``from ... import``, including
those inside functions), so a circle hidden in a lazy import counts too.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "purgebridge"

# Each layer and what it may import besides itself (docs/architecture.md). A new arrow is a decision, not an
# accident: add it here with the reason.
LAYERS = {
    "core": set(),
    "config": {"core"},
    "store": {"core"},
    "delivery": {"core"},
    "telemetry": {"core"},
    "audit": {"core", "config", "delivery"},
    "worker": {"core", "config", "store", "delivery", "telemetry"},
    "api": {"core", "config", "store", "delivery", "telemetry", "worker.status"},
    "service": {"core", "config", "store", "delivery", "telemetry", "audit", "worker", "api"},
    "cli": {"core", "config", "store", "delivery", "telemetry", "audit", "worker", "api", "service", "testing"},
    "testing": {"core", "config", "store", "delivery", "telemetry", "audit", "worker", "api", "service"},
}
UPPER_LAYERS = {f"purgebridge.{layer}" for layer in ("api", "worker", "service", "cli", "delivery", "audit")}


def layer_of(module):
    """``purgebridge.worker.status`` -> ``worker``; the package root and ``__main__`` have none."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def allowed(importer, target):
    mine, theirs = layer_of(importer), layer_of(target)
    if theirs is None or mine == theirs:
        return target in ("purgebridge", "purgebridge.__main__") or mine == theirs
    rules = LAYERS[mine] if mine else set(LAYERS)
    return theirs in rules or any(target == f"purgebridge.{rule}" or target.startswith(f"purgebridge.{rule}.")
                                  for rule in rules if "." in rule)


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


def test_every_layer_imports_only_the_layers_below_it():
    graph = import_graph()
    wrong = sorted(f"{name} -> {target}" for name, targets in graph.items() for target in targets
                   if not allowed(name, target))
    assert not wrong, "imports across the layers of docs/architecture.md:\n" + "\n".join(wrong)


def test_every_module_belongs_to_a_layer():
    loose = sorted(name for name in import_graph() if layer_of(name) is None
                   and name not in ("purgebridge", "purgebridge.__main__"))
    assert not loose, f"modules outside every layer: {loose}"


def test_the_api_reaches_the_worker_only_through_its_status():
    graph = import_graph()
    for name in (n for n in graph if layer_of(n) == "api"):
        worker = {m for m in reachable(graph, name) if layer_of(m) == "worker"}
        assert worker <= {"purgebridge.worker.status", "purgebridge.worker"}, (name, sorted(worker))


def test_storage_imports_nothing_from_the_http_api_or_the_fan_out():
    graph = import_graph()
    for name in (n for n in graph if n.startswith("purgebridge.store")):
        upper = {m for m in reachable(graph, name) if any(m == u or m.startswith(u + ".") for u in UPPER_LAYERS)}
        assert not upper, (name, sorted(upper))


STORAGE_MAY_IMPORT = {"purgebridge.core.errors", "purgebridge.core.backoff", "purgebridge.core.invalidation"}


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
