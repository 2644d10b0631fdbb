"""Later evidence: the trials, guidelines and regulatory actions published since the review,
as read from the rule base's `later_evidence` file (rules/later-evidence.yaml) and checked on
load, every problem at its file:line.

An entry is not a rule. It says what a later source found about a situation the review speaks
to (`when`, in the rules' condition language, so that it attaches to a case exactly as a rule
would: attach.py), how that relates to the review's statement (`relation`), and where its words
were read (`source`: a sentence quoted from the abstract or the regulator's text, the page it
was read on, the date it was checked). It never changes what the review's rules decide; only
an entry that reports harm in the patient's situation carries a finding of its own (`harm`),
shown among the patient's warnings and marked as later evidence. A lead that could not be
confirmed is a `gap`, listed, never an entry.
"""

import datetime
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from ..base.errors import SourceError
from ..base.yamlsrc import Located, LocatedList
from . import conditions
from .rulespec import RuleSpec
from .schema import CaseSchema, spelled
from .valuecheck import ID_PATTERN, field_test_problem, nested_operand_problem, warning_problem
from .words import suggest

FILE_KEYS = ("title", "maintenance", "defaults", "entries", "gaps")
ENTRY_KEYS = (
    "id",
    "title",
    "topic",
    "when",
    "kind",
    "relation",
    "year",
    "citation",
    "pmid",
    "doi",
    "speaks_to",
    "finding",
    "source",
    "harm",
    "status",
    "changes",
)
REQUIRED = ("id", "title", "topic", "when", "kind", "relation", "year", "citation", "speaks_to", "finding", "source")
SOURCE_KEYS = ("quote", "read_at", "checked")
HARM_KEYS = ("code", "severity", "summary", "message", "action")
GAP_KEYS = ("lead", "citation", "why")
# What kind of source an entry rests on; a regulatory action may have neither PMID nor DOI.
KINDS = ("controlled-trial", "observational-study", "guideline", "regulatory-action", "review")
# How it bears on the review's statement. `reports-harm` is the one relation that carries a finding.
RELATIONS = ("confirms", "extends", "contradicts", "reports-harm")
# Whose report of harm is shown among the patient's warnings: a controlled trial's or a regulator's
HARM_KINDS = ("controlled-trial", "regulatory-action")
RELATION_WORDS = {  # how each relation reads beside the review's advice, in every output
    "confirms": "confirms the review",
    "extends": "extends the review",
    "contradicts": "contradicts the review",
    "reports-harm": "reports harm",
}
STATUSES = ("draft", "retired")  # approval is a sign-off in the review log, as for a rule
REVIEW_YEAR = 2004
PMID_PATTERN = re.compile(r"^[1-9][0-9]{0,8}$")
DOI_PATTERN = re.compile(r"^10\.[0-9]{4,9}/\S+$")
URL_PATTERN = re.compile(r"^https?://[^\s/]+\.[^\s/]+(/\S*)?$")
DATE_PATTERN = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


@dataclass
class LaterEntry:
    """One later source, as written and checked, with where it was written."""

    id: str
    title: str
    topic: str  # the rule file (its topic) whose rules the entry is shown beside
    when: conditions.Condition
    kind: str
    relation: str
    year: int
    citation: str
    finding: str
    quote: str
    read_at: str
    checked: str
    speaks_to: Tuple[str, ...]  # the review's rules whose statement it bears on
    file: str
    line: int
    pmid: Optional[str] = None
    doi: Optional[str] = None
    harm: Optional[dict] = None  # the finding an entry that reports harm adds (a warning's keys)
    status: str = "draft"
    changes: Tuple[str, ...] = ()
    raw: Located = field(default_factory=Located)

    @property
    def link(self) -> str:
        """Where a clinician reads the source: its PubMed abstract, else its DOI, else the page read."""
        if self.pmid:
            return f"https://pubmed.ncbi.nlm.nih.gov/{self.pmid}/"
        if self.doi:
            return f"https://doi.org/{self.doi}"
        return self.read_at

    @property
    def cited(self) -> str:
        """The citation with its identifiers, on one line."""
        ids = [f"PMID {self.pmid}" if self.pmid else "", f"doi:{self.doi}" if self.doi else ""]
        return "; ".join([self.citation] + [i for i in ids if i])


@dataclass
class Gap:
    """A lead that could not be confirmed against its source: listed, never used."""

    lead: str
    citation: str
    why: str
    line: int


