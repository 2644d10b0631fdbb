"""FHIR R4 in: the resources of one patient become one case, with where each field came from.

`patient_case` is the heart: a Patient and the resources joined to it give
a case mapping (validated later by the schema, like any case file), a
`Provenance` (which resource set which field, and the codes nothing maps),
or the errors that keep the record from being read. What the codes mean is
data (facts/fhir-map.yaml, io/fhir/mapping.py); how records are read and
joined (Bundles, Bulk Data NDJSON) is io/fhir/bundles.py.

Resources are checked for structure with `fhir.resources` (its R4B models,
which read R4 data: the package has no R4 models for pydantic 2); status
values, references and units are checked here, where the message can say
what is wrong in clinical terms.
"""

import datetime as dt
import hashlib
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

from ...base.errors import SourceError
from ...base.yamlsrc import Located, shown
from .mapping import Entry, FhirMap, Quantity

READ_TYPES = (
    "Patient",
    "Condition",
    "Observation",
    "MedicationRequest",
    "MedicationStatement",
    "Procedure",
    "AllergyIntolerance",
    "Medication",
)
# The element that joins a resource to its Patient.
SUBJECT = {"AllergyIntolerance": "patient"}
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


@dataclass
class Item:
    """One resource as read: where it is (file, line, FHIR path) and how to name it."""

    resource: dict
    source: str
    line: Optional[int]
    path: str  # Bundle.entry[3].resource, or the resource type in an NDJSON line
    full_url: Optional[str] = None  # the Bundle entry's fullUrl

    @property
    def type(self) -> str:
        return self.resource.get("resourceType") if isinstance(self.resource, dict) else None

    @property
    def ref(self) -> str:
        """The resource's name for a person: Condition/123, or where it is when it has no id."""
        rid = self.resource.get("id") if isinstance(self.resource, dict) else None
        return f"{self.type}/{rid}" if isinstance(rid, str) and rid else f"{self.type} at {self.path}"

    def error(self, message: str, element: Optional[str] = None) -> SourceError:
        """An error about this resource, naming it and the FHIR path of `element`."""
        at = self.path + (f".{element}" if element else "")
        line = self.resource.line_of(_top(element)) if element and isinstance(self.resource, Located) else self.line
        return SourceError(f"{self.ref}: {message}", self.source, line or self.line, at)


@dataclass
class Provenance:
    """Where a FHIR case's fields came from, and what in the record nothing maps.

    `origins`: field -> the resources (and codes) that set it; `unmapped`:
    codes and resources the mapping does not read, each with the reason, for
    a reviewer extending facts/fhir-map.yaml; `normalised`: the codes read
    from another spelling than their system publishes (F13), as a case
    file's values read from another spelling are listed."""

    origins: Dict[str, List[str]] = field(default_factory=dict)
    unmapped: List[dict] = field(default_factory=list)
    paths: Dict[str, str] = field(default_factory=dict)  # field -> the FHIR path of the element that set it
    normalised: List[dict] = field(default_factory=list)  # codes read from another spelling (g61.82 as G61.82)

    def apply(self, result) -> None:
        """Put the provenance on a Result: every input fact of its trace names where it came from,
        and an error about a field names the resources that gave it."""
        notes = result.source_notes
        notes.origins = {k: list(v) for k, v in self.origins.items()}
        field_name = (result.error or {}).get("field")
        if field_name in self.origins:  # an error about a field read from the record: said where in it
            result.error["message"] = (
                f"{field_name}: {result.error['message']} (from {'; '.join(self.origins[field_name])})"
            )
            result.error["field"] = self.paths.get(field_name, field_name)
        notes.unmapped = [dict(u) for u in self.unmapped]
        # listed where a case file's other spellings are (text 'Read as', CSV, JSON)
        notes.normalised = list(notes.normalised or ()) + [dict(n) for n in self.normalised]
        for entry in result.trace:
            for fact in entry["matched"]:
                if fact["fact"] == "Finding" and fact["name"] in self.origins:
                    fact["origin"] = list(self.origins[fact["name"]])


