"""Reading the later-evidence file (rules/later-evidence.yaml) into LaterEvidence (later.py),
every problem at its file:line: an entry without a source that was read, a quote or a PMID or
DOI, a situation naming a field no rule could test or too big to match, text holding a control
or invisible character, a harm finding not marked as later evidence or resting on less than a
controlled trial or a regulator's action. `read_later_evidence` is what the loader calls.
"""

import datetime
import re
from typing import Any, Dict, List, Optional, Tuple

from ..base.errors import SourceError
from ..base.escape import hidden_character  # by this name: a test lets hidden characters through
from ..base.yamlsrc import Located, LocatedList, shown
from . import conditions
from .later import HARM_KINDS, KINDS, RELATIONS, STATUSES, URL_PATTERN, Gap, LaterEntry, LaterEvidence
from .rulespec import RuleSpec
from .schema import CaseSchema, spelled
from .valuecheck import (
    ID_PATTERN,
    LATER_PREFIX,
    derived_test_problem,
    field_test_problem,
    nested_operand_problem,
    warning_problem,
)
from .words import suggest

FILE_KEYS = ("title", "maintenance", "defaults", "recheck_after_years", "entries", "gaps")

DEFAULT_KEYS = ("status",)  # what `defaults` may set for every entry

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

TEXTS = ("title", "citation", "finding")  # an entry's words, shown to a clinician

SOURCE_KEYS = ("quote", "read_at", "checked")

HARM_KEYS = ("code", "severity", "summary", "message", "action")

HARM_TEXTS = ("summary", "message", "action")

GAP_KEYS = ("lead", "citation", "why")

# A situation is a diagnosis and a few facts. An `all` of `any`s is as many alternatives as the
# product of theirs, each a rule of its own on the engine (2^14 took 90 s a case), a thousand
# tests overflowed the stack, and the audit walks every value of every fact tested (3^10 of
# them for 10 facts, for each diagnosis): bounded on load, far above what an entry needs.
MAX_TESTS = 32
MAX_FACTS = 8  # distinct facts tested, the diagnosis aside
MAX_ALTERNATIVES = 32

PMID_PATTERN = re.compile(r"[1-9][0-9]{0,8}")

DOI_PATTERN = re.compile(r"10\.[0-9]{4,9}/\S+")

DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def read_later_evidence(
    data: Any,
    source: str,
    schema: CaseSchema,
    rules: List[RuleSpec],
    topics: Dict[str, str],
    errors: List[SourceError],
    review_year: Optional[int] = None,
    today: Optional[datetime.date] = None,
) -> LaterEvidence:
    """The later-evidence file `data` (read from `source`), checked against the case schema, the
    rules (the derived facts an entry may test, the rules it speaks to, the warning codes its harm
    may not take), the topics of the rule files and the review's year (an entry is later); each
    problem appended to `errors`."""
    later = LaterEvidence(file=source)
    entries = data.get("entries") if isinstance(data, Located) else None
    if not isinstance(entries, LocatedList):
        line = data.line_of("entries") if isinstance(data, Located) else getattr(data, "line", None)
        errors.append(SourceError("the later-evidence file needs an 'entries' list", source, line or 1, "entries"))
        return later
    for key in data:
        if key not in FILE_KEYS:
            message = f"unknown key {shown(key)}{suggest(key, FILE_KEYS)}"
            errors.append(SourceError(message, source, data.line_of(key), _named(key)))
    later.title = _file_title(data, source, errors)
    later.maintenance = _maintenance(data, source, errors)
    later.recheck_after_years = _recheck_after_years(data, source, errors)
    default = _default_status(data, source, errors)
    context = _Context(source, schema, rules, topics, today or datetime.date.today(), errors)
    context.first_year = review_year or 0
    for i, raw in enumerate(entries):
        entry = context.entry(raw, entries.line_of(i) or 1, default)
        if entry is not None:
            later.entries.append(entry)
    later.gaps = _gaps(data.get("gaps"), data, source, errors)
    context.check_unique(later.entries)
    return later


