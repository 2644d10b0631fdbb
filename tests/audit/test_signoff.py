"""The reviewers' record: `ivig audit sign` through the real CLI. Every sign-off
is kept under concurrent writers, a corrupted log is refused and never
appended to, a sign is all or nothing, a sign-off goes stale when anything
that decides its rule's outcome changes, and the log lives beside the rules
the reviewer works on."""

import datetime
import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from helpers import ROOT, mutate, started

from ivig_advisor.engine import RuleBase

SIGN = ("--verdict", "approved", "--reviewer", "Dr Rev")


def sign(run_cli, rules_dir, *args):
    return run_cli("audit", "--rules", str(rules_dir), "sign", *args)


def states(run_cli, rules_dir):
    result = run_cli("audit", "--rules", str(rules_dir), "rules", "--format", "json")
    return {r["id"]: r["signoff"]["state"] for r in json.loads(result.stdout)}


def logged(rules_dir):
    return yaml.safe_load((rules_dir / "review-log.yaml").read_text(encoding="utf-8"))["signoffs"]


# -- concurrent writers ---------------------------------------------------------


def test_twenty_concurrent_signs_are_all_kept(rules_copy):
    rules = ["mmn-general", "gbs-dose", "mg-dose", "cidp-general"]
    procs = [
        started(
            "audit",
            "--rules",
            str(rules_copy),
            "sign",
            rules[i % 4],
            "--verdict",
            "approved",
            "--reviewer",
            f"Reviewer {i}",
        )
        for i in range(20)
    ]
    outcomes = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _, _ in outcomes), outcomes
    entries = logged(rules_copy)
    assert sorted(e["reviewer"] for e in entries) == sorted(f"Reviewer {i}" for i in range(20))
    assert not list(rules_copy.glob(".review-log.yaml.*.tmp"))  # no temporary file left behind
    shown = started("audit", "--rules", str(rules_copy), "rules", "--format", "json")
    records = json.loads(shown.communicate(timeout=120)[0])
    assert {r["id"]: r["signoff"]["state"] for r in records if r["id"] in rules} == dict.fromkeys(rules, "approved")


# -- a corrupted log is refused -----------------------------------------------------

ENTRY = "- rule: mmn-general\n  verdict: approved\n  reviewer: A\n  date: '2026-01-01'\n  hash: x\n"


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("", 1, "empty"),
        ("# nothing but a comment\n", 1, "empty"),
        ("signoffs: []\nnotes: kept here\n", 2, "unknown top-level key 'notes'"),
        ("notes: first\nsignoffs:\n" + ENTRY, 1, "unknown top-level key 'notes'"),
        ("signoffs: {}\n", 1, "'signoffs' must be a list"),
        ("signoffs: 3\n", 1, "'signoffs' must be a list"),
        (ENTRY, 1, "a mapping with a 'signoffs' list"),
        ("signoffs:\n- rule: [mmn-general\n", 3, "not valid YAML"),
        ("signoffs:\n- just a line\n", 2, "a sign-off must be a mapping"),
        ("signoffs:\n" + ENTRY.replace("  hash: x\n", ""), 2, "'hash' is missing"),
        ("signoffs:\n" + ENTRY.replace("'2026-01-01'", "2024-02-30"), 2, "date"),
        ("signoffs:\n" + ENTRY.replace("'2026-01-01'", "not-a-date"), 2, "date"),
        ("signoffs:\n" + ENTRY.replace("approved", "maybe"), 2, "verdict must be one of"),
    ],
)
def test_a_corrupted_log_is_refused_and_left_as_it_was(run_cli, rules_copy, text, line, words):
    path = rules_copy / "review-log.yaml"
    path.write_text(text, encoding="utf-8")
    result = sign(run_cli, rules_copy, "gbs-dose", *SIGN)
    assert result.exit_code == 2, result.output
    assert f"review-log.yaml:{line}:" in result.output and words in result.output
    assert "nothing was recorded" in result.output
    assert path.read_text(encoding="utf-8") == text
    # read, it is never taken for a log without sign-offs
    shown = run_cli("audit", "--rules", str(rules_copy), "rules", "--format", "json")
    assert f"review-log.yaml:{line}:" in shown.stderr
    assert set(states(run_cli, rules_copy).values()) == {"unreadable"}


