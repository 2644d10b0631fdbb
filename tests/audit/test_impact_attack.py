"""Attacks on change impact (issue 29): `impact` held to both real engines by brute force over
hand-made edits of a copy of rules/, hostile review-log acknowledgements and --against values,
and two acknowledgements signed at once. A defect found is a strict xfail naming it."""

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import CONTROL, ROOT, git, mutate, plain_env

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.audit.check.compare import shared_domains
from ivig_advisor.engine.audit.impact import _all_warnings, impact

SHIPPED = str(ROOT / "rules")
IVIG = [sys.executable, "-m", "ivig_advisor.cli"]

LOWER_A_CRITICAL = ("mmn.yaml", "        severity: critical", "        severity: warning")
RAISE_THE_AGE = ("safety.yaml", "when: {age: {ge: 65}}", "when: {age: {ge: 70}}")

# mmn-without-conduction-block moved from the subtype layer into the general one, beside
# mmn-general: for MMN without a conduction block two rules of one stance layer disagree
MMN_STANCE_CONFLICT = ("mmn.yaml", "    layer: subtype\n", "    layer: general\n")
# a constrained field (needs_ventilation) read the other way round: mild ambulatory GBS is
# now severe too, so gbs-mild-ambulatory and gbs-severe-first-line disagree in one layer
GBS_SEVERE_ON_NO_VENTILATION = (
    "gbs.yaml",
    "            - walks_unaided: false\n            - needs_ventilation: true",
    "            - walks_unaided: false\n            - needs_ventilation: false",
)
SECOND_MMN_DOSE = (
    "mmn.yaml",
    "  - id: mmn-maintenance-dose\n",
    """  - id: mmn-dose-two
    title: A second MMN dose, overlapping mmn-dose
    layer: plan
    when:
      all:
        - diagnosis: mmn
        - stance: first-line
    then:
      dose: cidp
    basis: assumption
    rationale: an edit under test.
    claims: [C25]
    assumptions: [A12]

  - id: mmn-maintenance-dose
""",
)
NEW_WARNING = (
    "gbs.yaml",
    "  - id: gbs-ventilated-full-dose\n",
    """  - id: gbs-new-warning
    title: A new warning for children with GBS
    layer: safety
    when:
      all:
        - diagnosis: gbs
        - receives_ivig: true
        - age: {lt: 18}
    then:
      warn:
        code: new-child-warning
        severity: warning
        applies: patient
        summary: "new"
        message: new.
        action: new.
    basis: assumption
    rationale: an edit under test.
    claims: [C25]
    assumptions: [A12]

  - id: gbs-ventilated-full-dose
""",
)


def _drop_rule(rule_id: str, file: str):
    """An edit that deletes one rule, written as a function of the copy's directory."""

    def edit(directory: Path):
        path = directory / file
        text = path.read_text(encoding="utf-8")
        start = text.index(f"  - id: {rule_id}\n")
        end = text.index("  - id:", start + 10)
        path.write_text(text[:start] + text[end:], encoding="utf-8")

    return edit


def _move_mmn_without_conduction_block_after_mmn_general(directory: Path):
    """Reorder two rules of one layer (the order written is the salience)."""
    path = directory / "mmn.yaml"
    text = path.read_text(encoding="utf-8")
    a, b = text.index("  - id: mmn-without-conduction-block"), text.index("  - id: mmn-general")
    c = text.index("  - id: mmn-dose\n")
    path.write_text(text[:a] + text[b:c] + text[a:b] + text[c:], encoding="utf-8")


def _copy(tmp_path: Path, name: str, *edits) -> Path:
    """A copy of the shipped rules with `edits` made ((file, old, new) or a function of the directory)."""
    target = tmp_path / name
    shutil.copytree(SHIPPED, target)
    for edit in edits:
        edit(target) if callable(edit) else mutate(target / edit[0], edit[1], edit[2])
    return target


def check_against(run_cli, rules, against=SHIPPED):
    shown = run_cli("audit", "check", "--rules", str(rules), "--against", str(against), "--format", "json")
    return shown.exit_code, json.loads(shown.stdout)


