"""The FHIR mapping (facts/fhir-map.yaml): which coded data sets which case field.

`FhirMap.load()` reads and checks the file against its own contract and the
case schema (every field and value it sets must be the schema's), and
raises FhirMapInvalid listing every problem as file:line. The loaded map
answers the reader's questions (io/fhir/resources.py): which entries a coding
matches (and why a code written against its system's rule matches none),
what a resource's status makes it, how a weight converts (and whether its
unit text agrees with its code), what a field is when nothing in the record
sets it.
"""

import hashlib
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from ...base.errors import FhirMapInvalid, SourceError
from ...base.yamlsrc import Located, load_one, shown
from ...core.schema import CaseSchema, check_value

SCHEMA_NAME = "ivig-advisor-fhir-map"
RESOURCE_TYPES = (
    "Condition",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
    "Observation",
    "AllergyIntolerance",
)
STATE_KINDS = ("current", "past", "ignore")
MATCHES = ("code", "prefix")
TOP_KEYS = {
    "schema",
    "version",
    "fhir_version",
    "checked_on",
    "systems",
    "sources",
    "assumptions",
    "states",
    "patient",
    "quantities",
    "entries",
    "otherwise",
    "gaps",
}


@dataclass(frozen=True)
class Code:
    """One code of an entry: a coding matches it when its system is `uri` and
    its code is `code` (or starts with it, for `match: prefix`)."""

    system: str  # the key in `systems` (icd-10-cm)
    uri: str
    code: str
    display: str
    match: str
    checked: str
    line: Optional[int] = None

    def label(self, names: Dict[str, str]) -> str:
        return f"{names.get(self.uri, self.uri)} {self.code}{'*' if self.match == 'prefix' else ''}"


@dataclass
class Entry:
    """Codes that, on a resource of one of `resources`, set case fields."""

    name: str
    resources: Tuple[str, ...]
    current: Dict[str, object]
    past: Dict[str, object]
    refines: Dict[str, object]
    codes: List[Code]
    assumptions: List[str] = field(default_factory=list)
    note: str = ""
    line: Optional[int] = None


@dataclass
class State:
    """How the status elements of one resource type decide whether it counts."""

    element: str
    kinds: Dict[str, str]  # status code -> current | past | ignore
    absent: str  # what a resource without the element counts as
    also: Optional[str] = None  # a second element (Condition.verificationStatus)
    also_counts: frozenset = frozenset()
    also_known: frozenset = frozenset()
    also_absent_counts: bool = True
    assumptions: List[str] = field(default_factory=list)


@dataclass
class Form:
    """How a system writes its codes (`form` of a system): what a code as published looks like."""

    pattern: "re.Pattern"  # a code as published, with its dot where the system has one
    says: str  # the pattern in words, for a reason a person reads
    upper_case: bool  # every code is published upper-case: one written lower-case is read upper-cased
    checked: str
    assumptions: List[str] = field(default_factory=list)


@dataclass
class Quantity:
    """An Observation whose valueQuantity gives a number field, in the field's unit."""

    name: str
    field: str
    unit: str
    latest: bool
    codes: List[Code]
    units: Dict[Tuple[str, str], float]  # (UCUM uri, unit code) -> factor to the field's unit
    assumptions: List[str] = field(default_factory=list)
    spellings: Dict[Tuple[str, str], Tuple[str, ...]] = field(default_factory=dict)  # unit -> its texts

    def unit_named(self, text) -> Optional[Tuple[str, str]]:
        """The unit (UCUM uri, code) a valueQuantity's `unit` text names (kg for 'Kilograms'), or None."""
        if not isinstance(text, str):
            return None
        said = " ".join(text.split()).lower()
        return next((unit for unit, texts in self.spellings.items() if said in texts), None)


@dataclass
class Otherwise:
    """What a field is when nothing in a record sets it, and why (said in the field's origin)."""

    value: object
    why: str
    assumptions: List[str] = field(default_factory=list)