def structure_problems(item: Item) -> List[Tuple[str, str]]:
    """(element, message) for each structure error of one resource, by the `fhir.resources`
    models (required elements, primitive types, unknown elements); element '' is the resource.

    A resource seen valid before is not checked again (a digest of its canonical
    JSON is remembered, a few thousand at most): a CDS Hooks client sends the same
    record at order-select and order-sign, and the check is most of a call's cost."""
    try:
        model = _model(item.type)
    except Exception:  # pragma: no cover - a model the package lacks: nothing to check against
        return []
    try:  # a digest, not the text: a resource may be a million characters
        known = hashlib.sha256(
            json.dumps(item.resource, sort_keys=True, ensure_ascii=False).encode("utf-8", "surrogatepass")
        ).digest()
    except (TypeError, ValueError, RecursionError):  # pragma: no cover - parsed JSON always serialises
        known = None
    if known is not None and known in _VALID:
        _VALID.move_to_end(known)
        return []
    try:
        model.model_validate(item.resource)
    except Exception as exc:
        errors = getattr(exc, "errors", None)
        if not callable(errors):
            return [("", f"not a valid {item.type}: {shown(exc, 200)}")]
        return [
            (_element_path(p.get("loc", ())), f"not a valid {item.type}: {p.get('msg', 'invalid')}")
            for p in errors()[:50]
        ]
    if known is not None:
        _VALID[known] = True
        if len(_VALID) > _VALID_SIZE:
            _VALID.popitem(last=False)
    return []


# The elements the mapping reads, per resource type: a structure error there keeps the
# record from being read; one elsewhere (an order's dosage written the STU3 way, say) is
# listed under unmapped and decides nothing.
READ_ELEMENTS = {
    "Patient": ("id", "birthDate", "gender"),
    "Condition": ("id", "code", "clinicalStatus", "verificationStatus", "subject"),
    "Observation": (
        "id",
        "code",
        "status",
        "subject",
        "valueQuantity",
        "effectiveDateTime",
        "effectivePeriod",
        "effectiveInstant",
        "issued",
    ),
    "MedicationRequest": ("id", "status", "subject", "medicationCodeableConcept", "medicationReference"),
    "MedicationStatement": ("id", "status", "subject", "medicationCodeableConcept", "medicationReference"),
    "Procedure": ("id", "code", "status", "subject"),
    "AllergyIntolerance": ("id", "code", "clinicalStatus", "patient"),
    "Medication": ("id", "code", "ingredient"),
}


def _read_element(rtype: str, element: str) -> bool:
    top = _top(element)
    return top == "" or top in READ_ELEMENTS.get(rtype, ())


def _top(element: str) -> str:
    """The resource's own element a FHIR path starts with: code of code.coding[0].code."""
    return element.split(".")[0].split("[")[0]


_MODELS: dict = {}
_VALID: "OrderedDict[bytes, bool]" = OrderedDict()  # sha256 of resources found valid, most recent last
_VALID_SIZE = 4096


def _model(rtype: str):
    model = _MODELS.get(rtype)
    if model is None:
        from fhir.resources.R4B import get_fhir_model_class  # 0.4 s to import: only when FHIR is read

        model = _MODELS[rtype] = get_fhir_model_class(rtype)
    return model


def _element_path(loc) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).startswith(("function-", "value_error")):
            out += ("." if out else "") + str(part).replace("__", "")
    return out


# -- one patient ---------------------------------------------------------------


@dataclass
class _Setting:
    """A value a resource gives a field."""

    value: object
    origin: str
    item: Item
    element: str
    entry: Optional[Entry] = None