def _run_cli_caught(*args):
    """The real `ivig` in this process, exceptions caught: an internal error is an exit status, as for a person."""
    from click.testing import CliRunner

    from ivig_advisor.cli import main

    return CliRunner().invoke(main, list(args))


# -- exactness: impact against both engines, by brute force ----------------------------------


def _engine_view(result) -> tuple:
    """What a result shows of the stance, the dose and the rules' warnings (code -> severities)."""
    stance = (result.ivig or {}).get("stance")
    dose = None
    if result.dose is not None:
        dose = {k: v for k, v in result.dose.items() if k not in ("total_g", "infusion_g", "rule", "repeat", "note")}
    warnings: dict = {}
    for w in _all_warnings(result):
        if w.get("rule") and w["code"] not in ("rule-conflict", "dose-conflict"):
            warnings.setdefault(w["code"], set()).add(w["severity"])
    return stance, dose, warnings


def _subjects_that_differ(before: tuple, after: tuple) -> set:
    out = {name for name, a, b in (("stance", before[0], after[0]), ("dose", before[1], after[1])) if a != b}
    return out | {code for code in before[2].keys() | after[2].keys() if before[2].get(code) != after[2].get(code)}


def _missed(base_dir: Path, this_dir: Path, cases: int = 400, seed: int = 29) -> dict:
    """(subject, diagnosis) -> a patient whose stance, dose or a warning's severities the two
    engines give differently, where impact found no change of that subject for that diagnosis.
    The patients: one value per field from the cut points of both rule bases, most unknown."""
    base, this = Advisor(RuleBase.load(base_dir)), Advisor(RuleBase.load(this_dir))
    found = impact(base, this)
    have = {(c.subject, d) for c in found.changes for d in c.diagnoses}
    values = shared_domains(base.rulebase, this.rulebase)
    draw = random.Random(seed)
    missed = {}
    for _ in range(cases):
        case = {name: draw.choice(options) for name, options in values.items() if draw.random() < 0.4}
        case["diagnosis"] = draw.choice(values["diagnosis"][1:])
        case = {k: list(v) if isinstance(v, tuple) else v for k, v in case.items() if v is not None}
        before, after = (_engine_view(a.evaluate_mapping(case)) for a in (base, this))
        for subject in _subjects_that_differ(before, after):
            if (subject, case["diagnosis"]) not in have:
                missed.setdefault((subject, case["diagnosis"]), case)
    return missed


@pytest.mark.parametrize(
    "edits",
    [
        [
            (
                "safety.yaml",
                "    when:\n      any:\n        - elderly: true",
                "    when:\n      all:\n        - elderly: true",
            )
        ],
        [
            (
                "scope.yaml",
                "        - stance: {not_in: [not-effective, out-of-scope]}\n        - any:",
                "        - stance: {not_in: [not-effective, out-of-scope, not-established]}\n        - any:",
            )
        ],
        [("safety.yaml", "        - thrombocytopenia: true\n", "")],
        [_drop_rule("mmn-corticosteroids-planned", "mmn.yaml")],
        [("mmn.yaml", "  - id: mmn-corticosteroids-planned", "  - id: mmn-corticosteroids-planned-2")],
        [("safety.yaml", "  - id: elderly\n", "  - id: elderly-patient\n")],
        [NEW_WARNING],
        [("safety.yaml", "        applies: every-infusion", "        applies: patient")],
        [
            (
                "regimens.yaml",
                'total_g_per_kg: 2.0, g_per_kg_per_day: 1.0, days: 2,\n  repeat: "The review establishes no',
                'total_g_per_kg: 2.0, g_per_kg_per_day: 0.5, days: 4,\n  repeat: "The review establishes no',
            )
        ],
        [("regimens.yaml", "  per: infusion, infusion_g_per_kg: 0.4,", "  per: infusion, infusion_g_per_kg: 0.5,")],
        [("rulebase.yaml", "{name: not-established, gives_ivig: false}", "{name: not-established, gives_ivig: true}")],
        [LOWER_A_CRITICAL, RAISE_THE_AGE],
    ],
    ids=[
        "any to all",
        "not_in widened",
        "risk factor dropped",
        "rule removed",
        "rule renamed",
        "classify rule renamed",
        "rule added",
        "applies every-infusion to patient",
        "regimen split changed",
        "maintenance regimen raised",
        "a stance now gives ivig",
        "two edits at once",
    ],
)
def test_every_difference_the_engines_show_is_a_change_found(tmp_path, edits):
    """Guard: for these edits impact is exact on a sample of cut-point patients (passes today)."""
    assert _missed(Path(SHIPPED), _copy(tmp_path, "this", *edits)) == {}