def _text_problem(value: Any) -> Optional[str]:
    """Why `value` cannot be words shown to a person (to follow the name of its field), or None.

    A control or invisible character has no place in a quote or a finding: what a clinician reads
    would not be what the file says (a bidi override reorders it, an escape clears the screen)."""
    if not isinstance(value, str):
        return f"is text, not {spelled(value)}"
    hidden = hidden_character(_line(value))
    if hidden:
        return f"holds {hidden}, a control or invisible character: write the text as it is read"
    return None


def _named(value: Any) -> str:
    """A name from the file for an error's field, cut short: a key can be 90,000 characters long."""
    return shown(value)[1:-1]


def _file_title(data: Located, source: str, errors: List[SourceError]) -> str:
    title = data.get("title")
    problem = None if title is None else _text_problem(title)
    if problem:
        errors.append(SourceError(f"title {problem}", source, data.line_of("title"), "title"))
        return ""
    return _line(title or "")


def _maintenance(data: Located, source: str, errors: List[SourceError]) -> dict:
    """Who maintains the file (author, specialist, version): texts and numbers."""
    maintenance = data.get("maintenance")
    if maintenance is None:
        return {}
    if not isinstance(maintenance, Located):
        message = f"maintenance is a mapping (author, specialist, version), not {spelled(maintenance)}"
        errors.append(SourceError(message, source, data.line_of("maintenance"), "maintenance"))
        return {}
    for key, value in maintenance.items():
        problem = None if isinstance(value, (int, float)) and not isinstance(value, bool) else _text_problem(value)
        if problem:
            where = f"maintenance.{_named(key)}"
            errors.append(SourceError(f"{where} {problem}", source, maintenance.line_of(key), where))
    return dict(maintenance)


def _recheck_after_years(data: Located, source: str, errors: List[SourceError]) -> Optional[int]:
    """After how many years a source is read again (`audit check` notes the older ones), or None."""
    years = data.get("recheck_after_years")
    if years is None or (isinstance(years, int) and not isinstance(years, bool) and years > 0):
        return years
    message = f"recheck_after_years is a number of years, 1 or more, not {spelled(years)}"
    errors.append(SourceError(message, source, data.line_of("recheck_after_years"), "recheck_after_years"))
    return None


def _default_status(data: Located, source: str, errors: List[SourceError]) -> str:
    """The status of an entry that names none (`defaults`), checked once, at its line."""
    defaults = data.get("defaults")
    if defaults is None:
        return "draft"
    if not isinstance(defaults, Located):
        message = f"defaults is a mapping ({', '.join(DEFAULT_KEYS)}), not {spelled(defaults)}"
        errors.append(SourceError(message, source, data.line_of("defaults"), "defaults"))
        return "draft"
    for key in defaults:
        if key not in DEFAULT_KEYS:
            message = f"unknown default {shown(key)}{suggest(key, DEFAULT_KEYS)} (defaults: {', '.join(DEFAULT_KEYS)})"
            errors.append(SourceError(message, source, defaults.line_of(key), "defaults"))
    status = defaults.get("status", "draft")
    if status not in STATUSES:
        errors.append(SourceError(_STATUS_WORDS, source, defaults.line_of("status"), "defaults.status"))
        return "draft"
    return status