class _Patient:
    """The case of one Patient, built from its resources."""

    def __init__(self, fmap: FhirMap, schema, as_of: dt.date, medication: Callable[[Item, str], Optional[Item]]):
        self.fmap, self.schema, self.as_of, self.medication = fmap, schema, as_of, medication
        self.settings: Dict[str, List[_Setting]] = {}
        self.weights: List[tuple] = []  # (when, kg, setting, quantity)
        self.unmapped: List[dict] = []
        self.normalised: List[dict] = []
        self.errors: List[SourceError] = []
        self.read: List[Item] = []  # the resources a code of the mapping matched, and their Medications

    def give(self, field_name, value, origin, item, element, entry=None):
        self.settings.setdefault(field_name, []).append(_Setting(value, origin, item, element, entry))

    def unread(self, item: Item, element: str, codings: List[dict], reason: str):
        entry = {
            "resource": item.ref,
            "path": f"{item.path}.{element}",
            "codes": [self.coding_label(c) for c in codings],
            "reason": reason,
        }
        self.unmapped.append(entry)

    def coding_label(self, coding) -> str:
        if not isinstance(coding, dict):
            return shown(coding, 60)
        system = self.fmap.system_name(coding.get("system")) if coding.get("system") else "(no system)"
        text = f"{system} {coding.get('code')}"
        return text + (f" {coding['display']}" if isinstance(coding.get("display"), str) else "")

    # -- Patient ---------------------------------------------------------------------

    def patient(self, item: Item):
        resource = item.resource
        birth = resource.get("birthDate")
        if birth is not None:
            self.age(item, birth)
        gender = resource.get("gender")
        if gender is not None:
            if gender not in self.fmap.sex_values:
                self.errors.append(
                    item.error(f"gender {shown(gender)} is not one of {', '.join(self.fmap.sex_values)}", "gender")
                )
            elif self.fmap.sex_values[gender] is not None:
                self.give("sex", self.fmap.sex_values[gender], f"{item.ref} gender {gender}", item, "gender")

    def age(self, item: Item, birth):
        match = _DATE.fullmatch(birth) if isinstance(birth, str) else None
        if not match:
            self.errors.append(
                item.error(f"birthDate {shown(birth)} is not a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)", "birthDate")
            )
            return
        try:
            first, last = _date_range(*match.groups())
        except ValueError:
            self.errors.append(item.error(f"birthDate {shown(birth)} is not a date of the calendar", "birthDate"))
            return
        if first > self.as_of:
            self.errors.append(
                item.error(f"birthDate {birth} is after the evaluation date {self.as_of} (--as-of)", "birthDate")
            )
            return
        oldest, youngest = _years(first, self.as_of), _years(min(last, self.as_of), self.as_of)
        if oldest != youngest:
            self.unmapped.append(
                {
                    "resource": item.ref,
                    "path": f"{item.path}.birthDate",
                    "codes": [],
                    "reason": f"birthDate {birth} gives an age of {youngest} or {oldest} at "
                    f"{self.as_of}: the age stays unknown",
                }
            )
            return
        self.give("age", oldest, f"{item.ref} birthDate {birth} (age at {self.as_of})", item, "birthDate")

    # -- coded resources ------------------------------------------------------------------

    def resource(self, item: Item):
        rtype = item.type
        if rtype == "Observation":
            return self.observation(item)
        state = self.state(item)
        if state is None:
            return
        kind, why = state
        if rtype in ("MedicationRequest", "MedicationStatement"):
            element, codings = self.medication_codings(item)
        else:
            element, codings = "code", _codings(item.resource.get("code"))
        if codings is None:
            return
        self.coded(item, element, codings, kind, why)

    def state(self, item: Item) -> Optional[Tuple[str, str]]:
        """(current | past | ignore, the status as read) of a resource; None after an error."""
        spec = self.fmap.states[item.type]
        ok, code = self.status(item, spec.element, spec.kinds)
        if not ok:
            return None
        kind, said = (
            (spec.absent, f"no {spec.element}") if code is None else (spec.kinds[code], f"{spec.element} {code}")
        )
        if spec.also:
            ok, also = self.status(item, spec.also, sorted(spec.also_known))
            if not ok:
                return None
            if not (spec.also_absent_counts if also is None else also in spec.also_counts):
                return "ignore", f"no {spec.also}" if also is None else f"{spec.also} {also}"
        return kind, said

    def status(self, item: Item, element: str, known) -> Tuple[bool, Optional[str]]:
        """(True, the first code of a status element that is one of `known`, or None when the
        element is absent); (False, None) after an error naming the value (a required binding)."""
        value = item.resource.get(element)
        if value is None:
            return True, None
        codes = _status_codes(value)
        found = next((c for c in codes if c in known), None)
        if found is None:
            self.errors.append(
                item.error(f"{element} {shown(codes[0] if codes else value)} is not one of {', '.join(known)}", element)
            )
            return False, None
        return True, found

    def medication_codings(self, item: Item):
        """The codings of a medication resource: its medicationCodeableConcept, or the
        code and ingredients of the Medication it references (contained or in the input)."""
        resource = item.resource
        if "medicationCodeableConcept" in resource:
            return "medicationCodeableConcept", medication_codings(resource, [])
        target = medication_reference(resource)
        if target is None:
            self.errors.append(
                item.error("has no medication (medicationCodeableConcept or medicationReference)", "medication[x]")
            )
            return None, None
        medication = self.medication(item, target)
        if (
            medication is None
            and target.startswith("#")
            and sum(isinstance(r, dict) and f"#{r.get('id')}" == target for r in item.resource.get("contained") or ())
            > 1
        ):
            self.errors.append(
                item.error(
                    f"two contained resources have the id {shown(target[1:])}: which "
                    "medication is meant cannot be told",
                    "contained",
                )
            )
            return None, None
        if medication is None:
            self.errors.append(
                item.error(
                    f"medicationReference {shown(target)} is no Medication in the input",
                    "medicationReference.reference",
                )
            )
            return None, None
        self.read.append(medication)
        return "medicationReference", medication_codings(resource, [medication.resource])

    def coded(self, item: Item, element: str, codings: List[dict], kind: str, why: str):
        if not codings:
            self.unread(
                item,
                element,
                [],
                "no coding: "
                + (
                    f"text only ({shown(item.resource.get(element, {}).get('text'), 60)})"
                    if isinstance(item.resource.get(element), dict) and item.resource[element].get("text")
                    else "not coded"
                ),
            )
            return
        if any(not isinstance(c.get("code"), str) or not isinstance(c.get("system", ""), str) for c in codings):
            self.read.append(item)  # a code that is not text: the structure check says where (never "unmapped")
        codings = self.well_formed(item, element, codings)
        if not codings:
            return
        matched = []
        for coding in codings:
            for entry, code in self.fmap.matches(coding.get("system"), coding.get("code")):
                if isinstance(entry, Entry) and item.type in entry.resources:
                    matched.append((entry, code, coding))
        if not matched:
            self.unread(item, element, codings, "no entry of the mapping has this code")
            return
        self.read.append(item)
        if kind == "ignore":
            self.unread(item, element, codings, f"{why}: not counted")
            return
        given = False
        for entry, _code, coding in matched:
            for field_name, value in (entry.current if kind == "current" else entry.past).items():
                self.give(field_name, value, self.code_origin(item, coding, field_name), item, element, entry)
                given = True
        if not given:
            self.unread(
                item,
                element,
                codings,
                f"{why}: the mapping sets nothing for a {kind} {item.type} ({matched[0][0].name})",
            )

    def code_origin(self, item: Item, coding: dict, field_name: str) -> str:
        """'Condition/c1 ICD-10-CM G61.82', the origin of a field a coding sets; a code read from
        another spelling (n18.4 as N18.4, F13) says so, and is listed under `normalised`."""
        written = self.coding_label(dict(coding, display=None))
        published = self.fmap.respelled(coding.get("system"), coding.get("code"))
        if published is None:
            return f"{item.ref} {written}"
        system = self.fmap.system_name(coding.get("system"))
        self.normalised.append({"field": field_name, "written": written, "read": f"{system} {published}"})
        return f"{item.ref} {written} (read as {published}: {system} publishes its codes upper-case, F13)"

    def well_formed(self, item: Item, element: str, codings: List[dict]) -> List[dict]:
        """The codings whose codes are written as their system writes codes; each other one
        (ICD-10-CM G6.182) is listed under unmapped with why, and read as no code at all."""
        kept = []
        for coding in codings:
            problem = self.fmap.malformed(coding.get("system"), coding.get("code"))
            if problem:
                self.unread(item, element, [coding], problem)
            else:
                kept.append(coding)
        return kept

    def observation(self, item: Item):
        written = _codings(item.resource.get("code"))
        codings = self.well_formed(item, "code", written)
        if written and not codings:
            return  # each code is listed as no code, with why
        quantities = [
            (q, coding)
            for coding in codings
            for q, _ in self.fmap.matches(coding.get("system"), coding.get("code"))
            if isinstance(q, Quantity)
        ]
        if not quantities:
            self.unread(item, "code", codings, "no entry of the mapping has this code")
            return
        self.read.append(item)
        state = self.state(item)
        if state is None:
            return
        if state[0] != "current":
            self.unread(item, "code", codings, f"{state[1]}: not counted")
            return
        quantity = quantities[0][0]
        value = item.resource.get("valueQuantity")
        if not isinstance(value, dict) or value.get("value") is None:
            self.unread(item, "value[x]", codings, f"a {quantity.name} without a valueQuantity")
            return
        if not isinstance(value["value"], (int, float)) or isinstance(value["value"], bool):
            # "70" passes the structure check (pydantic reads it as a decimal), but FHIR JSON writes a number
            self.errors.append(
                item.error(
                    f"a {quantity.name} whose value {shown(value['value'])} is not a number "
                    "(FHIR JSON writes a decimal as a number)",
                    "valueQuantity.value",
                )
            )
            return
        when = _effective(item.resource)
        if value.get("comparator") is not None:
            self.bound(item, codings, quantity, value, when)
            return
        unit = (self.fmap.canonical.get(value.get("system"), value.get("system")), value.get("code"))
        factor = quantity.units.get(unit)
        if factor is None:
            written = value.get("code") or value.get("unit")
            self.errors.append(
                item.error(
                    f"a {quantity.name} in the unit {shown(written)}"
                    + ("" if value.get("system") else " with no system")
                    + ": ivig reads "
                    + ", ".join(f"{c} ({self.fmap.system_name(u)})" for u, c in quantity.units),
                    "valueQuantity.code",
                )
            )
            return
        disagreement = self.unit_disagreement(quantity, value, unit)
        if disagreement:
            self.errors.append(item.error(f"a {quantity.name} whose unit {disagreement}", "valueQuantity"))
            return
        try:
            number = round(float(value["value"]) * factor, 3)
        except OverflowError:
            number = float("inf")  # the schema's range refuses it, naming the field
        label = self.coding_label(dict(quantities[0][1], display=None))
        origin = f"{item.ref} {label} = {value['value']} {value.get('code')}"
        self.weights.append((when, number, _Setting(number, origin, item, "valueQuantity", None), quantity))

    @staticmethod
    def unit_disagreement(quantity: Quantity, value: dict, unit: tuple) -> Optional[str]:
        """Why a valueQuantity's `unit` text does not say the unit of its code (lb beside code kg:
        which is meant cannot be told, F14), or None when it says it or is left out."""
        said = value.get("unit")
        if said is None:
            return None
        named = quantity.unit_named(said)
        if named == unit:
            return None
        if named is not None:
            return (
                f"{shown(said)} names another unit than its code {unit[1]} ({named[1]}): which is meant "
                "cannot be told, so it is no weight"
            )
        return (
            f"{shown(said)} is not one ivig can tell is {unit[1]}, its code (it reads "
            f"{', '.join(quantity.spellings[unit])}): which is meant cannot be told, so it is no weight"
        )

    def bound(self, item: Item, codings: List[dict], quantity: Quantity, value: dict, when):
        """A quantity with a comparator (> 70 kg) is a bound, not a value: it sets nothing, but it
        takes part in which is the latest (a later bound leaves the value unknown)."""
        unit = value.get("code") or value.get("unit") or ""
        said = " ".join(str(part)[:40] for part in (value["comparator"], value["value"], unit) if part != "")
        self.unread(
            item,
            "valueQuantity",
            codings,
            f"a {quantity.name} of {said} is a bound (valueQuantity.comparator), not a weight: it sets nothing",
        )
        self.weights.append((when, None, _Setting(None, item.ref, item, "valueQuantity"), quantity))

    # -- the case ------------------------------------------------------------------------------

    def case(self, case_id: Optional[str], patient: Item) -> Located:
        """The case mapping, with each field on the line of the resource that set it."""
        self.latest_weight()
        self.otherwise(patient)
        data = Located()
        data.line, data.key_lines = patient.line, {}
        origins = {}
        if case_id is not None:
            data["id"], data.key_lines["id"] = case_id, patient.line
        order = list(self.schema.fields)
        for field_name, settings in sorted(self.settings.items(), key=lambda kv: order.index(kv[0])):
            value = self.resolve(field_name, settings)
            if value is None:
                continue
            data[field_name] = value
            data.key_lines[field_name] = settings[0].item.line
            origins[field_name] = list(dict.fromkeys(s.origin for s in settings))
        self.origins = origins
        self.paths = {
            name: ".".join(filter(None, (settings[0].item.path, settings[0].element)))
            for name, settings in self.settings.items()
            if name in origins
        }
        return data

    def otherwise(self, patient: Item):
        """The mapping's value of each field nothing in the record set (a diagnosis: other), its
        origin saying why and how many entries are listed as not read. A field given two values
        is not unset: that stays an error."""
        unread = len(self.unmapped)  # what is listed under unmapped ('Not read (1)'), each entry once
        count = f"{unread} not read: see unmapped" if unread else "nothing left unread"
        for field_name, default in self.fmap.otherwise.items():
            if field_name not in self.settings:
                self.give(field_name, default.value, f"{default.why} ({count})", patient, "")

    def latest_weight(self):
        for quantity in {q.name: q for *_, q in self.weights}.values():
            found = [(w, n, s) for w, n, s, q in self.weights if q is quantity]
            latest = max((w for w, _, _ in found), key=lambda w: (w is not None, w or ""))
            chosen = [(n, s) for w, n, s in found if w == latest]
            bound = next((s for n, s in chosen if n is None), None)
            if bound is not None:
                self.superseded(quantity, bound, [(w == latest, s) for w, n, s in found if n is not None])
                continue
            if len({n for n, _ in chosen}) > 1:
                a, b = chosen[0][1], next(s for n, s in chosen if n != chosen[0][0])
                when = f"at {latest}" if latest else "with no date"
                self.errors.append(
                    b.item.error(f"two {quantity.name} values {when}: {a.origin} and {b.origin}", "valueQuantity")
                )
                continue
            self.settings.setdefault(quantity.field, []).append(chosen[0][1])

    def superseded(self, quantity: Quantity, bound: _Setting, weights: List[tuple]):
        """List the values (at_latest, setting) that a latest bound leaves unused: the value is unknown."""
        for at_latest, setting in weights:
            self.unread(
                setting.item,
                "valueQuantity",
                _codings(setting.item.resource.get("code")),
                f"{'another' if at_latest else 'an earlier'} {quantity.name}: the latest, {bound.origin}, "
                "is a bound, so the weight is unknown",
            )

    def resolve(self, field_name: str, settings: List[_Setting]):
        spec = self.schema.fields.get(field_name)
        if spec is not None and spec.type == "list":
            order = list(spec.values or ())
            values = {v for s in settings for v in (s.value if isinstance(s.value, (list, tuple)) else [s.value])}
            return sorted(values, key=lambda v: order.index(v) if v in order else len(order))
        values = list(dict.fromkeys(s.value for s in settings))
        if len(values) > 1:  # a more specific entry refines a broader one (Miller Fisher over GBS)
            refined = {s.entry.refines.get(field_name) for s in settings if s.entry and field_name in s.entry.refines}
            values = [v for v in values if v not in refined]
        if len(values) > 1:
            a = next(s for s in settings if s.value == values[0])
            b = next(s for s in settings if s.value == values[1])
            self.errors.append(
                b.item.error(
                    f"the record gives two values of {field_name}: "
                    f"{values[0]} ({a.origin}) and {values[1]} ({b.origin})"
                    + (": evaluate them as separate cases" if field_name == "diagnosis" else ""),
                    b.element,
                )
            )
            return None
        return values[0]


