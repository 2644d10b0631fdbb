"""The report in a neurologist's words (issue 29): a glossary of the tool's own terms (layer,
pre-empts, a derived fact, TR Lnn, claim and assumption ids), read from the rule base's data,
and every claim id a rule names linked to the claim as the report lists it."""

import re

from ivig_advisor.engine import RuleBase

RULES = RuleBase.load()


def report(run_cli, tmp_path, *args) -> str:
    path = tmp_path / "report.html"
    assert run_cli("audit", "report", "-o", str(path), *args).exit_code == 0
    return path.read_text(encoding="utf-8")


def test_the_report_has_a_glossary_of_the_words_a_neurologist_stumbles_on(run_cli, tmp_path):
    page = report(run_cli, tmp_path)
    assert '<h2 id="glossary">Glossary</h2>' in page and 'href="#glossary"' in page
    glossary = page[page.index('<h2 id="glossary">') :]
    glossary = glossary[: glossary.index("<h2", 5)]
    for term in ("layer", "pre-empts", "derived fact", "TR L", "claim", "assumption", "stance"):
        assert f"<dt>{term}" in glossary, term


def test_every_claim_a_rule_names_links_to_the_claim(run_cli, tmp_path):
    page = report(run_cli, tmp_path)
    claims = (RULES.extras["claims"] or {})["claims"]
    assert all(f'id="claim-{c}"' in page for c in claims)
    mmn = page[page.index('id="rule-mmn-general"') :]
    mmn = mmn[: mmn.index("</article>")]
    assert re.search(r'claims <a href="#claim-C2\d">C2\d</a>', mmn), mmn
