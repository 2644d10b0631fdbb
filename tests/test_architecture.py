"""The shape of the code: the engine's rooms, the layers between them, and no cycle.

Read from the source (every import, including those inside functions), so that a lazy
import can neither hide a cycle nor cross a layer.
"""

import ast
import configparser
from pathlib import Path

import pytest
from helpers import ROOT

ENGINE = ROOT / "engine"

# Each room of engine/ and the rooms it may import. base is the ground floor; core stands
# on it; io (reading cases) and output (writing results) stand on core and never on each
# other; batch uses both; the clinician's, the reviewer's and the service's rooms stand on
# all of that and never on each other (the reviewer may run a batch). Nothing imports cli.py.
LAYERS = {
    "base": set(),
    "core": {"base"},
    "io": {"core", "base"},
    "output": {"core", "base"},
    "batch": {"io", "output", "core", "base"},
    "clinician": {"io", "output", "core", "base"},
    "audit": {"batch", "io", "output", "core", "base"},
    "service": {"io", "output", "core", "base"},
}
GLUE = {"__init__", "_moved"}  # engine/'s own two modules: the public API and the old paths


def module_name(path: Path) -> str:
    """'core.cache.situations' for engine/core/cache/situations.py ('core.cache' for its __init__)."""
    parts = list(path.relative_to(ENGINE).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict:
    return {module_name(p): p for p in ENGINE.rglob("*.py") if "__pycache__" not in p.parts}


def imports(path: Path) -> set:
    """The engine modules (dotted, below engine/) and 'cli' that a module imports."""
    name = module_name(path)
    package = name.split(".") if path.stem == "__init__" else name.split(".")[:-1]
    if name == "":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                module = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("ivig_advisor.engine"):
                module = node.module[len("ivig_advisor.engine") :].lstrip(".")
            elif node.module in ("ivig_advisor", "ivig_advisor.cli"):
                found |= (
                    {"cli"} if node.module == "ivig_advisor.cli" or any(a.name == "cli" for a in node.names) else set()
                )
                continue
            else:
                continue
            found |= {f"{module}.{a.name}".strip(".") for a in node.names} | {module}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("ivig_advisor.engine."):
                    found.add(alias.name[len("ivig_advisor.engine.") :])
                elif alias.name == "ivig_advisor.cli":
                    found.add("cli")
    known = modules()
    return {m for m in found if m in known or m == "cli"} - {name}


def graph() -> dict:
    return {name: imports(path) for name, path in modules().items()}


def room(module: str) -> str:
    return module.split(".")[0]


def crossings(edges: dict, layers: dict = LAYERS) -> list:
    """Every import that breaks the layers: (importer, imported)."""
    bad = []
    for importer, imported in edges.items():
        if importer.split(".")[-1] in GLUE or importer == "":
            continue
        for target in imported:
            if target == "cli" or (room(target) != room(importer) and room(target) not in layers[room(importer)]):
                bad.append((importer, target))
    return sorted(bad)


def cycles(edges: dict) -> list:
    """Every import cycle, as the list of modules around it (depth-first search)."""
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    return found


def test_every_module_lives_in_a_room():
    loose = [m for m in modules() if "." not in m and m not in GLUE | {""} and m not in LAYERS]
    assert loose == [], f"modules outside the rooms of engine/: {loose}"
    assert {m for m in modules() if "." not in m} - GLUE - {""} == set(LAYERS)


def test_no_import_breaks_the_layers():
    assert crossings(graph()) == []


def test_the_layer_check_catches_an_upward_import():
    # broken once on purpose: words (core) reading the renderer (output), and io reading output
    edges = graph()
    edges["core.words"] = edges["core.words"] | {"output.render"}
    edges["io.cases"] = edges["io.cases"] | {"output.render"}
    edges["service.cards"] = edges["service.cards"] | {"clinician.console", "cli"}
    assert crossings(edges) == [
        ("core.words", "output.render"),
        ("io.cases", "output.render"),
        ("service.cards", "cli"),
        ("service.cards", "clinician.console"),
    ]


def test_the_import_reader_sees_lazy_and_relative_imports(tmp_path):
    # imports inside a function, two levels up, as the report reads the FHIR mapping only when asked
    edges = imports(ENGINE / "audit" / "report.py")
    assert "io.fhir.mapping" in edges and "io.fhir.text" in edges
    assert "audit.views" in edges  # from . import views: a module of its own room


def test_the_engine_import_graph_has_no_cycle():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    # the check above can fail: a loader that compiles (rulebase -> compiler -> rulebase) is a cycle
    assert cycles({"rulebase": {"compiler"}, "compiler": {"rulebase", "conditions"}, "conditions": set()}) == [
        ["compiler", "rulebase", "compiler"]
    ]


def test_the_evaluation_path_uses_none_of_the_reviewers_tools():
    """Case file -> facts -> engine -> Result -> renderer never loads the audit."""
    edges = graph()
    reached, todo = set(), ["batch.pipeline", "output.render"]
    while todo:
        module = todo.pop()
        if module not in reached:
            reached.add(module)
            todo.extend(edges.get(module, ()))
    assert not {m for m in reached if room(m) in ("audit", "clinician", "service")}


def test_setup_cfg_installs_every_room():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg", encoding="utf-8")
    listed = set(config["options"]["packages"].split())
    packages = {"ivig_advisor.engine" + ("." + m if m else "") for m, p in modules().items() if p.stem == "__init__"}
    assert packages <= listed, sorted(packages - listed)


@pytest.mark.parametrize("old", sorted(__import__("ivig_advisor.engine._moved", fromlist=["MOVED"]).MOVED))
def test_the_module_paths_before_the_rooms_still_import(old):
    import importlib

    from ivig_advisor.engine._moved import MOVED

    before = importlib.import_module(f"ivig_advisor.engine.{old}")
    assert before is importlib.import_module(f"ivig_advisor.engine.{MOVED[old]}")
    assert before.__spec__.name == f"ivig_advisor.engine.{MOVED[old]}"


def test_the_public_api_and_the_documented_paths():
    import ivig_advisor.engine as engine

    for name in engine.__all__:
        assert getattr(engine, name) is not None
    from ivig_advisor.engine.batch import write_results
    from ivig_advisor.engine.dask_bag import evaluate_bag  # noqa: F401
    from ivig_advisor.engine.errors import IvigError
    from ivig_advisor.engine.render import Formatter  # noqa: F401

    assert write_results.__module__ == "ivig_advisor.engine.batch.pipeline"
    assert IvigError is engine.IvigError


def test_the_cli_offers_exactly_the_formats_the_renderer_writes():
    from ivig_advisor import cli
    from ivig_advisor.engine.output import render

    assert cli.FORMATS == render.FORMATS
