"""CDS Hooks 2.0 as a library: discovery, and a hook call's request -> cards.

No web framework here (service/app.py serves it over HTTP): `CdsServices`
reads facts/cds-services.yaml; `Hooks.to_fetch` says which prefetch keys the
EHR left out and its FHIR server can give (the caller fetches them into
`prefetch`: service.py does, over HTTP, away from the engine);
`Hooks.call(service_id, request)` checks the request, gathers the patient's
record from `prefetch`, builds one FHIR collection Bundle of the record and the draft orders, and reads it
as any other FHIR input (io/fhir/bundles.py): the same case, the same rules, the
same Result, rendered as cards (service/cards.py).

Each hook has a service id of its own in discovery (a client keying services by URL loses
none); `ivig-order`, once the one id of both order hooks, still answers them, unlisted
(facts/cds-services.yaml says why, and how order-sign's cards still replace order-select's).
A call is checked whole before anything is fetched for it (`Hooks.to_fetch` refuses it as
`Hooks.call` would): no empty token goes to a FHIR server.

A request that is not a hook call this service answers is a HookRefused with
the HTTP status the spec asks: 400 (malformed: a prefetch value that is not
what its template asks for among them), 404 (no such service), 412 (required
data neither prefetched nor fetchable). Bad data in the record is no error of
the call: a card says what could not be read.
"""

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Dict, List, Optional

from ..base.errors import CdsServicesInvalid, HookRefused, SourceError
from ..base.escape import for_markdown, json_text
from ..base.yamlsrc import load_one, shown
from ..io.fhir.bundles import bundle_cases, is_fhir, is_resource_type, local_key
from ..io.fhir.mapping import default_map
from ..io.fhir.resources import READ_TYPES, SUBJECT, medication_codings, medication_reference
from .cards import CardMaker, fitting, short
from .paging import next_link

HOOKS = ("order-select", "order-sign", "patient-view")
ORDER_HOOKS = ("order-select", "order-sign")
_TOKEN = re.compile(r"\{\{\s*context\.([A-Za-z]+)\s*\}\}")
_TEMPLATE = re.compile(r"([A-Za-z]+)([/?])")  # a read (Patient/{{...}}) or a search (Condition?...) of a type
# a search's patient parameter (Condition?patient={{context.patientId}}): what it finds is about that patient
_PATIENT_PARAMETER = re.compile(r"[?&]patient=\{\{\s*context\.([A-Za-z]+)\s*\}\}(?:&|$)")
# fhirAuthorization's fields (CDS Hooks 2.0, "Passing the Access Token to the CDS Service"): each
# is REQUIRED, and what the service needs of it; `patient` is conditional, checked when given.
_AUTHORIZATION = {
    "access_token": (str, "the access token for fhirServer, a non-empty string"),
    "token_type": (str, "Bearer"),
    "expires_in": (int, "the token's lifetime in seconds, a whole number"),
    "scope": (str, "the scopes the token grants, a non-empty string"),
    "subject": (str, "this service's OAuth 2.0 client id, a non-empty string"),
}
# Discovery's word that a service's cards replace those of others (CDS Hooks 2.0 reserves
# `extension` for what the spec does not define; reverse-domain names keep it unique).
REPLACES_EXTENSION = "org.ivig-advisor.replaces-cards-of"
# the rule base that answers (name, version, content hash), in discovery and on every response: an
# EHR that logs what it was told can tell which rules told it, across an upgrade
RULES_EXTENSION = "org.ivig-advisor.rules"


@dataclass
class Service:
    """One service of the services file: the hooks its id answers, and how discovery shows it."""

    id: str
    hooks: List[str]
    title: str
    description: str
    trigger: str
    replaces: List[str] = field(default_factory=list)  # the services whose cards its cards replace
    usage: Optional[str] = None  # discovery's usageRequirements
    listed: bool = True  # in discovery; an unlisted id still answers its hooks (an old id)