@dataclass
class LaterEvidence:
    """The later-evidence file: its entries, its gaps and who maintains it."""

    entries: List[LaterEntry] = field(default_factory=list)
    gaps: List[Gap] = field(default_factory=list)
    title: str = ""
    maintenance: dict = field(default_factory=dict)
    file: Optional[str] = None  # how errors name it; None: the rule base has no such file

    @property
    def by_id(self) -> Dict[str, LaterEntry]:
        return {e.id: e for e in self.entries}

    def live(self) -> List[LaterEntry]:
        """The entries shown with a case: every one not retired."""
        return [e for e in self.entries if e.status != "retired"]


def read_later_evidence(
    data: Any,
    source: str,
    schema: CaseSchema,
    rules: List[RuleSpec],
    topics: Dict[str, str],
    errors: List[SourceError],
    today: Optional[datetime.date] = None,
) -> LaterEvidence:
    """The later-evidence file `data` (read from `source`), checked against the case schema, the
    rules (the derived facts an entry may test, the rules it speaks to, the warning codes its harm
    may not take) and the topics of the rule files; each problem appended to `errors`."""
    later = LaterEvidence(file=source)
    if not isinstance(data, Located) or not isinstance(data.get("entries"), LocatedList):
        errors.append(SourceError("the later-evidence file needs an 'entries' list", source, getattr(data, "line", 1)))
        return later
    for key in data:
        if key not in FILE_KEYS:
            errors.append(SourceError(f"unknown key '{key}'{suggest(key, FILE_KEYS)}", source, data.line_of(key)))
    later.title = " ".join(str(data.get("title") or "").split())
    later.maintenance = dict(data.get("maintenance") or {}) if isinstance(data.get("maintenance"), dict) else {}
    defaults: dict = data["defaults"] if isinstance(data.get("defaults"), dict) else {}
    context = _Context(source, schema, rules, topics, today or datetime.date.today(), errors)
    for i, raw in enumerate(data["entries"]):
        entry = context.entry(raw, data["entries"].line_of(i), defaults)
        if entry is not None:
            later.entries.append(entry)
    later.gaps = _gaps(data.get("gaps"), data, source, errors)
    context.check_unique(later.entries)
    return later


