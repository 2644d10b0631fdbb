"""Every code block of README.md and docs/*.md runs as pasted, and shows what the program prints.

The conventions are the ones docs/developer.md ("The docs and their tests") gives a writer:

- console/sh: each `$ ` line runs in bash with the installed `ivig`; the lines after it are its
  output (standard output then standard error), checked; `# exits N` names a status other than 0.
  A line `...` stands for any lines left out, `...` inside a line for any text there.
- pycon: a doctest in a fresh interpreter; python: a script, `python script.py`.
- yaml: checked as what it is (a case, a scenario file, a rule of rules/, a trust file).
- text: a picture, checked against what it shows.
- `<!-- continues the block above -->`: run in the folder of the block above, after it.
- `<!-- not run: why -->`: left out, and listed in NOT_RUN below, so none is left out unseen.

Each block (with the blocks that continue it) runs in a fresh folder holding a copy of what the
blocks name from the checkout, as a reader in the checkout would run them. The page-level checks
follow: links resolve, the module table of docs/developer.md names every module of engine/ and
nothing else, its table of layers is tests/test_architecture.py's LAYERS.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

import pytest
import yaml
from helpers import ROOT, ivig
from test_architecture import ENGINE, LAYERS

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEVELOPER = ROOT / "docs" / "developer.md"

# What a block may name from the checkout: copied into its folder before it runs.
COPIED = ["examples", "rules", "facts", "tests/cases", "tests/fhir/bundles", "tests/cds"]

# The blocks left out, by page and first line: each is marked `<!-- not run: why -->` where it stands.
NOT_RUN = {
    ("README.md", "pip install -e . && ivig evaluate examples/"),
    ("README.md", 'pip install -e ".[test]" && pytest'),
    ("docs/integrator.md", 'pip install -e ".[serve]" && ivig serve --insecure-dev --port 8080'),
    (
        "docs/integrator.md",
        "ivig serve --trust trust.yaml --public-url https://ivig.example.org --workers 2 "
        "--feedback-db /var/lib/ivig/feedback.sqlite",
    ),
    ("README.md", "ivig serve --insecure-dev --port 8080 &"),
    (
        "docs/integrator.md",
        "ivig serve --host 0.0.0.0 --port 8443 --ssl-certfile /etc/ivig/tls/fullchain.pem "
        "--ssl-keyfile /etc/ivig/tls/key.pem \\",
    ),
    (
        "docs/integrator.md",
        "ivig serve --host 127.0.0.1 --port 8080 --behind-proxy --public-url https://ivig.example.org "
        "--trust trust.yaml --workers 2",
    ),
}

# Pages whose blocks another test runs, in order, as one procedure (each block there needs the
# ones before it, and paths mapped out of /etc and /var): that test checks it runs every one.
RUN_ELSEWHERE = {"docs/hospital.md": "tests/service/test_hospital.py"}

SHELLS = {"console", "sh"}
KNOWN = SHELLS | {"pycon", "python", "yaml", "text"}
CONTINUES = "<!-- continues the block above -->"
NOT_RUN_MARK = re.compile(r"<!--\s*not run:\s*(.*?)\s*-->", re.S)
FENCE = re.compile(r"^( *)```(\S*)\s*$")


@dataclass(frozen=True)
class Block:
    page: str  # relative to the checkout
    line: int  # of the opening fence, from 1
    lang: str
    text: str
    note: str  # the HTML comment just above the block, or ''

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def first_line(self) -> str:
        return next((line for line in self.text.splitlines() if line.strip()), "")

    @property
    def not_run(self) -> Optional[str]:
        """Why the block is not run, when it is marked so."""
        mark = NOT_RUN_MARK.fullmatch(self.note)
        return mark.group(1) if mark else None


def note_above(lines: List[str], start: int) -> str:
    """The HTML comment that ends on the last non-blank line above line `start`, or ''."""
    end = start - 1
    while end >= 0 and not lines[end].strip():
        end -= 1
    if end < 0 or not lines[end].rstrip().endswith("-->"):
        return ""
    begin = end
    while begin > 0 and "<!--" not in lines[begin]:
        begin -= 1
    return "\n".join(lines[begin : end + 1]).strip()


def blocks_of(page: Path) -> List[Block]:
    """Every fenced block of a page, as written (a fence indented in a list item too)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, start, body = len(fence.group(1)), i, []
        i += 1
        while not re.match(r"^ *```\s*$", lines[i]):
            body.append(lines[i][indent:])
            i += 1
        rel = page.relative_to(ROOT).as_posix()
        found.append(Block(rel, start + 1, fence.group(2), "\n".join(body) + "\n", note_above(lines, start)))
        i += 1
    return found