def test_the_brute_force_sees_a_change_impact_does_not_report(tmp_path, monkeypatch):
    """The guard above can fail: with impact made to find nothing, the age edit is missed."""
    real = impact

    def nothing(base, this):
        found = real(base, this)
        found.changes = []
        return found

    monkeypatch.setitem(globals(), "impact", nothing)
    missed = _missed(Path(SHIPPED), _copy(tmp_path, "this", RAISE_THE_AGE))
    assert {subject for subject, _ in missed} == {"thrombosis"}


def test_reordering_two_disagreeing_stance_rules_is_a_stance_change_found(tmp_path):
    base = _copy(tmp_path, "base", MMN_STANCE_CONFLICT)
    this = _copy(tmp_path, "this", MMN_STANCE_CONFLICT, _move_mmn_without_conduction_block_after_mmn_general)
    patient = {"diagnosis": "mmn", "conduction_block": False}
    before, after = (Advisor(RuleBase.load(d)).evaluate_mapping(patient).ivig["stance"] for d in (base, this))
    assert (before, after) == ("trial-justified", "first-line")  # the engines: a stance made more favourable
    found = impact(Advisor(RuleBase.load(base)), Advisor(RuleBase.load(this)))
    assert any(c.subject == "stance" and "mmn" in c.diagnoses and c.regression for c in found.changes)


@pytest.mark.parametrize(
    "edit", [MMN_STANCE_CONFLICT, GBS_SEVERE_ON_NO_VENTILATION], ids=["new stance rule conflicts", "constrained field"]
)
def test_an_edit_that_makes_stance_rules_disagree_is_reported_not_a_crash(tmp_path, edit):
    shown = _run_cli_caught(
        "audit", "check", "--rules", str(_copy(tmp_path, "this", edit)), "--against", SHIPPED, "--format", "json"
    )
    assert shown.exit_code == 1, shown.output
    assert json.loads(shown.stdout)["against"]["changes"]  # the conflict is a change patients see


def test_a_second_dose_rule_that_overlaps_is_reported_not_a_crash(tmp_path):
    shown = _run_cli_caught(
        "audit", "check", "--rules", str(_copy(tmp_path, "this", SECOND_MMN_DOSE)), "--against", SHIPPED,
        "--format", "json",
    )  # fmt: skip
    assert shown.exit_code == 1, shown.output
    assert json.loads(shown.stdout)["against"] is not None


LATER_THROMBOSIS = """    when:
      all:
        - receives_ivig: true
        - thrombosis_risk: true
    kind: regulatory-action"""


def test_a_later_evidence_harm_warning_narrowed_is_a_regression(run_cli, tmp_path):
    this = _copy(
        tmp_path,
        "this",
        (
            "later-evidence.yaml",
            LATER_THROMBOSIS,
            LATER_THROMBOSIS.replace("true\n", "true\n        - age: {ge: 65}\n"),
        ),
    )
    patient = {"diagnosis": "gbs", "diabetes": True, "age": 50}
    codes = [[w["code"] for w in Advisor(RuleBase.load(d)).evaluate_mapping(patient).warnings] for d in (SHIPPED, this)]
    assert "later-thrombosis-boxed-warning" in codes[0] and "later-thrombosis-boxed-warning" not in codes[1]
    status, data = check_against(run_cli, this)
    assert status == 1 and any(f["kind"] == "regression" for f in data["findings"])


# -- an acknowledgement covers what was acknowledged, no more --------------------------------


