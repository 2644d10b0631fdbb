"""The four patients of issue 28 (a GBS second course, CIDP maintenance, dermatomyositis, IBM)
each see the later evidence that applies to them in every output, and the review's own stance
unchanged beside it: the JSON, the text, the CSV (through the real CLI) and the CDS Hooks cards.
"""

import csv
import io
import json

import pytest
from helpers import jsonl

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.service.cards import CardMaker
from ivig_advisor.engine.service.cdshooks import CdsServices

RULES = RuleBase.load()
# each patient: the case, the review's stance and the rule that sets it, the entries they must see
PATIENTS = {
    "gbs-second-course": (
        {"diagnosis": "gbs", "walks_unaided": False, "incomplete_recovery_after_ivig": True, "age": 50},
        ("not-established", "gbs-second-course"),
        ["sid-gbs-second-course", "isid-gbs-second-course"],
    ),
    "cidp-maintenance": (
        {"diagnosis": "cidp", "treatment_phase": "maintenance", "weight_kg": 70},
        ("not-established", "cidp-maintenance"),
        ["ice-cidp-maintenance", "path-cidp-scig-maintenance", "procid-cidp-maintenance-dose"],
    ),
    "dermatomyositis": (
        {"diagnosis": "dermatomyositis", "refractory": True, "weight_kg": 60},
        ("second-line", "dm-resistant"),
        ["proderm-dermatomyositis", "aanem-2023-dermatomyositis"],
    ),
    "ibm": (
        {"diagnosis": "inclusion_body_myositis", "dysphagia": False},
        ("not-effective", "ibm-general"),
        ["aanem-2023-ibm"],
    ),
}


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """Each patient's JSON result, text and CSV row, from `ivig evaluate` over one case file."""
    from click.testing import CliRunner

    from ivig_advisor.cli import main

    path = tmp_path_factory.mktemp("since") / "patients.jsonl"
    path.write_text("".join(json.dumps(dict(case, id=name)) + "\n" for name, (case, _, _) in PATIENTS.items()))

    def run(*args):
        result = CliRunner().invoke(main, ["evaluate", "-q", *args, str(path)], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    results = {r["id"]: r for r in jsonl(run("--format", "jsonl"))}
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(run("--format", "csv")))}
    text, blocks = run("--no-chain"), {}
    for block in text.split("\n\n"):
        blocks[block.split()[0]] = block
    return results, blocks, rows


@pytest.mark.parametrize("patient", PATIENTS)
def test_each_patient_sees_the_later_evidence_in_json_text_and_csv(outputs, patient):
    results, blocks, rows = outputs
    _, (stance, rule), wanted = PATIENTS[patient]
    result, block, row = results[patient], blocks[patient], rows[patient]
    assert (result["ivig"]["stance"], result["ivig"]["rule"]) == (stance, rule)  # the review's, unchanged
    shown = [n["id"] for n in result["later_evidence"]]
    assert set(wanted) <= set(shown)
    assert row["stance"] == stance and row["later_evidence"].split(";") == shown
    assert f"(the review, 2004: rule {rule};" in block and "Since 2004:" in block
    assert block.index(f"rule {rule};") < block.index("Since 2004:")  # the review's first, then what came after
    for entry_id in wanted:
        assert RULES.later.by_id[entry_id].title in block, entry_id


@pytest.mark.parametrize("patient", PATIENTS)
def test_each_patient_sees_the_later_evidence_in_the_cards(patient):
    case, (stance, rule), wanted = PATIENTS[patient]
    advisor = Advisor(RULES, cache=0)
    result = advisor.evaluate(advisor.validate(case))
    cards = CardMaker(CdsServices.load(), RULES).cards(result, [], case.get("weight_kg"), [])
    stance_card = cards[-1]
    assert stance_card["source"]["topic"]["code"] == rule  # the stance card is the review's
    for entry_id in wanted:
        entry = RULES.later.by_id[entry_id]
        assert entry.link in stance_card["detail"] and {"url": entry.link} in [
            {"url": link["url"]} for link in stance_card["links"]
        ]
    harm = [n for n in result.later_evidence if n["harm"]]
    marked = [c for c in cards if c["source"]["label"].startswith("Later evidence, not the review")]
    assert sorted(c["source"]["topic"]["code"] for c in marked) == sorted(n["id"] for n in harm)
    if patient == "gbs-second-course":
        assert [n["id"] for n in harm] == ["sid-gbs-second-course"]