class _Context:
    """What checking one entry needs: the file, the schema, the rules, and today."""

    def __init__(self, source, schema, rules, topics, today, errors):
        self.source, self.schema, self.topics, self.today, self.errors = source, schema, topics, today, errors
        self.first_year = 0  # the review's year: no entry is from before it
        self.rule_ids = {r.id for r in rules}
        self.warning_codes = {w["code"] for r in rules for w in r.warnings}
        self.derived: Dict[str, set] = {}
        for rule in rules:
            for name, value in rule.derives.items():
                self.derived.setdefault(name, set()).add(value)

    def entry(self, raw: Any, line: int, default_status: str) -> Optional[LaterEntry]:
        """One entry, checked and built; None when it has errors."""
        if not isinstance(raw, Located):
            self.errors.append(SourceError(f"an entry must be a mapping, not {spelled(raw)}", self.source, line))
            return None
        before = len(self.errors)
        err = self._err(raw, line)
        for key in raw:
            if key not in ENTRY_KEYS:
                err(f"unknown entry key {shown(key)}{suggest(key, ENTRY_KEYS)}", key, raw.line_of(key))
        for key in REQUIRED:
            if _missing(raw.get(key)):
                err(f"the entry has no '{key}'{_WHY.get(key, '')}", key if key in raw else None, kind="provenance")
        if len(self.errors) > before:
            return None
        self._check_header(raw, err)
        self._check_texts(raw, err)
        source = self._check_source(raw, err)
        when = self._when(raw)
        harm = self._check_harm(raw, err)
        status = raw.get("status", default_status)
        if status not in STATUSES:
            err(_STATUS_WORDS, "status")
        if len(self.errors) > before or when is None:
            return None
        return LaterEntry(
            id=raw["id"],
            title=_line(raw["title"]),
            topic=raw["topic"],
            when=when,
            kind=raw["kind"],
            relation=raw["relation"],
            year=raw["year"],
            citation=_line(raw["citation"]),
            finding=_line(raw["finding"]),
            quote=_line(source["quote"]),
            read_at=source["read_at"],
            checked=source["checked"],
            speaks_to=tuple(raw["speaks_to"]),
            file=self.source,
            line=line,
            pmid=str(raw["pmid"]) if raw.get("pmid") is not None else None,
            doi=raw.get("doi"),
            harm=harm,
            status=status,
            changes=tuple(_line(c) for c in (raw.get("changes") or ())),
            raw=raw,
        )

    def _err(self, raw: Located, line: int):
        """How an entry's problem is appended: at the line of `key` (or `at`), its field `id.key`."""
        entry_id = _named(raw.get("id", "?"))

        def err(message, key=None, at=None, kind="schema"):
            where = at or (raw.line_of(key) if key is not None else line)
            field = f"{entry_id}.{_named(key)}" if key is not None else entry_id
            self.errors.append(SourceError(message, self.source, where, field, kind))

        return err

    def _check_header(self, raw: Located, err) -> None:
        """The id, topic, kind, relation, year, identifiers and the rules it speaks to."""
        if not isinstance(raw["id"], str) or not ID_PATTERN.fullmatch(raw["id"]):
            err("an id is lower-case words joined by '-'", "id")
        elif raw["id"] in self.rule_ids:
            err(f"'{raw['id']}' is the id of a rule: an entry needs an id of its own", "id")
        topic = raw["topic"]
        if not isinstance(topic, str):
            err(f"topic is the topic of a rule file ({', '.join(self.topics)}), not {spelled(topic)}", "topic")
        elif topic not in self.topics:
            err(f"unknown topic {shown(topic)}{suggest(topic, self.topics)} (the rule files' topics)", "topic")
        if raw["kind"] not in KINDS:
            err(f"kind must be one of {', '.join(KINDS)}, not {spelled(raw['kind'])}", "kind")
        if raw["relation"] not in RELATIONS:
            err(f"relation must be one of {', '.join(RELATIONS)} (to the review's statement)", "relation")
        year = raw["year"]
        if isinstance(year, bool) or not isinstance(year, int) or not self.first_year <= year <= self.today.year:
            err(f"year must be a year from {self.first_year} to {self.today.year}, not {spelled(year)}", "year")
        self._check_identifiers(raw, err)
        speaks = raw["speaks_to"]
        if not isinstance(speaks, list) or not all(isinstance(s, str) for s in speaks):
            err("speaks_to is a list of the ids of the review's rules the entry bears on", "speaks_to")
        else:
            for rule_id in speaks:
                if rule_id not in self.rule_ids:
                    err(f"speaks_to: no rule {shown(rule_id)}{suggest(rule_id, self.rule_ids)}", "speaks_to")

    def _check_identifiers(self, raw: Located, err) -> None:
        """A PMID and a DOI of their form; at least one, except for a regulator's action."""
        pmid, doi = raw.get("pmid"), raw.get("doi")
        if pmid is not None and (isinstance(pmid, bool) or not PMID_PATTERN.fullmatch(str(pmid))):
            err(f"a PMID is its number, not {spelled(pmid)}", "pmid")
        if doi is not None and not (isinstance(doi, str) and DOI_PATTERN.fullmatch(doi) and not hidden_character(doi)):
            err(f"a DOI is written 10.NNNN/suffix, with no space or control character, not {spelled(doi)}", "doi")
        if pmid is None and doi is None and raw["kind"] != "regulatory-action":
            err("a published source needs its PMID or DOI (pmid, doi)", kind="provenance")

    def _check_texts(self, raw: Located, err) -> None:
        """The words a clinician reads (title, citation, finding) and the changes: text, shown as written."""
        for key in TEXTS:
            problem = _text_problem(raw[key])
            if problem:
                err(f"{key} {problem}", key)
        changes = raw.get("changes")
        if changes is None:
            return
        if not isinstance(changes, LocatedList) or not all(isinstance(c, str) for c in changes):
            err("changes is a list of dated notes (each a text): what changed in the entry, and why", "changes")
            return
        for i, change in enumerate(changes):
            problem = _text_problem(change)
            if problem:
                err(f"a change {problem}", "changes", changes.line_of(i))

    def _check_source(self, raw: Located, err) -> dict:
        """Where the entry was read: the quoted sentence, the page, the date checked."""
        src = raw["source"]
        if not isinstance(src, Located):
            err(f"source is a mapping: quote, read_at, checked; not {spelled(src)}", "source")
            return {}
        for key in src:
            if key not in SOURCE_KEYS:
                err(f"unknown source key {shown(key)}{suggest(key, SOURCE_KEYS)}", f"source.{key}", src.line_of(key))
        for key in SOURCE_KEYS:
            if not isinstance(src.get(key), str) or not src[key].strip():
                message = f"source.{key} is missing: {_SOURCE_WHY[key]}"
                err(message, f"source.{key}", src.line_of(key), kind="provenance")
        problem = _text_problem(src.get("quote")) if isinstance(src.get("quote"), str) else None
        if problem:
            err(f"source.quote {problem}", "source.quote", src.line_of("quote"))
        read_at = src.get("read_at")
        if isinstance(read_at, str) and read_at.strip() and not URL_PATTERN.fullmatch(read_at):
            message = f"source.read_at must be the http(s) address of the page read, not {spelled(read_at)}"
            err(message, "source.read_at", src.line_of("read_at"))
        checked = src.get("checked")
        if isinstance(checked, str) and checked.strip():
            day = _date(checked)
            if day is None:
                err(
                    f"source.checked is a date, YYYY-MM-DD, not {spelled(checked)}",
                    "source.checked",
                    src.line_of("checked"),
                )
            elif day > self.today:
                err(f"source.checked {checked} is after today", "source.checked", src.line_of("checked"))
        return src

    def _when(self, raw: Located) -> Optional[conditions.Condition]:
        """The situation, parsed and of a bounded size; every name it tests a case field or a fact a rule derives."""
        try:
            when = conditions.parse(raw["when"], self.source, raw.line_of("when"))
        except SourceError as exc:
            self.errors.append(exc)
            return None
        entry_id = _named(raw["id"])
        too_big = _size_problem(when)
        if too_big:
            self.errors.append(SourceError(too_big, self.source, raw.line_of("when"), f"{entry_id}.when"))
            return None
        # the rules' own check of a field's test (valuecheck.py): a test a rule could not write, no entry can
        before = len(self.errors)
        for test in conditions.tests(when):
            where = (self.source, test.line or raw.line_of("when"), f"{entry_id}.when.{_named(test.name)}")
            problem = nested_operand_problem(test)
            if problem is None and test.name in self.schema.fields:
                problem = field_test_problem(test, self.schema.fields[test.name])
            elif problem is None:
                known = list(self.schema.fields) + list(self.derived)
                problem = derived_test_problem(test, self.derived.get(test.name), known)
            if problem:
                self.errors.append(SourceError(problem, *where))
        return when if len(self.errors) == before else None

    def _check_harm(self, raw: Located, err) -> Optional[dict]:
        """The finding of an entry that reports harm: a warning about this patient, with a code of
        its own; only such an entry has one. Each problem at the line of the key at fault."""
        harm = raw.get("harm")
        if raw["relation"] != "reports-harm":
            if harm is not None:
                err("only an entry whose relation is reports-harm carries a harm finding", "harm")
            return None
        if not isinstance(harm, Located):
            err("an entry that reports harm needs its finding: harm (code, severity, summary, message)", "harm")
            return None
        for key in harm:
            if key not in HARM_KEYS:
                err(f"unknown harm key {shown(key)}{suggest(key, HARM_KEYS)}", f"harm.{key}", harm.line_of(key))
        key, problem = _harm_problem(harm)
        if problem is None and harm["code"] in self.warning_codes:
            key, problem = (
                "code",
                f"harm code '{harm['code']}' is a rule's warning code: later evidence has codes of its own",
            )
        if problem is None and not harm["code"].startswith(LATER_PREFIX):
            key, problem = (
                "code",
                (
                    f"a harm code starts with '{LATER_PREFIX}' (later evidence has codes of its own, "
                    f"never the review's nor the engine's), not {shown(harm['code'])}"
                ),
            )
        if problem is None and raw["kind"] in KINDS and raw["kind"] not in HARM_KINDS:
            key, problem = (
                "harm",
                (
                    f"a harm finding rests on a {' or a '.join(k.replace('-', ' ') for k in HARM_KINDS)}, "
                    f"and this one's kind is {raw['kind']}: write it as a note (relation extends)"
                ),
            )
        if problem is None and harm["severity"] == "info":
            key, problem = "severity", "a harm finding is about this patient: its severity is critical or warning"
        if problem:
            # a problem of the finding as a whole (its kind) is named at its code
            err(problem, "harm" if key == "harm" else f"harm.{key}", harm.line_of("code" if key == "harm" else key))
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
                    line = entry.raw["harm"].line_of("code")
                    self.errors.append(SourceError(message, entry.file, line, f"{entry.id}.harm.code"))


