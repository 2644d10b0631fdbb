"""The fixtures the tests share; the plain functions are in helpers.py."""

import os
import shutil

import pytest
from click.testing import CliRunner
from helpers import ROOT, Keys, Server

from ivig_advisor.cli import main
from ivig_advisor.engine import Advisor, RuleBase

# pytest-xdist's workers run with COLUMNS=80 and LINES=24 set; a program under test at a
# pseudo-terminal must read the terminal's own size, as it would for a person
for _name in ("COLUMNS", "LINES"):
    os.environ.pop(_name, None)


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def rulebase():
    return RuleBase.load()


@pytest.fixture(scope="module")
def advisor():
    """An Advisor of the shipped rules, one per module (its cache of situations is its own)."""
    return Advisor()


@pytest.fixture
def run_cli():
    """Run the real `ivig` command; returns click's Result."""

    def run(*args, input=None):
        return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)

    return run


@pytest.fixture
def rules_copy(tmp_path):
    """An editable copy of the shipped rules/."""
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


@pytest.fixture(scope="session")
def dev(tmp_path_factory):
    """`ivig serve --insecure-dev` (no JWT), one per session."""
    server = Server(tmp_path_factory.mktemp("serve-dev"), "--insecure-dev")
    yield server
    server.stop()
    assert server.proc.returncode is not None  # no orphan process


@pytest.fixture(scope="session")
def keys(tmp_path_factory):
    return Keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="session")
def secure(tmp_path_factory, keys):
    """`ivig serve` trusting `keys` (JWTs signed with them), one per session."""
    server = Server(tmp_path_factory.mktemp("serve-secure"), "--trust", str(keys.trust))
    yield server
    server.stop()