@dataclass
class CdsServices:
    """The services file, loaded and checked."""

    services: List[Service]
    source: dict
    prefetch: Dict[str, dict]
    override_reasons: dict
    dose_tolerance: float
    path: str = ""

    @classmethod
    def load(cls, path: Optional[Path] = None) -> "CdsServices":
        """The services file at `path` (facts/cds-services.yaml when None), checked; CdsServicesInvalid
        with every fault found."""
        data, source = _services_file(path)
        reader = _ServicesReader(source)
        nodes = reader.need(data, "services", list, "the file")
        services = [reader.service(node) for node in nodes]
        reader.one_service_per_hook(nodes, services)
        src = reader.source_of(data)
        prefetch = reader.prefetch(data)
        reasons = reader.override_reasons(data)
        tolerance = data.get("dose_tolerance", 0.05)
        if reader.errors:
            raise CdsServicesInvalid(reader.errors)
        return cls(services, dict(src), prefetch, dict(reasons), float(tolerance), source)

    def discovery(self) -> dict:
        """GET /cds-services: one entry per listed service and hook, each hook under an id of its
        own (a client that keys services by URL loses none); a service whose cards replace
        others' says so (the spec's stale guidance, which one shared id would otherwise carry)."""
        return {"services": [self._described(s, hook) for s in self.services if s.listed for hook in s.hooks]}

    def _described(self, service: Service, hook: str) -> dict:
        """The discovery entry of `service` for `hook`."""
        entry = {
            "hook": hook,
            "title": service.title,
            "description": service.description,
            "id": service.id,
            "prefetch": {key: p["query"] for key, p in self.prefetch.items()},
        }
        if service.usage:
            entry["usageRequirements"] = service.usage
        if service.replaces:
            entry["extension"] = {REPLACES_EXTENSION: list(service.replaces)}
        return entry

    def service(self, service_id: str) -> Optional[Service]:
        return next((s for s in self.services if s.id == service_id), None)

    def unlike(self, key: str, value, request: dict) -> Optional[str]:
        """How a value given for prefetch `key` of a hook call `request` differs from what its
        template asks (None: it does not). Null and an OperationOutcome are the EHR's word that it
        has or could get nothing; a read (Patient/{{context.patientId}}) is that resource with that
        id; a search (Condition?patient=...) is a searchset Bundle whose every entry is a resource
        of that type (or an OperationOutcome) about that patient."""
        if value is None:
            return None
        if not is_fhir(value):
            return "must be a FHIR resource or Bundle (or null)"
        if value["resourceType"] == "OperationOutcome":
            return None
        spec = self.prefetch[key]
        wanted, query, kind = spec["type"], _query(spec["query"], request["context"]), short(value["resourceType"], 60)
        asked = short(query, 120)  # said in the answer: a patient id can be long
        if not spec["search"]:
            given = value.get("id")
            if kind != wanted:
                return f"must be a {wanted} ({asked}), not a {kind}"
            if not isinstance(given, str) or f"{wanted}/{given}" != query:  # an id is text: 7 is not "7"
                return f"must be {asked}, not {wanted}/{short(json.dumps(given), 60)}"
            return None
        if kind != "Bundle":
            return f"must be a Bundle of what {asked} finds, not a {kind}"
        if value.get("type") != "searchset":  # a history or transaction Bundle holds versions or requests
            return f"must be what a search finds (a searchset Bundle), not a Bundle of type {shown(value.get('type'))}"
        entries = value.get("entry", [])
        if not isinstance(entries, list):
            return "is a Bundle whose entry is no list"
        patient = _patient_of(request, spec["patient"])
        for i, entry in enumerate(entries):
            found = entry.get("resource") if isinstance(entry, dict) else None
            if not is_fhir(found):
                return f"entry[{i}] holds no resource (an object with a resourceType): every entry of a search has one"
            if found["resourceType"] not in (wanted, "OperationOutcome"):
                return f"holds a {short(found['resourceType'], 60)} (entry[{i}]), which {asked} does not find"
            fault = _not_about(found, patient, request) if found["resourceType"] != "OperationOutcome" else None
            if fault:
                return f"entry[{i}] {fault}"
        return None


