"""A consultation in MYCIN's manner: ask only what the rules still need for
this patient, never twice, and say why a question is asked.

`Interview` holds the answers and decides the next question; it does no I/O,
so the terminal front end (engine.console) and the tests drive the same object. The
next question is found by re-running the engine on the answers so far: the
unknown fields that undecided rules test (analysis.undecided_rules) are the
candidates, and a candidate is asked only if some value of it would change
the answer (stance, regimen, dose or warnings). Safety questions therefore
come only when IVIG is on the table, and weight only when a dose will be
given. Among the candidates, the one asked first is the one whose answer can
still change the most serious part of the advice (see SERIOUSNESS), then the
one that decides the most rules, as MYCIN pursued its goals.

The interview's files are here too, without the terminal: the answers a
`--resume` file gives (`resume`), and where and how a case and its result
are saved (`save_paths`, `check_save`, `save_case`). The terminal is
engine.console.
"""

import datetime
import errno
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import yaml

from ..base.atomic import writable_target, write_text_atomic
from ..base.errors import AnswerInvalid, CaseInvalid, ResumeError
from ..core import conditions, words
from ..core.advisor import Advisor
from ..core.analysis import domains
from ..core.result import Result, Run
from ..core.rulebase import STANCE, RuleSpec
from ..core.schema import FieldSpec, read_value
from ..io.cases import pick_case, read_cases

# Answers to the console's own yes/no prompts (save the case?). A field's yes or
# no is read by the schema (read_value), as in files, where 1 and 0 are not booleans.
YES = {"y", "yes", "true", "t", "1", "si", "oui", "ja", "positive", "present"}
NO = {"n", "no", "false", "f", "0", "non", "nein", "negative", "absent", "none"}
COMMANDS = {
    "why": "why",
    "?": "why",
    "unknown": "unknown",
    "u": "unknown",
    "skip": "unknown",
    "back": "back",
    "b": "back",
    "help": "help",
    "h": "help",
    "quit": "quit",
    "q": "quit",
    "exit": "quit",
    "how": "how",
}


@dataclass
class Reason:
    """Why a field is asked: a rule still waiting on it, and what it would conclude."""

    rule: str
    sentence: str
    cite: str


# The parts of the advice, the top goals of the consultation (what `why` climbs to).
GOALS = ("stance", "dose", "warnings")

# What an answer can change, most serious first: the order in which questions are asked
# (Interview.rank). A warning about this patient (critical, then warning) comes before the
# stance: the harm the clinician must not miss is to this patient, and a question that can
# still raise one (steroids planned in MMN) must not wait behind questions that only refine
# the advice. Within each, an answer that gives or takes away the warning itself comes before
# one that only rules it in or out for a later question (IgA deficiency, before anti-IgA
# antibodies decide). The stance comes next: between two stances that both keep IVIG on the
# table it says how strongly the review supports it. A stance that takes IVIG off the table
# (MS with established weakness) also puts off every adverse-event question, so it is ranked
# with the warnings it puts off, and as it decides the most rules it is asked before them:
# no safety question is asked of a patient whom the next answer takes off IVIG. The dose
# only turns g/kg into grams or picks the regimen; advice graded info, and what applies to
# every infusion, come last.
SERIOUSNESS = ("critical", "warning", "stance", "dose", "info")


@dataclass
class Step:
    """One answer to `why`, one level up MYCIN's goal tree.

    `needs`: what this step explains (the field asked, then the derived facts
    it feeds); `reasons`: the rules waiting on it; `goals`: the parts of the
    advice (GOALS) those rules decide themselves; `tested`: False when no
    rule tests the field and the answer is used by a rule's conclusion (the
    weight turns a dose rule's g/kg into grams).
    """

    needs: List[str]
    reasons: List[Reason]
    goals: List[str]
    tested: bool = True


def outcome_key(result: Result) -> tuple:
    """What the clinician is told: stance and its rule, the regimen and dose, the warnings."""
    if not result.ok:
        return ("error", result.error["message"])
    dose = tuple(sorted((result.dose or {}).items()))
    return (
        result.ivig["stance"],
        result.ivig["rule"],
        dose,
        tuple(sorted((w["code"], w["severity"]) for w in result.warnings)),
    )