def all_blocks() -> List[Block]:
    """The blocks this file runs or lists as not run: those of every page but RUN_ELSEWHERE's."""
    return [block for page in PAGES for block in blocks_of(page) if block.page not in RUN_ELSEWHERE]


def groups() -> List[List[Block]]:
    """The blocks to run, each with the blocks that continue it (run after it, in its folder)."""
    found: List[List[Block]] = []
    for block in all_blocks():
        if block.not_run is not None:
            continue
        if block.note == CONTINUES:
            assert found and found[-1][-1].page == block.page, f"{block.name} continues no block above"
            found[-1].append(block)
        else:
            found.append([block])
    return found


# --- what a shell block shows, and how it is compared ---------------------------------------


def matches(expected: str, actual: str) -> bool:
    """Whether `actual` is what `expected` shows: line by line, trailing spaces aside; a line
    `...` stands for any lines (none too), `...` inside a line for any text on that line."""
    pattern = []
    for line in expected.splitlines():
        line = line.rstrip()
        if line == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append("[^\n]*".join(re.escape(part) for part in line.split("...")) + r"\n")
    shown = "".join(line.rstrip() + "\n" for line in actual.splitlines())
    return re.fullmatch("".join(pattern), shown) is not None


@dataclass
class Command:
    line: str
    output: Optional[str]  # None: the block shows no output for it
    status: int


def commands(text: str) -> List[Command]:
    """The commands of a shell block: `$ ` lines with the output shown after each, or, in a
    block with no `$ ` line, every line that is not blank or a comment, output not shown."""
    lines = text.splitlines()
    if not any(line.startswith("$ ") for line in lines):
        return [Command(line, None, 0) for line in lines if line.strip() and not line.startswith("#")]
    found: List[Command] = []
    for line in lines:
        if line.startswith("$ "):
            status = re.search(r"#\s*exits (\d+)\s*$", line)
            found.append(Command(line[2:], None, int(status.group(1)) if status else 0))
        else:
            assert found, f"output before any command: {line!r}"
            found[-1].output = (found[-1].output or "") + line + "\n"
    return found


def environment() -> dict:
    """The reader's shell: the installed `ivig` (and this Python) first on the PATH."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def run_shell(block: Block, folder: Path):
    for command in commands(block.text):
        done = subprocess.run(
            ["bash", "-c", command.line],
            cwd=folder,
            env=environment(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=600,
        )
        said = f"{block.name}: $ {command.line}\n--- printed ---\n{done.stdout}"
        assert done.returncode == command.status, f"exit {done.returncode}, not {command.status}\n{said}"
        if command.output is not None:
            assert matches(command.output, done.stdout), f"{said}--- the page shows ---\n{command.output}"


# --- Python blocks --------------------------------------------------------------------------

DOCTEST = (
    "import doctest, sys\n"
    "failed, tried = doctest.testfile(sys.argv[1], module_relative=False, optionflags=doctest.ELLIPSIS)\n"
    "sys.exit(1 if failed or not tried else 0)\n"
)


def run_python(block: Block, folder: Path):
    if block.lang == "pycon":
        (folder / "session.txt").write_text(block.text, encoding="utf-8")
        argv = [sys.executable, "-c", DOCTEST, "session.txt"]
    else:
        (folder / "script.py").write_text(block.text, encoding="utf-8")
        argv = [sys.executable, "script.py"]
    done = subprocess.run(argv, cwd=folder, env=environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{block.name}\n{done.stdout[-5000:]}\n{done.stderr[-5000:]}"
    if "dask" in block.text:
        dask_results_are_ivig_evaluate(folder)


def dask_results_are_ivig_evaluate(folder: Path):
    """The Dask script's results/N.jsonl is what `ivig evaluate exports/F.jsonl --format jsonl`
    writes for the N-th export, byte for byte, every line ended, sources named as the CLI names them."""
    exports = sorted((folder / "exports").glob("*.jsonl"))
    assert exports
    for n, export in enumerate(exports):
        written = (folder / "results" / f"{n}.jsonl").read_text(encoding="utf-8")
        cli = ivig("evaluate", f"exports/{export.name}", "--format", "jsonl", "-q", cwd=folder)
        assert written == cli.stdout and written.endswith("}\n")
        sources = {json.loads(line)["source"] for line in written.splitlines()}
        assert sources == {f"exports/{export.name}"}


# --- YAML blocks ----------------------------------------------------------------------------


def shipped_rules() -> dict:
    """Every rule of rules/ as its file writes it, by id."""
    manifest = yaml.safe_load((ROOT / "rules" / "rulebase.yaml").read_text(encoding="utf-8"))
    found = {}
    for name in manifest["rule_files"]:
        for rule in yaml.safe_load((ROOT / "rules" / name).read_text(encoding="utf-8"))["rules"]:
            found[rule["id"]] = rule
    return found


def written_in(part, whole) -> bool:
    """Whether every key of `part` is in `whole` with the same value (mappings compared key by key)."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(k in whole and written_in(v, whole[k]) for k, v in part.items())
    return part == whole


