"""The layering, read from the source with ``ast``: ``pipelines/`` → ``components/`` → ``em3/``, never back; inside
``em3/``, floors that every import points down (or level) from; and no import circle between files (imports inside
functions count too: a lazy import is still a dependency)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("em3", "components", "pipelines")
FLOORS = (  # lowest first: a module imports from its own floor or below, never from above
    (
        "em3.errors",
        "em3.device",
        "em3.config",
        "em3.retries",
        "em3.atomic",
        "em3.progress",
        "em3.profiling",
        "em3.metrics",
        "em3.losses",
        "em3.cluster",
        "em3.comparison",
        "em3.html_page",
    ),  # the ground: no em3 import but these
    ("em3.sources",),  # local paths and s3:// (boto3)
    ("em3.validation",),  # the data contract and its checks (Great Expectations)
    ("em3.data",),  # training data from the tables, the token store, the synthetic logs
    ("em3.ingest", "em3.features"),  # the stages that write the tables and the token store
    ("em3.layers", "em3.models"),  # the ranker
    ("em3.train",),
    ("em3.evaluation",),
    ("em3.pyfunc",),  # the served model: catalogue, scorer, MLflow pyfunc packaging
    ("em3.registry",),  # MLflow tracking and registry: logs the served model
    # jobs over registered models; the pipelines' library side (daily runs and their replay)
    ("em3.serving", "em3.workflow", "em3.containers", "em3.daily", "em3.daily_s3", "em3.replay"),
    ("em3.bench", "em3.cli", "em3.__main__", "em3"),
    ("components",),
    ("pipelines",),
)


def module_files() -> dict[str, Path]:
    """Dotted module name → file, for every module of PACKAGES."""
    modules = {}
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports(name: str, path: Path, modules: dict[str, Path]) -> dict[str, bool]:
    """The project modules that ``name`` imports → whether at module level (else inside a function or class)."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top_level = {id(node) for node in tree.body}
    found: dict[str, bool] = {}

    def add(target: str, node: ast.stmt) -> None:
        if target in modules and target != name:
            found[target] = found.get(target, False) or id(node) in top_level

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            add(base, node)
            for alias in node.names:  # `from package import module`
                add(f"{base}.{alias.name}", node)
    return found


def import_graph() -> dict[str, dict[str, bool]]:
    modules = module_files()
    return {name: imports(name, path, modules) for name, path in modules.items()}


def test_the_graph_sees_the_known_imports():
    graph = import_graph()
    assert graph["pipelines.em3_pipeline"]["components"] is True
    assert graph["components.data"]["em3.cluster"] is True
    assert graph["pipelines.em3_run"]["pipelines.run"] is True
    assert graph["pipelines.cli"]["pipelines.em3_run"] is False, "a lazy import, inside the command"
    assert graph["pipelines.cli"]["em3.cli.options"] is True, "the pipeline commands plug into em3's command line"


def test_the_library_never_imports_the_orchestration():
    graph = import_graph()
    for name, targets in graph.items():
        upward = [t for t in targets if t.split(".")[0] in ("components", "pipelines")]
        if name.startswith("em3"):
            assert not upward, f"{name} (library) imports {upward}"
        if name.startswith("components"):
            assert not [t for t in upward if t.startswith("pipelines")], f"{name} imports {upward}"


def floor(module: str) -> int:
    """The floor of ``module``: that of the longest FLOORS entry it is or lies under."""
    found = [
        (len(prefix), level)
        for level, names in enumerate(FLOORS)
        for prefix in names
        if module == prefix or module.startswith(prefix + ".")
    ]
    assert found, f"{module} is on no floor: add it to FLOORS in {__file__}"
    return max(found)[1]


def upward_imports(graph: dict[str, dict[str, bool]]) -> list[str]:
    """The imports of ``graph`` that point to a higher floor."""
    return [
        f"{name} (floor {floor(name)}) imports {target} (floor {floor(target)})"
        for name, targets in graph.items()
        for target in targets
        if floor(target) > floor(name)
    ]


def test_every_import_points_down_or_level():
    upward = upward_imports(import_graph())
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_an_import_from_above_is_caught():
    graph = {
        "em3.data.tables": {"em3.train.trainer": False, "em3.errors": True},
        "em3.registry.x": {"em3.pyfunc": True},
    }
    assert upward_imports(graph) == ["em3.data.tables (floor 3) imports em3.train.trainer (floor 6)"]


def find_cycle(graph: dict[str, dict[str, bool]]) -> list[str] | None:
    """One import circle of ``graph`` (a list of modules, the first repeated at the end), or None."""
    state: dict[str, str] = {}  # "open" while on the current path, then "done"
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        path.append(node)
        for target in sorted(graph.get(node, {})):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_circle_between_files():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle: " + " → ".join(cycle or [])


def test_a_circle_is_found():
    graph = {"a": {"b": True}, "b": {"c": False}, "c": {"a": True}, "d": {"a": True}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": True}, "b": {}}) is None
