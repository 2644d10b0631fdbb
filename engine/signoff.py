"""Reviewers' sign-off: a YAML log of verdicts kept beside the rules.

Each entry records a verdict on one rule (``approved``, or ``needs-change``
with a comment), who gave it, when, and the hash of the rule's content at the
time. A verdict holds only for that content: edit the rule and its sign-off is
*stale*. The log is append-only; the newest entry for a rule is the one that
counts, and the older ones stay as history (Arden Syntax's maintenance slots
keep the same record inside each module).
"""

import datetime
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from .atomic import write_text_atomic
from .rulebase import RuleBase, RuleSpec, _suggest
from .yamlsrc import SourceError, load_one

LOG_NAME = "review-log.yaml"
VERDICTS = ("approved", "needs-change")
STATES = ("approved", "needs-change", "stale", "missing")
ENTRY_KEYS = ("rule", "verdict", "reviewer", "date", "hash", "comment")
HEADER = """\
# Clinical reviewers' verdicts on the rules, newest last; `ivig audit sign` appends.
# A verdict holds for the rule content whose hash it records: edit the rule and
# the sign-off is stale until a reviewer looks again.
signoffs:
"""


def rule_hash(rule: RuleSpec) -> str:
    """A short hash of what a rule says (everything written, except its status)."""
    content = {k: v for k, v in rule.raw.items() if k != "status"}
    text = json.dumps(content, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class SignOff:
    """Where one rule stands with its reviewers."""
    state: str                    # approved | needs-change | stale | missing
    entry: Optional[dict] = None  # the newest log entry for the rule, if any

    def describe(self) -> str:
        if self.entry is None:
            return "no sign-off"
        e = self.entry
        text = f"{e['verdict']} by {e['reviewer']} on {e['date']}"
        if e.get("comment"):
            text += f": {e['comment']}"
        return f"stale ({text}; the rule has changed since)" if self.state == "stale" else text


class ReviewLog:
    """The sign-off log of one rule base, checked against its rules."""

    def __init__(self, rulebase: RuleBase, entries: List[dict], errors: List[SourceError], source: str):
        self.rulebase = rulebase
        self.entries = entries
        self.errors = errors
        self.source = source
        self.latest: Dict[str, dict] = {}
        for entry in entries:
            self.latest[entry["rule"]] = entry

    @classmethod
    def load(cls, rulebase: RuleBase) -> "ReviewLog":
        """Read the log beside the rules (none yet: an empty log); errors are kept, not raised."""
        source = f"{rulebase.label}/{LOG_NAME}"
        path = rulebase.root.joinpath(LOG_NAME) if rulebase.root is not None else None
        if path is None or not path.is_file():
            return cls(rulebase, [], [], source)
        try:
            data = load_one(path.read_text(encoding="utf-8"), source)
        except SourceError as exc:
            return cls(rulebase, [], [exc], source)
        entries, errors = _entries(data, rulebase, source)
        return cls(rulebase, entries, errors, source)

    def state(self, rule: RuleSpec) -> SignOff:
        entry = self.latest.get(rule.id)
        if entry is None:
            return SignOff("missing")
        if entry["hash"] != rule_hash(rule):
            return SignOff("stale", entry)
        return SignOff(entry["verdict"], entry)

    def counts(self) -> Dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for rule in self.rulebase.rules:
            out[self.state(rule).state] += 1
        return out


def _entries(data, rulebase: RuleBase, source: str):
    entries, errors = [], []
    items = data.get("signoffs") if isinstance(data, dict) else None
    if items is None:
        items = []
    if not isinstance(items, list):
        return [], [SourceError("the review log needs a 'signoffs' list", source, getattr(data, "line", 1))]
    for i, item in enumerate(items):
        line = items.line_of(i)
        if not isinstance(item, dict):
            errors.append(SourceError("a sign-off must be a mapping", source, line, kind="review-log"))
            continue
        problems = [f"unknown key '{k}'{_suggest(k, ENTRY_KEYS)}" for k in item if k not in ENTRY_KEYS]
        problems += [f"'{k}' is missing" for k in ("rule", "verdict", "reviewer", "date", "hash") if not item.get(k)]
        if item.get("rule") and item["rule"] not in rulebase.by_id:
            problems.append(f"no rule '{item['rule']}'{_suggest(item['rule'], rulebase.by_id)}")
        if item.get("verdict") and item["verdict"] not in VERDICTS:
            problems.append(f"verdict must be one of {', '.join(VERDICTS)}")
        if item.get("verdict") == "needs-change" and not item.get("comment"):
            problems.append("a 'needs-change' verdict needs a comment saying what to change")
        for problem in problems:
            errors.append(SourceError(problem, source, line, item.get("rule"), "review-log"))
        if not problems:
            entries.append({k: (str(item[k]) if item.get(k) is not None else None) for k in ENTRY_KEYS})
    return entries, errors


def sign(rulebase: RuleBase, rule_id: str, verdict: str, reviewer: str, comment: Optional[str] = None,
         date: Optional[str] = None) -> dict:
    """Append a verdict on one rule to the log beside the rules; return the entry.

    The file is rewritten whole through a temporary file and a rename
    (engine.atomic), so a crash never leaves half an entry.
    """
    if rule_id not in rulebase.by_id:
        raise ValueError(f"no rule '{rule_id}'{_suggest(rule_id, rulebase.by_id)}")
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {', '.join(VERDICTS)}")
    if verdict == "needs-change" and not comment:
        raise ValueError("a 'needs-change' verdict needs a comment saying what to change")
    if not reviewer.strip():
        raise ValueError("a sign-off needs the reviewer's name")
    path = Path(str(rulebase.root.joinpath(LOG_NAME)))
    entry = {"rule": rule_id, "verdict": verdict, "reviewer": reviewer.strip(),
             "date": date or datetime.date.today().isoformat(),
             "hash": rule_hash(rulebase.by_id[rule_id])}
    if comment:
        entry["comment"] = " ".join(comment.split())
    text = path.read_text(encoding="utf-8") if path.exists() else HEADER
    if not text.endswith("\n"):
        text += "\n"
    text += yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=100)
    write_text_atomic(path, text)
    return entry