class FhirMap:
    """The mapping, loaded and checked."""

    def __init__(self, source: str):
        self.source = source
        self.version = None
        self.systems: Dict[str, dict] = {}  # key -> {uri, name, also}
        self.names: Dict[str, str] = {}  # any accepted uri -> name
        self.canonical: Dict[str, str] = {}  # any accepted uri -> the system's uri
        self.dots: Dict[str, int] = {}  # uri -> the character its codes' one dot comes after
        self.forms: Dict[str, Form] = {}  # uri -> how the system writes its codes
        self.sources: Dict[str, str] = {}
        self.assumptions: Dict[str, str] = {}
        self.states: Dict[str, State] = {}
        self.sex_values: Dict[str, Optional[str]] = {}
        self.patient_assumptions: List[str] = []
        self.quantities: List[Quantity] = []
        self.entries: List[Entry] = []
        self.otherwise: Dict[str, Otherwise] = {}
        self.gaps: List[dict] = []
        self.digest = ""
        self._exact: Dict[tuple, List] = {}
        self._prefix: Dict[str, List[tuple]] = {}

    # -- questions the reader asks -------------------------------------------------

    def matches(self, system: Optional[str], code: Optional[str]) -> List[tuple]:
        """(entry or quantity, Code) for every entry code a coding matches."""
        if not system or not isinstance(system, str) or not isinstance(code, str):
            return []  # a coding with no system, or one that is not text, matches nothing
        uri = self.canonical.get(system, system)
        key = self.keyed(uri, code)
        if key is None:
            return []  # a code its system does not write so (G6.182): no code at all, never a neighbour's
        found = list(self._exact.get((uri, key), ()))
        for item, entry_code in self._prefix.get(uri, ()):
            prefix = self.keyed(uri, entry_code.code)
            if key.startswith(prefix) and key != prefix:
                found.append((item, entry_code))
        return found

    def keyed(self, uri: str, code: str) -> Optional[str]:
        """A code as it is compared: as its system publishes it (upper-cased where every code is
        published upper-case) and, in a system with a dot (ICD-10-CM G61.82), without the dot, so
        that G61.82 and G6182 are one code; None when the code is not written as its system
        writes codes (whitespace around it, a dot elsewhere or a second one, another form)."""
        if self._problem(uri, code) is not None:
            return None
        return self._cased(uri, code).replace(".", "") if uri in self.dots else self._cased(uri, code)

    def malformed(self, system, code) -> Optional[str]:
        """Why a coding's code is not one of its system as written (G6.182 in ICD-10-CM), or None."""
        if not isinstance(system, str) or not isinstance(code, str):
            return None  # not text: the structure check says so
        return self._problem(self.canonical.get(system, system), code)

    def respelled(self, system, code) -> Optional[str]:
        """The code as its system publishes it, when it is read from another spelling (g61.82 is
        read as G61.82, F13); None when it is read as written or not read at all."""
        if self.malformed(system, code) is not None or not isinstance(code, str):
            return None
        cased = self._cased(self.canonical.get(system, system), code)
        return cased if cased != code else None

    def _cased(self, uri: str, code: str) -> str:
        """The code upper-cased when its system publishes every code upper-case (only ASCII letters:
        a code with any other character is no such code, and is left for the form to refuse)."""
        form = self.forms.get(uri)
        return code.upper() if form is not None and form.upper_case and code.isascii() else code

    def _problem(self, uri: str, code: str) -> Optional[str]:
        """Why `code` is no code of the system `uri` as written, or None: whitespace around it (FHIR's
        code type allows none), its dot out of place, or not the system's form."""
        if code != code.strip():
            return (
                f"{shown(code)} has whitespace before or after it, which FHIR's code type does not allow: it is no code"
            )
        name, after = self.system_name(uri), self.dots.get(uri)
        if (
            after is not None
            and "." in code
            and not (code.count(".") == 1 and code.index(".") == after and len(code) > after + 1)
        ):
            return (
                f"{code} is no {name} code as written: its one dot comes after the {ordinal(after)} character "
                "(or is left out)"
            )
        form = self.forms.get(uri)
        if form is None:
            return None
        dotted = code if after is None or "." in code or len(code) <= after else f"{code[:after]}.{code[after:]}"
        if not form.pattern.fullmatch(self._cased(uri, dotted)):
            return f"{code} is no {name} code as written: {name} writes {form.says}"
        return None

    @property
    def dotless(self) -> set:
        """The uris whose codes match with or without their one dot (bench/fhir_bulk.py writes both)."""
        return set(self.dots)

    def system_name(self, uri: Optional[str]) -> str:
        return self.names.get(uri or "", uri or "(no system)")

    def codes_for(self, field_name: str, value) -> List[Code]:
        """The codes of the entries that set `field_name` to `value` when current (for generators and tests)."""

        def sets(given):  # a list field's value is the tuple of its items
            return given == value or (isinstance(given, tuple) and value in given)

        return [c for e in self.entries if field_name in e.current and sets(e.current[field_name]) for c in e.codes]

    def describe(self) -> dict:
        """The mapping as data: `ivig fhir codes --format json`."""

        def code(c: Code):
            return {
                "system": self.system_name(c.uri),
                "uri": c.uri,
                "code": c.code,
                "match": c.match,
                "display": c.display,
                "checked": c.checked,
            }

        return {
            "source": self.source,
            "version": self.version,
            "digest": self.digest,
            "entries": [
                {
                    "name": e.name,
                    "resources": list(e.resources),
                    "current": e.current,
                    "past": e.past,
                    "refines": e.refines,
                    "assumptions": e.assumptions,
                    "note": e.note,
                    "codes": [code(c) for c in e.codes],
                }
                for e in self.entries
            ],
            "quantities": [
                {
                    "name": q.name,
                    "field": q.field,
                    "unit": q.unit,
                    "codes": [code(c) for c in q.codes],
                    "units": [
                        {"uri": u, "code": c, "factor": f, "spellings": list(q.spellings[(u, c)])}
                        for (u, c), f in q.units.items()
                    ],
                    "assumptions": q.assumptions,
                }
                for q in self.quantities
            ],
            "states": {
                t: {
                    "element": s.element,
                    "kinds": s.kinds,
                    "absent": s.absent,
                    "also": s.also,
                    "also_counts": sorted(s.also_counts),
                }
                for t, s in self.states.items()
            },
            "otherwise": {
                k: {"value": o.value, "why": o.why, "assumptions": o.assumptions} for k, o in self.otherwise.items()
            },
            "dots": {self.system_name(uri): after for uri, after in self.dots.items()},
            "forms": {
                self.system_name(uri): {
                    "pattern": f.pattern.pattern,
                    "says": f.says,
                    "upper_case": f.upper_case,
                    "checked": f.checked,
                    "assumptions": f.assumptions,
                }
                for uri, f in self.forms.items()
            },
            "assumptions": self.assumptions,
            "gaps": self.gaps,
            "sources": self.sources,
        }

    # -- loading -----------------------------------------------------------------------

    @classmethod
    def load(cls, path: Optional[Path] = None, schema: Optional[CaseSchema] = None) -> "FhirMap":
        """Read and check the mapping (default: the packaged facts/fhir-map.yaml)."""
        ref = resources.files("ivig_advisor").joinpath("facts", "fhir-map.yaml") if path is None else Path(path)
        source = "facts/fhir-map.yaml" if path is None else str(path)
        try:
            text = ref.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise FhirMapInvalid([SourceError(f"cannot read the mapping: {exc}", source)]) from None
        try:
            data = load_one(text, source)
        except SourceError as exc:
            raise FhirMapInvalid([exc]) from None
        fmap = cls(source)
        fmap.digest = "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        errors = _Reader(fmap, schema or CaseSchema.load(), source).read(data)
        if errors:
            raise FhirMapInvalid(errors)
        return fmap