def _services_file(path: Optional[Path]) -> tuple:
    """(data, name for errors) of the services file at `path` (the packaged one when None);
    CdsServicesInvalid when it is not YAML or not an ivig-advisor-cds-services file of version 1."""
    ref = resources.files("ivig_advisor").joinpath("facts", "cds-services.yaml") if path is None else Path(path)
    source = "facts/cds-services.yaml" if path is None else str(path)
    try:
        data = load_one(ref.read_text(encoding="utf-8-sig"), source)
    except SourceError as exc:
        raise CdsServicesInvalid([exc]) from None
    if not isinstance(data, dict) or data.get("schema") != "ivig-advisor-cds-services" or data.get("version") != 1:
        raise CdsServicesInvalid([SourceError("not an ivig-advisor-cds-services file of version 1", source, 1)])
    return data, source


class _ServicesReader:
    """Reads the parts of one services file, gathering every fault (in file order) rather than
    stopping at the first: `errors`."""

    def __init__(self, source: str):
        self.source = source
        self.errors: List[SourceError] = []

    def need(self, node, key, kind, where):
        """node[key] when it is a `kind`; else a fault noted and an empty `kind`."""
        value = node.get(key) if isinstance(node, dict) else None
        if not isinstance(value, kind):
            line = node.line_of(key) if hasattr(node, "line_of") else None
            self.errors.append(SourceError(f"{where} needs '{key}' ({kind.__name__})", self.source, line, key))
            return kind()
        return value

    def service(self, node) -> Service:
        """One entry of `services`, its hooks and trigger checked."""
        hooks = self.need(node, "hooks", list, "a service")
        for hook in hooks:
            if hook not in HOOKS:
                self._fault_at(node, f"hook {hook!r} is not one of {', '.join(HOOKS)}", "hooks")
        trigger = self.need(node, "trigger", str, "a service")
        if trigger not in ("ivig-order", "covered-diagnosis"):
            self._fault_at(node, f"trigger {trigger!r} is not ivig-order or covered-diagnosis", "trigger")
        return Service(
            self.need(node, "id", str, "a service"),
            hooks,
            self.need(node, "title", str, "a service"),
            " ".join(self.need(node, "description", str, "a service").split()),
            trigger,
            self._optional(node, "replaces", list, []),
            " ".join(self._optional(node, "usage", str, "").split()) or None,
            self._optional(node, "listed", bool, True),
        )

    def _optional(self, node, key, kind, default):
        """node[key] when given (a fault noted when it is no `kind`), else `default`."""
        if not isinstance(node, dict) or key not in node:
            return default
        return self.need(node, key, kind, "a service")

    def one_service_per_hook(self, nodes: list, services: List[Service]) -> None:
        """Note the faults that would make a client lose or double a hook's cards: an id given
        twice (a client keying by URL keeps one), two listed services for one hook (a client calling
        each shows every card twice), a `replaces` that names no listed service."""
        listed_ids = {s.id for s in services if s.listed}
        seen_ids, listed_hooks = set(), {}
        for node, service in zip(nodes, services):
            if service.id in seen_ids:
                self._fault_at(node, f"the id {service.id!r} is given twice: each service needs its own", "id")
            seen_ids.add(service.id)
            for hook in [h for h in service.hooks if h in HOOKS] if service.listed else ():  # others: a fault noted
                if hook in listed_hooks:
                    self._fault_at(
                        node,
                        f"{hook} is listed for {listed_hooks[hook]!r} and {service.id!r}: a client calling "
                        "each would show every card twice (one listed service per hook; `listed: false` "
                        "for an old id)",
                        "hooks",
                    )
                listed_hooks.setdefault(hook, service.id)
            for other in service.replaces:
                if not isinstance(other, str) or other not in listed_ids or other == service.id:
                    self._fault_at(node, f"replaces {other!r}, which is no other listed service", "replaces")

    def _fault_at(self, node, message: str, key: str) -> None:
        """Note a fault in `key` of a service, at the service's line."""
        self.errors.append(SourceError(message, self.source, getattr(node, "line", None), key))

    def source_of(self, data: dict) -> dict:
        """The file's `source` (the review the cards cite), its label, url and topic_system checked."""
        src = self.need(data, "source", dict, "the file")
        for key in ("label", "url", "topic_system"):
            self.need(src, key, str, "source")
        return src

    def prefetch(self, data: dict) -> Dict[str, dict]:
        """The prefetch templates by key: each query's type, whether it is a search, the context key
        of its patient, and whether it is required."""
        prefetch = {}
        prefetches = self.need(data, "prefetch", dict, "the file")
        for key, value in prefetches.items():
            query = self.need(value, "query", str, f"prefetch {key}")
            asks = _TEMPLATE.match(query)
            if not asks or not is_resource_type(asks.group(1)):
                self.errors.append(
                    SourceError(
                        f"prefetch {key}: the query {query!r} is no read (Type/id) or search "
                        "(Type?...) of a FHIR resource type",
                        self.source,
                        prefetches.line_of(key),
                        key,
                    )
                )
                continue
            about = _PATIENT_PARAMETER.search(query)
            prefetch[str(key)] = {
                "query": query,
                "type": asks.group(1),
                "search": asks.group(2) == "?",
                "patient": about.group(1) if about else None,
                "required": bool(value.get("required", False)) if isinstance(value, dict) else False,
            }
        return prefetch

    def override_reasons(self, data: dict) -> dict:
        """The file's override_reasons, each reason's code and display checked."""
        reasons = self.need(data, "override_reasons", dict, "the file")
        for reason in self.need(reasons, "reasons", list, "override_reasons"):
            self.need(reason, "code", str, "an override reason")
            self.need(reason, "display", str, "an override reason")  # the spec: every reason has a display
        return reasons


