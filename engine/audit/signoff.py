"""Reviewers' sign-off: a YAML log of verdicts kept beside the rules.

Each entry records a verdict on one rule (``approved``, or ``needs-change``
with a comment), who gave it, when, and a hash of everything that decides the
rule's outcome at the time (see `signoff_hash`). A verdict holds only for that:
edit the rule, a rule that feeds it or competes with it, or the layer order,
and its sign-off is *stale*. The log is append-only; the newest entry for a
rule is the one that counts, and the older ones stay as history (Arden
Syntax's maintenance slots keep the same record inside each module).

A later-evidence entry (core/later.py) is reviewed the same way: its sign-off
names it under `evidence:` instead of `rule:` (the two share no id: the loader
forbids it), and its hash is that of the entry as written, of the rules that
decide whether its situation holds, and of the statements of the rules it
speaks to (`evidence_hash`).

The log is the record reviewers read, diff and merge in version control, so it
stays one YAML file, the only copy. Concurrent `sign` runs take an exclusive
lock on a lock file beside it around read, check, append and the atomic
rename, so none loses another's entry. A log that does not read as a list of
well-formed sign-offs is refused with its file:line, never appended to and
never read as "no sign-offs".
"""

import datetime
import hashlib
import json
import os
import re
import time
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import yaml

from ..base.atomic import atomic_writer
from ..base.errors import LogLocked, LogUnusable, NoLogHere, SignOffInvalid, SourceError  # noqa: F401 - raised here, imported from here
from ..base.yamlsrc import MAX_SCALAR, LineLoader, LocatedList, yaml_error
from ..core import conditions
from ..core.later import LaterEntry
from ..core.rulebase import RuleBase, RuleSpec
from ..core.words import suggest

LOG_NAME = "review-log.yaml"
LOCK_NAME = f".{LOG_NAME}.lock"
LOCK_TIMEOUT = 120.0  # seconds; a sign holds the lock for the time it takes to read the log twice
VERDICTS = ("approved", "needs-change")
STATES = ("approved", "needs-change", "stale", "missing", "unreadable")
# A rule's one lifecycle, as a reviewer reads it everywhere (show, rules, the
# report, check --strict): draft until signed; approved, or needs-change, by
# the newest verdict; stale when the rule changed after it; retired when the
# rule file says so. `unknown` while the log has errors.
STAGES = ("draft", "approved", "needs-change", "stale", "retired", "unknown")
ENTRY_KEYS = ("rule", "evidence", "verdict", "reviewer", "identity", "date", "hash", "comment")
# An acknowledgement: a reviewer has seen a safety regression that `audit check --against` found
# (audit/impact.py) and accepts it, for a reason; it names the regression by its id
ACK_KEYS = ("acknowledge", "regression", "reason", "reviewer", "identity", "date")
ACK_REQUIRED = ("acknowledge", "reason", "reviewer", "date")
ACK_ID = re.compile(r"^R-[0-9a-f]{10}$")
# `identity`: the git identity (user.name <user.email>) of the machine the verdict was given on, where
# there is one; `reviewer` is the name the reviewer gave, which a log reader trusts no further
SUBJECTS = ("rule", "evidence")  # what a sign-off is about: a rule, or a later-evidence entry (one of them)
REQUIRED_KEYS = ("verdict", "reviewer", "date", "hash")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
HEADER = """\
# Clinical reviewers' verdicts on the rules, newest last; `ivig audit sign` appends.
# A verdict holds for the rule's outcome whose hash it records: edit the rule, a
# rule that feeds or pre-empts it, or the layer order, and the sign-off is stale
# until a reviewer looks again. A later-evidence entry is named by `evidence:`.
signoffs:
"""
Signable = Union[RuleSpec, LaterEntry]


# -- what a sign-off is tied to ------------------------------------------------


def rule_hash(rule: RuleSpec) -> str:
    """A short hash of what a rule says (everything written, except its status)."""
    return digest({k: v for k, v in rule.raw.items() if k != "status"})


