"""Scenario files: cases with what their result must be, run as tests (`ivig test`).

A scenario is a case with a `name`, an optional short `description`, and an
`expect:` block saying what its result must be. Its fields are written beside
those keys (a case file with `name:` and `expect:` added) or under `case:`
(the layout of tests/cases/golden.yaml). Any file `ivig evaluate` reads may
hold scenarios, since every reader takes the scenario keys off (io.scenario), so a
reviewer adds a test by adding a case to a file, as in Drools' test
scenarios, without touching Python.

`run_scenarios` reads, checks and runs them and returns a `ScenarioReport`
(`to_dict()` for programs, `report_text` for a person). The `expect:` block
has its own schema (`EXPECTATIONS`), checked on load against the rule base
and the case schema, with file:line errors: a misspelt rule id, field or
stance would otherwise make a check that can never fail.

`file_json_schema` is the JSON Schema of the files ivig reads: cases, and
cases with scenario keys.
"""

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, Iterator, List, Optional

from ..base.errors import SourceError
from ..base.escape import for_terminal
from ..base.yamlsrc import Located, shown
from ..core.advisor import GENERAL, Advisor, default_advisor
from ..core.result import Result
from ..core.rulebase import DOSE_KEYS, GRADES, SEVERITIES, RuleBase
from ..core.words import dose_line, suggest
from ..io.cases import read_cases
from ..io.record import CaseRecord
from ..io.scenario import SCENARIO_CASE

MAX_DESCRIPTION = 300  # characters: a description says what a scenario is about, in a line or two
DOSE_RESULT_KEYS = ("rule",) + DOSE_KEYS + ("total_g", "infusion_g")  # what `dose:` may compare: a result's dose keys
JSON_SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"


@dataclass(frozen=True)
class Expectation:
    """One key of an `expect:` block: the shape of its value, what its texts
    name (checked on load), and how it is compared with the result."""

    key: str
    shape: str  # text | texts | dose | severity | severities | grades
    names: Optional[str]  # stance | rule | field | severity | grade | entry: what each text must be; None: any text
    meaning: str  # how the result is compared, for people (ivig schema, the JSON Schema)


EXPECTATIONS = {
    e.key: e
    for e in (
        Expectation("stance", "text", "stance", "the stance, exactly"),
        Expectation("rule", "text", "rule", "the rule that set the stance"),
        Expectation(
            "dose",
            "dose",
            None,
            "null: no dose is given; else each key written (" + ", ".join(DOSE_RESULT_KEYS) + ") equals the dose's",
        ),
        Expectation(
            "warnings", "texts", None, "the warning codes, exactly, in any order (a code twice when two rules give it)"
        ),
        Expectation(
            "precautions",
            "texts",
            None,
            "the codes among the general precautions for any IVIG infusion "
            "(the warnings' general-precautions entry), exactly, in any order",
        ),
        Expectation(
            "later_evidence",
            "texts",
            "entry",
            "the ids of the later-evidence entries shown with the case (Since 2004), exactly, in any order",
        ),
        Expectation("max_severity", "severity", "severity", "the highest severity among the warnings (null: none)"),
        Expectation(
            "severity", "severities", "severity", "for each warning code written, the severity of its warnings"
        ),
        Expectation(
            "grade",
            "grades",
            "grade",
            "for each adverse event's code written (a warning or a general precaution), the review's grade of it",
        ),
        Expectation("fired", "texts", "rule", "rules that fire (others may fire too)"),
        Expectation("not_fired", "texts", "rule", "rules that do not fire"),
        Expectation("missing", "texts", "field", "fields reported missing (others may be too); [] means none is"),
        Expectation("not_missing", "texts", "field", "fields not reported missing"),
    )
}


@dataclass
class Difference:
    """Where a result differs from what its scenario expects."""

    key: str  # the expect key ('dose.total_g' for one key of the dose)
    expected: object
    actual: object
    message: str
    line: Optional[int] = None  # of the key in the scenario's file

    def to_dict(self) -> dict:
        return {
            "key": self.key,
            "expected": self.expected,
            "actual": self.actual,
            "message": self.message,
            "line": self.line,
        }


