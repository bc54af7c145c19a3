"""Imports run one way: every first-party import (module-level or inside a function) points to the
importing module's own layer or one below it, and no two modules import each other, directly or
round a longer loop (imports inside functions and under TYPE_CHECKING included). The layers,
bottom to top, are the README's layout section; `LAYERS` here is the single place that names them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# bottom to top; a module belongs to the layer of the longest matching prefix
LAYERS = (
    ("utilities", ("lara.utils",)),
    ("model", ("lara",)),
    ("simulator", ("envs",)),
    ("data", ("data_pipeline",)),
    ("training", ("curriculum",)),
    ("peers", ("lara.peer",)),
    ("applications", ("lara.scripts",)),
)
PACKAGES = ("lara", "envs", "data_pipeline", "curriculum")


def layer_of(module: str) -> int | None:
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    return best


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_imports(path: Path, packages: tuple[str, ...] = PACKAGES) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a first-party package, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from lara import expert_runtime` imports lara.expert_runtime: judge the submodule
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            found.append((node.lineno, "<relative>"))
    return [(line, name) for line, name in found if name == "<relative>" or name.split(".")[0] in packages]


def all_modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def test_every_module_has_a_layer():
    assert all_modules(), "no modules found"
    assert [m for m in map(module_name, all_modules()) if layer_of(m) is None] == []


@pytest.mark.parametrize("path", all_modules(), ids=lambda p: module_name(p))
def test_imports_point_down(path):
    here = layer_of(module_name(path))
    upward = []
    for line, name in first_party_imports(path):
        if name == "<relative>":
            upward.append(f"line {line}: relative import (use the absolute module path)")
            continue
        there = layer_of(name)
        if there is not None and there > here:
            upward.append(f"line {line}: {name} ({LAYERS[there][0]}) from the {LAYERS[here][0]} layer")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_layer_rule_catches_an_upward_import(tmp_path):
    """The rule itself: a model-layer module importing the data layer is reported."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from data_pipeline.samples import SampleDataset\n")
    imports = first_party_imports(bad)
    assert imports == [(2, "data_pipeline.samples.SampleDataset")]
    assert layer_of(imports[0][1]) > layer_of("lara.modeling_lara")


def module_graph(modules: dict[str, Path], packages: tuple[str, ...] = PACKAGES) -> dict[str, dict[str, int]]:
    """module -> {imported module: line of the first such import}, within `modules`. An import names
    the longest known module it starts with (`from lara.presets import tiny` -> lara.presets,
    `from lara import presets` -> lara.presets); self-imports are dropped."""
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for line, target in first_party_imports(path, packages):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def import_loops(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected sets of more than one module (Tarjan, iterative), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    loops: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(graph[child])))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    loops.append(sorted(members))
    return loops


@pytest.mark.parametrize("packages", [PACKAGES, ("benchmarks",)], ids=["packages", "benchmarks"])
def test_no_module_imports_itself_round_a_loop(packages):
    paths = all_modules() if packages == PACKAGES else sorted((REPO / "benchmarks").rglob("*.py"))
    modules = {module_name(p): p for p in paths}
    graph = module_graph(modules, packages)
    found = []
    for loop in import_loops(graph):
        edges = [f"{a} -> {b} (line {line})" for a in loop for b, line in graph[a].items() if b in loop]
        found.append(" | ".join(edges))
    assert not found, "module loops (move what both sides need into a module of its own):\n" + "\n".join(
        found
    )


def test_loop_rule_catches_a_lazy_and_a_type_checking_loop(tmp_path):
    """The rule itself: a loop closed by an import inside a function, and one closed under
    TYPE_CHECKING, are both found; a one-way chain is not."""
    (tmp_path / "a.py").write_text("import lara.b\n")
    (tmp_path / "b.py").write_text("def f():\n    from lara.a import x\n")
    (tmp_path / "c.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lara.d import Y\n"
    )
    (tmp_path / "d.py").write_text("from lara import c\n")
    (tmp_path / "e.py").write_text("import lara.a\n")
    modules = {f"lara.{p.stem}": p for p in sorted(tmp_path.glob("*.py"))}
    assert sorted(import_loops(module_graph(modules))) == [["lara.a", "lara.b"], ["lara.c", "lara.d"]]


@pytest.mark.parametrize(
    "package", ["lara", "lara.utils", "lara.scripts", "lara.peer", "envs", "data_pipeline", "curriculum"]
)
def test_each_package_states_its_role(package):
    init = REPO / package.replace(".", "/") / "__init__.py"
    doc = ast.get_docstring(ast.parse(init.read_text()))
    assert doc and len(doc.split()) >= 8, (
        f"{init}: say in its docstring what the package is for and its layer"
    )


def test_the_simulator_layer_never_imports_the_policy_model():
    """envs receives a policy builder from the commands (`lara.scripts.eval_policies`,
    `curriculum.rl.loop.rollout_pool`); it never builds the model itself (issue 27)."""
    found = [
        f"{module_name(path)} line {line}: {name}"
        for path in sorted((REPO / "envs").rglob("*.py"))
        for line, name in first_party_imports(path)
        if name == "lara.modeling_lara" or name.startswith("lara.modeling_lara.")
    ]
    assert found == []