@pytest.mark.parametrize(
    "text",
    [
        "signoffs: []\n",
        "signoffs: [ ]  # none yet\n",
        "signoffs:\n",
        "{signoffs: []}\n",
        "# comments first\nsignoffs:\n" + ENTRY,
        "signoffs: [{rule: mmn-general, verdict: approved, reviewer: A, date: '2026-01-01', hash: x}]\n",
    ],
)
def test_every_valid_shape_of_log_takes_a_sign_off_and_keeps_the_others(run_cli, rules_copy, text):
    path = rules_copy / "review-log.yaml"
    path.write_text(text, encoding="utf-8")
    before = yaml.safe_load(text)["signoffs"] or []
    result = sign(run_cli, rules_copy, "gbs-dose", *SIGN)
    assert result.exit_code == 0, result.output
    entries = logged(rules_copy)
    assert entries[:-1] == before and entries[-1]["rule"] == "gbs-dose"
    assert states(run_cli, rules_copy)["gbs-dose"] == "approved"


def test_appending_keeps_the_earlier_text_as_written(run_cli, rules_copy):
    sign(run_cli, rules_copy, "mmn-general", *SIGN)
    path = rules_copy / "review-log.yaml"
    first = path.read_text(encoding="utf-8") + "# a reviewer's note, kept\n"
    path.write_text(first, encoding="utf-8")
    assert sign(run_cli, rules_copy, "gbs-dose", *SIGN).exit_code == 0
    assert path.read_text(encoding="utf-8").startswith(first)


def test_a_sign_off_for_a_rule_since_removed_is_history_not_corruption(run_cli, rules_copy):
    path = rules_copy / "review-log.yaml"
    path.write_text("signoffs:\n" + ENTRY.replace("mmn-general", "mmn-retired"), encoding="utf-8")
    result = sign(run_cli, rules_copy, "gbs-dose", *SIGN)
    assert result.exit_code == 0, result.output
    assert [e["rule"] for e in logged(rules_copy)] == ["mmn-retired", "gbs-dose"]
    assert states(run_cli, rules_copy)["gbs-dose"] == "approved"


# -- dates, and all or nothing ----------------------------------------------------------


@pytest.mark.parametrize(
    "date",
    [
        "2099-13-45",
        "not-a-date",
        "2024-02-30",
        "2026-1-5",
        "20260105",
        (datetime.date.today() + datetime.timedelta(days=2)).isoformat(),
    ],
)
def test_a_date_that_is_not_a_real_past_date_is_refused(run_cli, rules_copy, date):
    result = sign(run_cli, rules_copy, "mmn-general", *SIGN, "--date", date)
    assert result.exit_code == 2 and "--date" in result.output, result.output
    assert not (rules_copy / "review-log.yaml").exists()


def test_today_and_a_past_date_are_taken(run_cli, rules_copy):
    today = datetime.date.today().isoformat()
    assert sign(run_cli, rules_copy, "mmn-general", *SIGN, "--date", today).exit_code == 0
    assert sign(run_cli, rules_copy, "gbs-dose", *SIGN, "--date", "2024-02-29").exit_code == 0
    assert [e["date"] for e in logged(rules_copy)] == [today, "2024-02-29"]


def test_one_unknown_rule_records_nothing(run_cli, rules_copy):
    result = sign(run_cli, rules_copy, "mmn-general", "gbs-dosee", *SIGN)
    assert result.exit_code == 2 and "no rule 'gbs-dosee'; did you mean 'gbs-dose'?" in result.output
    assert "mmn-general" not in result.output.replace("'mmn-general'", "")
    assert not (rules_copy / "review-log.yaml").exists()
    both = sign(run_cli, rules_copy, "mmn-general", "gbs-dose", *SIGN)
    assert both.exit_code == 0 and [e["rule"] for e in logged(rules_copy)] == ["mmn-general", "gbs-dose"]


# -- staleness ---------------------------------------------------------------------------