def patient_case(
    patient: Item,
    items: List[Item],
    fmap: FhirMap,
    schema,
    as_of: dt.date,
    medication: Callable[[Item, str], Optional[Item]],
):
    """(case mapping, Provenance, errors) of one Patient and its resources."""
    builder = _Patient(fmap, schema, as_of, medication)
    try:
        builder.patient(patient)
        for item in items:
            builder.resource(item)
        failure = None
    except Exception as exc:  # a structure the mapper did not expect: the check below says where
        failure, builder.read = exc, [patient] + items
    # The structure of what was read (the Patient, and each resource a code of the mapping
    # matched, with the Medications it named) is checked; a resource nothing reads is only
    # listed under unmapped, and its shape decides nothing.
    structure = []
    for item in {id(i): i for i in [patient] + builder.read}.values():
        for element, message in structure_problems(item):
            if _read_element(item.type, element):
                structure.append(item.error(message + (f" ({element})" if element else ""), element or None))
            else:
                builder.unmapped.append(
                    {
                        "resource": item.ref,
                        "path": f"{item.path}.{element}",
                        "codes": [],
                        "reason": f"{message} ({element}): not read, so it decides nothing",
                    }
                )
    if structure or failure is not None:
        return (
            None,
            Provenance(),
            structure or [patient.error(f"cannot be read: {type(failure).__name__}: {shown(failure, 200)}")],
        )
    pid = patient.resource.get("id")
    data = builder.case(pid if isinstance(pid, str) and pid else None, patient)
    return data, Provenance(builder.origins, builder.unmapped, builder.paths, builder.normalised), builder.errors


