"""The case schema (facts/case.yaml): loading it, and validating cases against it.

It is also the one reader of values for every way a case comes in: case
files (YAML, JSON, JSON Lines, CSV) and the interview's answers. `read_value`
takes a value as written (a YAML or JSON value, or a text: a spreadsheet
cell, a typed answer) and gives the field's value, saying whether it was
read from another spelling than the value itself (an alias, a label, a
unit, another word for yes): those are listed in the result under
`normalised`. What may be written is the schema's (`values` with their
labels and aliases, `spellings`), never this module's.
"""

import hashlib
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from ..base.errors import CaseInvalid, SourceError
from ..base.yamlsrc import DECIMAL_FLOAT, DECIMAL_INT, MAX_NUMBER, Located, load_one, shown
from . import conditions
from .words import plain, suggest

TYPES = ("string", "integer", "number", "boolean", "enum", "list")
LIST_SEPARATOR = ";"  # between the items of a list field written as text (a CSV cell)


@dataclass(frozen=True)
class Spellings:
    """The schema's other ways to write a value (facts/case.yaml, `spellings`):
    words for yes and no, words for a list with no item, and the ways to write
    each unit after a number. All lower case; matched in any case."""

    yes: Tuple[str, ...] = ()
    no: Tuple[str, ...] = ()
    empty_list: Tuple[str, ...] = ()
    units: Dict[str, Tuple[str, ...]] = field(default_factory=dict)


class Reading(NamedTuple):
    """A value read for a field: the value, and whether it was written otherwise
    (an alias, a label, another case, a unit, another word for yes or no)."""

    value: Any  # of the field's type: text, number, yes or no, a sorted tuple of texts (a list field)
    normalised: bool


@dataclass
class FieldSpec:
    """One field of the case schema."""

    name: str
    type: str
    group: str
    values: Dict[str, dict] = field(default_factory=dict)
    required: bool = False
    min: Optional[float] = None
    max: Optional[float] = None
    unit: Optional[str] = None
    question: Optional[str] = None
    help: str = ""
    review_flag: Optional[str] = None
    line: Optional[int] = None
    spellings: Spellings = field(default_factory=Spellings)

    def __post_init__(self):
        # every name of a value, lower case -> the value (the loader refuses a name of two values)
        self.names: Dict[str, str] = {}
        for value, about in self.values.items():
            for name in [value, about.get("label", "")] + list(about.get("aliases", [])):
                if str(name).strip():
                    self.names.setdefault(str(name).strip().lower(), value)

    @property
    def unit_names(self) -> Tuple[str, ...]:
        """The ways to write this field's unit after a number (its unit first), lower case."""
        if not self.unit:
            return ()
        return (self.unit.lower(),) + self.spellings.units.get(self.unit, ())

    def label(self, value) -> str:
        """How a value of this field reads to a person."""
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, (list, tuple)):
            return ", ".join(self.label(v) for v in value) or "none"
        if self.values and value in self.values:
            return self.values[value].get("label", str(value))
        return f"{value:g} {self.unit}" if self.unit and isinstance(value, (int, float)) else str(value)

    def alias_of(self, text: str) -> Optional[str]:
        """The value that `text` names (a value, label or alias, in any case), if any."""
        return self.names.get(text.strip().lower())


@dataclass
class Case:
    """A validated case: its id and the known facts (unknown fields are absent).

    `normalised` lists the values read from another spelling than the value
    itself, in the order written: ``{"field", "written", "read"}``."""

    id: str
    facts: Dict[str, object]
    source: Optional[str] = None
    line: Optional[int] = None
    normalised: List[dict] = field(default_factory=list)


