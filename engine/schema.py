"""The case schema (facts/case.yaml): loading it, and validating cases against it."""

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional

from . import conditions
from .errors import InvalidSource
from .words import suggest
from .yamlsrc import DECIMAL_FLOAT, MAX_NUMBER, Located, SourceError, load_one, shown

TYPES = ("string", "integer", "number", "boolean", "enum", "list")


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
        """The value that `text` names (a value, label or alias), if any."""
        wanted = text.strip().lower()
        for value, spec in self.values.items():
            names = [value, spec.get("label", "")] + list(spec.get("aliases", []))
            if wanted in (n.lower() for n in names):
                return value
        return None


@dataclass
class Case:
    """A validated case: its id and the known facts (unknown fields are absent)."""
    id: str
    facts: Dict[str, object]
    source: Optional[str] = None
    line: Optional[int] = None


class CaseInvalid(InvalidSource):
    """A case that breaks the schema; `errors` are SourceErrors, the first is the headline."""

    def __init__(self, errors: List[SourceError]):
        super().__init__(errors)
        self.args = (str(errors[0]),)  # the message is the headline: one case, one line


class CaseSchema:
    """The fields a case may have, their domains, and the constraints between them."""

    def __init__(self, fields: Dict[str, FieldSpec], groups: Dict[str, str],
                 constraints: list, source: str):
        self.fields = fields
        self.groups = groups
        self.constraints = constraints
        self.source = source

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "CaseSchema":
        """Read and check the schema file (default: the packaged facts/case.yaml)."""
        ref = resources.files("ivig_advisor").joinpath("facts", "case.yaml") if path is None else Path(path)
        source = "facts/case.yaml" if path is None else str(path)
        try:
            text = ref.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:  # a schema saved as UTF-16, say: its error, not a traceback
            raise SourceError(f"not UTF-8 text ({exc.reason} at byte {exc.start}): save it as UTF-8", source)
        data = load_one(text, source)
        if not isinstance(data, Located) or not isinstance(data.get("fields"), dict):
            raise SourceError("the case schema needs a 'fields' mapping", source, 1)
        groups = dict(data.get("groups") or {})
        fields = {}
        for name, spec in data["fields"].items():
            fields[name] = _field_spec(name, spec, groups, source, data["fields"].line_of(name))
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
        return cls(fields, groups, constraints, source)

    def validate(self, data, source: Optional[str] = None, line: Optional[int] = None,
                 default_id: Optional[str] = None) -> Case:
        """Check one case mapping; return a Case or raise CaseInvalid with every problem."""
        line = getattr(data, "line", None) or line
        if not isinstance(data, dict):
            raise CaseInvalid([SourceError(
                f"a case must be a mapping of fields, not {type(data).__name__}", source, line)])
        errors, facts = [], {}

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
                facts[key] = check_value(spec, _as_written(spec, data, key, value))
            except ValueError as exc:
                errors.append(SourceError(str(exc), source, where(key), key))
        for name, spec in self.fields.items():
            if spec.required and name not in facts and not any(e.field == name for e in errors):
                errors.append(SourceError(f"'{name}' is required", source, line, name))
        if not errors:
            lookup = _lookup(facts)
            for when, require, message, _ in self.constraints:
                if conditions.evaluate(when, lookup) and conditions.evaluate(require, lookup) is False:
                    first = next(conditions.tests(when)).name
                    errors.append(SourceError(message, source, where(first), first))
        if errors:
            raise CaseInvalid(errors)
        facts.pop("id", None)
        return Case(self.id_of(data, default_id), facts, source, line)

    def id_of(self, data, default_id: Optional[str] = None) -> str:
        """The id of a case mapping, valid or not: its `id` as written (``id: 00123``
        is '00123', not 123), else `default_id` (the reader's: the file's name,
        ``name:N`` for the Nth case of a file), else 'case'.

        The one rule for a case's id: the result of a case that failed
        validation, `--id` choosing a case of a file (caseio.pick_case)."""
        value = data.get("id") if isinstance(data, dict) else None
        spec = self.fields.get("id")
        if value is not None and spec is not None:
            value = _as_written(spec, data, "id", value)
        return str(value if value not in (None, "") else default_id or "case")

    def check_constraints(self, facts: dict) -> bool:
        """Whether a set of facts breaks no constraint (used by exhaustive checks)."""
        lookup = _lookup(facts)
        return not any(conditions.evaluate(w, lookup) and conditions.evaluate(r, lookup) is False
                       for w, r, _, _ in self.constraints)