@dataclass
class Answer:
    """A call's response body, and what the feedback store keeps of each card."""

    response: dict
    cards: List[dict] = field(default_factory=list)  # uuid, rule, code, indicator per card
    result: Optional[object] = None


class Hooks:
    """Answers hook calls with one Advisor (not thread-safe: the caller serialises calls)."""

    def __init__(self, advisor, services: Optional[CdsServices] = None):
        self.advisor = advisor
        self.services = services or CdsServices.load()
        self.cards = CardMaker(self.services, advisor.rulebase)

    def call(
        self, service_id: str, request, as_of: Optional[dt.date] = None, partial: Optional[Dict[str, str]] = None
    ) -> Answer:
        """The answer to POST /cds-services/{service_id}; HookRefused when the call is not one to answer.
        `partial`: the prefetch keys whose later pages could not be read, with why (paging.py); a
        searchset still holding a `next` link is read in part whatever it says."""
        service, context = self.checked(service_id, request)
        resources, notes = self.record(request)
        unread = {key: (partial or {}).get(key, "its later pages were not read") for key in _paged(request)}
        orders = _draft_orders(request["hook"], context)
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [_entry(r, request) for r in resources + [o for o, _ in orders]],
        }
        case = _patient_case(bundle, request, as_of)
        answer = _with_unread(self.answer(service, case, request["hook"], orders, notes), unread, orders, self.cards)
        answer.response["extension"] = {RULES_EXTENSION: self.advisor.rulebase.stamp}
        return answer

    def discovery(self) -> dict:
        """GET /cds-services: the listed services (CdsServices.discovery), each naming the rule
        base that answers it."""
        found = self.services.discovery()
        for entry in found["services"]:
            entry["extension"] = dict(entry.get("extension") or {}, **{RULES_EXTENSION: self.advisor.rulebase.stamp})
        return found

    def checked(self, service_id: str, request) -> tuple:
        """(service, context) of a call this service answers; HookRefused 404 (no such service)
        or 400 (a malformed call, said with the field)."""
        service = self.services.service(service_id)
        if service is None:
            raise HookRefused(404, f"no CDS service {service_id!r} (GET /cds-services lists them)")
        return service, _check_request(request, service)

    def to_fetch(self, service_id: str, request) -> List[tuple]:
        """(key, query) of each prefetch key a call leaves out and its FHIR server can give:
        what the service fetches (away from the engine) before it answers the call. The call
        is checked first (HookRefused, as `call` refuses it): nothing is fetched for a malformed
        call, and no token that is not one (an empty Bearer header) goes to the FHIR server."""
        self.checked(service_id, request)
        prefetch, context = request.get("prefetch"), request.get("context")
        if not (
            isinstance(prefetch, (dict, type(None)))
            and isinstance(context, dict)
            and request.get("fhirServer")
            and request.get("fhirAuthorization")
        ):
            return []
        return [
            (key, _query(spec["query"], context))
            for key, spec in self.services.prefetch.items()
            if key not in (prefetch or {})
        ]

    def record(self, request: dict) -> tuple:
        """The resources of the patient's record (what `prefetch` holds, fetched keys too), and
        notes on what could not be had; HookRefused 412 when a required key is neither."""
        prefetch = request.get("prefetch") or {}
        if not isinstance(prefetch, dict):
            raise HookRefused(400, "'prefetch' must be an object of prefetched resources")
        resources, notes = [], []
        for key, spec in self.services.prefetch.items():
            if key in prefetch:  # null: the EHR has no such data
                fault = self.services.unlike(key, prefetch[key], request)
                if fault:
                    raise HookRefused(400, f"prefetch '{key}' {fault}")
                resources.extend(_resources(key, prefetch[key], notes))
            elif spec["required"]:
                raise HookRefused(
                    412,
                    f"prefetch '{key}' ({spec['query']}) was not sent and there is no fhirServer "
                    "with fhirAuthorization to fetch it from",
                )
            else:
                notes.append(f"{key} (not sent)")
        return resources, notes

    def answer(self, service: Service, case, hook: str, orders, notes) -> Answer:
        fmap = default_map()
        if case.errors:  # never advice from a record misread
            if service.trigger == "covered-diagnosis":
                return Answer({"cards": []})
            # whether an IVIG order is among the selected ones is read off the orders' own codes,
            # so that the clinician hears the record could not be read
            ordered = any(selected and _orders_ivig(o, fmap) for o, selected in orders)
            return self.unreadable(case) if ordered else Answer({"cards": []})
        origins = case.provenance.origins.get("ivig_planned", []) if case.provenance is not None else []
        ordered_ids = {origin.split(" ", 1)[0] for origin in origins}
        ivig_orders = [o for o, selected in orders if selected and f"MedicationRequest/{o.get('id')}" in ordered_ids]
        if service.trigger == "ivig-order" and not ivig_orders:
            return Answer({"cards": []})  # no immune globulin among the selected orders: nothing to say
        # A chart with no disease the review covers has no stance to show; but a patient who
        # receives IVIG still gets every adverse-event warning that applies (safety before
        # efficacy), as does an IVIG order for such a patient, beside its out-of-scope stance.
        uncovered = service.trigger == "covered-diagnosis" and _uncovered(case.data, fmap)
        if uncovered and not case.data.get("ivig_planned"):
            return Answer({"cards": []})
        result = self.advisor.evaluate_mapping(case.data, case.source, case.line, case.id)
        if case.provenance is not None:
            case.provenance.apply(result)
        if not result.ok:
            return self.unreadable(case, result.error["message"])
        cards = self.cards.cards(result, ivig_orders, case.data.get("weight_kg"), notes, stance=not uncovered)
        return Answer({"cards": cards}, [_kept(c) for c in cards], result)

    def unreadable(self, case, message: Optional[str] = None) -> Answer:
        """A card that says what in the record could not be read: never advice from a record misread."""
        errors = [message] if message else [e.message for e in case.errors]
        detail = "The record could not be read, so there is no advice:\n\n" + "\n".join(
            f"- {for_markdown(e)}" for e in errors
        )
        summary = fitting(
            f"IVIG advice unavailable: {errors[0]}", "IVIG advice unavailable: the record could not be read"
        )  # never the error cut short
        card = self.cards.card(summary, "warning", detail, None)
        return Answer({"cards": [card]}, [_kept(card)])