class CaseSchema:
    """The fields a case may have, their domains, and the constraints between them."""

    def __init__(
        self,
        fields: Dict[str, FieldSpec],
        groups: Dict[str, str],
        constraints: list,
        source: str,
        spellings: Optional[Spellings] = None,
    ):
        self.fields = fields
        self.groups = groups
        self.constraints = constraints
        self.source = source
        self.spellings = spellings or Spellings()  # each field has them too (FieldSpec.spellings)
        self.digest = ""  # sha256 of the file's text, set by `load`: part of the rule base's content hash

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "CaseSchema":
        """Read and check the schema file (default: the packaged facts/case.yaml)."""
        ref = resources.files("ivig_advisor").joinpath("facts").joinpath("case.yaml") if path is None else Path(path)
        source = "facts/case.yaml" if path is None else str(path)
        try:
            text = ref.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:  # a schema saved as UTF-16, say: its error, not a traceback
            raise SourceError(f"not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8", source) from None
        data = load_one(text, source)
        if not isinstance(data, Located) or not isinstance(data.get("fields"), dict):
            raise SourceError("the case schema needs a 'fields' mapping", source, 1)
        groups = dict(data.get("groups") or {})
        spellings = _spellings(data.get("spellings"), source, data.line_of("spellings"))
        fields = {}
        for name, spec in data["fields"].items():
            fields[name] = _field_spec(name, spec, groups, spellings, source, data["fields"].line_of(name))
        constraints = []
        for i, item in enumerate(data.get("constraints") or []):
            line = data["constraints"].line_of(i)
            if not isinstance(item, dict) or not {"when", "require", "message"} <= set(item):
                raise SourceError("a constraint needs 'when', 'require' and 'message'", source, line)
            when = conditions.parse(item["when"], source, line)
            require = conditions.parse(item["require"], source, line)
            for test in conditions.tests(conditions.AllOf((when, require))):
                if test.name not in fields:
                    raise SourceError(f"constraint names unknown field '{test.name}'", source, test.line)
            constraints.append((when, require, str(item["message"]), line))
        schema = cls(fields, groups, constraints, source, spellings)
        schema.digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return schema

    def validate(
        self, data, source: Optional[str] = None, line: Optional[int] = None, default_id: Optional[str] = None
    ) -> Case:
        """Check one case mapping; return a Case or raise CaseInvalid with every problem."""
        line = getattr(data, "line", None) or line
        if not isinstance(data, dict):
            raise CaseInvalid(
                [SourceError(f"a case must be a mapping of fields, not {type(data).__name__}", source, line)]
            )
        errors, facts, normalised = [], {}, []

        def where(key):
            return data.line_of(key) if isinstance(data, Located) else line

        for key, value in data.items():
            spec = self.fields.get(key)
            if spec is None:
                errors.append(SourceError(_unknown_field(key, self.fields), source, where(key), str(key)))
                continue
            if value is None:  # null means unknown
                continue
            try:
                facts[key], changed = read_value(spec, _as_written(spec, data, key, value))
            except ValueError as exc:
                errors.append(SourceError(str(exc), source, where(key), key))
                continue
            if changed:
                normalised.append(
                    {
                        "field": key,
                        "written": plain(list(value) if isinstance(value, list) else value),
                        "read": plain(facts[key]),
                    }
                )
        for name, spec in self.fields.items():
            if spec.required and name not in facts and not any(e.field == name for e in errors):
                errors.append(SourceError(f"'{name}' is required", source, line, name))
        if not errors:
            lookup = _lookup(facts)
            broken = []  # a message once: a symmetric pair of constraints (A not with B, B not with A) breaks twice
            for when, require, message, _ in self.constraints:
                if (
                    conditions.truth(when, lookup)
                    and conditions.truth(require, lookup) is False
                    and message not in broken
                ):
                    broken.append(message)
                    first = next(conditions.tests(when)).name
                    errors.append(SourceError(message, source, where(first), first))
        if errors:
            raise CaseInvalid(errors)
        facts.pop("id", None)
        return Case(self.id_of(data, default_id), facts, source, line, normalised)

    def id_of(self, data, default_id: Optional[str] = None) -> str:
        """The id of a case mapping, valid or not: its `id` as written (``id: 00123``
        is '00123', not 123), else `default_id` (the reader's: the file's name,
        ``name:N`` for the Nth case of a file), else 'case'.

        The one rule for a case's id: the result of a case that failed
        validation, `--id` choosing a case of a file (io.cases.pick_case)."""
        value = data.get("id") if isinstance(data, dict) else None
        spec = self.fields.get("id")
        if value is not None and spec is not None:
            value = _as_written(spec, data, "id", value)
        return str(value if value not in (None, "") else default_id or "case")

    def describe(self) -> dict:
        """Every field as data (name, type, group, required, values with labels and
        aliases, unit and its other spellings, range, question, help, review
        flag), and the spellings every field of a type takes: `ivig schema --format json`."""
        fields = []
        for spec in self.fields.values():
            fields.append(
                {
                    "name": spec.name,
                    "type": spec.type,
                    "group": spec.group,
                    "required": spec.required,
                    "values": [
                        {"value": v, "label": about.get("label", v), "aliases": list(about.get("aliases", []))}
                        for v, about in spec.values.items()
                    ],
                    "unit": spec.unit,
                    "unit_aliases": list(spec.unit_names[1:]),
                    "min": spec.min,
                    "max": spec.max,
                    "question": spec.question,
                    "help": spec.help,
                    "review_flag": " ".join(str(spec.review_flag).split()) if spec.review_flag else None,
                }
            )
        words = self.spellings
        return {
            "fields": fields,
            "groups": dict(self.groups),
            "spellings": {
                "yes": ["true", "yes"] + list(words.yes),
                "no": ["false", "no"] + list(words.no),
                "empty_list": list(words.empty_list),
                "list_separator": LIST_SEPARATOR,
            },
        }

    def json_schema(self) -> dict:
        """One case as a JSON Schema (draft 2020-12) object: a property per field in
        its canonical form (what a pipeline should write; `read_value` also reads
        labels, aliases and spellings), the required fields, and each constraint
        that is a plain equality of fields (`if`/`then`)."""
        schema = {
            "type": "object",
            "properties": {n: _json_property(s) for n, s in self.fields.items()},
            "required": [n for n, s in self.fields.items() if s.required],
            "additionalProperties": False,
        }
        rules = [_json_constraint(when, require, message) for when, require, message, _ in self.constraints]
        if any(rules):
            schema["allOf"] = [r for r in rules if r]
        return schema

    def implied(self, facts: dict) -> dict:
        """The unknown fields whose value a constraint settles, given the known ones: a ventilated
        patient does not walk unaided ({needs_ventilation: true} requires {walks_unaided: false}).
        Only a required equality settles a value; it is never asked for, nor listed as missing."""
        lookup, out = _lookup(facts), {}
        for when, require, _, _ in self.constraints:
            if conditions.truth(when, lookup) is True:
                for name, value in (_equalities(require) or {}).items():
                    if name not in facts:
                        out[name] = value
        return out

    def check_constraints(self, facts: dict) -> bool:
        """Whether a set of facts breaks no constraint (used by exhaustive checks)."""
        lookup = _lookup(facts)
        return not any(
            conditions.truth(w, lookup) and conditions.truth(r, lookup) is False for w, r, _, _ in self.constraints
        )