class Interview:
    """The answers of one consultation and the choice of the next question."""

    def __init__(self, advisor: Advisor, answers: Optional[Dict[str, object]] = None):
        self.advisor = advisor
        self.schema = advisor.rulebase.schema
        self.answers: Dict[str, object] = dict(answers or {})
        self.unknown: List[str] = []  # fields the clinician chose to leave unknown
        self.history: List[Tuple[str, object]] = []  # (field, previous state) for `back`
        self.space = domains(advisor.rulebase)

    # -- state --------------------------------------------------------------

    def case(self) -> dict:
        """The answers as a case mapping, in schema order (the case-file contract)."""
        return {name: self.answers[name] for name in self.schema.fields if name in self.answers}

    def run(self, answers: Optional[dict] = None) -> Run:
        """The run of the rules over the answers (or over other answers)."""
        data = self.case() if answers is None else answers
        return self.advisor.run(self.advisor.validate(data))

    def result(self) -> Result:
        return self.run().result

    # -- the next question --------------------------------------------------

    def next_question(self) -> Optional[FieldSpec]:
        """The field whose answer could still change the result, or None when done.

        Of the fields some value of which would change the advice, the one
        whose answer can change its most serious part (SERIOUSNESS) comes
        first, then the one that decides the most rules, then schema order.
        """
        if "diagnosis" not in self.answers:
            return self.schema.fields["diagnosis"]
        run = self.run()
        ranked = []
        for order, name in enumerate(run.result.missing):
            if name in self.unknown or name in self.answers:
                continue
            rank = self.rank(name, run)
            if rank is not None:
                ranked.append((rank, order, name))
        return self.schema.fields[min(ranked)[2]] if ranked else None

    def rank(self, name: str, run: Run) -> Optional[tuple]:
        """How soon to ask the field, or None when no value of it, the other answers kept,
        changes what the clinician is told: (the most serious part of the advice some answer
        can still change, an index of SERIOUSNESS; 0 when an answer changes it itself, 1 when
        only for a later question; minus the number of rules its answers decide)."""
        current, now = outcome_key(run.result), _Outlook(run)
        changes, serious, decided = False, (len(SERIOUSNESS), 0), set()
        for run_with_it in self._trials(name):
            other = _Outlook(run_with_it)
            changes = changes or other.key != current
            serious = min(serious, now.seriousness(other))
            decided |= now.decided(other)
        return (*serious, -len(decided)) if changes else None

    def impact(self, name: str, result: Result) -> Optional[int]:
        """What some value of the field, the other answers kept, would change:
        0 the stance, 1 the regimen or dose, 2 the warnings; None: nothing."""
        ranks = [rank for rank, _ in self._changes(name, result)]
        return min(ranks) if ranks else None

    def _trials(self, name: str):
        """The run for each value the field can take, the other answers kept (values the
        other answers rule out by a constraint are left out)."""
        for value in self.candidates(name):
            trial = dict(self.case(), **{name: words.plain(value)})
            try:
                yield self.run(trial)
            except CaseInvalid:
                continue

    def _changes(self, name: str, result: Result):
        """(rank as in `impact`, the other result) for each value of the field that changes the result."""
        current = outcome_key(result)
        for run in self._trials(name):
            rank = _rank(current, outcome_key(run.result))
            if rank is not None:
                yield rank, run.result

    def candidates(self, name: str) -> list:
        values = [v for v in self.space.get(name, []) if v is not None]
        if not values:  # no rule tests it, but the result uses it (weight: g/kg into grams)
            spec = self.schema.fields[name]
            values = [spec.min if spec.min is not None else spec.max if spec.max is not None else 1]
        return values

    def still_open(self, result: Result) -> List[str]:
        """The missing fields of a result that could still change it: what the
        clinician left unknown, not what the interview chose not to ask."""
        return [name for name in result.missing if self.impact(name, result) is not None]

    # -- answers ------------------------------------------------------------

    def parse(self, spec: FieldSpec, text: str):
        """The typed value of an answer, or AnswerInvalid saying what would fit."""
        text = text.strip()
        if spec.type == "boolean":  # the schema's reader, as files and CSV cells are read: never 1 or 0
            try:
                return read_value(spec, text).value
            except ValueError:
                raise AnswerInvalid(
                    "answer yes or no (y/n)" + did_you_mean(text, {"yes": ["yes"], "no": ["no"]})
                ) from None
        if spec.type == "enum":
            return self._choice(spec, text)
        if spec.type == "list":
            if text.lower() in ("none", "no", "nothing", "-"):
                return []
            return sorted({self._choice(spec, part) for part in text.replace(";", ",").split(",") if part.strip()})
        if spec.type in ("integer", "number"):
            if re.fullmatch(r"\s*[-+]?\d+,\d+.*", text):  # '70,5' is 70.5 to some and 705 to others
                raise AnswerInvalid(
                    f"write decimals with a point ({text.replace(',', '.', 1)}), "
                    f"as case files do{self.range_text(spec)}"
                )
            try:
                return read_value(spec, text).value
            except ValueError as exc:
                raise AnswerInvalid(f"answer a number{self.range_text(spec)}: {exc}") from None
        return text

    def _choice(self, spec: FieldSpec, text: str):
        text = text.strip()
        values = list(spec.values)
        if text.isdigit() and 1 <= int(text) <= len(values):
            return values[int(text) - 1]
        exact = spec.alias_of(text)
        if exact is not None:
            return exact
        starts = [
            v
            for v in values
            if text
            and any(
                n.lower().startswith(text.lower()) or n.startswith(text.lower().replace(" ", "_"))
                for n in choice_names(spec, v)
            )
        ]
        if len(starts) == 1:
            return starts[0]
        if starts:  # in the list's order, each once ('m' is ALS by two of its aliases)
            raise AnswerInvalid(f"'{text}' could be {', '.join(starts)}: type more letters or the number")
        hint = did_you_mean(text, {v: choice_names(spec, v) for v in values}, spec.label)
        how = f"choose a number from the list, or a name (e.g. {values[0]})"
        raise AnswerInvalid(
            f"'{text}' is not one of the choices" + (f"{hint} {how[0].upper()}{how[1:]}" if hint else f": {how}")
        )

    @staticmethod
    def choices(spec: FieldSpec) -> List[str]:
        """What an answer to the question may be typed as, for completion: the
        values and their aliases (enum and list), yes/no (boolean), each once."""
        if spec.type == "boolean":
            return ["yes", "no"]
        return list(dict.fromkeys(n for v in spec.values for n in [v, *spec.values[v].get("aliases", [])]))

    def give(self, name: str, value) -> None:
        """Record an answer; raises AnswerInvalid when the case it makes is invalid."""
        trial = dict(self.case(), **{name: value})
        try:
            self.advisor.validate(trial)
        except CaseInvalid as exc:
            raise AnswerInvalid("; ".join(e.message for e in exc.errors)) from None
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
        """Every rule behind the question, from the rules that test the field up
        to those that decide the advice (the steps of `why_chain`, flattened)."""
        return [reason for step in self.why_chain(name) for reason in step.reasons]

    def why_chain(self, name: str) -> List[Step]:
        """Why the field is asked, one Step per `why`, as MYCIN climbed its goal tree.

        The first step is the undecided rules that test the field; each next
        step the undecided rules that test what the rules before derive, until
        the rules decide the advice itself (the stance is not followed: every
        rule after it would be listed). A field no rule tests is asked for what
        it changes in a conclusion (the weight: a dose rule's grams).
        """
        spec = self.schema.fields[name]
        if spec.required:  # every rule tests it: the first step would be the whole rule base
            return [
                Step(
                    [name],
                    [
                        Reason(
                            "all",
                            f"Every rule starts from the {name.replace('_', ' ')}: it decides "
                            "which of the review's recommendations apply.",
                            "",
                        )
                    ],
                    list(GOALS),
                )
            ]
        run = self.run()
        steps, wanted, seen = [], [name], set()
        while wanted:
            found = [
                r
                for r in run.undecided
                if r.id not in seen and set(wanted) & {t.name for t in conditions.tests(r.when)}
            ]
            if not found:
                break
            seen.update(r.id for r in found)
            steps.append(Step(wanted, [self._reason(r) for r in found], _goals(found)))
            wanted = list(dict.fromkeys(n for r in found for n in r.derives if n != STANCE))
        return steps or self._used_by_conclusions(name, run.result)

    def _used_by_conclusions(self, name: str, result: Result) -> List[Step]:
        """The step for a field no undecided rule tests: the rules whose conclusions its value changes."""
        by_id = self.advisor.rulebase.by_id
        rules: Dict[str, RuleSpec] = {}
        for rank, other in self._changes(name, result):
            for rule_id in _rules_behind(rank, (result, other)):
                if rule_id in by_id:
                    rules.setdefault(rule_id, by_id[rule_id])
        found = list(rules.values())
        return [Step([name], [self._reason(r) for r in found], _goals(found), tested=False)] if found else []

    def _reason(self, rule: RuleSpec) -> Reason:
        return Reason(rule.id, words.sentence(self.advisor.rulebase, rule), words.basis_and_refs(rule))

    @staticmethod
    def range_text(spec: FieldSpec) -> str:
        parts = []
        if spec.min is not None or spec.max is not None:
            parts.append(
                f"{spec.min:g} to {spec.max:g}"
                if spec.min is not None and spec.max is not None
                else f"at least {spec.min:g}"
                if spec.min is not None
                else f"at most {spec.max:g}"
            )
        if spec.unit:
            parts.append(spec.unit)
        return f" ({', '.join(parts)})" if parts else ""