@dataclass
class Outcome:
    """What running one scenario gave: passed, failed (with the differences) or
    error (the scenario or its case could not be read, checked or evaluated)."""

    name: str
    source: Optional[str]
    line: Optional[int]
    status: str
    description: Optional[str] = None
    differences: List[Difference] = field(default_factory=list)
    errors: List[SourceError] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "description": self.description,
            "differences": [d.to_dict() for d in self.differences],
            "errors": [
                {"message": e.message, "field": e.field, "source": e.source, "line": e.line} for e in self.errors
            ],
            "source": self.source,
            "line": self.line,
        }


@dataclass
class ScenarioReport:
    """The outcomes of a run of scenarios, in the order they were read."""

    outcomes: List[Outcome]

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def ok(self) -> bool:
        """Every scenario passed (and there was at least one)."""
        return bool(self.outcomes) and all(o.status == "passed" for o in self.outcomes)

    def to_dict(self) -> dict:
        return {
            "scenarios": [o.to_dict() for o in self.outcomes],
            "passed": self.count("passed"),
            "failed": self.count("failed"),
            "errors": self.count("error"),
        }


@dataclass
class Scenario:
    """A scenario as read and checked: its case record and its `expect:` block,
    or the errors that keep it from running."""

    name: str
    record: CaseRecord
    description: Optional[str] = None
    expect: Dict[str, object] = field(default_factory=dict)
    expect_lines: Dict[str, int] = field(default_factory=dict)
    errors: List[SourceError] = field(default_factory=list)

    def run(self, advisor: Advisor) -> Outcome:
        """Evaluate the case and compare its result with `expect`."""
        record = self.record
        outcome = Outcome(self.name, record.source, record.line, "error", self.description)
        if self.errors:
            outcome.errors = list(self.errors)
            return outcome
        result = advisor.evaluate_mapping(record.data, record.source, record.line, record.default_id)
        if not result.ok:
            outcome.errors = _errors_of(result)
            return outcome
        for key, expected in self.expect.items():
            for difference in _compare(key, expected, result):
                difference.line = self.expect_lines.get(key)
                outcome.differences.append(difference)
        outcome.status = "failed" if outcome.differences else "passed"
        return outcome


def run_scenarios(paths: Iterable[str], advisor: Optional[Advisor] = None, stdin=None) -> ScenarioReport:
    """Read every scenario of `paths` (files, directories, '-'), run each, and
    report the outcomes in order."""
    advisor = advisor or default_advisor()
    return ScenarioReport([s.run(advisor) for s in read_scenarios(paths, advisor.rulebase, stdin)])


def read_scenarios(paths: Iterable[str], rulebase: RuleBase, stdin=None) -> Iterator[Scenario]:
    """The scenarios of `paths`, each checked against the scenario schema (a case
    with no `expect:`, a key or a name that does not exist, a name used twice
    in the run: its errors, with file and line)."""
    first_seen: Dict[str, str] = {}
    for record in read_cases(paths, stdin=stdin):
        scenario = _scenario(record, rulebase)
        where = f"{record.source}:{record.line}" if record.line else str(record.source)
        if scenario.name in first_seen and not record.error:
            scenario.errors.append(
                SourceError(
                    f"the name {shown(scenario.name)} is used already, at "
                    f"{first_seen[scenario.name]}: give each scenario its own",
                    record.source,
                    record.line,
                    "name",
                )
            )
        first_seen.setdefault(scenario.name, where)
        yield scenario