def signoff_hash(rulebase: RuleBase, rule: RuleSpec) -> str:
    """A short hash of everything that decides when `rule` fires and what it concludes.

    That is the rule's own content (status aside), with the regimen and the
    passage it names by id read in; the layer order; and, in
    firing order, the decisive part (condition, layer, what it asserts) of the
    rules it depends on: those that derive a fact it tests, those that assert
    what it asserts (an earlier stance, the first dose, the same warning wins),
    and transitively theirs. Only rules that can fire for a common diagnosis
    count, so an MMN edit leaves GBS sign-offs alone; titles, quotes and
    messages of other rules are not part of this rule's outcome.
    """
    return _dependencies(rulebase).hash_of(rule)


def evidence_hash(rulebase: RuleBase, entry: LaterEntry) -> str:
    """A short hash of everything a reviewer judged in a later-evidence entry.

    That is the entry as written (`_judged`: its status, history and the date
    its source was last checked aside); the decisive part of the rules that
    derive a fact its situation tests, and transitively theirs, for the
    diagnoses its situation can hold for, with the layer order (what decides
    whether the entry attaches to a case, as for a rule); and the statements
    (what they conclude, and from which passage) of the rules it speaks to,
    since its relation (confirms, contradicts...) was judged against them.
    """
    return _dependencies(rulebase).hash_of_entry(entry)


def current_hash(rulebase: RuleBase, item: Signable) -> str:
    """The hash a sign-off of a rule or of a later-evidence entry must record to hold."""
    return evidence_hash(rulebase, item) if isinstance(item, LaterEntry) else signoff_hash(rulebase, item)


def _dependencies(rulebase: RuleBase) -> "_Dependencies":
    cache = _hash_cache.get(rulebase)
    if cache is None:
        cache = _hash_cache[rulebase] = _Dependencies(rulebase)
    return cache


_hash_cache: "weakref.WeakKeyDictionary[RuleBase, _Dependencies]" = weakref.WeakKeyDictionary()


def digest(content) -> str:
    """16 hex digits of the sha256 of `content` as JSON (keys sorted): what a hash records."""
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _decisive(rule: RuleSpec) -> dict:
    """The part of another rule that can change this one's outcome."""
    return {
        "when": rule.raw.get("when"),
        "layer": rule.layer,
        "derives": rule.derives,
        "dose": "dose" in rule.then,
        "warns": sorted(w["code"] for w in rule.warnings),
    }


def _outputs(rule: RuleSpec) -> set:
    """What a rule asserts that another rule may assert first (and so pre-empt it)."""
    out = set(rule.derives)
    if "dose" in rule.then:
        out.add("dose")
    out |= {"warn:" + w["code"] for w in rule.warnings}
    return out