def test_an_acknowledgement_does_not_cover_a_new_regression_of_the_same_warning(run_cli, tmp_path):
    rules = _copy(tmp_path, "this", _drop_rule("thrombosis-risk-thrombocytosis", "safety.yaml"))
    _, data = check_against(run_cli, rules)
    # the thrombosis warning, and the later evidence's harm findings that follow the risk group
    ids = [a for c in data["against"]["changes"] for a in ("--acknowledge", c["id"])]
    done = run_cli(
        "audit", "sign", "--rules", str(rules), "--reviewer", "Dr A", "--against", SHIPPED,
        *ids, "--reason", "we read the platelet term as the translation says",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert check_against(run_cli, rules)[0] == 0
    mutate(rules / RAISE_THE_AGE[0], RAISE_THE_AGE[1], RAISE_THE_AGE[2])  # patients of 65-69 lose it too
    _, data = check_against(run_cli, rules)
    open_ones = [f["message"] for f in data["findings"] if f["kind"] == "regression"]
    assert open_ones, [(c["id"], c["combinations"]) for c in data["against"]["changes"]]


# -- hostile review-log acknowledgements -----------------------------------------------------


@pytest.fixture(scope="module")
def lowered(tmp_path_factory):
    """A copy with MMN's critical steroid warning lowered, and its regression's id."""
    rules = tmp_path_factory.mktemp("lowered") / "rules"
    shutil.copytree(SHIPPED, rules)
    mutate(rules / LOWER_A_CRITICAL[0], LOWER_A_CRITICAL[1], LOWER_A_CRITICAL[2])
    (change,) = impact(Advisor(RuleBase.load()), Advisor(RuleBase.load(rules))).changes
    return rules, change.id


@pytest.fixture
def lowered_copy(lowered, tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(lowered[0], rules)
    return rules, lowered[1]


def _log(rules: Path, text: str):
    (rules / "review-log.yaml").write_text(text, encoding="utf-8")


def test_control_characters_in_an_acknowledgement_reach_no_terminal(run_cli, lowered_copy):
    rules, rid = lowered_copy
    _log(
        rules,
        "signoffs:\n"
        f"- acknowledge: {rid}\n"
        '  regression: "x\\e[31mRED\\e[0m"\n'
        '  reason: "ok\\e]0;title\\a \\e[2J\\x9b31m"\n'
        '  reviewer: "Dr \\e[1mB\\r"\n'
        '  date: "2026-01-01"\n',
    )
    shown = run_cli("audit", "check", "--rules", str(rules), "--against", SHIPPED)
    assert shown.exit_code == 0 and f"{rid} acknowledged by" in shown.output
    assert not CONTROL.search(shown.output) and "\x9b" not in shown.output


def test_a_reason_with_escapes_given_to_sign_is_recorded_as_given_and_shown_escaped(run_cli, lowered_copy):
    rules, rid = lowered_copy
    done = run_cli(
        "audit", "sign", "--rules", str(rules), "--reviewer", "Dr \x1b[1mA", "--against", SHIPPED,
        "--acknowledge", rid, "--reason", "fine \x1b]0;x\x07 by us",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert not CONTROL.search(done.output)
    (entry,) = yaml.safe_load((rules / "review-log.yaml").read_text(encoding="utf-8"))["signoffs"]
    assert entry["reason"] == "fine \x1b]0;x\x07 by us"
    shown = run_cli("audit", "check", "--rules", str(rules), "--against", SHIPPED)
    assert shown.exit_code == 0 and not CONTROL.search(shown.output)


def test_markup_in_an_acknowledgement_is_escaped_in_the_report(run_cli, lowered_copy, tmp_path):
    rules, rid = lowered_copy
    _log(
        rules,
        f'signoffs:\n- acknowledge: {rid}\n  reason: "<script>alert(1)</script>"\n'
        '  reviewer: "<img src=x onerror=alert(1)>"\n  date: "2026-01-01"\n',
    )
    out = tmp_path / "report.html"
    assert run_cli("audit", "report", "--rules", str(rules), "--against", SHIPPED, "-o", str(out)).exit_code == 0
    page = out.read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "&lt;script&gt;alert(1)" in page


@pytest.mark.parametrize(
    "entry, said",
    [
        ("- acknowledge: {rid}\n  reviewer: A\n  date: '2026-01-01'\n", "'reason' is missing"),
        ("- acknowledge: R-XYZ\n  reason: r\n  reviewer: A\n  date: '2026-01-01'\n", "is not a regression's id"),
        ("- acknowledge: {rid}\n  reason: r\n  reviewer: A\n  date: '2026-02-30'\n", "is not a date of the calendar"),
        ("- acknowledge: {rid}\n  reason: [r]\n  reviewer: A\n  date: '2026-01-01'\n", "'reason' must be text"),
        ("- acknowledge: {rid}\n  reason: r\n  reviewer: A\n  date: '2026-01-01'\n  verdict: ok\n", "unknown key"),
        (
            "- acknowledge: {rid}\n  reason: !!python/object/apply:os.system ['touch {marker}']\n"
            "  reviewer: A\n  date: '2026-01-01'\n",
            "review-log.yaml:",
        ),
    ],
    ids=["no reason", "bad id", "no such date", "reason a list", "a verdict's key", "a python tag"],
)
def test_a_malformed_acknowledgement_acknowledges_nothing_and_names_its_line(run_cli, lowered_copy, entry, said):
    rules, rid = lowered_copy
    marker = rules.parent / "ran"
    _log(rules, "signoffs:\n" + entry.format(rid=rid, marker=marker))
    shown = run_cli("audit", "check", "--rules", str(rules), "--against", SHIPPED, "--format", "json")
    data = json.loads(shown.stdout)
    assert shown.exit_code == 1 and not marker.exists()
    assert data["against"]["acknowledged"] == [] and any(f["kind"] == "regression" for f in data["findings"])
    assert any(said in f"{f['file']}:{f['line']}: {f['message']}" for f in data["findings"]), data["findings"][:3]


def test_a_long_reason_is_recorded_and_read_back(run_cli, lowered_copy):
    rules, rid = lowered_copy
    reason = " ".join(["because"] * 10_000)  # 80,000 characters: within what the log's reader takes
    done = run_cli(
        "audit", "sign", "--rules", str(rules), "--reviewer", "A", "--against", SHIPPED, "--acknowledge", rid,
        "--reason", reason,
    )  # fmt: skip
    assert done.exit_code == 0, done.output[:300]
    status, data = check_against(run_cli, rules)
    assert status == 0 and data["against"]["acknowledged"]


def test_a_reason_longer_than_the_log_takes_is_refused_as_an_option(run_cli, lowered_copy):
    rules, rid = lowered_copy
    done = _run_cli_caught(
        "audit", "sign", "--rules", str(rules), "--reviewer", "A", "--against", SHIPPED, "--acknowledge", rid,
        "--reason", "because " * 20_000,
    )  # fmt: skip
    assert done.exit_code == 2 and "--reason" in done.output and "internal error" not in done.output
    assert not (rules / "review-log.yaml").exists()


# -- hostile --against values -----------------------------------------------------------------


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """A repository of the rules with revisions: `no-rules` (rules/ absent), `good`, `broken` (a rule in a
    layer that does not exist), `links` (rules/ holding a link to /etc/passwd and one out of the
    tree); the work tree holds the good rules."""
    repo = tmp_path_factory.mktemp("history") / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "README").write_text("x\n", encoding="utf-8")
    git(repo, "add", "README")
    git(repo, "commit", "-qm", "no rules")
    git(repo, "tag", "no-rules")
    shutil.copytree(SHIPPED, repo / "rules")
    git(repo, "add", "rules")
    git(repo, "commit", "-qm", "rules")
    git(repo, "tag", "good")
    safety = repo / "rules" / "safety.yaml"
    good = safety.read_text(encoding="utf-8")
    safety.write_text(good.replace("    layer: classify", "    layer: nosuch", 1), encoding="utf-8")
    git(repo, "commit", "-qam", "broken")
    git(repo, "tag", "broken")
    safety.write_text(good, encoding="utf-8")
    (repo / "rules" / "passwd.txt").symlink_to("/etc/passwd")
    (repo / "rules" / "up").symlink_to("../../../../../etc")
    git(repo, "add", "rules")
    git(repo, "commit", "-qm", "links")
    git(repo, "tag", "links")
    git(repo, "rm", "-q", "rules/passwd.txt", "rules/up")
    git(repo, "commit", "-qm", "no links")
    return repo


@pytest.mark.parametrize(
    "against, said",
    [
        ("-x", "'-x' is neither a directory nor a git revision"),
        ("--output=x", "'--output=x' is neither a directory nor a git revision"),
        ("HEAD:rules", "'HEAD:rules' is neither a directory nor a git revision"),
        ("good;touch {marker}", "is neither a directory nor a git revision"),
        ("$(touch {marker})", "is neither a directory nor a git revision"),
        ("`touch {marker}`", "is neither a directory nor a git revision"),
        ("", "is neither a directory nor a git revision"),
        ("HEAD~99", "'HEAD~99' is neither a directory nor a git revision"),
        ("no-rules", "git revision 'no-rules' has no rules/"),
        ("../../../../../../etc", "rulebase.yaml"),
    ],
    ids=["dash", "an option", "a tree path", "semicolon", "dollar", "backquote", "empty", "too far back",
         "no rules", "up the tree"],
)  # fmt: skip
def test_a_hostile_against_is_a_clean_error(history, against, said):
    marker = history.parent / "ran"
    for command in (["check", "--against"], ["diff", "--base"]):
        shown = _run_cli_caught("audit", command[0], "--rules", str(history / "rules"), command[1],
                                against.format(marker=marker))  # fmt: skip
        assert shown.exit_code == 2, (command, shown.output)
        assert said in shown.output and "Traceback" not in shown.output and "internal error" not in shown.output
    assert not marker.exists()


def test_a_revision_whose_rules_do_not_load_is_named_in_the_error(history):
    shown = _run_cli_caught("audit", "check", "--rules", str(history / "rules"), "--against", "broken")
    assert shown.exit_code == 2 and "unknown layer 'nosuch'" in shown.output
    assert "ivig-base-" not in shown.output and "broken" in shown.output


def test_a_revision_holding_a_link_out_is_a_clean_error(history):
    shown = _run_cli_caught("audit", "check", "--rules", str(history / "rules"), "--against", "links")
    assert shown.exit_code == 2 and "links" in shown.output and "internal error" not in shown.output


def test_a_base_directory_whose_rules_do_not_load_is_named_by_file_and_line(run_cli, tmp_path):
    base = _copy(tmp_path, "base", ("safety.yaml", "    layer: classify", "    layer: nosuch"))
    for command in (["check", "--against"], ["diff", "--base"]):
        shown = _run_cli_caught("audit", command[0], command[1], str(base))
        assert shown.exit_code == 2 and f"{base}/safety.yaml:9: [elderly.layer] unknown layer 'nosuch'" in shown.output


# -- two acknowledgements at once ---------------------------------------------------------------


def test_two_acknowledgements_signed_at_once_are_both_recorded(tmp_path):
    rules = _copy(tmp_path, "rules", LOWER_A_CRITICAL, RAISE_THE_AGE)
    # MMN's steroid warning, and the thrombosis warning with the later evidence's harm that follows it
    ids = [c.id for c in impact(Advisor(RuleBase.load()), Advisor(RuleBase.load(rules))).regressions]
    assert len(ids) == 4
    for round_ in range(2):
        (rules / "review-log.yaml").unlink(missing_ok=True)
        signs = [
            subprocess.Popen(
                [
                    *IVIG,
                    "audit",
                    "sign",
                    "--rules",
                    str(rules),
                    "--reviewer",
                    f"Dr {n}",
                    "--against",
                    SHIPPED,
                    "--acknowledge",
                    rid,
                    "--reason",
                    f"reason {n}",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env=plain_env(),
                text=True,
            )  # fmt: skip
            for n, rid in enumerate(ids)
        ]
        said = [p.communicate(timeout=300)[0] for p in signs]
        assert [p.returncode for p in signs] == [0] * len(ids), said
        log = yaml.safe_load((rules / "review-log.yaml").read_text(encoding="utf-8"))["signoffs"]
        assert sorted(e["acknowledge"] for e in log) == sorted(ids), round_
    shown = subprocess.run(
        [*IVIG, "audit", "check", "--rules", str(rules), "--against", SHIPPED, "--format", "json"],
        capture_output=True, env=plain_env(),
    )  # fmt: skip
    data = json.loads(shown.stdout)
    assert [f for f in data["findings"] if f["kind"] == "regression"] == [] and len(
        data["against"]["acknowledged"]
    ) == len(ids)