def _json_property(spec: FieldSpec) -> dict:
    """A field as a JSON Schema property: null (unknown) unless required; enum
    values with their labels as titles, as form builders show them."""
    nullable = [] if spec.required else [{"type": "null"}]
    about = {
        "title": spec.question or spec.name,
        "description": spec.help + (f" Unit: {spec.unit}." if spec.unit else ""),
    }
    choices = [{"const": value, "title": v.get("label", value)} for value, v in spec.values.items()]
    if spec.type == "enum":
        return dict(about, oneOf=choices + nullable)
    if spec.type == "list":
        return dict(about, type=["array", "null"], items={"oneOf": choices})
    # a text field also takes a number, as written: `id: 00123` is '00123'
    kind = {"string": ["string", "number"], "boolean": ["boolean"], "number": ["number"], "integer": ["integer"]}[
        spec.type
    ]
    out: Dict[str, object] = dict(about, type=kind + ([] if spec.required else ["null"]))
    if spec.min is not None:
        out["minimum"] = spec.min
    if spec.max is not None:
        out["maximum"] = spec.max
    return out


def _equalities(cond) -> Optional[Dict[str, object]]:
    """{field: value} when a condition only asks fields to equal values, else None."""
    tests = (
        [cond]
        if isinstance(cond, conditions.Test)
        else list(getattr(cond, "items", ()))
        if isinstance(cond, conditions.AllOf)
        else []
    )
    if not tests or not all(isinstance(t, conditions.Test) and t.op == "eq" for t in tests):
        return None
    return {t.name: t.operand for t in tests}