def _scenario(record: CaseRecord, rulebase: RuleBase) -> Scenario:
    scenario = Scenario(name=record.default_id, record=record)
    if record.error is not None:
        scenario.errors.append(record.error)
        return scenario
    keys = record.scenario if record.scenario is not None else Located()
    source, line = record.source, record.line
    at = keys.line_of if isinstance(keys, Located) and keys.line is not None else (lambda _: line)
    description = keys.get("description")
    if description is not None:
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            scenario.errors.append(
                SourceError(
                    f"'description' must be a text of at most {MAX_DESCRIPTION} characters",
                    source,
                    at("description"),
                    "description",
                )
            )
        else:
            scenario.description = description
    expect = keys.get("expect")
    if expect is None:
        scenario.errors.append(
            SourceError(
                f"no 'expect:' block: a scenario says what its result must be (keys: {', '.join(EXPECTATIONS)})",
                source,
                line,
                "expect",
            )
        )
        return scenario
    if not isinstance(expect, dict) or not expect:
        scenario.errors.append(
            SourceError(
                f"'expect' must be a mapping of at least one of: {', '.join(EXPECTATIONS)}",
                source,
                at("expect"),
                "expect",
            )
        )
        return scenario
    key_line = expect.line_of if isinstance(expect, Located) else (lambda _: at("expect"))
    for key, value in expect.items():
        problem = _check(key, value, rulebase)
        if problem:
            scenario.errors.append(SourceError(problem, source, key_line(key), f"expect.{key}"))
    if not scenario.errors:
        scenario.expect = dict(expect)
        scenario.expect_lines = {key: key_line(key) for key in expect}
    return scenario


# -- the expect schema: checked on load -----------------------------------------------


def _known(names: str, rulebase: RuleBase) -> list:
    """The texts a value of kind `names` may be."""
    return {
        "stance": list(rulebase.stances),
        "rule": [r.id for r in rulebase.rules],
        "field": list(rulebase.schema.fields),
        "severity": list(SEVERITIES),
        "grade": list(GRADES),
        "entry": [e.id for e in rulebase.later.entries],
    }[names]


def _check(key, value, rulebase: RuleBase) -> Optional[str]:
    """What is wrong with one key of an `expect:` block, or None."""
    expectation = EXPECTATIONS.get(key)
    if expectation is None:
        return f"unknown key {shown(key)} in 'expect' (keys: {', '.join(EXPECTATIONS)})" + suggest(key, EXPECTATIONS)
    shape = expectation.shape
    if shape == "dose":
        if value is None:
            return None
        if not isinstance(value, dict) or not value:
            return "'dose' must be null (no dose) or a mapping of the dose's keys to compare"
        unknown = [k for k in value if k not in DOSE_RESULT_KEYS]
        if unknown:
            return f"unknown key {shown(unknown[0])} in 'dose' (keys: {', '.join(DOSE_RESULT_KEYS)})" + suggest(
                unknown[0], DOSE_RESULT_KEYS
            )
        if "rule" in value:
            return _unknown_name("rule", [value["rule"]], rulebase)
        return None
    if shape in ("severities", "grades"):
        levels = {"severities": ("severity", SEVERITIES), "grades": ("grade", GRADES)}[shape]
        if not isinstance(value, dict) or not value:
            return f"'{key}' must map warning codes to a {levels[0]} ({', '.join(levels[1])})"
        return _unknown_name(levels[0], list(value.values()), rulebase)
    if shape == "severity" and value is None:
        return None
    if shape in ("text", "severity") and not isinstance(value, str):
        return f"'{key}' must be one text, not {_kind(value)}"
    if shape == "texts" and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        return f"'{key}' must be a list of texts, not {_kind(value)}"
    return _unknown_name(expectation.names, value if isinstance(value, list) else [value], rulebase)


def _unknown_name(names: Optional[str], values: list, rulebase: RuleBase) -> Optional[str]:
    if names is None:
        return None
    known = _known(names, rulebase)
    for value in values:
        if value not in known:
            return f"{shown(value)} is not a {names} of the rule base" + suggest(value, known)
    return None


def _kind(value) -> str:
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, list) else shown(value)


# -- comparing ----------------------------------------------------------------------------


