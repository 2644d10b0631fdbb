"""The words a person reads (engine/words.py): one wording for each idea."""

from ivig_advisor.engine.core import words


def test_a_split_dose_reads_per_day_times_days_equals_total():
    dose = {"total_g_per_kg": 2.0, "g_per_kg_per_day": 0.4, "days": 5, "repeat": "one course"}
    assert words.dose_line(dose) == "0.4 g/kg/day x 5 days = 2 g/kg"


def test_a_total_only_dose_says_the_review_gives_no_split():
    dose = {"total_g_per_kg": 2.0, "g_per_kg_per_day": None, "days": None}
    assert words.dose_line(dose) == "2 g/kg per course (the review gives the total only)"


def test_for_a_patient_the_grams_and_the_repeat_follow():
    dose = {"total_g_per_kg": 2.0, "g_per_kg_per_day": 1.0, "days": 2, "total_g": 140.0, "repeat": "monthly"}
    assert words.dose_line(dose, patient=True) == "1 g/kg/day x 2 days = 2 g/kg = 140 g for this patient; monthly"
    no_weight = dict(dose, total_g=None, repeat=None)
    assert words.dose_line(no_weight, patient=True).endswith("(no weight given: grams unknown)")


def test_did_you_mean_only_for_a_close_word():
    assert words.suggest("diagnoses", ["diagnosis", "age"]) == "; did you mean 'diagnosis'?"
    assert words.suggest("zzz", ["diagnosis", "age"]) == ""
    assert words.suggest(3, ["diagnosis"]) == ""


def test_plain_turns_tuples_into_lists_all_the_way_down():
    assert words.plain(("a", ("b",))) == ["a", ["b"]]
    assert words.plain("text") == "text" and words.plain(None) is None


def test_every_stance_of_the_shipped_rules_has_its_words(rulebase):
    for stance in rulebase.stances:
        assert words.stance_label(stance) != stance, stance
        assert stance in words.STANCE_PHRASES, stance


def test_a_rule_reads_as_if_then(rulebase):
    rule = rulebase.by_id["mmn-general"]
    text = words.sentence(rulebase, rule)
    assert text.startswith("IF diagnosis is ") and " THEN IVIG is first-line" in text


def test_a_cited_passage_shows_in_the_provenance(rulebase):
    rule = rulebase.by_id["mmn-general"]
    assert "passage chosen-for-gbs-mmn-cidp" in words.provenance(rule)
    assert words.citation(rule)["quote_en"].startswith("On the basis of controlled trials")
    assert words.basis_and_refs(rule) == "review; refs 49, 50, 51"