def test_reordering_layers_makes_the_sign_offs_it_changes_stale(run_cli, rules_copy):
    rules = ("mmn-general", "mmn-without-conduction-block", "gbs-dose")
    assert sign(run_cli, rules_copy, *rules, *SIGN, "--date", "2026-01-02").exit_code == 0
    assert {k: v for k, v in states(run_cli, rules_copy).items() if k in rules} == dict.fromkeys(rules, "approved")
    manifest = rules_copy / "rulebase.yaml"
    text = manifest.read_text(encoding="utf-8")
    general = text[text.index("  - name: general") : text.index("  - name: plan")]
    manifest.write_text(
        text.replace(general, "").replace("  - name: subtype", general + "  - name: subtype"), encoding="utf-8"
    )
    # the answer changed: MMN without conduction block is now first-line
    case = rules_copy.parent / "mmn.yaml"
    case.write_text("diagnosis: mmn\nconduction_block: false\n", encoding="utf-8")
    answer = run_cli("evaluate", "--rules", str(rules_copy), "--format", "json", str(case))
    assert json.loads(answer.stdout)[0]["ivig"]["stance"] == "first-line"

    now = states(run_cli, rules_copy)
    assert now["mmn-general"] == now["mmn-without-conduction-block"] == now["gbs-dose"] == "stale"
    shown = run_cli("audit", "--rules", str(rules_copy), "show", "mmn-without-conduction-block")
    assert "stale: approved by Dr Rev on 2026-01-02" in shown.output
    text_rules = run_cli("audit", "--rules", str(rules_copy), "rules", "--disease", "mmn").output
    assert "stale: approved by Dr Rev on 2026-01-02" in text_rules
    strict = run_cli("audit", "--rules", str(rules_copy), "check", "--strict")
    assert strict.exit_code == 1
    assert "sign-off: rule mmn-without-conduction-block: stale: approved by Dr Rev" in strict.output


def test_a_feeding_rule_changing_stales_the_rules_it_feeds_and_no_others(run_cli, rules_copy):
    rules = ("gbs-severe", "gbs-severe-first-line", "gbs-dose", "mmn-general", "mg-dose")
    assert sign(run_cli, rules_copy, *rules, *SIGN).exit_code == 0
    # a title elsewhere is not the outcome: nothing else goes stale
    mutate(rules_copy / "gbs.yaml", "- id: gbs-severe\n    title: ", "- id: gbs-severe\n    title: Renamed, ")
    now = states(run_cli, rules_copy)
    assert now["gbs-severe"] == "stale"
    assert [now[r] for r in rules[1:]] == ["approved"] * 4
    # its condition is: the rules it feeds, directly or through others, go stale; MMN and MG do not
    mutate(rules_copy / "gbs.yaml", "            - needs_ventilation: true\n", "")
    now = states(run_cli, rules_copy)
    assert [now[r] for r in rules] == ["stale", "stale", "stale", "approved", "approved"]


def test_editing_a_regimen_or_a_cited_passage_stales_the_rules_that_use_it(run_cli, rules_copy):
    """A rule that names a regimen (dose: gbs) or cites a passage carries their
    content: the reviewer approved that content, not the id."""
    rules = ("gbs-dose", "mmn-dose", "mmn-general", "gbs-general", "mg-dose")
    assert sign(run_cli, rules_copy, *rules, *SIGN).exit_code == 0
    mutate(
        rules_copy / "regimens.yaml",
        '  total_g_per_kg: 2.0, g_per_kg_per_day: 0.4, days: 5,\n  repeat: "one course",\n',
        '  total_g_per_kg: 2.0, g_per_kg_per_day: 0.4, days: 5,\n  repeat: "one course, edited",\n',
    )
    now = states(run_cli, rules_copy)
    assert [now[r] for r in rules] == ["stale", "approved", "approved", "approved", "approved"]
    mutate(
        rules_copy / "passages.yaml",
        "IVIG is chosen for the treatment of GBS, MMN and CIDP ...",
        "IVIG is chosen for GBS, MMN and CIDP ...",
    )
    now = states(run_cli, rules_copy)
    assert [now[r] for r in rules] == ["stale", "approved", "stale", "stale", "approved"]


# -- where the log lives -----------------------------------------------------------------


def installed_copy(tmp_path, checkout=False):
    """The package copied as a non-editable install would lay it out (no .git beside it)."""
    site = tmp_path / "site"
    shutil.copytree(
        ROOT,
        site / "ivig_advisor",
        ignore=shutil.ignore_patterns(
            ".git", "tests", "bench", "examples", "*.egg-info", "__pycache__", "review-log.yaml", ".*"
        ),
    )
    if checkout:
        (site / "ivig_advisor" / ".git").mkdir()
    env = dict(os.environ, PYTHONPATH=str(site))
    return site / "ivig_advisor", env


