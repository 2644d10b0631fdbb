"""Later evidence in the CDS Hooks cards (issue 28, "Since 2004"), over real HTTP.

The stance card stays the review's (its summary, indicator and source) and gains a quiet "Since
2004" part in its detail: one line per later source that speaks to the case, linked to it. A
harm finding (a warning an entry that reports harm gives, `rule: None`) is a card of its own, as
loud as its severity, whose source says it is later evidence and links to it, never the review.

The FHIR mapping reads neither an incomplete recovery after a first course nor maintenance
treatment from a record, so no hook call can say "GBS, second course" or "CIDP, maintenance".
The servers on `relaxed` read a copy of rules/ in which the SID-GBS and ICE entries attach on
the diagnosis alone (the review's rules unchanged), so that what the cards make of them is seen
over HTTP; the situation itself, as the entries write it, is checked on the card maker directly.
"""

import json
import re
import shutil
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import ROOT, Server, cards_of, check_response, feedback_item, load, on_ivig, section, stance_of, topics
from test_cards import evaluated

from ivig_advisor.cli import main
from ivig_advisor.engine import RuleBase
from ivig_advisor.engine.base.escape import for_markdown
from ivig_advisor.engine.core.advisor import Advisor
from ivig_advisor.engine.service.cards import CardMaker
from ivig_advisor.engine.service.cdshooks import CdsServices

SHIPPED = RuleBase.load()
REVIEW_LABEL = CdsServices.load().source["label"]
GBS = "G61.0"  # ICD-10-CM, in the FHIR mapping
# an entry whose words hold Markdown, and whose link (a DOI) holds parentheses
MARKED_TITLE = "PATH <b>*bold*</b> [click](javascript:alert(1)) _x_"
MARKED_DOI = "10.1016/S1474-4422(17)30378-2"
LINK = re.compile(r"\[((?:[^\]\\]|\\.)*)\]\(([^()\s]*)\)")  # [text](url), the url without parentheses