def yaml_kind(data) -> Optional[str]:
    if isinstance(data, dict) and "issuers" in data:
        return "trust file"
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    if all("expect" in item for item in items):
        return "scenario file"
    if all("id" in item and "when" in item for item in items):
        return "rules"
    if all("diagnosis" in item for item in items):
        return "case file"
    return None


def check_yaml(block: Block, folder: Path):
    data = yaml.safe_load(block.text)
    kind = yaml_kind(data)
    if kind == "case file":
        (folder / "case.yaml").write_text(block.text, encoding="utf-8")
        done = ivig("evaluate", "case.yaml", "--format", "jsonl", "-q", cwd=folder)
        assert done.returncode == 0, done.stdout + done.stderr
        assert all(json.loads(line)["status"] == "ok" for line in done.stdout.splitlines())
    elif kind == "scenario file":
        (folder / "scenarios.yaml").write_text(block.text, encoding="utf-8")
        done = ivig("test", "scenarios.yaml", cwd=folder)
        assert done.returncode == 0, done.stdout + done.stderr
    elif kind == "rules":
        shipped = shipped_rules()
        for rule in data:
            assert written_in(rule, shipped.get(rule["id"])), f"{block.name}: not as rules/ writes {rule['id']}"
    elif kind == "trust file":
        from ivig_advisor.engine.service.jwtauth import Trust

        (folder / "trust.yaml").write_text(block.text, encoding="utf-8")
        assert Trust.load(folder / "trust.yaml").issuers
    else:
        pytest.fail(f"{block.name}: a YAML block that is no case, scenario file, rule or trust file")


# --- pictures -------------------------------------------------------------------------------


def rooms_picture(block: Block):
    """The picture of the rooms names each room of LAYERS, and no other folder."""
    named = set(re.findall(r"\b([a-z]+)/", block.text))
    assert named == set(LAYERS), named ^ set(LAYERS)


PICTURES = {("docs/developer.md", "clinician/"): rooms_picture}


def check_picture(block: Block):
    key = next((k for k in PICTURES if k[0] == block.page and k[1] in block.first_line), None)
    assert key, f"{block.name}: a text block that no check knows (a picture needs one in PICTURES)"
    PICTURES[key](block)


# --- the folder a block runs in -------------------------------------------------------------

GOOD_CASES = [
    {"diagnosis": "gbs", "walks_unaided": False, "weight_kg": 70},
    {"diagnosis": "mmn", "planned_cotherapy": ["corticosteroids"], "weight_kg": 68},
    {"diagnosis": "als", "ivig_planned": False},
    {"diagnosis": "cidp", "iga_deficiency": True, "anti_iga_antibodies": True},
]


