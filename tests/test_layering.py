"""Layering (issue 17, item 4; issue 33, item 4): the pipelines never import the training code, no two synthaug
packages import each other (directly or round a longer circle), and no module imports one that imports it back
(e.g. pipelines base -> registry -> bus -> base), function-level imports included."""
from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import synthaug

PACKAGE = Path(synthaug.__file__).parent
# Edges known to close a circle, each to be removed by a move its owners can make (none left).
KNOWN_BACK_EDGES: set = set()


def _modules() -> list[str]:
    return sorted(m.name for m in pkgutil.walk_packages([str(PACKAGE)], prefix="synthaug."))


def _unit(module: str) -> str:
    """The layer a module belongs to: its subpackage (synthaug.pipelines) or itself (synthaug.fit)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _imports(path: Path, module: str) -> set[str]:
    """Every synthaug module ``path`` imports, at any depth of the file (lazy imports count);
    ``from pkg import mod`` counts as importing ``pkg.mod`` when that is a module."""
    is_pkg = path.name == "__init__.py"
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "synthaug"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "synthaug":
                subs = {f"{target}.{a.name}" for a in node.names if _exists(f"{target}.{a.name}")}
                found |= subs if len(subs) == len(node.names) else subs | {target}
    return found


def _module_graph() -> dict[str, set[str]]:
    """Module -> the synthaug modules it imports (a package stands for its __init__)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        graph[module] = {t for t in _imports(path, module) if t != module}
    return graph


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        src = _unit(module)
        for target in _imports(path, module):
            dst = _unit(target)
            if dst != src and dst != "synthaug":
                graph.setdefault(src, set()).add(dst)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_every_module_imports_in_a_fresh_interpreter():
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)\n"
    res = subprocess.run([sys.executable, "-c", code, *_modules()], capture_output=True, text=True, encoding="utf-8",
                         errors="replace", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]


def test_every_import_names_an_existing_module():
    """Lazy imports too (a function-level ``from .data import x`` left behind by a move only fails when run)."""
    missing = sorted(f"{m} -> {t}" for m, ts in _module_graph().items() for t in ts if not _exists(t))
    assert not missing, f"imports of modules that do not exist: {missing}"


def test_pipelines_never_import_training():
    assert "synthaug.training" not in _graph().get("synthaug.pipelines", set())


def test_no_import_cycle_between_packages():
    graph = {src: {d for d in dsts if (src, d) not in KNOWN_BACK_EDGES} for src, dsts in _graph().items()}
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_no_import_cycle_between_modules():
    graph = _module_graph()
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_generator_base_imports_neither_registry_nor_generators():
    """timm's layout: generators import the registry and the base classes; those import no generator."""
    graph = _module_graph()
    lower = ("synthaug.pipelines.base", "synthaug.pipelines.checkpoint", "synthaug.pipelines.options",
             "synthaug.pipelines.registry")
    generators = {"synthaug.pipelines.bus", "synthaug.pipelines.pig", "synthaug.pipelines.scmg",
                  "synthaug.pipelines.real_background"}
    for m in lower:
        assert not graph[m] & generators, f"{m} imports {sorted(graph[m] & generators)}"
    for m in lower[:3]:
        assert "synthaug.pipelines.registry" not in graph[m], f"{m} imports the registry"
    assert "synthaug.pipelines.registry" in graph["synthaug.pipelines.bus"]  # bus registers itself


def test_module_graph_would_see_the_old_registry_circle(tmp_path):
    """The circle issue 33 removed: base importing (even lazily) what imports base back. Put a lazy
    ``from . import registry`` into base's edges and the module graph closes a circle."""
    lazy = tmp_path / "base.py"
    lazy.write_text("def _load_plugins():\n    from . import registry\n", encoding="utf-8")
    graph = _module_graph()
    graph["synthaug.pipelines.base"] |= _imports(lazy, "synthaug.pipelines.base")
    assert "synthaug.pipelines.registry" in graph["synthaug.pipelines.base"]
    assert _cycle(graph) is not None


def test_cycle_finder_sees_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}}) is None


# The engine of the benchmarks and `synthaug trial` sits above data, mix and the integrations' loops and below
# the command line: nothing lower may import it, and it imports neither the CLI nor the benchmarks.
ENGINE, COMMANDS = "synthaug.evaluation", {"synthaug.cli", "synthaug.commands"}
BELOW_ENGINE = {"synthaug.io", "synthaug.data", "synthaug.geometry", "synthaug.models", "synthaug.training",
                "synthaug.pipelines", "synthaug.mix", "synthaug.expand", "synthaug.gate", "synthaug.sampling",
                "synthaug.metrics", "synthaug.fit"}


def test_nothing_below_the_engine_imports_it_or_the_commands():
    graph = _graph()
    for unit in BELOW_ENGINE:
        assert not graph.get(unit, set()) & ({ENGINE} | COMMANDS), f"{unit} imports {graph[unit]}"
    assert not graph.get(ENGINE, set()) & COMMANDS


def test_the_engine_never_imports_the_benchmarks():
    for path in (PACKAGE / "evaluation").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level}
        assert not any(n.split(".")[0] == "benchmarks" for n in names), path


def test_commands_that_only_move_files_answer_without_torch():
    """revert, splits and the argument checks of fit and trial load neither torch nor diffusers (they took
    8-20 s to refuse a mistyped folder when they did); expand loads them only when it runs, and a mistyped
    generator name is refused before any generator module (diffusers) loads."""
    code = ("import sys\nfrom synthaug.cli import main\nfrom synthaug.expand import revert, write_splits\n"
            "import synthaug.fit, synthaug.evaluation.trial_report\n"
            "print(sorted(m for m in ('torch', 'diffusers', 'timm', 'sklearn') if m in sys.modules))\n"
            "from synthaug.errors import SynthaugError\nfrom synthaug.pipelines.registry import resolve_checkpoint\n"
            "try:\n    resolve_checkpoint('no-such-generator')\nexcept SynthaugError as e:\n    print(e)\n"
            "print('diffusers' in sys.modules)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.splitlines() == ["[]", "unknown generator 'no-such-generator': not a registered name (bus, pig) "
                                             "nor a folder", "False"], res.stdout
