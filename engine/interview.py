"""A consultation in MYCIN's manner: ask only what the rules still need for
this patient, never twice, and say why a question is asked.

`Interview` holds the answers and decides the next question; it does no I/O,
so the terminal front end (engine.console) and the tests drive the same object. The
next question is found by re-running the engine on the answers so far: the
unknown fields that undecided rules test (analysis.undecided_rules) are the
candidates, in the schema's order, and a candidate is asked only if some
value of it would change the answer (stance, regimen, dose or warnings).
Safety questions therefore come only when IVIG is on the table, and weight
only when a dose will be given.

The interview's files are here too, without the terminal: the answers a
`--resume` file gives (`resume`), and where and how a case and its result
are saved (`save_paths`, `check_save`, `save_case`). The terminal is
engine.console.
"""

import datetime
import errno
import os
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from . import conditions
from .atomic import writable_target, write_text_atomic
from .analysis import domains
from .caseio import pick_case, read_cases
from .errors import ResumeError
from .evaluate import Advisor, Result, Run
from . import words
from .schema import CaseInvalid, FieldSpec, check_value

YES = {"y", "yes", "true", "t", "1", "si", "oui", "ja", "positive", "present"}
NO = {"n", "no", "false", "f", "0", "non", "nein", "negative", "absent", "none"}
COMMANDS = {"why": "why", "?": "why", "unknown": "unknown", "u": "unknown", "skip": "unknown",
            "back": "back", "b": "back", "help": "help", "h": "help", "quit": "quit", "q": "quit",
            "exit": "quit", "how": "how"}


NUMBER = re.compile(r"^\s*([-+]?\d+(?:[.,]\d+)?)\s*([a-zA-Z]*)\.?\s*$")  # "70", "70 kg", "65y"
UNIT_WORDS = {"years": ("y", "yr", "yrs", "year"), "kg": ("kgs", "kilo", "kilos", "kilograms")}


class AnswerError(ValueError):
    """An answer that does not fit the question; the message says why."""


@dataclass
class Reason:
    """Why a field is asked: a rule still waiting on it, and what it would conclude."""
    rule: str
    sentence: str
    cite: str


def outcome_key(result: Result) -> tuple:
    """What the clinician is told: stance and its rule, the regimen and dose, the warnings."""
    if not result.ok:
        return ("error", result.error["message"])
    dose = tuple(sorted((result.dose or {}).items()))
    return (result.ivig["stance"], result.ivig["rule"], dose,
            tuple(sorted((w["code"], w["severity"]) for w in result.warnings)))