def make_exports(folder: Path):
    """exports/0.jsonl and 1.jsonl for the Dask script: good cases, and a bad line in each."""
    (folder / "exports").mkdir()
    for n in range(2):
        lines = [json.dumps(dict(GOOD_CASES[(i + n) % 4], id=f"e{n}-{i}")) for i in range(40)]
        lines.insert(5, ['{"diagnosis": "gbs", "age": 300}', "{not json"][n])
        (folder / "exports" / f"{n}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_bulk_export(folder: Path):
    """export/: a Bulk Data export (one NDJSON file per resource type, relative references)
    of the patient of tests/fhir/bundles/gbs.json."""
    bundle = json.loads((ROOT / "tests" / "fhir" / "bundles" / "gbs.json").read_text(encoding="utf-8"))
    relative = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    by_type: dict = {}
    for entry in bundle["entry"]:
        text = json.dumps(entry["resource"])
        for full, rel in relative.items():
            text = text.replace(json.dumps(full), json.dumps(rel))
        by_type.setdefault(entry["resource"]["resourceType"], []).append(text)
    (folder / "export").mkdir()
    for kind, lines in by_type.items():
        (folder / "export" / f"{kind}.ndjson").write_text("\n".join(lines) + "\n", encoding="utf-8")


MADE = {"exports/*.jsonl": make_exports, "export/": make_bulk_export}


def prepare(folder: Path, group: List[Block]):
    for part in COPIED:
        shutil.copytree(ROOT / part, folder / part)
    text = "".join(block.text for block in group)
    for named, make in MADE.items():
        if named in text:
            make(folder)


def run_block(block: Block, folder: Path):
    if block.lang in SHELLS:
        run_shell(block, folder)
    elif block.lang in ("pycon", "python"):
        run_python(block, folder)
    elif block.lang == "yaml":
        check_yaml(block, folder)
    elif block.lang == "text":
        check_picture(block)
    else:
        pytest.fail(f"{block.name}: no test knows how to run a ```{block.lang} block")


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("group", groups(), ids=lambda group: group[0].name)
def test_the_block_runs_as_pasted_and_shows_what_it_prints(group, tmp_path):
    prepare(tmp_path, group)
    for block in group:
        run_block(block, tmp_path)


def test_every_block_is_of_a_kind_a_test_runs():
    unknown = [b.name + " ```" + b.lang for b in all_blocks() if b.lang not in KNOWN and b.not_run is None]
    assert unknown == []


def test_the_blocks_not_run_are_marked_listed_and_say_why():
    left_out = [b for b in all_blocks() if b.not_run is not None]
    assert {(b.page, b.first_line) for b in left_out} == NOT_RUN
    assert all(len(b.not_run) > 10 for b in left_out), [b.name for b in left_out]
    ran = sum(len(group) for group in groups())
    print(f"{ran} blocks run, {len(left_out)} not run: " + "; ".join(f"{b.name} ({b.not_run})" for b in left_out))


def test_the_front_page_commands_are_what_ci_runs():
    """The two commands the front page promises on a fresh machine (its Quick start) are the ones
    .ci/run runs."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    quick_start = (readme.index("## Quick start"), readme.index("## An example"))
    promised = [
        b.first_line
        for b in blocks_of(ROOT / "README.md")
        if b.not_run is not None and quick_start[0] < b.line < quick_start[1]
    ]
    assert promised == ["pip install -e . && ivig evaluate examples/", 'pip install -e ".[test]" && pytest']
    # each step of each command, in order, among the commands of .ci/run (which may add others
    # between them, and send output elsewhere: `ivig evaluate examples/ > /dev/null`)
    ci = [
        step.strip()
        for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
        for step in line.split(" && ")
    ]
    at = 0
    for step in (step for command in promised for step in command.split(" && ")):
        found = [i for i in range(at, len(ci)) if ci[i] == step or ci[i].startswith(step + " ")]
        assert found, f"{step!r} is not run by .ci/run (after its step {at})"
        at = found[0] + 1


def test_no_command_hides_in_an_indented_block():
    """An indented code block would escape the fences this test reads."""
    for page in PAGES:
        fenced = False
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            if FENCE.match(line) or re.match(r"^ *```\s*$", line):
                fenced = not fenced
            assert fenced or not re.match(r"^ {4,}\$ ", line), f"{page.name}:{number}: {line}"


def test_the_output_check_can_fail():
    assert matches("a\n...\nc\n", "a\nb\nb2\nc\n") and matches("a\n...\nc\n", "a\nc\n")
    assert matches("hash ...)\n", "hash 98d35ac3)\n") and matches("x  \n", "x\n")
    assert not matches("a\nc\n", "a\nb\nc\n") and not matches("hash ...)\n", "hash 1\n2)\n")
    assert not matches("a\n", "a\nb\n") and not matches("...\nz\n", "a\nb\n")


def test_commands_read_their_output_and_exit_status():
    found = commands("$ ivig x  # exits 2\nout\n  more\n$ ls\n")
    assert [(c.line, c.output, c.status) for c in found] == [
        ("ivig x  # exits 2", "out\n  more\n", 2),
        ("ls", None, 0),
    ]
    assert [c.line for c in commands("# a comment\nivig a\n\nivig b\n")] == ["ivig a", "ivig b"]


# --- links and the pages' tables ------------------------------------------------------------


def outside_blocks(page: Path) -> str:
    text, kept, fenced = page.read_text(encoding="utf-8"), [], False
    for line in text.splitlines():
        if FENCE.match(line) or re.match(r"^ *```\s*$", line):
            fenced = not fenced
        elif not fenced:
            kept.append(line)
    return "\n".join(kept)


def anchors(page: Path) -> set:
    """The anchors GitHub gives a page's headings."""
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", outside_blocks(page), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        found.add(slug)
    return found


def test_every_link_between_the_pages_resolves():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", outside_blocks(page)):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and (linked.suffix != ".md" or anchor not in anchors(linked)):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_pages_run_elsewhere_are_run_there():
    for page, runner in RUN_ELSEWHERE.items():
        assert blocks_of(ROOT / page), f"{page} has no block"
        assert f'"{Path(page).name}"' in (ROOT / runner).read_text(encoding="utf-8"), f"{runner} does not read {page}"


def test_the_front_page_links_every_page_of_docs():
    linked = set(re.findall(r"\]\(docs/([^)#\s]+)\)", (ROOT / "README.md").read_text(encoding="utf-8")))
    assert linked == {page.name for page in (ROOT / "docs").glob("*.md")}


def table_rows(page: Path, heading: str) -> List[List[str]]:
    """The cells of the first table under `heading` (a whole heading line), header and rule left out."""
    text = outside_blocks(page)
    section = text[text.index(heading + "\n") + len(heading) :]
    rows = []
    for line in section.splitlines():
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
        elif rows:
            break
    return rows[2:]


def engine_modules() -> set:
    """Every module of engine/ as the table names it: a package by its folder ('core/cache/'),
    engine/'s own __init__ as '__init__.py'."""
    named = set()
    for path in ENGINE.rglob("*.py"):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(ENGINE)
        if path.name != "__init__.py":
            named.add(rel.as_posix())
        else:
            named.add("__init__.py" if rel.parent == Path(".") else rel.parent.as_posix() + "/")
    return named


def test_the_module_table_names_every_module_of_engine_and_nothing_else():
    rows = table_rows(DEVELOPER, "## Modules")
    named = [row[0].strip("`") for row in rows]
    assert len(named) == len(set(named)), "a module named twice"
    assert set(named) == engine_modules(), {
        "not in the table": sorted(engine_modules() - set(named)),
        "not in engine/": sorted(set(named) - engine_modules()),
    }
    assert all(len(row) == 2 and len(row[1]) > 10 and "TODO" not in row[1] for row in rows), "a module without its job"


def test_the_module_table_check_sees_a_missing_module():
    # the check above can fail: engine/ has packages, an __init__ and modules, all named
    assert {"__init__.py", "core/", "core/cache/", "core/advisor.py", "io/fhir/bundles.py"} <= engine_modules()


def test_the_table_of_layers_is_the_one_the_architecture_test_checks():
    rows = table_rows(DEVELOPER, "## The rooms of engine/ and their layers")
    table = {
        row[0].strip("`/"): set() if "nothing" in row[1] else {r.strip("`/ ") for r in row[1].split(",")}
        for row in rows
    }
    assert table == LAYERS