def _patient_of(request: dict, context_key: Optional[str]) -> Optional[str]:
    """'Patient/<id>' of the patient a search is about (its patient parameter), else None."""
    return f"Patient/{request['context'].get(context_key)}" if context_key else None


def _patient_url(request: dict) -> Optional[str]:
    """The call's patient as an absolute reference on its fhirServer (None without one)."""
    server, patient_id = request.get("fhirServer"), request["context"].get("patientId")
    if not isinstance(server, str) or not server or not isinstance(patient_id, str):
        return None
    return f"{server.rstrip('/')}/Patient/{patient_id}"


def _not_about(resource: dict, patient: Optional[str], request: dict) -> Optional[str]:
    """Why `resource` (one this program reads) is not about `patient` ('Patient/<id>'), else None:
    a resource about another patient, or about none, is never read as this patient's. The
    reference is relative, or absolute on the call's fhirServer."""
    if patient is None or resource["resourceType"] not in READ_TYPES:
        return None
    element = SUBJECT.get(resource["resourceType"], "subject")
    value = resource.get(element)
    reference = value.get("reference") if isinstance(value, dict) else None
    if (
        isinstance(reference, str)
        and local_key(reference) == patient
        and ("://" not in reference or _on_fhir_server(reference, request))
    ):
        return None
    rid = resource.get("id")
    named = f"{short(resource['resourceType'], 60)}/{short(rid if isinstance(rid, str) else json.dumps(rid), 60)}"
    said = f"{element} {shown(reference, 80)}" if isinstance(reference, str) else f"no {element} reference"
    return f"({named}) has {said}: it is not about {short(patient, 80)}, and is never read as this patient's"