class _Dependencies:
    """The rules each rule's outcome depends on, for one rule base (computed once)."""

    def __init__(self, rulebase: RuleBase):
        from ..core.analysis import live_rules

        self.rulebase = rulebase
        diagnoses: Dict[str, set] = {r.id: set() for r in rulebase.rules}
        for value in rulebase.schema.fields["diagnosis"].values:
            for rule in live_rules(rulebase, value):
                diagnoses[rule.id].add(value)
        producers: Dict[str, List[RuleSpec]] = {}  # derived name -> the rules that assert it
        emitters: Dict[str, List[RuleSpec]] = {}  # output -> the rules that assert it
        for rule in rulebase.rules:
            for name in rule.derives:
                producers.setdefault(name, []).append(rule)
            for output in _outputs(rule):
                emitters.setdefault(output, []).append(rule)
        # rule id -> the rules that feed it or assert what it asserts, for a shared diagnosis
        self.related: Dict[str, List[RuleSpec]] = {}
        for rule in rulebase.rules:
            near = {o.id: o for t in conditions.tests(rule.when) for o in producers.get(t.name, ())}
            near.update((o.id, o) for output in _outputs(rule) for o in emitters[output])
            self.related[rule.id] = [o for o in near.values() if o is not rule and diagnoses[rule.id] & diagnoses[o.id]]
        self.diagnoses = diagnoses  # rule id -> the diagnoses it can fire for
        self.decisive = {r.id: digest(_decisive(r)) for r in rulebase.rules}
        self.layers = [(l.name, l.sets_stance) for l in rulebase.layers]
        self.producers = producers
        self.statements = {r.id: {"then": r.then, "source": r.source} for r in rulebase.rules}
        self.hashes: Dict[str, str] = {}

    def closure(self, start: List[RuleSpec], within: Optional[set] = None) -> List[RuleSpec]:
        """`start` and the rules their outcomes depend on, transitively, in firing order; with
        `within`, only rules that can fire for one of those diagnoses."""
        found, todo = {r.id: r for r in start}, list(start)
        while todo:
            for other in self.related[todo.pop().id]:
                if within is not None and not self.diagnoses[other.id] & within:
                    continue
                if other.id not in found:
                    found[other.id] = other
                    todo.append(other)
        return sorted(found.values(), key=lambda r: -r.salience)

    def hash_of(self, rule: RuleSpec) -> str:
        if rule.id not in self.hashes:
            self.hashes[rule.id] = digest(
                {
                    "rule": {k: v for k, v in rule.raw.items() if k != "status"},
                    # as resolved: a regimen (dose: gbs) or passage (cite:) the rule names by id
                    "resolved": {"then": rule.then, "source": rule.source},
                    "layers": self.layers,
                    "context": ["this rule" if r is rule else self.decisive[r.id] for r in self.closure([rule])],
                }
            )
        return self.hashes[rule.id]

    def hash_of_entry(self, entry: LaterEntry) -> str:
        """See `evidence_hash`. Not cached: an entry is not a rule, and its id may be any."""
        within = self.entry_diagnoses(entry)
        feeding = {
            r.id: r
            for t in conditions.tests(entry.when)
            for r in self.producers.get(t.name, ())
            if self.diagnoses[r.id] & within
        }
        return digest(
            {
                "evidence": _judged(entry.raw),
                "speaks_to": {rule_id: self.statements.get(rule_id) for rule_id in entry.speaks_to},
                "layers": self.layers,
                "context": [self.decisive[r.id] for r in self.closure(list(feeding.values()), within)],
            }
        )

    def entry_diagnoses(self, entry: LaterEntry) -> set:
        """The diagnoses an entry's situation can hold for, all else unknown: only their rules can
        decide whether it attaches (a GBS rule never decides a dermatomyositis entry)."""
        from ..core.analysis import may_hold_for

        values = self.rulebase.schema.fields["diagnosis"].values
        return {d for d in values if may_hold_for(entry.when, d)}


def _judged(raw) -> dict:
    """What a reviewer judged of an entry as written: all of it but its status (retiring it is no
    new claim), its `changes` (its history) and the date its source was last checked (a re-check
    that finds the quote on the page as before is no new claim; a changed quote or page is)."""
    out = {k: v for k, v in raw.items() if k not in ("status", "changes")}
    if isinstance(out.get("source"), dict):
        out["source"] = {k: v for k, v in out["source"].items() if k != "checked"}
    return out


# -- reading the log -------------------------------------------------------------


class _LogLoader(LineLoader):
    """Every scalar of the log is text: '2026-01-01' is a date only once checked,
    and a hash of digits keeps its leading zeros."""

    yaml_implicit_resolvers: dict = {}


@dataclass
class LogContents:
    """A log as read: its valid entries, the errors that make it unusable, and the
    sign-offs of rules no longer in the rule base (history, not corruption)."""

    entries: List[dict] = field(default_factory=list)
    errors: List[SourceError] = field(default_factory=list)
    orphans: List[SourceError] = field(default_factory=list)