def _compare(key: str, expected, result: Result) -> List[Difference]:
    """The differences between one expectation and the result (none: it holds)."""
    ivig = result.ivig or {}
    if key in ("stance", "rule", "max_severity"):
        actual = result.max_severity if key == "max_severity" else ivig.get(key)
        return (
            []
            if actual == expected
            else [Difference(key, expected, actual, f"expected {_shown(expected)}, got {_shown(actual)}")]
        )
    if key == "dose":
        return _compare_dose(expected, result.dose)
    if key in ("warnings", "precautions", "later_evidence"):
        actual = (
            [n["id"] for n in result.later_evidence]
            if key == "later_evidence"
            else [w["code"] for w in (result.warnings if key == "warnings" else _precautions(result))]
        )
        if Counter(actual) == Counter(expected):
            return []
        absent, extra = Counter(expected) - Counter(actual), Counter(actual) - Counter(expected)
        parts = ([f"not given: {', '.join(sorted(absent.elements()))}"] if absent else []) + (
            [f"not expected: {', '.join(sorted(extra.elements()))}"] if extra else []
        )
        return [Difference(key, sorted(expected), sorted(actual), "; ".join(parts))]
    if key == "grade":
        out = []
        for code, grade in expected.items():
            grades = sorted(
                {w.get("grade") or "none" for w in result.warnings + _precautions(result) if w["code"] == code}
            )
            if grades != [grade]:
                got = f"got {', '.join(grades)}" if grades else "there is no such warning or precaution"
                out.append(Difference(f"grade.{code}", grade, grades or None, f"expected {grade}, {got}"))
        return out
    if key == "severity":
        out = []
        for code, level in expected.items():
            levels = sorted({w["severity"] for w in result.warnings if w["code"] == code})
            if levels != [level]:
                got = f"got {', '.join(levels)}" if levels else "there is no such warning"
                out.append(Difference(f"severity.{code}", level, levels or None, f"expected {level}, {got}"))
        return out
    fired = [t["rule"] for t in result.trace]
    checks: Dict[str, Callable] = {
        "fired": lambda name: name in fired,
        "not_fired": lambda name: name not in fired,
        "missing": lambda name: name in result.missing,
        "not_missing": lambda name: name not in result.missing,
    }
    if key == "missing" and expected == [] and result.missing:
        return [Difference(key, [], list(result.missing), f"expected none missing, got {', '.join(result.missing)}")]
    said = {
        "fired": "did not fire",
        "not_fired": "fired",
        "missing": "is not reported missing",
        "not_missing": "is reported missing",
    }[key]
    return [Difference(key, name, None, f"{name} {said}") for name in expected if not checks[key](name)]


def _precautions(result: Result) -> List[dict]:
    """The items of a result's general precautions (what applies to every infusion)."""
    return [item for w in result.warnings if w["code"] == GENERAL for item in w["items"]]


def _compare_dose(expected, dose) -> List[Difference]:
    if expected is None:
        if dose is None:
            return []
        return [Difference("dose", None, dose, f"expected no dose, got {dose_line(dose)} (rule {dose['rule']})")]
    if dose is None:
        return [Difference("dose", expected, None, "expected a dose, got none")]
    return [
        Difference(f"dose.{k}", v, dose.get(k), f"expected {_shown(v)}, got {_shown(dose.get(k))}")
        for k, v in expected.items()
        if dose.get(k) != v
    ]


def _shown(value) -> str:
    return "null" if value is None else str(value)


def _errors_of(result: Result) -> List[SourceError]:
    """The errors of a result that could not be evaluated, as SourceErrors."""
    error = result.error
    first = SourceError(error["message"], error["source"], error["line"], error["field"])
    return [first] + [
        SourceError(o["message"], error["source"], o["line"], o["field"]) for o in error.get("others", [])
    ]


# -- for a person ---------------------------------------------------------------------------


def report_text(report: ScenarioReport, style: Callable = lambda text, **_: text) -> str:
    """The outcomes, one line each, with the differences and errors under those
    that did not pass, and a last line that counts them. Everything from the
    files is shown made safe for a terminal."""
    marks = {"passed": ("PASS ", "green"), "failed": ("FAIL ", "red"), "error": ("ERROR", "red")}
    lines = []
    for outcome in report.outcomes:
        mark, colour = marks[outcome.status]
        where = f"{outcome.source}:{outcome.line}" if outcome.line else str(outcome.source)
        lines.append(f"{style(mark, fg=colour, bold=True)} {for_terminal(outcome.name)}  ({for_terminal(where)})")
        for difference in outcome.differences:
            at = f" (line {difference.line})" if difference.line else ""
            lines.append(f"        {for_terminal(difference.key)}: {for_terminal(difference.message)}{at}")
        for error in outcome.errors:
            lines.append(f"        {for_terminal(error)}")
    total = len(report.outcomes)
    lines.append(
        f"{total} scenario{'' if total == 1 else 's'}: {report.count('passed')} passed, "
        f"{report.count('failed')} failed, {report.count('error')} "
        f"error{'' if report.count('error') == 1 else 's'}"
    )
    return "\n".join(lines)