def _lookup(facts):
    return lambda name: [facts[name]] if name in facts else conditions.UNKNOWN


def _field_spec(name, spec, groups, source, line) -> FieldSpec:
    if not isinstance(spec, dict):
        raise SourceError(f"field '{name}' must be a mapping", source, line, name)
    unknown = set(spec) - {"type", "group", "values", "required", "min", "max", "unit",
                           "question", "help", "review_flag"}
    if unknown:
        raise SourceError(f"field '{name}' has unknown keys: {', '.join(sorted(unknown))}",
                          source, line, name)
    kind = spec.get("type")
    if kind not in TYPES:
        raise SourceError(f"field '{name}' has type {kind!r}; types: {', '.join(TYPES)}", source, line, name)
    if kind in ("enum", "list") and not spec.get("values"):
        raise SourceError(f"field '{name}' of type {kind} needs 'values'", source, line, name)
    group = spec.get("group")
    if group not in groups:
        raise SourceError(f"field '{name}' is in unknown group {group!r}", source, line, name)
    values = {str(k): dict(v or {}) for k, v in (spec.get("values") or {}).items()}
    for value, about in values.items():
        extra = set(about) - {"label", "aliases"}
        if extra:  # e.g. an unquoted comma in a flow mapping's label
            raise SourceError(f"value '{value}' of field '{name}' has unknown keys: {', '.join(map(str, sorted(extra, key=str)))}"
                              " (quote a label that holds a comma)", source, line, name)
    return FieldSpec(name=name, type=kind, group=group, values=values,
                     required=bool(spec.get("required", False)), min=spec.get("min"),
                     max=spec.get("max"), unit=spec.get("unit"), question=spec.get("question"),
                     help=" ".join(str(spec.get("help", "")).split()),
                     review_flag=spec.get("review_flag"), line=line)


def _unknown_field(key, fields) -> str:
    message = f"unknown field {shown(key)}"
    return message + suggest(key, fields)


def _read(value) -> str:
    """A value as the file wrote it, for an error: JSON's spelling of true, false, null."""
    if isinstance(value, bool) or value is None:
        return {True: "'true'", False: "'false'", None: "'null'"}[value]
    if isinstance(value, (dict, list)):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    return shown(value)


def _unknown_value(spec: FieldSpec, value) -> str:
    message = f"{_read(value)} is not an allowed value of '{spec.name}' ({', '.join(spec.values)})"
    if not isinstance(value, str):  # a suggestion for false or 3 would be a guess ('als'?)
        return message
    alias = spec.alias_of(value)  # 'MG' -> myasthenia_gravis, before any spelling guess
    return message + (f"; did you mean '{alias}'?" if alias else suggest(value, spec.values))


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
        if DECIMAL_FLOAT.match(text):
            return f"'{spec.name}' must be a number, not the text {shown(value)}: remove the quotes"
        for pattern, form in NUMBER_FORMS:
            if pattern.match(text):
                return f"{shown(value)} is not a number as written ({form}): write it in decimal"
    return f"'{spec.name}' must be a number, not {_read(value)}"


def _check_number(spec: FieldSpec, value):
    """The number if it fits the field; ValueError saying why not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(_not_a_number(spec, value))
    if isinstance(value, int) and abs(value) > 10 ** 15:  # beyond any range, and beyond a float's digits
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


def check_value(spec: FieldSpec, value):
    """The value if it fits the field; ValueError saying why not."""
    kind = spec.type
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, (str, int, float)) or value != value:
            raise ValueError(f"'{spec.name}' must be text, not {_read(value)}")
        return str(value)
    if kind == "boolean":
        # YAML 1.2 reads only true/false as booleans; yes and no are read here,
        # for boolean fields only, so `diagnosis: no` stays the text 'no'.
        if isinstance(value, str) and value.strip().lower() in YES_NO:
            return YES_NO[value.strip().lower()]
        if not isinstance(value, bool):
            raise ValueError(f"'{spec.name}' must be true or false (or yes or no), not {_read(value)}")
        return value
    if kind in ("number", "integer"):
        return _check_number(spec, value)
    if kind == "enum":
        if not isinstance(value, str) or value not in spec.values:
            raise ValueError(_unknown_value(spec, value))
        return value
    # list
    if not isinstance(value, list):
        raise ValueError(f"'{spec.name}' must be a list (possibly empty) of: {', '.join(spec.values)}")
    for item in value:
        if not isinstance(item, str) or item not in spec.values:
            raise ValueError(_unknown_value(spec, item))
    return tuple(sorted(set(value)))