def date_problem(text: str) -> Optional[str]:
    """Why `text` is not a calendar date written YYYY-MM-DD, or None."""
    if not DATE.match(text):
        return f"the date '{text}' is not written YYYY-MM-DD"
    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return f"'{text}' is not a date of the calendar"
    return None


def parse_log(text: str, source: str, rulebase: RuleBase) -> LogContents:
    """Read a log's text strictly: anything but a mapping holding one 'signoffs'
    list of well-formed sign-offs is an error with its line."""
    out = LogContents()
    try:
        data = yaml.load(text, Loader=_LogLoader)
    except yaml.YAMLError as exc:
        out.errors.append(yaml_error(exc, source))
        return out
    except RecursionError:
        out.errors.append(SourceError("not a review log: nested too deeply", source, 1))
        return out
    except Exception as exc:  # whatever else the reader refuses (a bound, a tag) is this file's error
        out.errors.append(
            SourceError(
                f"not a readable review log: {getattr(exc, 'message', exc)}", source, getattr(exc, "line", None) or 1
            )
        )
        return out
    if data is None:
        out.errors.append(
            SourceError(
                "the review log is empty; it needs a line 'signoffs:' (delete the file to start a new log)", source, 1
            )
        )
        return out
    if not isinstance(data, dict):
        out.errors.append(
            SourceError("the review log must be a mapping with a 'signoffs' list", source, getattr(data, "line", 1))
        )
        return out
    for key in data:
        if key != "signoffs":
            out.errors.append(
                SourceError(f"unknown top-level key '{key}' (the log holds only 'signoffs')", source, data.line_of(key))
            )
    items = data.get("signoffs", "")
    if "signoffs" not in data:
        out.errors.append(SourceError("the review log has no 'signoffs' list", source, data.line))
    elif items == "":  # `signoffs:` with nothing under it yet
        items = []
    elif not isinstance(items, list):
        out.errors.append(SourceError("'signoffs' must be a list of sign-offs", source, data.line_of("signoffs")))
        items = []
    for i, item in enumerate(items):
        _entry(item, items.line_of(i) if isinstance(items, LocatedList) else None, source, rulebase, out)
    return out


def _acknowledgement(item: dict, line, source, out: LogContents):
    """An acknowledgement of a safety regression, checked: its keys, its id's form, its date."""
    problems = [f"unknown key '{k}'{suggest(k, ACK_KEYS)}" for k in item if k not in ACK_KEYS]
    problems += [f"'{k}' must be text" for k in ACK_KEYS if k in item and not isinstance(item[k], str)]
    problems += [f"'{k}' is missing" for k in ACK_REQUIRED if not item.get(k)]
    if isinstance(item.get("acknowledge"), str) and not ACK_ID.match(item["acknowledge"]):
        problems.append(f"'{item['acknowledge']}' is not a regression's id (R- and 10 hex digits)")
    if isinstance(item.get("date"), str) and item["date"]:
        problems += [p for p in [date_problem(item["date"])] if p]
    for problem in problems:
        out.errors.append(SourceError(problem, source, line, None, "review-log"))
    if not problems:
        out.entries.append({k: item[k] for k in ACK_KEYS if item.get(k)})