def _on_fhir_server(reference: str, request: dict) -> bool:
    """Whether an absolute reference names the call's patient on the call's fhirServer (a
    version of it too): Patient/1 on another server is another patient."""
    url = _patient_url(request)
    return url is not None and (reference == url or reference.startswith(url + "/_history/"))


def _entry(resource: dict, request: dict) -> dict:
    """A Bundle entry of a resource of the call. The Patient's fullUrl is its URL on the call's
    fhirServer, so that a reference to it written absolute there finds it."""
    url = (
        _patient_url(request)
        if resource.get("resourceType") == "Patient" and resource.get("id") == request["context"]["patientId"]
        else None
    )
    return {"fullUrl": url, "resource": resource} if url else {"resource": resource}


def _patient_case(bundle: dict, request: dict, as_of):
    """The patient's case from the call's resources; HookRefused 412 when its Patient is not
    among them, 400 when a resource is about no patient of the call (never silently dropped)."""
    patient_id = request["context"]["patientId"]
    found, stray = None, None
    for case in bundle_cases(bundle, f"cds-hooks:{request['hookInstance']}", None, as_of):
        if case.id == patient_id and found is None:
            found = case.built()
        elif case.errors and case.data is None and stray is None:
            stray = case.errors[0].message
    if found is None:
        raise HookRefused(
            412, f"no Patient/{short(patient_id, 120)} among the prefetched resources or on the FHIR server"
        )
    if stray is not None:
        raise HookRefused(400, f"a resource of the call is about no patient it names: {short(stray, 200)}")
    return found


def _uncovered(data: dict, fmap) -> bool:
    """Whether a case from a record holds no disease the review covers: a field the mapping
    sets `otherwise` (the diagnosis, to other) has that value."""
    return any(data.get(name) == otherwise.value for name, otherwise in fmap.otherwise.items())


def _orders_ivig(order: dict, fmap) -> bool:
    """Whether a draft order's medication (its codes, or those of a contained Medication it
    names) is one the mapping reads as IVIG (an entry that sets ivig_planned)."""
    target = medication_reference(order)
    contained = [
        r
        for r in order.get("contained") or ()
        if isinstance(r, dict) and target is not None and f"#{r.get('id')}" == target
    ]
    return any(
        "ivig_planned" in getattr(entry, "current", {})
        for coding in medication_codings(order, contained)
        for entry, _ in fmap.matches(coding.get("system"), coding.get("code"))
    )


def _kept(card: dict) -> dict:
    topic = card["source"].get("topic") or {}
    return {
        "uuid": card["uuid"],
        "rule": topic.get("code"),
        "indicator": card["indicator"],
        "summary": card["summary"],
        "suggestions": [s["uuid"] for s in card.get("suggestions", [])],
    }