def set_entry(rules: Path, entry_id: str, **keys) -> None:
    """Set (None: remove) top-level keys of one entry in a copy's later-evidence.yaml."""
    path = rules / "later-evidence.yaml"
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"  - id: {entry_id}")
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("  - id: ")), len(lines))
    kept, skipping = [], False
    for line in lines[start + 1 : end]:
        if line.startswith("    ") and not line.startswith("     "):
            skipping = line.strip().split(":", 1)[0] in keys
        elif line.strip() and not line.startswith("    "):
            skipping = False  # a comment or the next section
        if not skipping:
            kept.append(line)
    kept += [f"    {key}: {json.dumps(value)}" for key, value in keys.items() if value is not None]
    path.write_text("\n".join(lines[: start + 1] + kept + lines[end:]) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    server = Server(tmp_path_factory.mktemp("serve-since-shipped"), "--insecure-dev")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def relaxed(tmp_path_factory):
    """`ivig serve --rules` on a copy in which SID-GBS and ICE (and PATH, with Markdown in its
    title and a DOI link with parentheses) attach on the diagnosis alone."""
    tmp = tmp_path_factory.mktemp("serve-since-relaxed")
    rules = tmp / "rules"
    shutil.copytree(ROOT / "rules", rules)
    set_entry(rules, "sid-gbs-second-course", when={"diagnosis": "gbs"})
    set_entry(rules, "ice-cidp-maintenance", when={"diagnosis": "cidp"})
    set_entry(rules, "path-cidp-scig-maintenance", when={"diagnosis": "cidp"}, title=MARKED_TITLE, pmid=None)
    set_entry(rules, "path-cidp-scig-maintenance", doi=MARKED_DOI)
    server = Server(tmp, "--insecure-dev", "--rules", str(rules))
    server.rules = rules
    server.later = RuleBase.load(rules).later.by_id
    yield server
    server.stop()


def with_gbs(request: dict) -> dict:
    """The hook call's patient with GBS (ICD-10-CM G61.0) as the one condition."""
    condition = request["prefetch"]["conditions"]["entry"][0]["resource"]
    condition["code"] = {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": GBS}]}
    return request


def harm_card(cards: list, entry_id: str) -> dict:
    (card,) = [c for c in cards if c["source"].get("topic", {}).get("code") == entry_id]
    return card


def since_part(detail: str) -> list:
    """The lines of the stance card's "Since 2004" part: its heading, then one line per entry."""
    return section(detail.splitlines(), "**Since 2004", "- ")


def links_in(line: str) -> list:
    """(text, url) of each Markdown link in a line; a url percent-encoded is read back."""
    return [(text, urllib.parse.unquote(url)) for text, url in LINK.findall(line)]


def assert_marked_harm(card: dict, entry, rules=None) -> None:
    """A harm finding's card: its own severity and summary, its source the later source (label
    and link), never the review; its detail the finding, the action and the citation, linked."""
    harm = entry.harm
    assert card["indicator"] == harm["severity"]
    assert card["summary"] == " ".join(harm["summary"].split())
    source = card["source"]
    assert source["label"].startswith("Later evidence, not the review"), source
    assert entry.citation in source["label"] and REVIEW_LABEL not in source["label"]
    assert source["url"] == entry.link
    assert source["topic"]["code"] == entry.id and not source["topic"]["system"].endswith("/rules")
    detail = card["detail"]
    assert for_markdown(harm["message"]) in detail and for_markdown(harm["action"]) in detail
    (cited,) = [
        line for line in detail.split("\n\n") if line.startswith("**Source** (later evidence, not the review): ")
    ]
    assert links_in(cited) == [(for_markdown(entry.cited), entry.link)], cited


# -- a harm finding is its own card, marked later evidence ---------------------------------------


def test_the_thrombosis_boxed_warning_is_a_card_of_its_own_citing_the_fda_not_the_review(shipped):
    """Shipped rules, a record the EHR can send: an elderly patient with an IVIG order is in the
    thrombosis risk group; the FDA's boxed warning (2013) is a card beside the review's."""
    cards = cards_of(shipped.call(load("order-select-mmn")))
    entry = SHIPPED.later.by_id["fda-2013-thrombosis-risk"]
    assert_marked_harm(harm_card(cards, entry.id), entry)
    review = [c for c in cards if c["source"].get("topic", {}).get("code") == "thrombosis"]
    assert len(review) == 1 and review[0]["source"]["label"].startswith(REVIEW_LABEL)


@pytest.mark.parametrize("name", ["patient-view-cidp", "order-select-mmn"])
def test_a_gbs_patient_sees_the_sid_gbs_harm_card_and_the_reviews_stance_unchanged(relaxed, shipped, name):
    request = with_gbs(load(name))
    cards = cards_of(relaxed.call(request))
    entry = relaxed.later["sid-gbs-second-course"]
    assert_marked_harm(harm_card(cards, entry.id), entry)
    # the stance card is the review's, as the rules decided it, the same as without the later evidence
    stance = stance_of(cards)
    out = evaluated(request, relaxed.rules)
    assert stance["source"]["topic"]["code"] == out["ivig"]["rule"] and out["ivig"]["rule"].startswith("gbs")
    assert stance["source"]["label"] == f"{REVIEW_LABEL} (rule {out['ivig']['rule']})"
    before = stance_of(cards_of(shipped.call(with_gbs(load(name)))))
    assert (stance["summary"], stance["indicator"]) == (before["summary"], before["indicator"])
    assert stance["summary"].endswith("(Dalakas 2004)")
    assert for_markdown(entry.harm["message"]) not in stance["detail"]  # harm is loud, on its own card


def test_the_true_gbs_second_course_gets_the_harm_card_beside_a_not_established_stance():
    """The situation as the entry writes it (second course, poor prognosis), which no record the
    mapping reads can say yet: on the card maker, with the shipped rules and services."""
    advisor = Advisor()
    case = {"diagnosis": "gbs", "incomplete_recovery_after_ivig": True, "walks_unaided": False, "age": 70}
    result = advisor.evaluate_mapping(case, "gbs-second-course", 1, "g2")
    assert result.ivig["stance"] == "not-established" and result.ivig["rule"] == "gbs-second-course"
    cards = CardMaker(CdsServices.load(), advisor.rulebase).cards(result, [], 70.0, [])
    check_response({"cards": cards})
    entry = SHIPPED.later.by_id["sid-gbs-second-course"]
    assert_marked_harm(harm_card(cards, entry.id), entry)
    stance = stance_of(cards)
    assert stance["source"]["topic"]["code"] == "gbs-second-course" and stance["indicator"] == "info"
    assert stance["summary"].startswith("IVIG not established") and stance["summary"].endswith("(Dalakas 2004)")
    lines = since_part(stance["detail"])[1:]
    assert [url for line in lines for _, url in links_in(line)] == [n["link"] for n in result.later_evidence]


# -- the stance card's "Since 2004" part -----------------------------------------------------------


def test_cidp_stance_detail_has_the_ice_line_with_a_link_to_its_abstract(relaxed, shipped):
    request = load("patient-view-cidp")
    cards = cards_of(relaxed.call(request))
    stance = stance_of(cards)
    before = stance_of(cards_of(shipped.call(load("patient-view-cidp"))))
    assert (stance["summary"], stance["indicator"], stance["source"]) == (
        before["summary"],
        before["indicator"],
        before["source"],
    )
    ice = relaxed.later["ice-cidp-maintenance"]
    part = since_part(stance["detail"])
    (line,) = [line for line in part if ice.link in line]
    assert line.startswith(f"- {ice.year}, controlled trial, contradicts the review: ")
    assert links_in(line) == [(for_markdown(ice.title), "https://pubmed.ncbi.nlm.nih.gov/18178525/")]
    # one line per note, in the Result's order
    notes = evaluated(request, relaxed.rules)["later_evidence"]
    assert [links_in(line)[0][1] for line in part[1:]] == [n["link"] for n in notes]
    # the card's links: one per note, each an absolute link to the source
    links = [link for link in stance["links"] if link["url"] == ice.link]
    assert links == [{"label": f"Since 2004 ({ice.year}): {ice.title}", "url": ice.link, "type": "absolute"}]


def test_since_2004_comes_after_the_reviews_advice_and_before_what_the_record_did_not_say(relaxed):
    detail = stance_of(cards_of(relaxed.call(with_gbs(load("order-select-mmn"))))).get("detail", "")
    assert detail.index("**Dose:**") < detail.index("**General precautions") < detail.index("**Since 2004")
    assert detail.index("**Since 2004") < detail.index("**From the record:**")


def test_text_from_the_later_evidence_file_is_escaped_and_its_link_is_one(relaxed):
    """A title with Markdown and HTML shows as written, never a link or markup; a link whose URL
    holds parentheses (a DOI) stays one link to that URL."""
    stance = stance_of(cards_of(relaxed.call(load("patient-view-cidp"))))
    link = f"https://doi.org/{MARKED_DOI}"
    (line,) = [line for line in since_part(stance["detail"]) if "PATH" in line]
    assert links_in(line) == [(for_markdown(MARKED_TITLE), link)], line
    assert "javascript:" not in [url for _, url in links_in(stance["detail"])]
    assert "<b>" not in stance["detail"]
    (entry_link,) = [x for x in stance["links"] if x["url"] == link]
    year = relaxed.later["path-cidp-scig-maintenance"].year
    assert entry_link["label"] == f"Since 2004 ({year}): {MARKED_TITLE}"  # a label is plain text, not Markdown


def test_a_chart_with_no_stance_still_shows_the_later_evidence_in_its_precautions_card(shipped):
    """Out of scope (no stance card) but on IVIG: the general precautions card stands in for the
    stance, with the later evidence that speaks to the patient."""
    cards = cards_of(shipped.call(on_ivig(load("patient-view-uncovered"))))
    general = cards[-1]
    assert general["summary"] == "General precautions for any IVIG infusion"
    out = evaluated(on_ivig(load("patient-view-uncovered")))
    assert out["later_evidence"], "no later evidence for this patient: the test would say nothing"
    lines = since_part(general["detail"])[1:]
    assert [links_in(line)[0][1] for line in lines] == [n["link"] for n in out["later_evidence"]]


# -- a valid response, and feedback on a harm card --------------------------------------------------


@pytest.mark.parametrize("name", ["patient-view-cidp", "order-select-mmn", "order-sign-mmn"])
def test_responses_with_later_evidence_are_valid_cds_hooks(relaxed, name):
    for request in (load(name), with_gbs(load(name))):
        body = check_response(relaxed.call(request).json())
        stance = stance_of(body["cards"])
        assert stance.get("links"), stance  # the notes' links are there: the schema saw them
        for card in body["cards"]:
            assert len(card["summary"]) < 140
            for link in card.get("links", []):
                assert link["type"] == "absolute" and link["url"].startswith("http")


def test_feedback_on_a_harm_card_is_kept_and_audited_under_its_entry(shipped):
    cards = cards_of(shipped.call(load("order-select-mmn")))
    card = harm_card(cards, "fda-2013-thrombosis-risk")
    assert "fda-2013-thrombosis-risk" in topics(cards)
    reply = shipped.post("/cds-services/ivig-order/feedback", {"feedback": [feedback_item(card["uuid"])]})
    assert reply.status_code == 200 and reply.json() == {"stored": 1}, reply.text
    result = CliRunner().invoke(
        main, ["audit", "overrides", "--db", str(shipped.db), "--format", "json"], catch_exceptions=False
    )
    rows = {r["rule"]: r for r in json.loads(result.output)}
    row = rows["fda-2013-thrombosis-risk"]
    # (the module's server shows the card to other tests' calls too: each is a card kept, not overridden)
    assert row["indicator"] == "warning" and row["cards"] >= 1 and row["overridden"] == 1
