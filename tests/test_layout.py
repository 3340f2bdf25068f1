"""The layout's promises, read from the code's own imports (nothing is run): packages import only the
layers below them, no import circle, every package installed under the `ppg_stream` namespace and
no generic top-level import name (`stream`, `replay`, `models`) left in site-packages."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("stream", "replay", "models")

# Lower number = lower layer. A module may import its own package (and subpackages) and any package
# of a lower layer; packages on the same layer do not import each other.
LAYERS = {
    "ppg_stream.replay": 0,
    "ppg_stream.stream": 0,  # the package itself: its docstring draws these layers
    "ppg_stream.stream.core": 1,
    "ppg_stream.stream.runtime": 2,
    "ppg_stream.stream.mqtt": 3,
    "ppg_stream.stream.nats": 3,
    "ppg_stream.stream.sources": 4,
    "ppg_stream.stream.consumers": 4,
    "ppg_stream.stream.cli": 5,
    "ppg_stream.models": 6,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return "ppg_stream." + ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for folder in FOLDERS for p in sorted((ROOT / folder).rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every ppg_stream module a file imports, at the top or inside a function, relative imports
    (the product code's own: `from ..core.chunk import Chunk`) resolved against its package."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("ppg_stream.")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base.startswith("ppg_stream"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}  # `from pkg import module`
    return found


def _package(module: str) -> str:
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=module)


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {m for m in _imports(path) if m in modules and m != name} for name, path in modules.items()}


def test_every_module_belongs_to_a_layer():
    assert [m for m in _modules() if _package(m) not in LAYERS] == []


def test_imports_run_one_way_down_the_layers():
    wrong = []
    for module, imported in _graph().items():
        own = _package(module)
        for target in imported:
            other = _package(target)
            if other != own and LAYERS[other] >= LAYERS[own]:
                wrong.append(f"{module} imports {target} ({other} is not below {own})")
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_except_the_strategy_registry():
    """The strategies register themselves with the registry that imports them (a decorator loop, the
    habit of torchdistill's registry): the one circle the layout allows."""
    registry = "ppg_stream.models.losses"
    circles = [c for c in _cycles(_graph()) if not all(m.startswith(registry) for m in c)]
    assert circles == []


def test_relative_imports_resolve_to_modules():
    """The reader of the imports must see them all, or the layer and circle tests prove nothing."""
    graph = _graph()
    assert "ppg_stream.stream.core.chunk" in graph["ppg_stream.stream.runtime.pipeline"]
    assert "ppg_stream.replay.synthetic" in graph["ppg_stream.stream.cli.commands.local"]
    assert "ppg_stream.stream.cli.commands.serve" in graph["ppg_stream.stream.cli.main"]  # `from .commands import serve`
    assert sum(len(v) for v in graph.values()) > 200


def test_the_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_package_folder_is_installed_under_the_namespace():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {_module_name(p) for folder in FOLDERS for p in (ROOT / folder).rglob("__init__.py")}
    assert on_disk == listed


@pytest.mark.parametrize("name", FOLDERS)
def test_no_generic_top_level_import_name(tmp_path, name):
    """Outside the checkout, the folder names are not importable: only ppg_stream.<name> is."""
    bare = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert bare.returncode != 0 and "ModuleNotFoundError" in bare.stderr
    ours = subprocess.run([sys.executable, "-c", f"import ppg_stream.{name}"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert ours.returncode == 0, ours.stderr


def test_a_checkout_on_sys_path_refuses_the_bare_name():
    """From the repository root the folders are on sys.path; importing one by its bare name would load
    a second copy of every module beside ppg_stream's, so it is refused with the right name."""
    bare = subprocess.run([sys.executable, "-c", "import stream"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert bare.returncode != 0 and "import ppg_stream.stream, not stream" in bare.stderr