def _entry(item, line, source, rulebase, out: LogContents):
    if isinstance(item, dict) and "acknowledge" in item:
        _acknowledgement(item, line, source, out)
        return
    if not isinstance(item, dict):
        out.errors.append(
            SourceError("a sign-off must be a mapping of " + ", ".join(ENTRY_KEYS), source, line, kind="review-log")
        )
        return
    subject = subject_of(item)
    rule = subject[1] if subject else item.get("rule")
    problems = [f"unknown key '{k}'{suggest(k, ENTRY_KEYS)}" for k in item if k not in ENTRY_KEYS]
    problems += [f"'{k}' must be text" for k in ENTRY_KEYS if k in item and not isinstance(item[k], str)]
    if not any(item.get(k) for k in SUBJECTS):
        problems.append("'rule' is missing (or 'evidence', for a later-evidence entry)")
    elif all(k in item for k in SUBJECTS):
        problems.append("a sign-off names a 'rule' or an 'evidence' entry, not both")
    problems += [f"'{k}' is missing" for k in REQUIRED_KEYS if not item.get(k)]
    if item.get("verdict") and item["verdict"] not in VERDICTS:
        problems.append(f"verdict must be one of {', '.join(VERDICTS)}")
    if item.get("verdict") == "needs-change" and not item.get("comment"):
        problems.append("a 'needs-change' verdict needs a comment saying what to change")
    if isinstance(item.get("date"), str) and item["date"]:
        problems += [p for p in [date_problem(item["date"])] if p]
    for problem in problems:
        out.errors.append(SourceError(problem, source, line, rule if isinstance(rule, str) else None, "review-log"))
    if problems:
        return
    out.entries.append({k: item[k] for k in ENTRY_KEYS if item.get(k)})
    orphan = _orphan(rulebase, subject)
    if orphan:
        out.orphans.append(SourceError(orphan, source, line, rule, "review-log"))


def subject_of(entry: dict) -> Optional[Tuple[str, str]]:
    """What a sign-off is about: ('rule', id) or ('evidence', id); None if it names neither."""
    return next(((k, entry[k]) for k in SUBJECTS if isinstance(entry.get(k), str) and entry[k]), None)


def signed_id(entry: dict) -> str:
    """The id of the rule or later-evidence entry a (well-formed) sign-off is about."""
    subject = subject_of(entry)
    assert subject is not None, "a sign-off read from the log names what it is about"
    return subject[1]


def _orphan(rulebase: RuleBase, subject: Tuple[str, str]) -> Optional[str]:
    """Why a well-formed sign-off is about nothing in the rule base (history, not corruption), or None."""
    what, item_id = subject
    if what == "rule":
        if item_id in rulebase.by_id:
            return None
        return (
            f"no rule '{item_id}'{suggest(item_id, rulebase.by_id)} (a sign-off of a rule no longer in the rule base)"
        )
    entries = rulebase.later.by_id
    if item_id in entries:
        return None
    return (
        f"no later-evidence entry '{item_id}'{suggest(item_id, entries)} "
        "(a sign-off of an entry no longer in the rule base)"
    )


# -- where the log lives ---------------------------------------------------------


def log_path(rulebase: RuleBase) -> Optional[Path]:
    """The log of a rule base: beside its rules (None for rules not on a file system)."""
    root = rulebase.root
    return Path(str(root.joinpath(LOG_NAME))) if isinstance(root, Path) or not rulebase.packaged else None


def writable_log_path(rulebase: RuleBase) -> Path:
    """Where `sign` may write: beside the rules the reviewer named with --rules, or
    beside the packaged rules only when they are the rules/ of a writable checkout.

    An installed package is not a place for a record: the next upgrade
    replaces it, and the reviewer did not choose it.
    """
    path = log_path(rulebase)
    if rulebase.packaged:
        package = Path(str(rulebase.root)).parent if path is not None else None
        if package is None or not (package / ".git").exists():
            raise NoLogHere(
                f"the packaged rules are installed at {rulebase.root}, not in a checkout: "
                "sign the rule base you work on with `ivig audit sign --rules DIR ...` "
                "(the log is written beside the rules, in DIR/" + LOG_NAME + ")"
            )
    if not os.access(path.parent, os.W_OK):
        raise NoLogHere(f"cannot write the review log in {path.parent}: the directory is not writable")
    return path


# -- the log of a rule base --------------------------------------------------------