class _Outlook:
    """What a run says and can still say: the state of each warning about this patient (see
    `_warning_states`), the stance, the dose and the rest of the advice (outcome_key), and the
    state of each rule (fired, undecided, or neither)."""

    def __init__(self, run: Run):
        self.key = outcome_key(run.result)
        self.warnings = _warning_states(run)
        self.rules = dict({r.id: "open" for r in run.undecided}, **dict.fromkeys(run.fired, "fired"))

    def seriousness(self, other: "_Outlook") -> Tuple[int, int]:
        """The most serious part of the advice that differs from `other`'s: (an index of
        SERIOUSNESS, 0 when it differs now, 1 when a warning is only ruled in or out for a
        later question: given in neither)."""
        parts = set()
        for code, severity in self.warnings.keys() | other.warnings.keys():
            mine, theirs = self.warnings.get((code, severity)), other.warnings.get((code, severity))
            if mine != theirs:
                parts.add((SERIOUSNESS.index(severity), int("given" not in (mine, theirs))))
        if self.key[:2] != other.key[:2]:
            parts.add((SERIOUSNESS.index("stance"), 0))
        if self.key[2] != other.key[2]:
            parts.add((SERIOUSNESS.index("dose"), 0))
        if self.key != other.key:
            parts.add((SERIOUSNESS.index("info"), 0))
        return min(parts, default=(len(SERIOUSNESS), 0))

    def decided(self, other: "_Outlook") -> set:
        """The rules whose state (fired, undecided, out) differs from `other`'s."""
        return {
            rule for rule in self.rules.keys() | other.rules.keys() if self.rules.get(rule) != other.rules.get(rule)
        }


