"""A scenario's own keys taken off the case they are given with: a scenario file (ivig test) gives
each case its name, description and expected result, beside the case's fields or beside `case:`
holding them, and every reader hands the case on alone."""

from ..base.errors import SourceError
from ..base.yamlsrc import Located
from .fhir import bundles
from .record import CaseRecord

# A scenario's own keys (engine/audit/scenarios.py): beside its case's fields, or
# beside `case:` holding them. Never case fields: every reader takes them off.
SCENARIO_KEYS = ("name", "description", "expect")
SCENARIO_CASE = "case"


def scenario_apart(record: CaseRecord) -> CaseRecord:
    """A record whose mapping holds a scenario's keys, with the case alone as its
    data, the keys in `scenario`, and the scenario's name as its default id.

    The case is the mapping's other keys, or the mapping under `case:` (the
    layout of tests/cases/golden.yaml); a scenario that gives both, or a
    `case:` or `name` that is not what it must be, is the record's error."""
    data = record.data
    if (
        not isinstance(data, dict)
        or not any(k in data for k in SCENARIO_KEYS + (SCENARIO_CASE,))
        or bundles.is_fhir(data)
    ):  # a FHIR Patient's `name` is a person's name, not a scenario's
        return record
    scenario, case = _located(data, lambda k: k in SCENARIO_KEYS), _located(data, lambda k: k not in SCENARIO_KEYS)
    problem, at, field = None, None, SCENARIO_CASE
    if SCENARIO_CASE in case:
        others = [str(k) for k in case if k != SCENARIO_CASE]
        at = data.line_of(SCENARIO_CASE) if isinstance(data, Located) else record.line
        if others:
            problem = (
                f"a scenario gives its case under '{SCENARIO_CASE}:' or beside its keys, not both "
                f"({', '.join(others[:5])} beside '{SCENARIO_CASE}:')"
            )
        elif not isinstance(case[SCENARIO_CASE], dict):
            problem = f"'{SCENARIO_CASE}' must be a mapping of fields"
        else:  # on the scenario's line: a result names where its scenario starts, whatever the layout
            case = _located(case[SCENARIO_CASE], lambda k: True)
            case.line = record.line
    name = scenario.get("name")
    if name is not None and (isinstance(name, (dict, list, bool)) or name == ""):
        problem, at, field = "'name' must be a text that names the scenario", scenario.line_of("name"), "name"
    if problem:
        at = at or record.line
        return CaseRecord(None, record.source, at, record.default_id, SourceError(problem, record.source, at, field))
    if name is not None:
        record.default_id = scenario.text_of("name") or str(name)  # name: 00123 is '00123'
    record.data, record.scenario = case, scenario
    return record


def _located(data: dict, keep) -> Located:
    """The keys of a mapping that `keep` says, with their lines and texts as written."""
    part = Located((k, v) for k, v in data.items() if keep(k))
    part.line = getattr(data, "line", None)
    part.key_lines = {k: line for k, line in getattr(data, "key_lines", {}).items() if k in part}
    part.texts = {k: text for k, text in getattr(data, "texts", {}).items() if k in part}
    return part