def test_an_installed_package_is_not_signed_in_place(tmp_path, rules_copy):
    package, env = installed_copy(tmp_path)
    # the copy, not the editable checkout, is what gets imported
    probe = subprocess.run(
        [sys.executable, "-c", "import ivig_advisor; print(ivig_advisor.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert probe.stdout.strip() == str(package / "__init__.py")
    out, err = started("audit", "sign", "mmn-general", *SIGN, env=env, cwd=tmp_path).communicate(timeout=120)
    assert "--rules" in err and "installed" in err, err
    assert not (package / "rules" / "review-log.yaml").exists()
    proc = started("audit", "--rules", str(rules_copy), "sign", "mmn-general", *SIGN, env=env, cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert str(rules_copy / "review-log.yaml") in out


def test_the_rules_of_a_checkout_are_signed_beside_them_and_it_says_where(tmp_path):
    package, env = installed_copy(tmp_path, checkout=True)
    proc = started("audit", "sign", "mmn-general", *SIGN, env=env, cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    log = package / "rules" / "review-log.yaml"
    assert log.exists() and str(log) in out


# -- one lifecycle --------------------------------------------------------------------


def test_one_lifecycle_reads_the_same_in_show_rules_the_report_and_check(run_cli, rules_copy, tmp_path):
    """draft -> approved -> stale, in the same words everywhere; never a file's
    'status: draft' beside a log's 'approved'."""
    assert sign(run_cli, rules_copy, "mmn-general", *SIGN, "--date", "2026-01-02").exit_code == 0
    approved, draft = "approved by Dr Rev on 2026-01-02", "draft: not signed yet"
    report = tmp_path / "report.html"
    run_cli("audit", "report", "--rules", str(rules_copy), "-o", str(report))
    views = {
        "show": run_cli("audit", "show", "--rules", str(rules_copy), "mmn-general").output,
        "rules": run_cli("audit", "rules", "--rules", str(rules_copy), "--disease", "mmn").output,
        "markdown": run_cli(
            "audit", "rules", "--rules", str(rules_copy), "--disease", "mmn", "--format", "markdown"
        ).output,
        "report": report.read_text(encoding="utf-8"),
    }
    for name, text in views.items():
        assert approved in text and (draft in text or name == "show"), name
        assert "status:" not in text and "sign-off: approved" not in text, name
    strict = run_cli("audit", "check", "--rules", str(rules_copy), "--strict").output
    assert f"rule mmn-maintenance: {draft}" in strict and "rule mmn-general:" not in strict
    drafts = len(RuleBase.load().rules) - 1
    assert f"Lifecycle: {drafts} draft, 1 approved, 0 needs-change, 0 stale" in strict
    records = json.loads(run_cli("audit", "rules", "--rules", str(rules_copy), "--format", "json").stdout)
    stages = {r["id"]: r["lifecycle"] for r in records}
    assert stages["mmn-general"] == "approved" and set(stages.values()) == {"approved", "draft"}


def test_the_stage_filter_names_the_stages_and_refuses_others(rules_copy, run_cli):
    from ivig_advisor.engine import RuleBase
    from ivig_advisor.engine.audit import views as audit
    from ivig_advisor.engine.base.errors import UnknownStage

    assert sign(run_cli, rules_copy, "mmn-general", "gbs-dose", *SIGN).exit_code == 0
    rulebase = RuleBase.load(rules_copy)
    assert sorted(r.id for r in audit.rules_for(rulebase, stage="approved")) == ["gbs-dose", "mmn-general"]
    assert len(audit.rules_for(rulebase, stage="draft")) == len(rulebase.rules) - 2
    with pytest.raises(UnknownStage, match="no stage 'aproved'; did you mean 'approved'"):
        audit.rules_for(rulebase, stage="aproved")
    bogus = run_cli("audit", "rules", "--rules", str(rules_copy), "--status", "aproved")
    assert bogus.exit_code == 2 and "Invalid value for --status: no stage 'aproved'" in bogus.output
    shown = run_cli("audit", "rules", "--rules", str(rules_copy), "--status", "approved", "--format", "json")
    assert sorted(r["id"] for r in json.loads(shown.stdout)) == ["gbs-dose", "mmn-general"]


@pytest.mark.parametrize("status", ["approved", "reviewed", "needs-change"])
def test_a_rule_file_cannot_claim_what_only_a_sign_off_gives(rules_copy, status):
    from ivig_advisor.engine import RuleBase, RuleBaseInvalid

    path = rules_copy / "mmn.yaml"
    text = path.read_text(encoding="utf-8")
    at = text.index("  - id: mmn-general\n") + len("  - id: mmn-general\n")
    path.write_text(text[:at] + f"    status: {status}\n" + text[at:], encoding="utf-8")
    with pytest.raises(RuleBaseInvalid) as caught:
        RuleBase.load(rules_copy)
    error = caught.value.errors[0]
    assert (error.field, error.source.endswith("mmn.yaml")) == ("mmn-general.status", True)
    assert "a reviewer's sign-off gives it (`ivig audit sign`)" in error.message and error.line
