"""The shape of the code: straight dependencies between the engine's modules.

Read from the source (every import, including those inside functions), so
that a lazy import cannot hide a cycle.
"""

import ast
from pathlib import Path

from conftest import ROOT

ENGINE = ROOT / "engine"
REVIEWER_TOOLS = {"audit", "audit_text", "report", "verify", "signoff"}


def engine_imports(path: Path) -> set:
    """The engine modules a module imports, by name."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1:  # from . import x / from .x import y
                found |= {module.split(".")[0]} if module else {a.name for a in node.names}
            elif module.startswith("ivig_advisor.engine"):
                rest = module[len("ivig_advisor.engine"):].lstrip(".")
                found |= {rest.split(".")[0]} if rest else {a.name for a in node.names}
    return {name for name in found if (ENGINE / f"{name}.py").exists()}


def graph() -> dict:
    return {p.stem: engine_imports(p) for p in ENGINE.glob("*.py") if p.stem != "__init__"}


def cycles(edges: dict) -> list:
    """Every import cycle, as the list of modules around it (depth-first search)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_the_engine_import_graph_has_no_cycle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    # the check above can fail: a loader that compiles (rulebase -> compiler -> rulebase) is a cycle
    assert cycles({"rulebase": {"compiler"}, "compiler": {"rulebase", "conditions"}, "conditions": set()}) \
        == [["compiler", "rulebase", "compiler"]]


def test_the_interview_uses_none_of_the_reviewers_tools():
    edges = graph()
    for module in ("interview", "console"):
        if module in edges:
            assert not edges[module] & REVIEWER_TOOLS, (module, edges[module] & REVIEWER_TOOLS)


def test_the_evaluation_path_uses_none_of_the_reviewers_tools():
    """Case file -> facts -> engine -> Result -> renderer never loads the audit."""
    edges = graph()
    reached, todo = set(), ["batch", "render"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(edges.get(module, ()))
    assert not reached & REVIEWER_TOOLS, reached & REVIEWER_TOOLS


def test_the_cli_offers_exactly_the_formats_the_renderer_writes():
    from ivig_advisor import cli
    from ivig_advisor.engine import render
    assert cli.FORMATS == render.FORMATS


def test_the_readme_layout_names_every_engine_module_and_no_other():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `engine/` |"))
    import re
    named = set(re.findall(r"`([a-z_]+)`", row))
    modules = {p.stem for p in ENGINE.glob("*.py") if p.stem != "__init__"}
    assert modules <= named, f"not in the README's layout: {sorted(modules - named)}"
    classes = {"Advisor", "Run", "Result", "write_results"}
    assert named - modules - classes == set(), f"in the layout but not a module: {sorted(named - modules - classes)}"