class _Reader:
    """Checks the file while it fills the FhirMap; every problem is kept, with its line."""

    def __init__(self, fmap: FhirMap, schema: CaseSchema, source: str):
        self.fmap, self.schema, self.source, self.errors = fmap, schema, source, []

    def err(self, message: str, node=None, key=None):
        line = node.line_of(key) if isinstance(node, Located) and key is not None else getattr(node, "line", None)
        self.errors.append(SourceError(message, self.source, line, None if key is None else str(key)))

    def typed(self, node, key, where, kind, required=True):
        """node[key] when it is a `kind` (dict: a mapping, list: a list); else an empty one, and an
        error when it is there but of another type, or missing and required."""
        value = node.get(key) if isinstance(node, dict) else None
        empty = Located() if kind is dict else []
        if value is None:
            if required:
                self.err(f"{where} needs '{key}'", node, key if isinstance(node, dict) and key in node else None)
            return empty
        if not isinstance(value, kind):
            self.err(f"'{key}' must be a {'mapping' if kind is dict else 'list'}", node, key)
            return empty
        return value

    def mapping(self, node, key, where, required=True) -> Located:
        return self.typed(node, key, where, dict, required)

    def listing(self, node, key, where, required=True) -> list:
        return self.typed(node, key, where, list, required)

    def text(self, node, key, where, required=True) -> str:
        value = node.get(key) if isinstance(node, dict) else None
        if value is None:
            if required:
                self.err(f"{where} needs '{key}'", node)
            return ""
        if isinstance(value, (dict, list, bool)):
            self.err(f"'{key}' must be a text", node, key)
            return ""
        written = node.text_of(key) if isinstance(node, Located) else None
        return written or str(value)

    def only(self, node, allowed, where):
        for key in node:
            if key not in allowed:
                self.err(f"{where}: unknown key '{key}' (allowed: {', '.join(sorted(allowed))})", node, key)

    def read(self, data) -> List[SourceError]:
        fmap = self.fmap
        if not isinstance(data, dict):
            self.err("the mapping file must be a mapping")
            return self.errors
        self.only(data, TOP_KEYS, "the mapping")
        if data.get("schema") != SCHEMA_NAME:
            self.err(f"'schema' must be {SCHEMA_NAME}", data, "schema" if "schema" in data else None)
        if data.get("version") != 1:
            self.err(
                "'version' must be 1 (the only version this ivig reads)", data, "version" if "version" in data else None
            )
        fmap.version = data.get("version")
        for key, value in self.mapping(data, "sources", "the mapping").items():
            fmap.sources[str(key)] = str(value)
        for key, value in self.mapping(data, "assumptions", "the mapping").items():
            fmap.assumptions[str(key)] = str(value)
        self.systems(self.mapping(data, "systems", "the mapping"))  # a system's form names sources and assumptions
        for rtype, node in self.mapping(data, "states", "the mapping").items():
            self.state(rtype, node)
        for rtype in RESOURCE_TYPES:
            if rtype not in fmap.states:
                self.err(f"'states' has no entry for {rtype}", data, "states")
        self.patient(self.mapping(data, "patient", "the mapping"))
        for node in self.listing(data, "quantities", "the mapping"):
            self.quantity(node)
        names = set()
        for node in self.listing(data, "entries", "the mapping"):
            entry = self.entry(node)
            if entry is None:
                continue
            if entry.name in names:
                self.err(f"two entries are named {entry.name!r}", node, "name")
            names.add(entry.name)
            fmap.entries.append(entry)
        self.check_codes_unique()
        for field_name, node in self.mapping(data, "otherwise", "the mapping", required=False).items():
            self.otherwise_field(str(field_name), node)
        for node in self.listing(data, "gaps", "the mapping", required=False):
            self.gap(node)
        return self.errors

    def systems(self, node):
        for key, value in node.items():
            if not isinstance(value, dict):
                self.err(f"system {key!r} must be a mapping with uri and name", node, key)
                continue
            self.only(value, {"uri", "name", "also", "dot_after", "form"}, f"system {key!r}")
            uri, name = self.text(value, "uri", f"system {key!r}"), self.text(value, "name", f"system {key!r}")
            also = [str(u) for u in self.listing(value, "also", f"system {key!r}", required=False)]
            self.fmap.systems[str(key)] = {"uri": uri, "name": name, "also": also}
            for accepted in [uri] + also:
                self.fmap.names[accepted] = name
                self.fmap.canonical[accepted] = uri
            after = value.get("dot_after")
            if after is not None and (not isinstance(after, int) or isinstance(after, bool) or after < 1):
                self.err(f"system {key!r}: 'dot_after' must be a character position (1 or more)", value, "dot_after")
            elif after is not None:
                self.fmap.dots[uri] = after
            if value.get("form") is not None:
                self.form(uri, value, f"system {key!r}")

    def form(self, uri: str, system, where: str):
        """A system's `form`: the pattern of its codes as published, in words, and whether every
        code is published upper-case."""
        node = self.mapping(system, "form", where)
        where = f"{where}: form"
        self.only(node, {"pattern", "says", "upper_case", "checked", "assumptions"}, where)
        try:
            pattern = re.compile(self.text(node, "pattern", where))
        except re.error as exc:
            self.err(f"{where}: 'pattern' is no regular expression ({exc})", node, "pattern")
            return
        upper = node.get("upper_case", False)
        if not isinstance(upper, bool):
            self.err(f"{where}: 'upper_case' must be true or false", node, "upper_case")
        self.fmap.forms[uri] = Form(
            pattern,
            self.text(node, "says", where),
            upper is True,
            self.checked(node, where),
            self.refs(node, "assumptions"),
        )

    def checked(self, node, where) -> str:
        """A `checked`, which names a source of `sources` first."""
        checked = self.text(node, "checked", where)
        if checked and checked.split()[0] not in self.fmap.sources:
            self.err(
                f"{where}: 'checked' must start with a key of 'sources' ({checked.split()[0]!r} is not one)",
                node,
                "checked",
            )
        return checked

    def refs(self, node, key) -> List[str]:
        """Assumption ids named under `key`, each one the file defines."""
        ids = [str(a) for a in self.listing(node, key, "", required=False)]
        for a in ids:
            if a not in self.fmap.assumptions:
                self.err(f"assumption {a!r} is not under 'assumptions'", node, key)
        return ids

    def state(self, rtype, node):
        where = f"states.{rtype}"
        if rtype not in RESOURCE_TYPES:
            self.err(f"{where}: ivig reads only {', '.join(RESOURCE_TYPES)}", node)
            return
        if not isinstance(node, dict):
            self.err(f"{where} must be a mapping", node)
            return
        self.only(node, {"element", "absent", "also", "assumptions"} | set(STATE_KINDS), where)
        kinds = {}
        for kind in STATE_KINDS:
            for code in self.listing(node, kind, where, required=False):
                if str(code) in kinds:
                    self.err(f"{where}: {code!r} is both {kinds[str(code)]} and {kind}", node, kind)
                kinds[str(code)] = kind
        absent = str(node.get("absent", "ignore"))
        if absent not in STATE_KINDS:
            self.err(f"{where}: 'absent' must be one of {', '.join(STATE_KINDS)}", node, "absent")
        state = State(self.text(node, "element", where), kinds, absent, assumptions=self.refs(node, "assumptions"))
        also = node.get("also")
        if also is not None:
            if not isinstance(also, dict):
                self.err(f"{where}.also must be a mapping", node, "also")
            else:
                self.only(also, {"element", "counts", "not_counted", "absent"}, f"{where}.also")
                state.also = self.text(also, "element", f"{where}.also")
                state.also_counts = frozenset(str(c) for c in self.listing(also, "counts", f"{where}.also"))
                not_counted = frozenset(str(c) for c in self.listing(also, "not_counted", f"{where}.also"))
                state.also_known = state.also_counts | not_counted
                if also.get("absent", "counts") not in ("counts", "not_counted"):
                    self.err(f"{where}.also: 'absent' must be counts or not_counted", also, "absent")
                state.also_absent_counts = also.get("absent", "counts") == "counts"
        self.fmap.states[rtype] = state

    def patient(self, node):
        self.only(node, {"age", "sex"}, "patient")
        age = self.mapping(node, "age", "patient")
        if age.get("from") != "birthDate":
            self.err("patient.age: 'from' must be birthDate", age, "from" if "from" in age else None)
        self.fmap.patient_assumptions = self.refs(age, "assumptions")
        sex = self.mapping(node, "sex", "patient")
        if sex.get("from") != "gender":
            self.err("patient.sex: 'from' must be gender", sex, "from" if "from" in sex else None)
        for gender, value in self.mapping(sex, "values", "patient.sex").items():
            if value is not None:
                value = self.value("sex", value, sex, "values")
            self.fmap.sex_values[str(gender)] = value

    def value(self, field_name, value, node, key):
        """The case value `value` writes for `field_name`, checked against the case schema."""
        spec = self.schema.fields.get(field_name)
        if spec is None:
            self.err(f"{field_name!r} is not a field of the case schema", node, key)
            return None
        try:
            return check_value(spec, value)
        except ValueError as exc:
            self.err(f"{field_name}: {exc}", node, key)
            return None

    def code(self, node, where) -> Optional[Code]:
        if not isinstance(node, dict):
            self.err(f"{where}: a code must be a mapping (system, code, display, checked)", node)
            return None
        self.only(node, {"system", "code", "display", "match", "checked"}, where)
        system = self.text(node, "system", where)
        if system and system not in self.fmap.systems:
            self.err(f"{where}: system {system!r} is not under 'systems'", node, "system")
            return None
        match = str(node.get("match", "code"))
        if match not in MATCHES:
            self.err(f"{where}: 'match' must be code or prefix", node, "match")
        checked = self.checked(node, where)
        uri = self.fmap.systems.get(system, {}).get("uri", "")
        code = self.text(node, "code", where)
        if not self.as_published(uri, code, node, where):
            return None
        if match == "prefix" and uri not in self.fmap.forms:  # else 'N18 foo' would be N18
            self.err(
                f"{where}: a prefix code needs its system's 'form', so that only codes written as the "
                f"system writes them match below {code}",
                node,
                "match",
            )
        return Code(system, uri, code, self.text(node, "display", where), match, checked, getattr(node, "line", None))

    def as_published(self, uri: str, code: str, node, where: str) -> bool:
        """Whether a code of the mapping is written as its system publishes it: a record written
        otherwise would not match it, or would match it only as another spelling."""
        malformed = self.fmap.malformed(uri, code)
        if malformed:
            self.err(f"{where}: {malformed}", node, "code")
            return False
        published = self.fmap.respelled(uri, code)
        if published:
            self.err(
                f"{where}: {self.fmap.system_name(uri)} publishes {code} as {published}, and the mapping "
                "writes its codes as published",
                node,
                "code",
            )
            return False
        return True

    def codes(self, node, where) -> List[Code]:
        found = [self.code(c, f"{where} code") for c in self.listing(node, "codes", where)]
        if not found:
            self.err(f"{where} has no code", node)
        return [c for c in found if c is not None]

    def quantity(self, node):
        if not isinstance(node, dict):
            self.err("a quantity must be a mapping", node)
            return
        self.only(node, {"name", "field", "unit", "latest", "codes", "units", "assumptions"}, "quantity")
        name = self.text(node, "name", "a quantity")
        field_name = self.text(node, "field", f"quantity {name!r}")
        spec = self.schema.fields.get(field_name)
        if spec is None or spec.type != "number":
            self.err(f"quantity {name!r}: {field_name!r} is not a number field of the case schema", node, "field")
        unit = self.text(node, "unit", f"quantity {name!r}")
        if spec is not None and spec.unit != unit:
            self.err(f"quantity {name!r}: the field's unit is {spec.unit!r}, not {unit!r}", node, "unit")
        units, spellings = {}, {}
        for u in self.listing(node, "units", f"quantity {name!r}"):
            factor = u.get("factor") if isinstance(u, dict) else None
            if (
                not isinstance(factor, (int, float))
                or isinstance(factor, bool)
                or factor <= 0
                or u.get("system") not in self.fmap.systems
                or not u.get("code")
            ):
                self.err(f"quantity {name!r}: a unit needs a system of 'systems', a code and a positive factor", u)
                continue
            self.only(u, {"system", "code", "factor", "spellings", "checked"}, f"quantity {name!r}: unit")
            key = (self.fmap.systems[u["system"]]["uri"], str(u["code"]))
            units[key] = float(factor)
            spellings[key] = self.unit_spellings(u, key, spellings, f"quantity {name!r}: unit {key[1]}")
        self.fmap.quantities.append(
            Quantity(
                name,
                field_name,
                unit,
                bool(node.get("latest", True)),
                self.codes(node, f"quantity {name!r}"),
                units,
                self.refs(node, "assumptions"),
                spellings,
            )
        )

    def unit_spellings(self, node, key, known: dict, where: str) -> Tuple[str, ...]:
        """The texts a valueQuantity's `unit` may say for this unit: its code and `spellings`, lower
        case; a text that is another unit's too is an error (it could not tell them apart)."""
        texts = [key[1]] + [str(t) for t in self.listing(node, "spellings", where, required=False)]
        said = tuple(dict.fromkeys(" ".join(t.split()).lower() for t in texts))
        for text in said:
            other = next((k for k, v in known.items() if text in v), None)
            if other is not None:
                self.err(f"{where}: {text!r} is a spelling of both {other[1]} and {key[1]}", node, "spellings")
        return said

    def entry(self, node) -> Optional[Entry]:
        if not isinstance(node, dict):
            self.err("an entry must be a mapping", node)
            return None
        self.only(node, {"name", "resources", "current", "past", "refines", "codes", "assumptions", "note"}, "entry")
        name = self.text(node, "name", "an entry")
        where = f"entry {name!r}"
        kinds = [str(r) for r in self.listing(node, "resources", where)]
        for r in kinds:
            if r not in RESOURCE_TYPES:
                self.err(f"{where}: ivig reads only {', '.join(RESOURCE_TYPES)}, not {r!r}", node, "resources")
        sets = {}
        for part in ("current", "past", "refines"):
            values = self.mapping(node, part, where, required=part == "current")
            sets[part] = {str(k): self.value(str(k), v, values, k) for k, v in values.items()}
        for k, _v in sets["refines"].items():
            if sets["current"].get(k) is None:
                self.err(f"{where}: refines {k} but sets no {k} of its own", node, "refines")
        return Entry(
            name,
            tuple(kinds),
            sets["current"],
            sets["past"],
            sets["refines"],
            self.codes(node, where),
            self.refs(node, "assumptions"),
            self.text(node, "note", where, required=False),
            getattr(node, "line", None),
        )

    def check_codes_unique(self):
        """Index every code; a code in two entries of one resource type would be read twice."""
        fmap, seen = self.fmap, {}
        for item in fmap.entries + fmap.quantities:
            kinds = item.resources if isinstance(item, Entry) else ("Observation",)
            for c in item.codes:
                for kind in kinds:
                    key = (kind, c.uri, fmap.keyed(c.uri, c.code), c.match)
                    if key in seen and seen[key] is not item:
                        self.errors.append(
                            SourceError(
                                f"{c.label(fmap.names)} is in two entries for {kind}: "
                                f"{seen[key].name!r} and {item.name!r}",
                                self.source,
                                c.line,
                            )
                        )
                    seen[key] = item
                if c.match == "prefix":
                    fmap._prefix.setdefault(c.uri, []).append((item, c))
                fmap._exact.setdefault((c.uri, fmap.keyed(c.uri, c.code)), []).append((item, c))

    def otherwise_field(self, field_name: str, node):
        where = f"otherwise.{field_name}"
        if not isinstance(node, dict):
            self.err(f"{where} must be a mapping (value, why)", node)
            return
        self.only(node, {"value", "why", "assumptions"}, where)
        if "value" not in node:
            self.err(f"{where} needs 'value'", node)
            return
        value = self.value(field_name, node["value"], node, "value")
        if value is not None:
            self.fmap.otherwise[field_name] = Otherwise(
                value, self.text(node, "why", where), self.refs(node, "assumptions")
            )

    def gap(self, node):
        if not isinstance(node, dict):
            self.err("a gap must be a mapping (field, why)", node)
            return
        self.only(node, {"field", "value", "why"}, "gap")
        field_name = self.text(node, "field", "a gap")
        if "value" in node:
            self.value(field_name, node["value"], node, "value")
        elif field_name not in self.schema.fields:
            self.err(f"{field_name!r} is not a field of the case schema", node, "field")
        self.fmap.gaps.append({"field": field_name, "value": node.get("value"), "why": self.text(node, "why", "a gap")})


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th... 11th, 12th, 13th, 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


_default: Optional[FhirMap] = None


def default_map() -> FhirMap:
    """The packaged mapping, loaded on first use."""
    global _default
    if _default is None:
        _default = FhirMap.load()
    return _default
