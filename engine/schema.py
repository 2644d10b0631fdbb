"""The case schema (facts/case.yaml): loading it, and validating cases against it."""

import difflib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional

from . import conditions
from .yamlsrc import Located, SourceError, load_one

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


class CaseInvalid(Exception):
    """A case that breaks the schema; `errors` are SourceErrors, the first is the headline."""

    def __init__(self, errors: List[SourceError]):
        super().__init__(str(errors[0]))
        self.errors = errors


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
        if path is None:
            ref = resources.files("ivig_advisor").joinpath("facts", "case.yaml")
            text, source = ref.read_text(encoding="utf-8"), "facts/case.yaml"
        else:
            text, source = Path(path).read_text(encoding="utf-8"), str(path)
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
                facts[key] = _check_value(spec, value)
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
        case_id = facts.pop("id", None) or default_id or "case"
        return Case(str(case_id), facts, source, line)

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
    message = f"unknown field '{key}'"
    close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
    return message + (f"; did you mean '{close[0]}'?" if close else "")


def _unknown_value(spec: FieldSpec, value) -> str:
    message = f"'{value}' is not an allowed value of '{spec.name}' ({', '.join(spec.values)})"
    suggestion = spec.alias_of(str(value)) or next(iter(
        difflib.get_close_matches(str(value), list(spec.values), n=1, cutoff=0.6)), None)
    return message + (f"; did you mean '{suggestion}'?" if suggestion else "")


def _check_value(spec: FieldSpec, value):
    """The value if it fits the field; ValueError saying why not."""
    kind = spec.type
    if kind == "string":
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"'{spec.name}' must be text")
        return str(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError(f"'{spec.name}' must be true or false, not {value!r}")
        return value
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f"'{spec.name}' must be a number, not {value!r}")
        if kind == "integer" and not float(value).is_integer():
            raise ValueError(f"'{spec.name}' must be a whole number")
        low, high = spec.min, spec.max
        if (low is not None and value < low) or (high is not None and value > high):
            unit = f" {spec.unit}" if spec.unit else ""
            raise ValueError(f"'{spec.name}' is {value:g}{unit}, outside {low:g}-{high:g}{unit}")
        return value
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