class _Context:
    """What checking one entry needs: the file, the schema, the rules, and today."""

    def __init__(self, source, schema, rules, topics, today, errors):
        self.source, self.schema, self.topics, self.today, self.errors = source, schema, topics, today, errors
        self.rule_ids = {r.id for r in rules}
        self.warning_codes = {w["code"] for r in rules for w in r.warnings}
        self.derived: Dict[str, set] = {}
        for rule in rules:
            for name, value in rule.derives.items():
                self.derived.setdefault(name, set()).add(value)

    def entry(self, raw: Any, line: int, defaults: dict) -> Optional[LaterEntry]:
        """One entry, checked and built; None when it has errors."""
        if not isinstance(raw, Located):
            self.errors.append(SourceError("an entry must be a mapping", self.source, line))
            return None
        before = len(self.errors)
        err = self._err(raw, line)
        for key in raw:
            if key not in ENTRY_KEYS:
                err(f"unknown entry key '{key}'{suggest(key, ENTRY_KEYS)}", key)
        for key in REQUIRED:
            if raw.get(key) in (None, "", []):
                err(f"the entry has no '{key}'{_WHY.get(key, '')}", key if key in raw else None, kind="provenance")
        if len(self.errors) > before:
            return None
        self._check_header(raw, err)
        source = self._check_source(raw, err)
        when = self._when(raw)
        harm = self._check_harm(raw, err)
        status = raw.get("status", defaults.get("status", "draft"))
        if status not in STATUSES:
            err(
                f"status must be one of {', '.join(STATUSES)}; approval is a reviewer's sign-off (`ivig audit sign`)",
                "status",
            )
        if len(self.errors) > before or when is None:
            return None
        return LaterEntry(
            id=raw["id"],
            title=_line(raw["title"]),
            topic=str(raw["topic"]),
            when=when,
            kind=raw["kind"],
            relation=raw["relation"],
            year=raw["year"],
            citation=_line(raw["citation"]),
            finding=_line(raw["finding"]),
            quote=_line(source["quote"]),
            read_at=str(source["read_at"]),
            checked=str(source["checked"]),
            speaks_to=tuple(raw["speaks_to"]),
            file=self.source,
            line=line,
            pmid=str(raw["pmid"]) if raw.get("pmid") is not None else None,
            doi=str(raw["doi"]) if raw.get("doi") is not None else None,
            harm=harm,
            status=status,
            changes=tuple(_line(c) for c in (raw.get("changes") or ())),
            raw=raw,
        )

    def _err(self, raw: Located, line: int):
        def err(message, key=None, at=None, kind="schema"):
            where = at or (raw.line_of(key) if key else line)
            self.errors.append(
                SourceError(message, self.source, where, f"{raw.get('id', '?')}.{key}" if key else raw.get("id"), kind)
            )

        return err

    def _check_header(self, raw: Located, err) -> None:
        """The id, topic, kind, relation, year, identifiers and the rules it speaks to."""
        if not isinstance(raw["id"], str) or not ID_PATTERN.match(raw["id"]):
            err("an id is lower-case words joined by '-'", "id")
        elif raw["id"] in self.rule_ids:
            err(f"'{raw['id']}' is the id of a rule: an entry needs an id of its own", "id")
        if raw["topic"] not in self.topics:
            err(f"unknown topic '{raw['topic']}'{suggest(raw['topic'], self.topics)} (the rule files' topics)", "topic")
        if raw["kind"] not in KINDS:
            err(f"kind must be one of {', '.join(KINDS)}", "kind")
        if raw["relation"] not in RELATIONS:
            err(f"relation must be one of {', '.join(RELATIONS)} (to the review's statement)", "relation")
        year = raw["year"]
        if isinstance(year, bool) or not isinstance(year, int) or not REVIEW_YEAR <= year <= self.today.year:
            err(f"year must be a year from {REVIEW_YEAR} to {self.today.year}, not {spelled(year)}", "year")
        self._check_identifiers(raw, err)
        speaks = raw["speaks_to"]
        if not isinstance(speaks, list) or not all(isinstance(s, str) for s in speaks):
            err("speaks_to is a list of the ids of the review's rules the entry bears on", "speaks_to")
        else:
            for rule_id in speaks:
                if rule_id not in self.rule_ids:
                    err(f"speaks_to: no rule '{rule_id}'{suggest(rule_id, self.rule_ids)}", "speaks_to")

    def _check_identifiers(self, raw: Located, err) -> None:
        """A PMID and a DOI of their form; at least one, except for a regulator's action."""
        pmid, doi = raw.get("pmid"), raw.get("doi")
        if pmid is not None and (isinstance(pmid, bool) or not PMID_PATTERN.match(str(pmid))):
            err(f"a PMID is its number, not {spelled(pmid)}", "pmid")
        if doi is not None and not (isinstance(doi, str) and DOI_PATTERN.match(doi)):
            err(f"a DOI is written 10.NNNN/suffix, not {spelled(doi)}", "doi")
        if pmid is None and doi is None and raw["kind"] != "regulatory-action":
            err("a published source needs its PMID or DOI (pmid, doi)", kind="provenance")

    def _check_source(self, raw: Located, err) -> dict:
        """Where the entry was read: the quoted sentence, the page, the date checked."""
        src = raw["source"]
        if not isinstance(src, Located):
            err("source is a mapping: quote, read_at, checked", "source")
            return {}
        for key in src:
            if key not in SOURCE_KEYS:
                err(f"unknown source key '{key}'{suggest(key, SOURCE_KEYS)}", "source", src.line_of(key))
        for key in SOURCE_KEYS:
            if not isinstance(src.get(key), str) or not src[key].strip():
                err(f"source.{key} is missing: {_SOURCE_WHY[key]}", "source", src.line_of(key), kind="provenance")
        if isinstance(src.get("read_at"), str) and src["read_at"].strip() and not URL_PATTERN.match(src["read_at"]):
            err(f"source.read_at must be the address of the page read, not {spelled(src['read_at'])}", "source")
        checked = src.get("checked")
        if isinstance(checked, str) and checked.strip():
            day = _date(checked)
            if day is None:
                err(f"source.checked is a date, YYYY-MM-DD, not {spelled(checked)}", "source", src.line_of("checked"))
            elif day > self.today:
                err(f"source.checked {checked} is after today", "source", src.line_of("checked"))
        return src

    def _when(self, raw: Located) -> Optional[conditions.Condition]:
        """The situation, parsed; every name it tests a case field or a fact a rule derives."""
        try:
            when = conditions.parse(raw["when"], self.source, raw.line_of("when"))
        except SourceError as exc:
            self.errors.append(exc)
            return None
        # the rules' own check of a field's test (valuecheck.py): a test a rule could not write, no entry can
        before = len(self.errors)
        for test in conditions.tests(when):
            where = (self.source, test.line or raw.line_of("when"), f"{raw['id']}.when.{test.name}")
            problem = nested_operand_problem(test)
            if problem is None and test.name in self.schema.fields:
                problem = field_test_problem(test, self.schema.fields[test.name])
            elif problem is None:
                problem = self._derived_problem(test)
            if problem:
                self.errors.append(SourceError(problem, *where))
        return when if len(self.errors) == before else None

    def _derived_problem(self, test: conditions.Test) -> Optional[str]:
        values = self.derived.get(test.name)
        if values is None:
            known = list(self.schema.fields) + list(self.derived)
            return f"'{test.name}' is neither a case field nor derived by any rule{suggest(test.name, known)}"
        if test.op in ("eq", "ne") and test.operand not in values:
            return f"no rule derives {test.name} = {test.operand!r} (derived values: {sorted(map(str, values))})"
        return None

    def _check_harm(self, raw: Located, err) -> Optional[dict]:
        """The finding of an entry that reports harm: a warning about this patient, with a code of
        its own; only such an entry has one."""
        harm = raw.get("harm")
        if raw["relation"] != "reports-harm":
            if harm is not None:
                err("only an entry whose relation is reports-harm carries a harm finding", "harm")
            return None
        if not isinstance(harm, Located):
            err("an entry that reports harm needs its finding: harm (code, severity, summary, message)", "harm")
            return None
        here = harm.line_of("code")
        for key in harm:
            if key not in HARM_KEYS:
                err(f"unknown harm key '{key}'{suggest(key, HARM_KEYS)}", "harm", harm.line_of(key))
        problem = warning_problem(dict(harm, applies="patient"))
        if problem is None and harm["code"] in self.warning_codes:
            problem = f"harm code '{harm['code']}' is a rule's warning code: later evidence has codes of its own"
        if problem is None and raw["kind"] not in HARM_KINDS:
            problem = (
                f"a harm finding rests on a {' or a '.join(k.replace('-', ' ') for k in HARM_KINDS)}, "
                f"and this one's kind is {raw['kind']}: write it as a note (relation extends)"
            )
        if problem is None and harm["severity"] == "info":
            problem = "a harm finding is about this patient: its severity is critical or warning"
        if problem:
            err(problem, "harm", here)
            return None
        return {
            "code": harm["code"],
            "severity": harm["severity"],
            "summary": _line(harm["summary"]),
            "message": _line(harm["message"]),
            "action": _line(harm["action"]) if harm.get("action") else None,
        }

    def check_unique(self, entries: List[LaterEntry]) -> None:
        """No two entries with one id, nor two harm findings with one code."""
        seen: Dict[str, LaterEntry] = {}
        codes: Dict[str, LaterEntry] = {}
        for entry in entries:
            if entry.id in seen:
                first = seen[entry.id]
                message = f"duplicate entry id '{entry.id}' (first at {first.file}:{first.line})"
                self.errors.append(SourceError(message, entry.file, entry.line, entry.id, "duplicate-id"))
            seen.setdefault(entry.id, entry)
            if entry.harm:
                other = codes.setdefault(entry.harm["code"], entry)
                if other is not entry:
                    message = f"harm code '{entry.harm['code']}' is also entry '{other.id}''s"
                    self.errors.append(SourceError(message, entry.file, entry.raw.line_of("harm"), f"{entry.id}.harm"))