# -- small readers -----------------------------------------------------------------------


def _codings(concept) -> List[dict]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or () if isinstance(c, dict)]


def medication_reference(resource: dict) -> Optional[str]:
    """The reference of a MedicationRequest's or MedicationStatement's medicationReference, if any."""
    reference = resource.get("medicationReference")
    target = reference.get("reference") if isinstance(reference, dict) else None
    return target if isinstance(target, str) else None


def medication_codings(resource: dict, medications: List[dict]) -> List[dict]:
    """The codings a medication resource gives: its medicationCodeableConcept, or the code and
    the ingredients' codes of the Medication resources it references."""
    if "medicationCodeableConcept" in resource:
        return _codings(resource["medicationCodeableConcept"])
    codings = []
    for medication in medications:
        codings.extend(_codings(medication.get("code")))
        for ingredient in medication.get("ingredient") or ():
            if isinstance(ingredient, dict):
                codings.extend(_codings(ingredient.get("itemCodeableConcept")))
    return codings


def _status_codes(value) -> List[str]:
    """The codes of a status element: a code, or a CodeableConcept's codings."""
    if isinstance(value, str):
        return [value]
    return [c.get("code") for c in _codings(value) if isinstance(c.get("code"), str)]


def _date_range(year, month, day) -> Tuple[dt.date, dt.date]:
    """The first and last day a FHIR date (YYYY, YYYY-MM, YYYY-MM-DD) can stand for."""
    y = int(year)
    if day:
        d = dt.date(y, int(month), int(day))
        return d, d
    if month:
        m = int(month)
        first = dt.date(y, m, 1)
        last = dt.date(y + (m == 12), m % 12 + 1, 1) - dt.timedelta(days=1)
        return first, last
    return dt.date(y, 1, 1), dt.date(y, 12, 31)


def _years(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _effective(resource: dict):
    """When an observation holds (for 'the latest'): effective[x] (a period's end, else its start),
    else issued; as an instant in UTC, so that times in two zones compare as times (a date, or a
    time with no zone, is taken as UTC); the text itself when it is no FHIR dateTime."""
    for key in ("effectiveDateTime", "effectiveInstant"):
        if isinstance(resource.get(key), str):
            return _instant(resource[key])
    period = resource.get("effectivePeriod")
    if isinstance(period, dict):
        for key in ("end", "start"):
            if isinstance(period.get(key), str):
                return _instant(period[key])
    return _instant(resource["issued"]) if isinstance(resource.get("issued"), str) else None


def _instant(text: str):
    match = _DATE.match(text)
    try:
        if match and len(text) > 10:
            when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            when = when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)
            return when.astimezone(dt.timezone.utc).isoformat()
        if match:
            first, _ = _date_range(*match.groups())
            return dt.datetime.combine(first, dt.time(), dt.timezone.utc).isoformat()
    except ValueError:
        pass
    return text
