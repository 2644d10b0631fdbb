"""The fixtures the tests share, and the two runs.

`pytest` is the fast set: the tests marked slow are left out, and hypothesis runs its `dev`
profile (a few examples a test). `pytest --all` is the whole suite with the `ci` profile
(each test's own number of examples), as CI runs it. A test is slow when it runs a process
of its own (the real `ivig`, a pseudo-terminal, a server), found in the code it runs (see
`starts_a_process`), or when its file says so (`pytestmark = pytest.mark.slow`), or when it is
in SLOW, the tests measured slow in this process. The plain functions are in helpers.py.
"""

import inspect
import os
import shutil
import subprocess
from pathlib import Path

import pexpect
import pytest
from click.testing import CliRunner
from helpers import ROOT, Keys, Server
from hypothesis import settings

from ivig_advisor.cli import main
from ivig_advisor.engine import Advisor, RuleBase

TESTS = Path(__file__).resolve().parent

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


# -- the fast set and the whole suite ----------------------------------------------------

# In-process tests measured slow: each took over 5 s (all its parameters together) in
# `pytest --durations=0 -n 2` on this 2-core machine under load, in a benchmark-like loop over
# many cases or an exhaustive walk. By function name, so that moving a test keeps it here.
SLOW = {
    "test_a_sample_of_each_diagnosis_fact_space",  # 34 s: 240 cases, twice, for each of 15 diagnoses
    "test_the_walk_finds_a_missing_warning",  # 22 s: the safety walk of 8 mutated rule bases
    "test_results_are_the_same_with_and_without_the_trims",  # 22 s: the golden cases twice, uncached
    "test_the_cli_gives_the_same_bytes_with_and_without_the_cache",  # 11 s
    "test_a_batch_that_never_repeats_stores_only_a_sample_and_still_answers_the_same",  # 10 s
    "test_diff_shows_the_cases_an_edit_changes",  # 7 s
    "test_each_report_is_the_json_the_command_prints",  # 7 s
    "test_two_cases_that_differ_in_one_tested_field_are_not_taken_for_one_situation",  # 5 s
}


def pytest_addoption(parser):
    parser.addoption(
        "--all",
        action="store_true",
        dest="run_all",
        help="the whole suite: the slow tests too, and hypothesis's ci profile (pytest alone runs the fast set)",
    )


# dev: a few examples a test (each test's own max_examples is capped, see cap_examples);
# ci: each test's own max_examples, hypothesis's defaults otherwise, as before the profiles
settings.register_profile("dev", settings.get_profile("default"), max_examples=10)
settings.register_profile("ci", settings.get_profile("default"))


def pytest_xdist_auto_num_workers(config):
    """`-n auto` (setup.cfg) runs tests named one by one (tests/test_x.py::name) in this
    process, where starting workers would cost more than they save; else xdist's choice."""
    if config.args and all("::" in arg for arg in config.args):
        return 0
    return None


def pytest_configure(config):
    """The hypothesis profile: HYPOTHESIS_PROFILE if set, else ci for --all and dev for the
    fast set (hypothesis's own --hypothesis-profile, applied after this, wins over both)."""
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if config.option.run_all else "dev"))


def pytest_report_header(config):
    tests = "the fast set (pytest --all runs the slow tests too)" if leaves_slow_out(config) else "slow tests too"
    return f"{tests}; hypothesis profile {settings.get_current_profile_name()}"


@pytest.hookimpl(tryfirst=True)  # before -m and -k choose among the marked tests
def pytest_collection_modifyitems(config, items):
    for item in items:
        if is_slow(item):
            item.add_marker(pytest.mark.slow)
        cap_examples(item)
    if leaves_slow_out(config):
        slow = [item for item in items if item.get_closest_marker("slow")]
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


def leaves_slow_out(config) -> bool:
    """The run of the whole tree (`pytest`, `pytest tests/`) leaves the slow tests out; a run
    that says which tests it wants runs them, slow or not: --all, -m, -k, --lf, or a folder
    below tests/, a file or a test named on the command line (tests/service/, tests/x/test_y.py::name)."""
    option = config.option
    if option.run_all or option.markexpr or option.keyword or getattr(option, "lf", False):
        return False
    here = config.invocation_params.dir
    return all((here / arg.split("::")[0]).resolve() == TESTS for arg in config.args)


def is_slow(item) -> bool:
    return bool(item.get_closest_marker("slow")) or item.originalname in SLOW or starts_a_process(item)


# a test that names one of these (or a helper that does) starts a process of its own
PROCESS_MODULES = (subprocess, pexpect)


def starts_a_process(item) -> bool:
    """Whether the code of the test or of a fixture it uses, or of a function or class of the
    tests they call (helpers.ivig, helpers.Server, a module's own runner), names subprocess or pexpect."""
    if not isinstance(item, pytest.Function):
        return False
    fixtures = [defs[-1].func for defs in item._fixtureinfo.name2fixturedefs.values()]
    return any(names_a_process(function, set()) for function in [as_written(item.obj), *fixtures])


def as_written(obj):
    """The test function as written: under hypothesis's @given and any functools.wraps."""
    inner = getattr(getattr(obj, "hypothesis", None), "inner_test", obj)
    return inspect.unwrap(getattr(inner, "__func__", inner))  # a method: its function


def names_a_process(obj, seen: set) -> bool:
    """Whether a function (or class) of the tests names a process module, itself or through
    the tests' functions and classes it names."""
    if id(obj) in seen or not of_the_tests(obj):
        return False
    seen.add(id(obj))
    if inspect.isclass(obj):
        return any(names_a_process(member, seen) for member in vars(obj).values() if inspect.isfunction(member))
    scope = obj.__globals__
    for code in codes(obj.__code__):
        for name in code.co_names:
            value = scope.get(name)
            if any(value is module for module in PROCESS_MODULES) or names_a_process(value, seen):
                return True
    return False


def of_the_tests(obj) -> bool:
    """A function or class written in tests/ (not pytest's, not the library's)."""
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return False
    try:
        return TESTS in Path(inspect.getfile(obj)).resolve().parents
    except TypeError:  # a built-in
        return False


def codes(code):
    """A code object and those nested in it (inner functions, lambdas, comprehensions)."""
    yield code
    for const in code.co_consts:
        if inspect.iscode(const):
            yield from codes(const)


def cap_examples(item) -> None:
    """Under the dev profile, a hypothesis test runs at most the profile's max_examples: the
    tests set their own (@settings(max_examples=300)), which a profile alone cannot lower."""
    test = item.obj
    own = getattr(test, "_hypothesis_internal_use_settings", None)
    limit = settings.default.max_examples
    if settings.get_current_profile_name() == "dev" and own is not None and own.max_examples > limit:
        test._hypothesis_internal_use_settings = settings(own, max_examples=limit)