def _json_constraint(when, require, message: str) -> Optional[dict]:
    """A constraint as JSON Schema: if the `when` fields equal their values, each
    `require` field is its value or unknown. None when it is not that simple."""
    if_equal, then_equal = _equalities(when), _equalities(require)
    if if_equal is None or then_equal is None:
        return None
    return {
        "description": message,
        "if": {"properties": {n: {"const": v} for n, v in if_equal.items()}, "required": list(if_equal)},
        "then": {"properties": {n: {"anyOf": [{"const": v}, {"type": "null"}]} for n, v in then_equal.items()}},
    }


def schema_text(schema: "CaseSchema") -> str:
    """Every field for a person, by group: name, type, values with labels and
    aliases, unit and range, question and help; and how values may be written."""
    described = schema.describe()
    words = described["spellings"]
    lines = [
        "Case fields (facts/case.yaml). A field left out, or null, is unknown, never false.",
        "Values are read in any case: an enum value or list item also as its label or an alias; yes/no "
        f"fields as {', '.join(words['yes'])} / {', '.join(words['no'])}; a list in one text with its items "
        f"separated by '{words['list_separator']}', or {' or '.join(words['empty_list'])} for no item; "
        "a number with its unit after it.",
        "",
    ]
    by_group: Dict[str, list] = {}
    for item in described["fields"]:
        by_group.setdefault(item["group"], []).append(item)
    for group, items in by_group.items():
        lines.append(f"{group}: {described['groups'].get(group, '')}")
        for item in items:
            lines.extend(_field_lines(item))
        lines.append("")
    return "\n".join(lines).rstrip()


def _field_lines(item: dict) -> List[str]:
    kind = {"string": "text", "boolean": "yes/no", "enum": "one of", "list": "a list of"}.get(
        item["type"], item["type"]
    )
    if item["min"] is not None or item["max"] is not None:
        kind += (
            f", {item['min']:g}-{item['max']:g}"
            if item["min"] is not None and item["max"] is not None
            else f", at least {item['min']:g}"
            if item["min"] is not None
            else f", at most {item['max']:g}"
        )
    if item["unit"]:
        kind += f" {item['unit']}" + (f" (also: {', '.join(item['unit_aliases'])})" if item["unit_aliases"] else "")
    lines = [f"  {item['name']}  {kind}{'  (required)' if item['required'] else ''}"]
    width = max((len(v["value"]) for v in item["values"]), default=0)
    for v in item["values"]:
        also = f"  (also: {', '.join(v['aliases'])})" if v["aliases"] else ""
        lines.append(f"      {v['value']:<{width}}  {v['label']}{also}")
    for text in (item["question"], item["help"], item["review_flag"] and f"Review flag: {item['review_flag']}"):
        if text:
            lines.append(f"      {text}")
    return lines


def _lookup(facts):
    return lambda name: [facts[name]] if name in facts else conditions.UNKNOWN


def _words(value, what: str, source, line) -> Tuple[str, ...]:
    """A list of words of the schema's `spellings`, lower case."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(w, str) and w.strip() for w in value):
        raise SourceError(f"spellings: {what} must be a list of words", source, line, "spellings")
    return tuple(w.strip().lower() for w in value)


def _spellings(data, source, line) -> Spellings:
    """The schema's `spellings`, checked: no word read two ways, and no number read as yes or no."""
    if data is None:
        return Spellings()
    if not isinstance(data, dict) or set(data) - {"yes", "no", "empty_list", "units"}:
        raise SourceError("spellings may give only yes, no, empty_list and units", source, line, "spellings")
    at = data.line_of if isinstance(data, Located) else (lambda _: line)
    yes, no = _words(data.get("yes"), "yes", source, at("yes")), _words(data.get("no"), "no", source, at("no"))
    for word in yes + no:
        if word in YES_NO or (word in yes and word in no):
            raise SourceError(f"spellings: {shown(word)} is read as both yes and no", source, at("yes"), "spellings")
        if DECIMAL_FLOAT.match(word):  # `walks_unaided: 1` must stay an error: a boolean is not a number
            raise SourceError(
                f"spellings: {shown(word)} is a number, never a yes or a no", source, at("yes"), "spellings"
            )
    units = data.get("units") or {}
    if not isinstance(units, dict):
        raise SourceError("spellings: units must map a unit to its other spellings", source, at("units"), "spellings")
    return Spellings(
        yes,
        no,
        _words(data.get("empty_list"), "empty_list", source, at("empty_list")),
        {str(unit): _words(names, f"units: {unit}", source, at("units")) for unit, names in units.items()},
    )