_WHY = {
    "source": ": no entry without a source that was read (quote, read_at, checked)",
    "citation": ": who published it, where and when",
    "finding": ": what it found, in our words",
    "speaks_to": ": the ids of the review's rules it bears on",
    "when": ": the situation it speaks to, in the rules' condition language",
}
_SOURCE_WHY = {
    "quote": "a sentence quoted from the abstract or the regulator's text",
    "read_at": "the address of the page the quote was read on",
    "checked": "the date the quote was checked against that page (YYYY-MM-DD)",
}


def _gaps(items: Any, data: Located, source: str, errors: List[SourceError]) -> List[Gap]:
    """The leads that could not be confirmed, each with why."""
    if items is None:
        return []
    if not isinstance(items, LocatedList):
        errors.append(SourceError("'gaps' is a list of leads (lead, citation, why)", source, data.line_of("gaps")))
        return []
    out = []
    for i, item in enumerate(items):
        line = items.line_of(i) or data.line_of("gaps") or 1
        if not isinstance(item, Located) or not all(str(item.get(k) or "").strip() for k in GAP_KEYS):
            errors.append(SourceError(f"a gap names its {', '.join(GAP_KEYS)}", source, line, "gaps"))
            continue
        for key in item:
            if key not in GAP_KEYS:
                errors.append(
                    SourceError(f"unknown gap key '{key}'{suggest(key, GAP_KEYS)}", source, item.line_of(key))
                )
        out.append(Gap(_line(item["lead"]), _line(item["citation"]), _line(item["why"]), line))
    return out


def _line(text: Any) -> str:
    return " ".join(str(text).split())


def _date(text: str) -> Optional[datetime.date]:
    if not DATE_PATTERN.match(text):
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


__all__ = [
    "HARM_KINDS",
    "KINDS",
    "RELATIONS",
    "RELATION_WORDS",
    "Gap",
    "LaterEntry",
    "LaterEvidence",
    "read_later_evidence",
]