class Interview:
    """The answers of one consultation and the choice of the next question."""

    def __init__(self, advisor: Advisor, answers: Optional[Dict[str, object]] = None):
        self.advisor = advisor
        self.schema = advisor.rulebase.schema
        self.answers: Dict[str, object] = dict(answers or {})
        self.unknown: List[str] = []          # fields the clinician chose to leave unknown
        self.history: List[Tuple[str, object]] = []  # (field, previous state) for `back`
        self.space = domains(advisor.rulebase)

    # -- state --------------------------------------------------------------

    def case(self) -> dict:
        """The answers as a case mapping, in schema order (the case-file contract)."""
        return {name: self.answers[name] for name in self.schema.fields if name in self.answers}

    def evaluate(self, answers: Optional[dict] = None) -> Run:
        """The run of the rules over the answers (or over other answers)."""
        data = self.case() if answers is None else answers
        return self.advisor.run(self.advisor.validate(data))

    def result(self) -> Result:
        return self.evaluate().result

    # -- the next question --------------------------------------------------

    def next_question(self) -> Optional[FieldSpec]:
        """The field whose answer could still change the result, or None when done.

        Questions that could change the stance come first, then the regimen
        and dose, then the warnings (schema order within each), so that
        safety questions are asked once the stance is settled.
        """
        if "diagnosis" not in self.answers:
            return self.schema.fields["diagnosis"]
        result = self.evaluate().result
        best = None
        for name in result.missing:
            if name in self.unknown or name in self.answers:
                continue
            rank = self.impact(name, result)
            if rank is not None and (best is None or rank < best[0]):
                best = (rank, name)
                if rank == 0:
                    break
        return self.schema.fields[best[1]] if best else None

    def impact(self, name: str, result: Result) -> Optional[int]:
        """What some value of the field, the other answers kept, would change:
        0 the stance, 1 the regimen or dose, 2 the warnings; None: nothing."""
        current = outcome_key(result)
        rank = None
        for value in self.candidates(name):
            trial = dict(self.case(), **{name: words.plain(value)})
            try:
                other = outcome_key(self.evaluate(trial).result)
            except CaseInvalid:
                continue  # a value the other answers rule out (a constraint)
            if other[:2] != current[:2]:
                return 0
            if other[2] != current[2]:
                changed = 1
            elif other[3] != current[3]:
                changed = 2
            else:
                changed = None
            if changed is not None and (rank is None or changed < rank):
                rank = changed
        return rank

    def candidates(self, name: str) -> list:
        values = [v for v in self.space.get(name, []) if v is not None]
        if not values:  # no rule tests it, but the result uses it (weight: g/kg into grams)
            spec = self.schema.fields[name]
            values = [spec.min if spec.min is not None else spec.max if spec.max is not None else 1]
        return values

    # -- answers ------------------------------------------------------------

    def parse(self, spec: FieldSpec, text: str):
        """The typed value of an answer, or AnswerError saying what would fit."""
        text = text.strip()
        if spec.type == "boolean":
            word = text.lower()
            if word in YES:
                return True
            if word in NO:
                return False
            raise AnswerError("answer yes or no (y/n)")
        if spec.type == "enum":
            return self._choice(spec, text)
        if spec.type == "list":
            if text.lower() in ("none", "no", "nothing", "-"):
                return []
            return sorted({self._choice(spec, part) for part in text.replace(";", ",").split(",") if part.strip()})
        if spec.type in ("integer", "number"):
            found = NUMBER.match(text)
            unit = found.group(2).lower() if found else ""
            if not found or unit and unit not in {(spec.unit or "").lower(), *UNIT_WORDS.get(spec.unit, ())}:
                raise AnswerError(f"answer a number{self.range_text(spec)}")
            number = float(found.group(1).replace(",", "."))
            if spec.type == "integer" or number.is_integer():
                number = int(number) if number.is_integer() else number
            try:
                return check_value(spec, number)
            except ValueError as exc:
                raise AnswerError(str(exc)) from None
        return text

    def _choice(self, spec: FieldSpec, text: str):
        text = text.strip()
        values = list(spec.values)
        if text.isdigit() and 1 <= int(text) <= len(values):
            return values[int(text) - 1]
        exact = spec.alias_of(text)
        if exact is not None:
            return exact
        word = text.lower().replace(" ", "_")
        starts = [v for v in values if v.startswith(word) or spec.values[v].get("label", "").lower().startswith(text.lower())]
        starts += [v for v in values for alias in spec.values[v].get("aliases", [])
                   if alias.lower().startswith(text.lower()) and v not in starts]
        if len(starts) == 1 and text:
            return starts[0]
        if len(starts) > 1:
            raise AnswerError(f"'{text}' could be {', '.join(starts)}: type more letters or the number")
        raise AnswerError(f"choose a number from the list, or a name (e.g. {values[0]})")

    def give(self, name: str, value) -> None:
        """Record an answer; raises AnswerError when the case it makes is invalid."""
        trial = dict(self.case(), **{name: value})
        try:
            self.advisor.validate(trial)
        except CaseInvalid as exc:
            raise AnswerError("; ".join(e.message for e in exc.errors)) from None
        self.history.append((name, self.answers.get(name, _UNSET)))
        self.answers[name] = value

    def skip(self, name: str) -> None:
        """Leave a field unknown: it is not asked again and is reported as missing."""
        self.history.append((name, _SKIPPED))
        self.unknown.append(name)

    def back(self) -> Optional[str]:
        """Undo the last answer (or skip); return the field to ask again, or None."""
        if not self.history:
            return None
        name, before = self.history.pop()
        if before is _SKIPPED:
            self.unknown.remove(name)
        elif before is _UNSET:
            self.answers.pop(name, None)
        else:
            self.answers[name] = before
        return name

    # -- why ----------------------------------------------------------------

    def why(self, name: str) -> List[Reason]:
        """The undecided rules that test this field, and those that test what they
        would derive, in plain language with their source (the stance itself is
        not followed: every rule after it would be listed)."""
        rulebase = self.advisor.rulebase
        if name == "diagnosis":
            return [Reason("all", "Every rule starts from the diagnosis: it decides which of the review's "
                                  "recommendations apply.", "")]
        undecided = self.evaluate().undecided
        wanted, out, seen = {name}, [], set()
        while True:
            found = [r for r in undecided if r.id not in seen
                     and wanted & {t.name for t in conditions.tests(r.when)}]
            if not found:
                return out
            for rule in found:
                seen.add(rule.id)
                out.append(Reason(rule.id, words.sentence(rulebase, rule), words.basis_and_refs(rule)))
            wanted = {n for r in found for n in (r.then.get("derive") or {})}

    @staticmethod
    def range_text(spec: FieldSpec) -> str:
        parts = []
        if spec.min is not None or spec.max is not None:
            parts.append(f"{spec.min:g} to {spec.max:g}" if spec.min is not None and spec.max is not None
                         else f"at least {spec.min:g}" if spec.min is not None else f"at most {spec.max:g}")
        if spec.unit:
            parts.append(spec.unit)
        return f" ({', '.join(parts)})" if parts else ""