def _warning_states(run: Run) -> Dict[Tuple[str, str], str]:
    """Each warning about this patient, (code, severity) -> 'given'; 'asked' (a rule not yet
    decided would give it, and tests a question the interview asks now); or 'waiting' (its
    rule's questions wait on something else first, as the safety questions of a patient who
    may not receive IVIG wait on whether IVIG is planned). What applies to every infusion is
    left out: it is no finding about the patient.

    So an answer that rules a critical warning out (no IgA deficiency) changes it as much as
    one that raises it, and so does one that puts off the questions that could raise it (a
    stance that takes IVIG off the table)."""
    asked_now = set(run.result.missing)
    states: Dict[Tuple[str, str], str] = {}
    for rule in run.undecided:
        tested = {test.name for test in conditions.tests(rule.when)}
        for w in rule.warnings:
            if w.get("applies", "patient") == "patient" and states.get((w["code"], w["severity"])) != "asked":
                states[(w["code"], w["severity"])] = "asked" if tested & asked_now else "waiting"
    states.update(
        {(w["code"], w["severity"]): "given" for w in run.result.warnings if w.get("applies", "patient") == "patient"}
    )
    return states


def _rank(current: tuple, other: tuple) -> Optional[int]:
    """Which part of the advice differs between two outcome keys: 0 the stance, 1 the dose, 2 the warnings."""
    if other[:2] != current[:2]:
        return 0
    if other[2] != current[2]:
        return 1
    if other[3] != current[3]:
        return 2
    return None


def _rules_behind(rank: int, results) -> List[str]:
    """The rules that give the part of the advice (by rank) that differs between two results."""
    ok = [r for r in results if r.ok]
    if rank == 0:
        return [r.ivig["rule"] for r in ok]
    if rank == 1:
        return [r.dose["rule"] for r in ok if r.dose]
    given = [_warned_by(r) for r in ok]
    return sorted({rule for _, rule in set.union(*given) - set.intersection(*given)})


def _warned_by(result: Result) -> set:
    """(code, rule) of each warning, those gathered among the general precautions too."""
    return {
        (w["code"], w["rule"])
        for entry in result.warnings
        for w in entry.get("items", [entry])
        if w["rule"] is not None
    }


