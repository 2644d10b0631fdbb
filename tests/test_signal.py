"""Signal at the point of care (issue 26): what is specific to this patient first and loudest,
what applies to every infusion once and quietly, and the knowledge where it over- or
under-warned. Through the real command (click's CliRunner) and the golden cases."""

import json

import pytest

from conftest import ROOT, results_of, written


def one(run_cli, tmp_path, case: dict):
    """The JSON result of one case through `ivig evaluate`."""
    [result] = results_of(run_cli, written(tmp_path, json.dumps(case) + "\n", "case.jsonl"))
    return result


# -- the schema knows what a case cannot be ----------------------------------------------------

@pytest.mark.parametrize("first", ["thrombocytopenia", "thrombocytosis"])
def test_both_platelet_disorders_is_an_error_naming_the_field(run_cli, tmp_path, first):
    other = "thrombocytosis" if first == "thrombocytopenia" else "thrombocytopenia"
    result = one(run_cli, tmp_path, {"diagnosis": "mmn", first: True, other: True})
    assert result["status"] == "error"
    assert result["error"]["message"] == ("a platelet count is low (thrombocytopenia) or high (thrombocytosis), "
                                          "not both")
    assert "others" not in result["error"]  # said once, though two constraints say it


def test_a_ventilated_patient_is_not_asked_whether_they_walk(run_cli, tmp_path):
    result = one(run_cli, tmp_path, {"diagnosis": "gbs", "needs_ventilation": True, "weight_kg": 70})
    assert result["ivig"]["stance"] == "first-line"
    assert "walks_unaided" not in result["missing"]
    walking = one(run_cli, tmp_path, {"diagnosis": "gbs", "weight_kg": 70})
    assert "walks_unaided" in walking["missing"]  # not settled without the ventilation