# a warning every value of which is right: what _harm_problem puts one value of a harm finding into
_GOOD_WARNING = {"code": "later-x", "severity": "warning", "summary": "x", "message": "x", "applies": "patient"}


def _harm_problem(harm: Located) -> Tuple[str, Optional[str]]:
    """The key at fault and the first thing wrong with a harm finding's values, as for a rule's
    warning (valuecheck.warning_problem), its words text too; ('', None) when nothing is."""
    problem = warning_problem(dict(harm, applies="patient"))
    if problem:
        return _at_fault(harm), problem
    if not ID_PATTERN.fullmatch(harm["code"]):  # warning_problem's `match` lets a trailing line break through
        return "code", "a harm code is lower-case words joined by '-'"
    for key in HARM_TEXTS:
        text = _text_problem(harm[key]) if harm.get(key) is not None else None
        if text:
            return key, f"harm.{key} {text}"
    return "", None


def _at_fault(harm: Located) -> str:
    """The first of a harm finding's keys whose value alone makes a good warning wrong."""
    for key in ("code", "severity", "message", "summary"):
        if warning_problem(dict(_GOOD_WARNING, **{key: harm.get(key)})):
            return key
    return "code"


def _size_problem(when: conditions.Condition) -> Optional[str]:
    """Why a situation is too big to match or to walk (MAX_TESTS, MAX_FACTS, MAX_ALTERNATIVES), or None."""
    tests = list(conditions.tests(when))
    facts = {t.name for t in tests} - {"diagnosis"}
    alternatives = _alternatives(conditions.normal(when))
    if len(tests) > MAX_TESTS:
        return f"the situation has {len(tests)} tests (at most {MAX_TESTS}): a situation is a diagnosis and a few facts"
    if len(facts) > MAX_FACTS:
        return f"the situation tests {len(facts)} facts besides the diagnosis (at most {MAX_FACTS})"
    if alternatives > MAX_ALTERNATIVES:
        return (
            f"the situation is more than {MAX_ALTERNATIVES} alternatives (each 'any' within an 'all' multiplies "
            "them): write it as several entries, or with 'in'"
        )
    return None