def _check_request(request, service: Service) -> dict:
    """The request's context, once the call is one this service answers (else HookRefused 400)."""
    if not isinstance(request, dict):
        raise HookRefused(400, "the request body must be a JSON object")
    hook = request.get("hook")
    if hook not in service.hooks:
        raise HookRefused(400, f"service {service.id!r} answers the hooks {', '.join(service.hooks)}, not {hook!r}")
    if not isinstance(request.get("hookInstance"), str) or not request["hookInstance"]:
        raise HookRefused(400, "'hookInstance' is required (a UUID for this call)")
    _check_fhir_authorization(request.get("fhirAuthorization"))
    if request.get("fhirAuthorization") is not None and not request.get("fhirServer"):
        raise HookRefused(400, "'fhirServer' is required when 'fhirAuthorization' is given")
    context = request.get("context")
    if not isinstance(context, dict):
        raise HookRefused(400, "'context' is required (an object)")
    for key in ("userId", "patientId"):
        if not isinstance(context.get(key), str) or not context[key]:
            raise HookRefused(400, f"context.{key} is required for {hook}, as a non-empty string")
    if hook in ORDER_HOOKS:
        orders = context.get("draftOrders")
        if (
            not isinstance(orders, dict)
            or orders.get("resourceType") != "Bundle"
            or not isinstance(orders.get("entry", []), list)
        ):
            raise HookRefused(400, f"context.draftOrders is required for {hook}: a FHIR Bundle of the draft orders")
        _check_draft_orders(orders.get("entry", []), request)
    if hook == "order-select":
        _check_selections(context)
    return context


def _check_fhir_authorization(authorization) -> None:
    """HookRefused 400 unless fhirAuthorization is omitted (or null: no token) or the object the
    spec defines, naming the first field that is not: a token missing would be sent as an empty
    Bearer header, and the FHIR server's refusal read as a server not reached (412)."""
    if authorization is None:
        return
    if not isinstance(authorization, dict):
        raise HookRefused(
            400,
            f"'fhirAuthorization' must be an object ({', '.join(_AUTHORIZATION)}), not {_json_kind(authorization)}",
        )
    for key, (kind, what) in _AUTHORIZATION.items():
        value = authorization.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or value == "":
            given = "missing" if key not in authorization else "empty" if value == "" else f"not {_json_kind(value)}"
            raise HookRefused(400, f"fhirAuthorization.{key} is required: {what} ({given})")
    # OAuth 2.0 token types are case-insensitive (RFC 6749, 5.1); the spec fixes this one
    if authorization["token_type"].lower() != "bearer":
        raise HookRefused(
            400, f"fhirAuthorization.token_type must be Bearer, not {_quoted(authorization['token_type'])}"
        )
    patient = authorization.get("patient")
    if "patient" in authorization and (not isinstance(patient, str) or not patient):
        raise HookRefused(
            400, f"fhirAuthorization.patient, when given, is the FHIR id of a patient, not {_json_kind(patient)}"
        )


def _check_selections(context: dict) -> None:
    """HookRefused 400 unless each of context.selections names a draft order as the spec writes
    it (Type/id: "MedicationRequest/103"): a selection that names none would be read as no
    order selected, and the call answered with no card and no word."""
    selections = context.get("selections")
    if not isinstance(selections, list):
        raise HookRefused(
            400, "context.selections is required for order-select: the references (Type/id) of the selected orders"
        )
    orders = [_reference(e.get("resource")) for e in context["draftOrders"].get("entry") or ()]
    for i, selection in enumerate(selections):
        if isinstance(selection, str) and selection in orders:
            continue
        said = _quoted(selection) if isinstance(selection, str) else _json_kind(selection)
        meant = [ref for ref in orders if ref and ref.split("/", 1)[1] == selection]
        hint = f"; write it {meant[0]}" if len(meant) == 1 else ""
        raise HookRefused(
            400,
            f"context.selections[{i}] {said} names no order of context.draftOrders as the spec writes one "
            f"(Type/id, e.g. MedicationRequest/103){hint}",
        )


