"""The two runs (tests/conftest.py, setup.cfg): pytest is the fast set, pytest --all the whole
suite, a test named on the command line runs slow or not, and hypothesis's dev profile caps
each test's own number of examples. Through pytest itself, in a process of its own."""

import subprocess
import sys

from helpers import ROOT

SERVED = "tests/service/test_app.py::test_discovery_lists_the_three_hooks_with_prefetch_templates"  # dev: a server
IN_PROCESS = "tests/core/test_conditions.py::test_negate_is_the_complement_over_case_fields"  # hypothesis, 500 examples


def pytest_run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def collected(*args) -> set:
    """The test ids `pytest --collect-only ARGS` selects, from the checkout."""
    done = pytest_run("--collect-only", "-q", *args)
    assert done.returncode == 0, done.stdout + done.stderr
    return {line for line in done.stdout.splitlines() if "::" in line}


def test_the_default_run_leaves_a_test_with_a_server_out_and_all_keeps_every_test():
    fast, every = collected(), collected("--all")
    assert IN_PROCESS in fast and SERVED not in fast
    assert fast < every and SERVED in every
    assert collected("-m", "slow") == every - fast


def test_a_slow_test_named_on_the_command_line_runs():
    assert collected(SERVED) == {SERVED}


def test_the_dev_profile_caps_a_tests_own_examples():
    def examples(*args):
        done = pytest_run("-q", "--hypothesis-show-statistics", IN_PROCESS, *args)
        assert done.returncode == 0, done.stdout
        return int(done.stdout.split(" passing")[0].rsplit("- ", 1)[1])

    assert examples() == 10 and examples("--all") == 500