# -- JSON Schema of the files ivig reads -------------------------------------------------------


def expect_json_schema(rulebase: RuleBase) -> dict:
    """The `expect:` block as a JSON Schema object, from EXPECTATIONS."""

    def texts(names):
        return {"enum": _known(names, rulebase)} if names else {"type": "string"}

    properties = {}
    for key, e in EXPECTATIONS.items():
        if e.shape == "text":
            schema = texts(e.names)
        elif e.shape == "texts":
            schema = {"type": "array", "items": texts(e.names)}
        elif e.shape == "severity":
            schema = {"enum": list(SEVERITIES) + [None]}
        elif e.shape in ("severities", "grades"):
            levels = SEVERITIES if e.shape == "severities" else GRADES
            schema = {"type": "object", "additionalProperties": {"enum": list(levels)}, "minProperties": 1}
        else:  # dose
            schema = {
                "anyOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "minProperties": 1,
                        "additionalProperties": False,
                        "properties": {
                            k: ({"enum": _known("rule", rulebase)} if k == "rule" else {}) for k in DOSE_RESULT_KEYS
                        },
                    },
                ]
            }
        properties[key] = dict(schema, description=e.meaning)
    return {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "minProperties": 1,
        "description": "What the result of the scenario's case must be (ivig test).",
    }


def file_json_schema(rulebase: RuleBase) -> dict:
    """The JSON Schema (draft 2020-12) of a case file: one case, a list of cases,
    or a mapping `cases:` holding the list; a case may carry the scenario keys
    beside its fields, or hold its fields under `case:`. (A JSON Lines file
    holds one of these items per line; a CSV file is described by the fields.)

    Values are in their canonical form, what a pipeline should write; ivig
    also reads the labels, aliases and spellings that `ivig schema` lists."""
    case = rulebase.schema.json_schema()
    scenario_keys = {
        "name": {"type": "string", "minLength": 1, "description": "The scenario's name (the case's default id)."},
        "description": {"type": "string", "maxLength": MAX_DESCRIPTION, "description": "What the scenario is about."},
        "expect": {"$ref": "#/$defs/expect"},
    }
    with_keys = dict(case, properties=dict(case["properties"], **scenario_keys))
    under_case = {
        "type": "object",
        "properties": dict(scenario_keys, **{SCENARIO_CASE: {"$ref": "#/$defs/case"}}),
        "required": [SCENARIO_CASE],
        "additionalProperties": False,
    }
    item = {"$ref": "#/$defs/item"}
    return {
        "$schema": JSON_SCHEMA_DRAFT,
        "title": "ivig-advisor case file",
        "description": "Cases for `ivig evaluate`, and scenarios for `ivig test` (a case with name, description and "
        "expect). A field left out, or null, is unknown, never false.",
        "$defs": {
            "case": case,
            "case_with_scenario_keys": with_keys,
            "scenario_with_case": under_case,
            "item": {"anyOf": [{"$ref": "#/$defs/case_with_scenario_keys"}, {"$ref": "#/$defs/scenario_with_case"}]},
            "expect": expect_json_schema(rulebase),
        },
        "anyOf": [
            item,
            {"type": "array", "items": item},
            {
                "type": "object",
                "properties": {"cases": {"type": "array", "items": item}},
                "required": ["cases"],
                "additionalProperties": False,
            },
        ],
    }


__all__ = [
    "EXPECTATIONS",
    "Difference",
    "Expectation",
    "Outcome",
    "Scenario",
    "ScenarioReport",
    "expect_json_schema",
    "file_json_schema",
    "read_scenarios",
    "report_text",
    "run_scenarios",
]