def _reference(resource) -> Optional[str]:
    """'Type/id' of a resource (how selections name a draft order), or None when it has no id."""
    if not is_fhir(resource) or not isinstance(resource.get("id"), str) or not resource["id"]:
        return None
    return f"{resource['resourceType']}/{resource['id']}"


def _quoted(text: str, limit: int = 80) -> str:
    """A value of the call for a message: quoted as JSON with what a terminal would act on
    escaped, and cut short (its length said) so that a huge value makes no huge message."""
    if len(text) <= limit:
        return json_text(text)
    return f"{json_text(text[:limit])}... ({len(text):,} characters)"


def _json_kind(value) -> str:
    """What a JSON value is, for a message that must not echo it (a token, a huge object)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    kinds = {str: "a string", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return next((name for kind, name in kinds.items() if isinstance(value, kind)), "a value")


def _check_draft_orders(entries: list, request: dict) -> None:
    """HookRefused 400 unless each draft order is a resource about the call's patient: an entry
    that is none, or an order for another patient, would be dropped, and the order with it."""
    patient = f"Patient/{request['context']['patientId']}"
    for i, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not is_fhir(resource):
            raise HookRefused(400, f"context.draftOrders.entry[{i}] holds no resource (an object with a resourceType)")
        fault = _not_about(resource, patient, request)
        if fault:
            raise HookRefused(400, f"context.draftOrders.entry[{i}] {fault}")


def _draft_orders(hook: str, context: dict) -> list:
    """(order, selected) for each resource of context.draftOrders; order-sign selects all."""
    if hook not in ORDER_HOOKS:
        return []
    selections = set(context.get("selections") or ())
    out = []
    for entry in context["draftOrders"].get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if is_fhir(resource):
            ref = _reference(resource)
            out.append((resource, hook == "order-sign" or (ref is not None and ref in selections)))
    return out


def _paged(request: dict) -> List[str]:
    """The prefetch keys whose searchset still holds a `next` link: read in part."""
    prefetch = request.get("prefetch") or {}
    return [key for key, value in prefetch.items() if next_link(value) is not None]


def _with_unread(answer: Answer, unread: Dict[str, str], orders, cards: CardMaker) -> Answer:
    """An answer from a record read in part says so on a card of its own, after any critical card
    and before the rest, whatever else it says: with no other card (no diagnosis the review covers
    on the pages read), the pages not read may hold one. An order call for no IVIG stays silent:
    its orders are in the call, read whole, and it says nothing of a record."""
    if not unread or (orders and answer.result is None and not answer.response["cards"]):
        return answer
    detail = (
        "Part of the patient's record could not be read, so this advice may miss what it holds "
        "(a diagnosis, a risk factor, a co-therapy):\n\n"
        + "\n".join(f"- {for_markdown(key)}: {for_markdown(why)}" for key, why in unread.items())
    )
    card = cards.card("Record read in part: the advice may miss what the unread pages hold", "warning", detail, None)
    shown = answer.response["cards"]
    at = next((i for i, c in enumerate(shown) if c.get("indicator") != "critical"), len(shown))
    answer.response["cards"] = shown[:at] + [card] + shown[at:]
    answer.cards.insert(min(at, len(answer.cards)), _kept(card))
    return answer


def _query(template: str, context: dict) -> str:
    """A prefetch template with its {{context.x}} tokens filled."""
    return _TOKEN.sub(lambda m: str(context.get(m.group(1), "")), template)


def _resources(key: str, value, notes: List[str]) -> list:
    """The resources a prefetch value holds (one CdsServices.unlike found nothing wrong with): a
    resource, a searchset Bundle's entries, or none (null, an OperationOutcome: the EHR could not
    get it, said in the notes)."""
    if value is None:
        return []
    if value["resourceType"] == "OperationOutcome":
        notes.append(f"{key} (the EHR reported an error getting it)")
        return []
    if value["resourceType"] != "Bundle":
        return [value]
    found = []
    for entry in value.get("entry") or []:
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if is_fhir(resource) and resource["resourceType"] != "OperationOutcome":
            found.append(resource)
        elif is_fhir(resource):
            notes.append(f"{key} (the EHR reported an error getting part of it)")
    return found
