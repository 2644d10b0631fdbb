"""The command line's contract (issue 12): one exit status per kind of end,
from one table; the shared options named and placed the same in every
command; one error hierarchy in the library; each report renders itself to
JSON; precedence and review flags shown where a person meets them."""

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner
from helpers import ROOT, mutate

from ivig_advisor import cli
from ivig_advisor.cli import main
from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.audit import views as A
from ivig_advisor.engine.base import errors

GOLDEN = ROOT / "tests" / "cases" / "golden.yaml"
GBS = ROOT / "examples" / "gbs-unable-to-walk.yaml"
MMN = ROOT / "examples" / "mmn.yaml"


def run(*args, input=None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)


@pytest.fixture
def invalid_case(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("diagnosis: gbs\nweight_kg: -3\n", encoding="utf-8")
    return path


# -- exit statuses, from one table -------------------------------------------------------


def test_an_invalid_case_ends_the_same_under_resume_and_why_not(invalid_case):
    resumed = run("interview", "--resume", invalid_case, input="")
    explained = run("audit", "why-not", invalid_case, "gbs-dose")
    for result in (resumed, explained):
        assert result.exit_code == cli.EXIT_USAGE == 2, result.output
        assert result.stderr.startswith(f"error: {invalid_case}:2: [weight_kg] 'weight_kg' is -3 kg")
        assert result.stdout == "" and "Traceback" not in result.output
    help_text = " ".join(run("audit", "why-not", "--help").stdout.split())
    assert "one case a command reads (interview --resume, audit why-not)" in help_text


def test_a_case_file_without_the_one_case_wanted_is_a_usage_error(tmp_path):
    two = tmp_path / "two.jsonl"
    two.write_text('{"id": "p1", "diagnosis": "mmn"}\n{"id": "p2", "diagnosis": "gbs"}\n', encoding="utf-8")
    for args in (("interview", "--resume", two), ("audit", "why-not", two, "gbs-dose")):
        several = run(*args, input="")
        assert several.exit_code == 2 and "holds 2 cases (p1, p2); choose one with --id" in several.stderr
        missing = run(*args, "--id", "p3", input="")
        assert missing.exit_code == 2 and "no case with the id 'p3' (cases: p1, p2)" in missing.stderr


def test_an_id_is_matched_as_written(tmp_path):
    path = tmp_path / "ids.yaml"
    path.write_text("id: 00123\ndiagnosis: gbs\nwalks_unaided: false\n---\nid: 7\ndiagnosis: mmn\n", encoding="utf-8")
    chosen = run("audit", "why-not", path, "gbs-dose", "--id", "00123", "--format", "json")
    assert chosen.exit_code == 0, chosen.output
    assert json.loads(chosen.stdout)["id"] == "00123"


@pytest.mark.parametrize(
    "args, param",
    [
        (("audit", "why-not", GBS, "gbs-dosee"), "RULE"),
        (("audit", "show", "gbs-dosee"), "RULE"),
        (("audit", "rules", "--disease", "flu"), "--disease"),
        (("audit", "sign", "gbs-dosee", "--verdict", "approved", "--reviewer", "X"), "RULE"),
    ],
)
def test_a_name_that_names_nothing_is_a_usage_error_about_its_parameter(args, param, rules_copy):
    if args[1] == "sign":
        args = (*args, "--rules", rules_copy)
    result = run(*args)
    assert result.exit_code == 2
    assert f"Invalid value for {param}:" in result.stderr or f"Invalid value for '{param}':" in result.stderr
    assert result.stderr.startswith("Usage: ") and " audit " in result.stderr.splitlines()[0]


def test_an_unknown_rule_is_refused_before_any_engine_work(monkeypatch):
    advisor = Advisor(RuleBase.load())

    def no_work(*args, **kwargs):
        raise AssertionError("the engine ran")

    monkeypatch.setattr(Advisor, "validate", no_work)
    monkeypatch.setattr(Advisor, "run", no_work)
    with pytest.raises(errors.UnknownRule) as raised:
        A.why_not(advisor, {"diagnosis": "gbs"}, "gbs-dosee")
    assert "did you mean 'gbs-dose'?" in str(raised.value) and isinstance(raised.value, LookupError)
    with pytest.raises(errors.UnknownRule):
        A.why_not_in(advisor, str(GOLDEN), "gbs-dosee")  # before the file is read
    with pytest.raises(errors.UnknownDiagnosis):
        A.diagnosis_value(advisor.rulebase, "flu")


def test_a_broken_rule_base_ends_every_command_with_its_errors(rules_copy):
    mutate(rules_copy / "mmn.yaml", "      refs: [52]\n", "      refs: [52]\n      bogus: 1\n")
    for args in (
        ("evaluate", MMN),
        ("interview",),
        ("audit", "rules"),
        ("audit", "show", "mmn-general"),
        ("audit", "coverage", MMN),
        ("audit", "why-not", MMN, "mmn-general"),
        ("audit", "diff", "--base", ROOT / "rules", MMN),
    ):
        result = run(*args, "--rules", rules_copy, input="")
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("error: ") and "unknown source key 'bogus'" in result.stderr, args
    checked = run("audit", "check", "--rules", rules_copy)  # the check reports load errors as findings
    assert checked.exit_code == 1 and "unknown source key 'bogus'" in checked.stdout


def test_a_refused_output_and_an_internal_error_have_their_statuses(tmp_path, monkeypatch):
    refused = run("evaluate", MMN, "-o", tmp_path / "nowhere" / "out.json")
    assert refused.exit_code == 2 and refused.stderr.startswith("error: ") and "no such folder" in refused.stderr
    monkeypatch.setattr(A, "diff", lambda *a, **k: {}["a bug"])
    bug = run("audit", "diff", "--base", ROOT / "rules", MMN)
    assert bug.exit_code == cli.EXIT_INTERNAL == 70 and "internal error (KeyError" in bug.stderr


def test_every_library_error_has_a_row_in_the_table():
    table = cli.error_table()
    classes = [getattr(errors, name) for name in errors.__all__]
    for klass in classes:
        if isinstance(klass, type) and issubclass(klass, (errors.IvigError, errors.Stopped)):
            first = next(row for row in table if issubclass(klass, row[0]))
            assert first[0] is klass or klass is errors.IvigError, (klass, first)  # its own row, not a catch-all
            assert callable(first[1]) or first[1] in (cli.EXIT_USAGE, cli.EXIT_IO, cli.EXIT_WORKER), klass
    from ivig_advisor.engine import CaseInvalid, IvigError, RuleBaseInvalid

    for klass in (CaseInvalid, RuleBaseInvalid):  # beside what they guard, in the one hierarchy
        assert issubclass(klass, errors.InvalidSource) and issubclass(klass, IvigError)
        assert next(row for row in table if issubclass(klass, row[0]))[1] == cli.EXIT_USAGE


# -- one error hierarchy --------------------------------------------------------------


def test_the_library_errors_are_one_hierarchy_importable_where_they_were():
    from ivig_advisor.engine.audit import signoff
    from ivig_advisor.engine.base import atomic
    from ivig_advisor.engine.clinician import interview

    assert atomic.OutputRefused is errors.OutputRefused and atomic.WriteFailed is errors.WriteFailed
    for name in ("SignOffInvalid", "LogUnusable", "NoLogHere", "LogLocked"):
        assert getattr(signoff, name) is getattr(errors, name)
    assert interview.ResumeError is errors.CaseChoice
    builtin = {
        "OutputRefused": ValueError,
        "WriteFailed": OSError,
        "SignOffInvalid": ValueError,
        "LogUnusable": ValueError,
        "NoLogHere": ValueError,
        "LogLocked": TimeoutError,
        "CaseChoice": ValueError,
        "UnknownRule": LookupError,
        "UnknownDiagnosis": LookupError,
    }
    for name, base in builtin.items():
        klass = getattr(errors, name)
        assert issubclass(klass, errors.IvigError) and issubclass(klass, base), name
    assert not issubclass(errors.Stopped, Exception)  # unwinds like KeyboardInterrupt, past `except Exception`
    failed = errors.WriteFailed(28, "cannot write x: No space left on device")
    assert failed.errno == 28 and failed.strerror.endswith("No space left on device")


# -- shared options, the same everywhere -----------------------------------------------------


def commands(group=main, path=()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, path + (name,))
        else:
            yield path + (name,), command


SHARED = {"fmt": ["--format"], "output": ["--output", "-o"], "rules_dir": ["--rules"]}


def test_the_shared_options_have_one_name_and_one_place():
    seen = {}
    for path, command in commands():
        options = [p for p in command.params if isinstance(p, click.Option) and not p.hidden]
        names = [p.name for p in options]
        assert "rules_dir" in names, path  # every command takes --rules DIR
        shared = [n for n in names if n in SHARED]
        assert names[: len(shared)] == shared == [n for n in SHARED if n in names], (path, names)  # first, in order
        for option in options:
            if option.name in SHARED:
                assert option.opts + option.secondary_opts == SHARED[option.name] or sorted(option.opts) == sorted(
                    SHARED[option.name]
                ), (path, option.opts)
                if option.name != "fmt":
                    seen.setdefault(option.name, set()).add(option.help)
    assert len(seen["rules_dir"]) == 1
    formats = {path for path, command in commands() if any(p.name == "fmt" for p in command.params)}
    assert formats == {
        ("evaluate",),
        ("audit", "rules"),
        ("audit", "doses"),
        ("audit", "show"),
        ("audit", "check"),
        ("audit", "coverage"),
        ("audit", "why-not"),
        ("audit", "diff"),
        ("test",),
        ("schema",),
        ("audit", "overrides"),
        ("audit", "calls"),
        ("audit", "evidence"),
        ("audit", "table"),
        ("fhir", "codes"),
    }


def test_rules_is_taken_after_the_subcommand_and_in_the_old_place(rules_copy):
    mutate(rules_copy / "mmn.yaml", "      refs: [52]\n", "      refs: [52]\n      bogus: 1\n")
    for args in (("audit", "check", "--rules", rules_copy), ("audit", "--rules", rules_copy, "check")):
        result = run(*args, "--format", "json")
        assert result.exit_code == 1 and "bogus" in json.loads(result.stdout)["findings"][0]["message"], args
    assert "--rules" not in run("audit", "--help").stdout.split("Commands:")[0].split("Options:")[1]


def test_report_writes_to_output_and_to_the_old_out(tmp_path):
    for option in ("-o", "--output", "--out"):
        target = tmp_path / f"r{option.strip('-')}.html"
        result = run("audit", "report", option, target, "--cases", MMN)
        assert result.exit_code == 0, result.output
        assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    missing = run("audit", "report")
    assert missing.exit_code == 2 and "Missing option '-o' / '--output'" in missing.stderr


# -- each report renders itself ------------------------------------------------------------


def test_each_report_is_the_json_the_command_prints(rules_copy):
    advisor = Advisor(RuleBase.load())

    def printed(*args):
        result = run(*args, "--format", "json")
        assert result.exit_code in (0, 1), result.output
        return json.loads(result.stdout)

    def same(data):
        return json.loads(json.dumps(data))

    check = A.check()
    assert printed("audit", "check") == same(check.to_dict()) and check.to_dict()["ok"] is True
    assert list(check.to_dict()) == [
        "ok",
        "findings",
        "notes",
        "combinations",
        "excluded",
        "states",
        "signoff",
        "evidence_signoff",
        "per_diagnosis",
        "against",  # with --against: the edit over every patient (None without)
    ]
    cover = A.coverage(advisor, [str(MMN), str(GBS)])
    assert printed("audit", "coverage", MMN, GBS) == same(cover.to_dict())
    assert cover.to_dict()["cases"] == 2 and len(cover.to_dict()["rules"]) == len(advisor.rulebase.rules)
    why = A.why_not_in(advisor, str(GBS), "gbs-mild-ambulatory")
    assert printed("audit", "why-not", GBS, "gbs-mild-ambulatory") == same(why.to_dict())
    assert why.to_dict()["rule"] == "gbs-mild-ambulatory" and why.to_dict()["fired"] is False
    assert list(why.to_dict()) == ["id", "rule", "fired", "tests", "blocked_by", "would_fire_if"]
    assert list(cover.to_dict()) == ["cases", "errors", "failed", "rules", "never_fired"]
    mutate(rules_copy / "safety.yaml", "severity: critical", "severity: warning")
    report = A.diff(Advisor(RuleBase.load(ROOT / "rules")), Advisor(RuleBase.load(rules_copy)), [str(GOLDEN)])
    data = report.to_dict()
    assert data["compared"] == report.compared == len(list(A.read_corpus([str(GOLDEN)])))
    assert data["differ"] == len(data["cases"]) == len(report.differences) >= 1
    assert list(data) == ["compared", "differ", "failed", "cases", "rules", "every_patient"]
    assert list(data["cases"][0]) == ["id", "source", "line", "base", "this", "changed"]
    assert printed("audit", "diff", "--rules", rules_copy, "--base", ROOT / "rules", GOLDEN) == same(data)


# -- precedence and review flags ------------------------------------------------------------


def test_show_lists_the_rules_a_rule_preempts_and_is_preempted_by():
    data = json.loads(run("audit", "show", "gbs-severe-first-line", "--format", "json").stdout)
    assert "gbs-general" in data["preempts"] and "gbs-second-course" in data["preempted_by"]
    assert not set(data["preempts"]) & {"mmn-general", "gbs-severe", "gbs-dose"}  # other disease, no stance layer
    text = run("audit", "show", "gbs-severe-first-line").stdout
    assert "  Pre-empts: gbs-general" in text and "  Pre-empted by: gbs-second-course" in text
    plan = json.loads(run("audit", "show", "gbs-dose", "--format", "json").stdout)
    assert plan["preempts"] == plan["preempted_by"] == []


def test_preemption_runs_from_a_stance_setter_to_a_later_stance_layer_of_the_same_disease(rulebase):
    over, under = A.preempts(rulebase), A.preempted_by(A.preempts(rulebase))
    index = {r.id: rulebase.layer(r.layer).index for r in rulebase.rules}
    edges = [(a, b) for a, targets in over.items() for b in targets]
    assert edges
    for a, b in edges:
        assert index[a] < index[b] and "stance" in rulebase.by_id[a].derives and a in under[b]
        assert rulebase.layer(rulebase.by_id[b].layer).sets_stance
    assert "mmn-general" not in over["gbs-severe-first-line"]


def test_a_review_flag_is_shown_where_the_field_is_met(rulebase, capsys):
    from ivig_advisor.engine.clinician.console import _Console
    from ivig_advisor.engine.clinician.interview import Interview

    flagged = rulebase.schema.fields["thrombocytopenia"]
    assert flagged.review_flag
    shown = run("audit", "show", "thrombosis-risk-group").stdout
    assert "Review flag (thrombocytopenia): The translation says" in shown
    assert "Review flag" not in run("audit", "show", "gbs-dose").stdout
    console = _Console(Interview(Advisor(rulebase)), style=lambda text, **_: text)
    console.show_review_flag(flagged)
    assert capsys.readouterr().out.startswith("   Review flag: The translation says")
    console.show_review_flag(rulebase.schema.fields["diagnosis"])
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["evaluate", "--help"]])
def test_help_and_version_import_no_engine(args):
    """`ivig --help` stays fast (under 150 ms, bench/bench.py) by not importing what it does not
    use: the compiler, experta, the batch machinery. Counted by the modules loaded, not timed."""
    script = (
        "import sys\nfrom ivig_advisor.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "heavy = ('experta', 'ivig_advisor.engine.core.compiler', 'ivig_advisor.engine.batch.pipeline', 'yaml')\n"
        "print(sorted(name for name in sys.modules if name.startswith(heavy)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout, done.stderr
    assert done.stderr.strip() == "[]", done.stderr