def _field_spec(name, spec, groups, spellings, source, line) -> FieldSpec:
    if not isinstance(spec, dict):
        raise SourceError(f"field '{name}' must be a mapping", source, line, name)
    unknown = set(spec) - {
        "type",
        "group",
        "values",
        "required",
        "min",
        "max",
        "unit",
        "question",
        "help",
        "review_flag",
    }
    if unknown:
        raise SourceError(f"field '{name}' has unknown keys: {', '.join(sorted(unknown))}", source, line, name)
    kind = spec.get("type")
    if kind not in TYPES:
        raise SourceError(f"field '{name}' has type {kind!r}; types: {', '.join(TYPES)}", source, line, name)
    if kind in ("enum", "list") and not spec.get("values"):
        raise SourceError(f"field '{name}' of type {kind} needs 'values'", source, line, name)
    group = spec.get("group")
    if group is None or group not in groups:  # a field without a group is in none
        raise SourceError(f"field '{name}' is in unknown group {group!r}", source, line, name)
    values = {str(k): dict(v or {}) for k, v in (spec.get("values") or {}).items()}
    named: Dict[str, str] = {}  # every name of a value, lower case -> the value: one name, one value
    for value, about in values.items():
        extra = set(about) - {"label", "aliases"}
        if extra:  # e.g. an unquoted comma in a flow mapping's label
            raise SourceError(
                f"value '{value}' of field '{name}' has unknown keys: {', '.join(map(str, sorted(extra, key=str)))}"
                " (quote a label that holds a comma)",
                source,
                line,
                name,
            )
        aliases = about.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise SourceError(
                f"the aliases of value '{value}' of field '{name}' must be a list of texts", source, line, name
            )
        for alias in [value, about.get("label", "")] + aliases:
            key = str(alias).strip().lower()
            if key and named.setdefault(key, value) != value:
                raise SourceError(
                    f"{shown(alias)} names two values of field '{name}': '{named[key]}' and '{value}'",
                    source,
                    line,
                    name,
                )
            if kind == "list" and LIST_SEPARATOR in key:
                raise SourceError(
                    f"{shown(alias)} of field '{name}' holds '{LIST_SEPARATOR}', which separates "
                    "the items of a list written as text",
                    source,
                    line,
                    name,
                )
    return FieldSpec(
        name=name,
        type=kind,
        group=group,
        values=values,
        required=bool(spec.get("required", False)),
        min=spec.get("min"),
        max=spec.get("max"),
        unit=spec.get("unit"),
        question=spec.get("question"),
        help=" ".join(str(spec.get("help", "")).split()),
        review_flag=spec.get("review_flag"),
        line=line,
        spellings=spellings,
    )


def _unknown_field(key, fields) -> str:
    message = f"unknown field {shown(key)}"
    return message + suggest(key, fields)


def spelled(value) -> str:
    """A value as the file wrote it, for an error: JSON's spelling of true, false, null."""
    if isinstance(value, bool) or value is None:
        return {True: "'true'", False: "'false'", None: "'null'"}[value]
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return shown(value)


def _unknown_value(spec: FieldSpec, value) -> str:
    message = f"{spelled(value)} is not an allowed value of '{spec.name}' ({', '.join(spec.values)})"
    if not isinstance(value, str):  # a suggestion for false or 3 would be a guess ('als'?)
        return message
    # a value spelt nearly right, else a label or alias: 'mnm' is mmn, never MND (als), its mimic
    close = suggest(value.strip().lower(), spec.values) or suggest(value.strip().lower(), spec.names)
    if close:
        named = spec.names[close.split("'")[1]]
        close = close if close.split("'")[1] == named else close[:-1] + f" ({named})?"
    return message + close