_GOAL_ACTIONS = {"stance": "recommend", "dose": "dose", "warnings": "warn"}  # the action that decides each


def _goals(rules: List[RuleSpec]) -> List[str]:
    """The parts of the advice (GOALS) these rules conclude themselves."""
    return [goal for goal in GOALS if any(_GOAL_ACTIONS[goal] in r.then for r in rules)]


def choice_names(spec: FieldSpec, value: str) -> List[str]:
    """The names a value of an enum or list answers to: the value, its label, its aliases."""
    item = spec.values[value]
    return [value, item.get("label", value), *item.get("aliases", [])]


_UNSET = object()
_SKIPPED = object()


# -- a typo ---------------------------------------------------------------------


def edit_distance(a: str, b: str) -> int:
    """The edits that turn `a` into `b`: a character inserted, deleted or replaced, or two
    neighbours swapped, each one edit (Damerau-Levenshtein, optimal string alignment).
    A swap must count one: 'mnm' is one edit from 'mmn' as from 'mnd'."""
    before, row = None, list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            cost = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (x != y))
            if before is not None and i > 1 and j > 1 and x == b[j - 2] and a[i - 2] == y:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        before, row = row, current
    return row[-1]


def nearest(text: str, names: Dict[object, List[str]]) -> List[Tuple[object, str]]:
    """The choices a mistyped answer is nearest to, each (choice, its nearest name), in the
    order given: every choice at the least distance, so that two equally near are both named
    and neither is taken for the other. From three letters on, a name is also matched by its
    first letters, as an answer may be (a prefix: 'guillian'). Nothing when the nearest is
    more than a third of the answer's length away (one edit for a short answer), or as far
    as the answer is long (nothing of it was right)."""
    typed = text.strip().lower()
    best = {
        choice: min(((_distance(typed, n.lower()), n) for n in its_names), key=lambda item: item[0])
        for choice, its_names in names.items()
    }
    least = min((distance for distance, _ in best.values()), default=0)
    if not typed or least >= len(typed) or least > max(1, len(typed) // 3):
        return []
    return [(choice, name) for choice, (distance, name) in best.items() if distance == least]


def _distance(typed: str, name: str) -> int:
    """The edits from an answer to a name, or to the name's first letters (from three typed on)."""
    whole = edit_distance(typed, name)
    return min(whole, edit_distance(typed, name[: len(typed)])) if len(typed) >= 3 else whole


def did_you_mean(text: str, names: Dict[object, List[str]], label=None) -> str:
    """ "; did you mean 'mmn' (Multifocal motor neuropathy) or 'mnd' (Amyotrophic lateral
    sclerosis)?": the nearest choices (see `nearest`), each with its full label (`label`:
    choice -> label) where the name is not the label itself; '' when none is near."""
    found = nearest(text, names)
    if not found:
        return ""
    said = [
        f"'{name}'" + (f" ({label(choice)})" if label and label(choice).lower() != name.lower() else "")
        for choice, name in found
    ]
    return f"; did you mean {said[0] if len(said) == 1 else ', '.join(said[:-1]) + ' or ' + said[-1]}?"


# -- the interview's files ------------------------------------------------------

SAVE_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl"}


def resume(advisor: Advisor, path, wanted: Optional[str] = None) -> Tuple[Dict[str, object], Optional[str]]:
    """The answers of the case to resume from a case file, and its own id (None when
    the case has none: the file's name is no patient's id).

    Raises errors.CaseChoice when the file does not give exactly one case
    (io.cases.pick_case), CaseInvalid when that case cannot be read or validated,
    or when the cases to choose among all have errors (two Patients with one id:
    their errors, not a choice, are the reason).
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
    targets = list(save_paths(path)[: 2 if with_result else 1])
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
    return (
        f"# Case from ivig interview, {datetime.date.today().isoformat()}"
        f"{'' if finished else ' (stopped before the end)'}; unknown fields are left out.\n"
        + yaml.safe_dump(case, sort_keys=False, allow_unicode=True)
    )


__all__ = [
    "AnswerInvalid",
    "GOALS",
    "Interview",
    "NO",
    "Reason",
    "ResumeError",
    "SERIOUSNESS",
    "Step",
    "YES",
    "case_text",
    "check_save",
    "choice_names",
    "did_you_mean",
    "edit_distance",
    "nearest",
    "outcome_key",
    "pick_case",
    "resume",
    "save_case",
    "save_paths",
]
