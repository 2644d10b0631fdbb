"""Which rules answered (issue 30, an upgrade the EHR can see): discovery names the rule base of
each service, and every response names it too (CDS Hooks 2.0 reserves `extension` for this), so an
EHR that logs what it was told can tell, across an upgrade, which rules told it. Over real HTTP, by
`ivig serve` in a process of its own (conftest.py's `dev`)."""

import shutil

import httpx
from helpers import ROOT, Server, check_response, load

from ivig_advisor.engine.core.rulebase import RuleBase
from ivig_advisor.engine.service.cdshooks import RULES_EXTENSION

STAMP = RuleBase.load().stamp


def test_discovery_names_the_rule_base_of_each_service(dev):
    services = httpx.get(dev.url + "/cds-services", timeout=10).json()["services"]
    assert len(services) >= 3
    for service in services:
        assert service["extension"][RULES_EXTENSION] == STAMP, service["id"]


def test_every_response_names_the_rule_base_even_with_no_card(dev):
    with_cards = check_response(dev.call(load("order-select-mmn")).json())
    assert with_cards["cards"] and with_cards["extension"] == {RULES_EXTENSION: STAMP}
    silent = check_response(dev.call(load("patient-view-uncovered")).json())
    assert silent == {"cards": [], "extension": {RULES_EXTENSION: STAMP}}


def test_an_edited_rule_base_answers_under_its_own_hash(tmp_path):
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    with (rules / "rulebase.yaml").open("a", encoding="utf-8") as manifest:
        manifest.write("\n# an edit: any byte changes the hash\n")
    server = Server(tmp_path, "--insecure-dev", "--rules", str(rules))
    try:
        answered = server.call(load("order-select-mmn")).json()["extension"][RULES_EXTENSION]
        listed = httpx.get(server.url + "/cds-services", timeout=10).json()["services"][0]["extension"]
        ready = httpx.get(server.url + "/readyz", timeout=10).json()["rules_hash"]
    finally:
        server.stop()
    listed = listed[RULES_EXTENSION]
    assert answered == listed == RuleBase.load(rules).stamp
    assert answered["hash"] == ready != STAMP["hash"]