# Number forms that YAML 1.1 would have read as another number than a person
# reads (or as a date): refused by name, never converted.
NUMBER_FORMS = [
    (re.compile(r"[-+]?0[xX][0-9a-fA-F_]*\Z"), "hexadecimal"),
    (re.compile(r"[-+]?0[oO][0-7_]*\Z"), "octal"),
    (re.compile(r"[-+]?0[bB][01_]*\Z"), "binary"),
    (re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?\Z"), "base 60, as a time"),
    (re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:[Tt ].*)?\Z"), "a date"),
    (re.compile(r"[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?\Z"), "digits with underscores"),
    (re.compile(r"[-+]?\.(?:inf|Inf|INF|nan|NaN|NAN)\Z"), "infinity or not-a-number"),
]
YES_NO = {"yes": True, "no": False, "true": True, "false": False}


def _as_written(spec: FieldSpec, data, key, value):
    """A text field takes a plain scalar as written: `id: 00123` is '00123' and
    `id: 1.50` is '1.50', not the number YAML reads."""
    if spec.type == "string" and not isinstance(value, str) and isinstance(data, Located):
        return data.text_of(key) or value
    return value


def _not_a_number(spec: FieldSpec, value) -> str:
    """Why a value is not a number, saying what was read."""
    if isinstance(value, str):
        text = value.strip()
        if DECIMAL_FLOAT.match(text) and len(text) > MAX_NUMBER:
            return f"{shown(text)} has {len(text):,} characters: too long to be a number of '{spec.name}'"
        for pattern, form in NUMBER_FORMS:
            if pattern.match(text):
                return f"{shown(value)} is not a number as written ({form}): write it in decimal"
        if _NUMBER_WITH_COMMA.match(text):
            return (
                f"{shown(value)} has a comma, which may mark decimals or thousands: write the number "
                "with a decimal point and no separator"
            )
        if text.lower() in YES_NO or text.lower() in spec.spellings.yes + spec.spellings.no:
            return f"'{spec.name}' must be a number, not {shown(value)}: a number is never a yes or a no"
        return f"'{spec.name}' must be a number, not the text {shown(value)}"
    return f"'{spec.name}' must be a number, not {spelled(value)}"


# A number as a person writes it in a text (a spreadsheet cell, an answer, a
# quoted value), optionally followed by its unit: '70', '070' (seventy),
# '70.5 kg', '65y'. Digits are ASCII only: Python's int() would read other
# scripts' digits and underscores, which a person does not mean.
_NUMBER_TEXT = re.compile(
    r"(?P<number>[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)"
    r"(?:\s*(?P<unit>[^\W\d_][^\d]*?)\.?)?\Z"
)
_NUMBER_WITH_COMMA = re.compile(r"[-+]?[0-9]+(?:,[0-9]+)+(?:\.[0-9]*)?(?:\s*[^\W\d_][^\d]*)?\Z")


def _number_of_text(spec: FieldSpec, text: str) -> Reading:
    """The number a text writes (with the field's unit, if any, after it)."""
    found = _NUMBER_TEXT.match(text.strip())
    if not found or len(found.group("number")) > MAX_NUMBER:
        raise ValueError(_not_a_number(spec, text))
    number, unit = found.group("number"), found.group("unit")
    if unit is not None:
        unit = " ".join(unit.lower().split())
        if not spec.unit:
            raise ValueError(f"'{spec.name}' takes a plain number, not {shown(text)}")
        if unit not in spec.unit_names:
            raise ValueError(
                f"{shown(text)}: '{spec.name}' is in {spec.unit}, not {shown(unit)}" + suggest(unit, spec.unit_names)
            )
    value = int(number) if DECIMAL_INT.match(number) else float(number)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"'{spec.name}' is {shown(text)}: too large to be a number")
    return Reading(_check_number(spec, value), unit is not None)