@dataclass
class SignOff:
    """Where one rule (or later-evidence entry) stands with its reviewers."""

    state: str  # approved | needs-change | stale | missing | unreadable
    entry: Optional[dict] = None  # the newest log entry for the rule, if any
    retired: bool = False  # the rule file says the rule is retired
    subject: str = "the rule"  # what changed, when the sign-off is stale

    @property
    def stage(self) -> str:
        """Where the rule is in its lifecycle (STAGES)."""
        if self.retired:
            return "retired"
        return {"missing": "draft", "unreadable": "unknown"}.get(self.state, self.state)

    def describe(self) -> str:
        """The stage and what it rests on: 'approved by A on 2026-11-02', 'draft: not signed yet'."""
        stage = self.stage
        if self.state == "unreadable":
            return f"{stage}: the review log has errors (see `ivig audit check`)"
        if self.entry is None:
            return f"{stage}: not signed yet" if stage == "draft" else stage
        e = self.entry
        text = f"{e['verdict']} by {e['reviewer']} on {e['date']}"
        if e.get("comment"):
            text += f": {e['comment']}"
        if self.state == "stale":
            return f"stale: {text}; {self.subject}, or what decides its outcome, has changed since"
        return text if stage == e["verdict"] else f"{stage}; {text}"


def unsigned(rule: Signable) -> SignOff:
    """Where a rule (or later-evidence entry) stands with no sign-off read for it: draft, or
    retired if its file says so."""
    return _signoff("missing", rule)


def _signoff(state: str, item: Signable, entry: Optional[dict] = None) -> SignOff:
    subject = "the entry" if isinstance(item, LaterEntry) else "the rule"
    return SignOff(state, entry, item.status == "retired", subject)


def _subject_key(item: Signable) -> Tuple[str, str]:
    return ("evidence" if isinstance(item, LaterEntry) else "rule", item.id)