def _alternatives(cond: conditions.Condition) -> int:
    """How many alternatives a condition in negation normal form is to the engine (an `all`
    multiplies its items', an `any` adds them), counted no further than MAX_ALTERNATIVES + 1."""
    if isinstance(cond, conditions.Test):
        return 1
    if isinstance(cond, conditions.Not):  # not in negation normal form: count what it negates
        return _alternatives(conditions.normal(cond))
    counts = [_alternatives(c) for c in cond.items]
    total = 1 if isinstance(cond, conditions.AllOf) else 0
    for count in counts:
        total = total * count if isinstance(cond, conditions.AllOf) else total + count
    return min(total, MAX_ALTERNATIVES + 1)


_STATUS_WORDS = f"status must be one of {', '.join(STATUSES)}; approval is a reviewer's sign-off (`ivig audit sign`)"
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
        message = f"'gaps' is a list of leads (lead, citation, why), not {spelled(items)}"
        errors.append(SourceError(message, source, data.line_of("gaps"), "gaps"))
        return []
    out = []
    for i, item in enumerate(items):
        line = items.line_of(i) or data.line_of("gaps") or 1
        gap = _gap(item, line, source, errors)
        if gap is not None:
            out.append(gap)
    return out


def _gap(item: Any, line: int, source: str, errors: List[SourceError]) -> Optional[Gap]:
    """One gap, checked: each of its keys, text."""
    if not isinstance(item, Located):
        errors.append(SourceError(f"a gap names its {', '.join(GAP_KEYS)}, not {spelled(item)}", source, line, "gaps"))
        return None
    before = len(errors)
    for key in item:
        if key not in GAP_KEYS:
            message = f"unknown gap key {shown(key)}{suggest(key, GAP_KEYS)}"
            errors.append(SourceError(message, source, item.line_of(key), f"gaps.{_named(key)}"))
    for key in GAP_KEYS:
        if _missing(item.get(key)):
            message = f"a gap names its {', '.join(GAP_KEYS)}: this one has no '{key}'"
            errors.append(SourceError(message, source, item.line_of(key) if key in item else line, f"gaps.{key}"))
        elif _text_problem(item[key]):
            errors.append(SourceError(f"{key} {_text_problem(item[key])}", source, item.line_of(key), f"gaps.{key}"))
    if len(errors) > before:
        return None
    return Gap(_line(item["lead"]), _line(item["citation"]), _line(item["why"]), line)


def _missing(value: Any) -> bool:
    """Whether a value is not there: null, blank text, an empty list or mapping."""
    return (
        value is None
        or (isinstance(value, str) and not value.strip())
        or (isinstance(value, (list, dict)) and not value)
    )


def _line(text: Any) -> str:
    return " ".join(str(text).split())


def _date(text: str) -> Optional[datetime.date]:
    if not DATE_PATTERN.fullmatch(text):
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


__all__ = ["hidden_character", "read_later_evidence"]
