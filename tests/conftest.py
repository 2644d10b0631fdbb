import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ivig_advisor.cli import main
from ivig_advisor.engine import RuleBase

ROOT = Path(__file__).resolve().parent.parent

# pytest-xdist's workers run with COLUMNS=80 and LINES=24 set; a program under test at a
# pseudo-terminal must read the terminal's own size, as it would for a person
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


@pytest.fixture(scope="session")
def rulebase():
    return RuleBase.load()


@pytest.fixture
def run_cli():
    """Run the real `ivig` command; returns click's Result."""

    def run(*args, input=None):
        return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)

    return run


def jsonl(output: str):
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def results_of(run_cli, *paths, input=None):
    """The JSON results of `ivig evaluate PATHS` through the real command (exit 0 or 1)."""
    out = run_cli("evaluate", "--format", "jsonl", "--quiet", *map(str, paths), input=input)
    assert out.exit_code in (0, 1), out.output
    return jsonl(out.stdout)


def written(tmp_path, text, name="cases.csv"):
    """A file of `text` (str: as UTF-8; bytes: as they are) in tmp_path."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


@pytest.fixture
def rules_copy(tmp_path):
    """An editable copy of the shipped rules/."""
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


def mutate(path, old, new):
    """Replace the first `old` in a file by `new` (which must be there)."""
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