class ReviewLog:
    """The sign-off log of one rule base, checked against its rules.

    A log with errors is *unreadable* as a whole: a damaged record may hide a
    newer verdict, so no rule's sign-off is taken from it.
    """

    def __init__(self, rulebase: RuleBase, contents: LogContents, source: str, path: Optional[Path] = None):
        self.rulebase = rulebase
        self.entries = contents.entries
        self.errors = contents.errors + contents.orphans  # every problem, for reports
        self.readable = not contents.errors
        self.source = source
        self.path = path
        self.latest: Dict[Tuple[str, str], dict] = {}  # ('rule' or 'evidence', id) -> its newest sign-off
        self.acknowledged: Dict[str, dict] = {}  # a safety regression's id -> its newest acknowledgement
        for entry in self.entries if self.readable else ():  # a damaged log may hide a newer entry
            if "acknowledge" in entry:
                self.acknowledged[entry["acknowledge"]] = entry
            else:
                self.latest[subject_of(entry)] = entry

    @classmethod
    def load(cls, rulebase: RuleBase, path: Optional[Path] = None) -> "ReviewLog":
        """Read the log beside the rules (none yet: an empty log); errors are kept, not raised."""
        path = path or log_path(rulebase)
        source = str(path) if path is not None else f"{rulebase.label}/{LOG_NAME}"
        if path is None or not path.exists():
            return cls(rulebase, LogContents(), source, path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return cls(
                rulebase,
                LogContents(errors=[SourceError(f"cannot read the review log: {exc}", source, 1)]),
                source,
                path,
            )
        return cls(rulebase, parse_log(text, source, rulebase), source, path)

    def state(self, item: Signable) -> SignOff:
        """Where a rule or a later-evidence entry stands with its reviewers (its `stage` is its lifecycle)."""
        if not self.readable:
            return _signoff("unreadable", item)
        entry = self.latest.get(_subject_key(item))
        if entry is None:
            return unsigned(item)
        if entry["hash"] != current_hash(self.rulebase, item):
            return _signoff("stale", item, entry)
        return _signoff(entry["verdict"], item, entry)

    def counts(self, items: Optional[List[Signable]] = None) -> Dict[str, int]:
        """How many rules (or `items`: later-evidence entries) are at each stage of the lifecycle
        (unknown and retired only when some are)."""
        out = dict.fromkeys(STAGES, 0)
        for item in self.rulebase.rules if items is None else items:
            out[self.state(item).stage] += 1
        for rare in ("retired", "unknown"):
            if not out[rare]:
                del out[rare]
        return out


# -- signing -----------------------------------------------------------------------


def signables(rulebase: RuleBase) -> Dict[str, Signable]:
    """What a reviewer signs, by id: every rule, then every later-evidence entry."""
    return {**rulebase.by_id, **rulebase.later.by_id}


def new_entries(
    rulebase: RuleBase,
    rule_ids: List[str],
    verdict: str,
    reviewer: str,
    comment: Optional[str] = None,
    date: Optional[str] = None,
    identity: Optional[str] = None,
) -> List[dict]:
    """The entries a sign would append, every argument checked first (all or nothing). An id
    is a rule's or a later-evidence entry's (they share none)."""
    signable = signables(rulebase)
    unknown = [r for r in rule_ids if r not in signable]
    if unknown:
        raise SignOffInvalid(
            "; ".join(f"no rule '{r}'{suggest(r, signable)}" for r in unknown) + " (nothing was recorded)", "RULE"
        )
    if verdict not in VERDICTS:
        raise SignOffInvalid(f"verdict must be one of {', '.join(VERDICTS)}", "--verdict")
    comment = " ".join((comment or "").split())
    _within_bound(comment, "--comment")
    if verdict == "needs-change" and not comment:
        raise SignOffInvalid("a 'needs-change' verdict needs a comment saying what to change", "--comment")
    reviewer = " ".join((reviewer or "").split())
    if not reviewer:
        raise SignOffInvalid("a sign-off needs the reviewer's name", "--reviewer")
    today = datetime.date.today()
    date = today.isoformat() if date is None else date
    problem = date_problem(date)
    if problem is None and datetime.date.fromisoformat(date) > today:
        problem = f"{date} is after today ({today.isoformat()}): a review is dated when it was done"
    if problem:
        raise SignOffInvalid(problem, "--date")
    entries = []
    for rule_id in dict.fromkeys(rule_ids):
        item = signable[rule_id]
        entry = {
            _subject_key(item)[0]: rule_id,
            "verdict": verdict,
            "reviewer": reviewer,
            "date": date,
            "hash": current_hash(rulebase, item),
        }
        if identity:
            entry["identity"] = " ".join(identity.split())
        if comment:
            entry["comment"] = comment
        entries.append(entry)
    return entries


def git_identity(where: Path) -> Optional[str]:
    """The git identity ("name <email>") configured for the checkout holding `where`, or None where
    there is no git or no identity: recorded beside the name a reviewer types, never instead of it."""
    from .against import git_output

    name, email = (" ".join(git_output(where, "config", key, timeout=5).split()) for key in ("user.name", "user.email"))
    if not name and not email:
        return None
    return f"{name} <{email}>" if email else name


def sign(
    rulebase: RuleBase,
    rule_ids: List[str],
    verdict: str,
    reviewer: str,
    comment: Optional[str] = None,
    date: Optional[str] = None,
    path: Optional[Path] = None,
    identity: Optional[str] = None,
    lock_timeout: Optional[float] = None,
) -> Tuple[Path, List[dict]]:
    """Append verdicts on rules to the log; return where it was written and the entries.

    All or nothing: every argument is checked before anything is written, and
    under the lock the log is read and checked whole; a log with errors is
    refused (LogUnusable). The new file replaces the old in one rename, so a
    crash never leaves half an entry.
    """
    entries = new_entries(rulebase, list(rule_ids), verdict, reviewer, comment, date, identity)
    return append(rulebase, entries, path, lock_timeout)


def _within_bound(text: str, param: str):
    """Refuse a text longer than the log's reader takes back (a value of at most MAX_SCALAR
    characters): it would be written, then refuse to read."""
    if len(text) > MAX_SCALAR:
        raise SignOffInvalid(
            f"{len(text):,} characters, longer than a review log holds (at most {MAX_SCALAR:,})", param
        )


def acknowledge(
    rulebase: RuleBase,
    regressions: Dict[str, str],
    reason: str,
    reviewer: str,
    date: Optional[str] = None,
    path: Optional[Path] = None,
    identity: Optional[str] = None,
) -> Tuple[Path, List[dict]]:
    """Append acknowledgements of safety regressions (id -> what changed, in words) to the log, for
    a reason; as `sign` appends, all or nothing."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise SignOffInvalid("an acknowledgement needs the reason the change is accepted", "--reason")
    _within_bound(reason, "--reason")
    reviewer = " ".join((reviewer or "").split())
    if not reviewer:
        raise SignOffInvalid("an acknowledgement needs the reviewer's name", "--reviewer")
    date = datetime.date.today().isoformat() if date is None else date
    problem = date_problem(date)
    if problem:
        raise SignOffInvalid(problem, "--date")
    entries = []
    for regression_id, words in regressions.items():
        entry = {"acknowledge": regression_id, "regression": " ".join(words.split()), "reason": reason}
        entry.update({"reviewer": reviewer, "identity": " ".join((identity or "").split()), "date": date})
        entries.append({k: v for k, v in entry.items() if v})
    return append(rulebase, entries, path)


def append(
    rulebase: RuleBase, entries: List[dict], path: Optional[Path] = None, lock_timeout: Optional[float] = None
) -> Tuple[Path, List[dict]]:
    """Append checked entries to the review log under its lock (see `sign`), waiting for it at most
    `lock_timeout` seconds (default LOCK_TIMEOUT)."""
    path = Path(os.path.abspath(path if path is not None else writable_log_path(rulebase)))
    source = str(path)
    with _locked(path.parent / f".{path.name}.lock", lock_timeout):
        try:
            text = path.read_text(encoding="utf-8") if path.exists() else HEADER
        except UnicodeDecodeError as exc:  # refused like any damaged log, never appended to
            raise LogUnusable(
                [SourceError(f"the review log is not UTF-8 text (byte {exc.start})", source, 1)]
            ) from None
        before = parse_log(text, source, rulebase)
        if before.errors:
            raise LogUnusable(before.errors)
        new_text = _appended(text, before.entries, entries, source, rulebase)
        with atomic_writer(path) as out:
            out.write(new_text)
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename makes it the log
    return path, entries


def _appended(text: str, old: List[dict], new: List[dict], source: str, rulebase: RuleBase) -> str:
    """The log's text with the new entries at the end.

    Appending keeps every earlier line as written (and the diff to one hunk);
    where the log's layout does not allow it (`signoffs: []`, an indented
    list), the log is written anew from its entries. Either way the result is
    read back and must hold exactly the old entries and the new.
    """
    wanted = old + new
    candidate = (text if text.endswith("\n") else text + "\n") + _dump(new)
    if _reads_as(candidate, wanted, source, rulebase):
        return candidate
    candidate = HEADER + _dump(wanted)
    if not _reads_as(candidate, wanted, source, rulebase):  # pragma: no cover - a bug, not an input
        raise RuntimeError("the review log would not read back as written; nothing was recorded")
    return candidate


def _reads_as(text: str, entries: List[dict], source: str, rulebase: RuleBase) -> bool:
    contents = parse_log(text, source, rulebase)
    return not contents.errors and contents.entries == entries


def _dump(entries: List[dict]) -> str:
    return yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=100) if entries else ""


@contextmanager
def _locked(lock_path: Path, timeout: Optional[float] = None):
    """Hold an exclusive lock on `lock_path` (created if need be) for the block.

    The lock file is never removed: removing it would let two writers lock
    two different files. The log itself cannot carry the lock, as each write
    replaces it with a new file.
    """
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        deadline = time.monotonic() + (LOCK_TIMEOUT if timeout is None else timeout)
        while not _try_lock(fd):
            if time.monotonic() > deadline:
                raise LogLocked(f"the review log is locked by another process ({lock_path}); try again")
            time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the lock


try:
    import fcntl

    def _try_lock(fd) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
except ImportError:  # pragma: no cover - Windows
    import msvcrt

    def _try_lock(fd) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