_UNSET = object()
_SKIPPED = object()


# -- the interview's files ------------------------------------------------------

SAVE_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl"}


def resume(advisor: Advisor, path, wanted: Optional[str] = None) -> Tuple[Dict[str, object], Optional[str]]:
    """The answers of the case to resume from a case file, and its own id (None when
    the case has none: the file's name is no patient's id).

    Raises errors.CaseChoice when the file does not give exactly one case
    (caseio.pick_case), CaseInvalid when that case cannot be read or validated.
    """
    record = pick_case(read_cases([str(path)]), wanted, path, advisor.rulebase.schema)
    if record.error is not None:
        raise CaseInvalid([record.error])
    case = advisor.validate(record.data, record.source, record.line, record.default_id)
    answers = {k: words.plain(v) for k, v in case.facts.items()}
    return answers, case.id if case.id != record.default_id else None


def save_paths(path) -> Tuple[Path, Path]:
    """The case file and the result beside it: p.yaml -> p.result.json, ward.v2/p8 -> ward.v2/p8.result.json.

    Only a case-file suffix is replaced; any other dot belongs to the name.
    """
    case = Path(path)
    if not str(path).strip() or case.name in ("", ".", "..") or str(path).endswith(("/", os.sep)):
        raise IsADirectoryError(errno.EISDIR, "not a file name", str(path))  # '', '.', '/', 'dir/'
    stem = case.stem if case.suffix.lower() in SAVE_FORMATS else case.name
    return case, case.with_name(stem + ".result.json")


def check_save(path, with_result: bool, overwrite: bool = False) -> List[Path]:
    """The files saving to `path` would write, once it is known they can be written.

    Raises atomic.OutputRefused for a path that cannot be written (no such
    folder, not a regular file), and FileExistsError (its `filename` the
    existing files, joined) when a file exists and `overwrite` is false;
    both before anything is written.
    """
    targets = list(save_paths(path)[:2 if with_result else 1])
    for target in targets:
        writable_target(target)
    existing = [str(t) for t in targets if t.exists()]
    if existing and not overwrite:
        raise FileExistsError(17, "exists", " and ".join(existing))
    return targets


def save_case(path, case: dict, result: Optional[Result], overwrite: bool = False) -> List[Path]:
    """Save a case (and the result, when the interview reached one); the paths written.

    The case is written in the format its suffix names (YAML unless .json or
    .jsonl), so that `ivig evaluate` and `--resume` read it back.
    """
    targets = check_save(path, result is not None, overwrite)
    write_text_atomic(targets[0], case_text(case, targets[0], finished=result is not None))
    if result is not None:
        write_text_atomic(targets[1], json.dumps(result.to_dict(), ensure_ascii=False, indent=2) + "\n")
    return targets


def case_text(case: dict, path, finished: bool) -> str:
    """A case as the text of a case file of the kind `path`'s suffix names."""
    kind = SAVE_FORMATS.get(Path(path).suffix.lower(), "yaml")
    if kind == "json":
        return json.dumps(case, ensure_ascii=False, indent=2) + "\n"
    if kind == "jsonl":
        return json.dumps(case, ensure_ascii=False) + "\n"
    return (f"# Case from ivig interview, {datetime.date.today().isoformat()}"
            f"{'' if finished else ' (stopped before the end)'}; unknown fields are left out.\n"
            + yaml.safe_dump(case, sort_keys=False, allow_unicode=True))


__all__ = ["AnswerError", "Interview", "NO", "Reason", "ResumeError", "YES", "case_text", "check_save", "outcome_key",
           "pick_case", "resume", "save_case", "save_paths"]