def _check_number(spec: FieldSpec, value):
    """The number if it fits the field; ValueError saying why not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(_not_a_number(spec, value))
    if isinstance(value, int) and abs(value) > 10**15:  # beyond any range, and beyond a float's digits
        raise ValueError(f"'{spec.name}' is a number of more than 15 digits: too large")
    if spec.type == "integer" and not float(value).is_integer():
        raise ValueError(f"'{spec.name}' must be a whole number")
    low, high = spec.min, spec.max
    if (low is not None and value < low) or (high is not None and value > high):
        # a field may have a minimum only, or a maximum only
        unit = f" {spec.unit}" if spec.unit else ""
        if low is not None and high is not None:
            bound = f"outside {low:g}-{high:g}{unit}"
        elif low is not None:
            bound = f"below the minimum {low:g}{unit}"
        else:
            bound = f"above the maximum {high:g}{unit}"
        raise ValueError(f"'{spec.name}' is {value:g}{unit}, {bound}")
    return value


def _boolean(spec: FieldSpec, value) -> Reading:
    """True or false; yes and no (any case) are the values too, and the schema's
    other words for them are read as such. A number is never a boolean."""
    if isinstance(value, bool):
        return Reading(value, False)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in YES_NO:
            return Reading(YES_NO[word], False)
        if word in spec.spellings.yes or word in spec.spellings.no:
            return Reading(word in spec.spellings.yes, True)
        if DECIMAL_FLOAT.match(word):
            raise ValueError(
                f"'{spec.name}' must be true or false (or yes or no), not {shown(value)}: a boolean is never a number"
            )
        words = list(YES_NO) + list(spec.spellings.yes + spec.spellings.no)
        raise ValueError(
            f"'{spec.name}' must be true or false (or yes or no), not {shown(value)}"
            + (suggest(word, words) if len(word) > 2 else "")
        )
    raise ValueError(
        f"'{spec.name}' must be true or false (or yes or no), not {spelled(value)}"
        + (": a boolean is never a number" if isinstance(value, (int, float)) else "")
    )


def _choice(spec: FieldSpec, value) -> Reading:
    """One value of an enum (or one item of a list): the value, or a label or
    alias of it in any case."""
    if isinstance(value, str):
        if value in spec.values:
            return Reading(value, False)
        named = spec.alias_of(value)
        if named is not None:
            return Reading(named, named != value.strip())
    raise ValueError(_unknown_value(spec, value))


def _items(spec: FieldSpec, value) -> Reading:
    """A list field: a list of items, or a text of items separated by ';' (a
    spreadsheet cell), or a word for no item. Items are kept once, sorted."""
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in spec.spellings.empty_list:
            return Reading((), True)
        items = [item.strip() for item in text.split(LIST_SEPARATOR) if item.strip()]
        if not items:
            raise ValueError(
                f"'{spec.name}' is an empty text: write "
                f"{' or '.join(repr(w) for w in ('[]',) + spec.spellings.empty_list[:1])} for no item, "
                "or leave the field out when it is unknown"
            )
        readings = [_choice(spec, item) for item in items]
    elif isinstance(value, list):
        readings = [_choice(spec, item) for item in value]
    else:
        raise ValueError(f"'{spec.name}' must be a list (possibly empty) of: {', '.join(spec.values)}")
    return Reading(tuple(sorted({r.value for r in readings})), any(r.normalised for r in readings))


def read_value(spec: FieldSpec, value) -> Reading:
    """The value of field `spec` that `value` writes, and whether it was written
    otherwise than the value itself; ValueError saying why it is not one.

    `value` is what a YAML or JSON file holds, or a text (a CSV cell, an
    answer typed in the interview): numbers may be text, with the field's
    unit after them ('70 kg'); enum values and list items may be a label or
    an alias, in any case; booleans take true/false, yes/no and the schema's
    other words for them; a list may be a text of items separated by ';'.
    Never read: a boolean as a number or a number as a boolean, a number in
    another base ('070' is seventy, '0x41' an error), a value no name of the
    schema gives."""
    kind = spec.type
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value != value:
            raise ValueError(f"'{spec.name}' must be text, not {spelled(value)}")
        return Reading(str(value), False)
    if kind == "boolean":
        return _boolean(spec, value)
    if kind in ("number", "integer"):
        if isinstance(value, str):
            return _number_of_text(spec, value)
        return Reading(_check_number(spec, value), False)
    if kind == "enum":
        return _choice(spec, value)
    return _items(spec, value)


def check_value(spec: FieldSpec, value):
    """The value of field `spec` that `value` writes (see `read_value`); ValueError saying why not."""
    return read_value(spec, value).value
