"""What a clinical reviewer asks of a rule base, as data: each rule in plain
language with its provenance, how rules feed each other, the static check,
coverage over a case corpus, why a rule did not fire, and what changes between
two rule bases. Renderers (audit.text, audit.report) turn these into
text, Markdown, JSON and HTML.
"""

from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

from ..base.errors import (
    CaseInvalid,
    RuleBaseInvalid,
    SignOffInvalid,
    SourceError,
    UnknownDiagnosis,
    UnknownRule,
    UnknownStage,
)
from ..base.yamlsrc import load_one
from ..batch.pipeline import evaluate_record, evaluate_records
from ..core import conditions
from ..core.advisor import Advisor
from ..core.analysis import domains, fields_behind, live_rules
from ..core.contract import RESULT_DOSE_KEYS
from ..core.result import Result
from ..core.rulebase import DOSE_KEYS, STANCE, RuleBase, RuleSpec, unlisted_files
from ..core.words import citation, condition_text, dose_line, sentence, suggest, value_label
from ..io.cases import pick_case, read_cases
from ..io.record import CaseRecord
from .check import Finding, Verification, verify
from .evidence import check_evidence
from .rulediff import RuleChange, rule_changes
from .signoff import LOG_NAME, STAGES, ReviewLog, signoff_hash, unsigned
from .wording import wording_findings


def rule_record(rulebase: RuleBase, rule: RuleSpec, log: Optional[ReviewLog] = None) -> dict:
    """One rule as a stable JSON object for `audit rules --format json`."""
    record = {
        "id": rule.id,
        "title": rule.title,
        "topic": rule.topic,
        "layer": rule.layer,
        "plain": sentence(rulebase, rule),
        "basis": rule.basis,
        "rationale": rule.rationale or None,
        "citation": citation(rule),
        "flags": list(rule.flags),
        "changes": list(rule.changes),
        "lifecycle": (log.state(rule) if log is not None else unsigned(rule)).stage,
        "maintenance": rulebase.maintenance.get(rule.topic, {}),
        "file": rule.file,
        "line": rule.line,
        "hash": signoff_hash(rulebase, rule),
    }
    if log is not None:
        signoff = log.state(rule)
        record["signoff"] = {"state": signoff.state, **(signoff.entry or {})}
    return record


# -- which rules are which --------------------------------------------------


def diagnosis_value(rulebase: RuleBase, text: str) -> str:
    """The diagnosis a reviewer named ('mg', 'MMN', 'myasthenia_gravis'); UnknownDiagnosis if none."""
    spec = rulebase.schema.fields["diagnosis"]
    value = spec.alias_of(text)
    if value is None:
        raise UnknownDiagnosis(f"no diagnosis '{text}' (diagnoses: {', '.join(spec.values)})", text)
    return value


def regimens(rulebase: RuleBase) -> List[dict]:
    """The review's regimens as one table: a row per regimen of rules/regimens.yaml,
    with the rules that name it, then a row per dose written inside a rule."""
    table = rulebase.extras.get("regimens") or {}
    named: Dict[str, List[str]] = {}
    rows = []
    for rule in rulebase.rules:
        written = (rule.raw.get("then") or {}).get("dose")
        if isinstance(written, str):
            named.setdefault(written, []).append(rule.id)
        elif "dose" in rule.then:
            rows.append(dict(_regimen_row(rulebase, None, rule.then["dose"], None, None), rules=[rule.id]))
    return [
        dict(_regimen_row(rulebase, name, row, row.get("diagnosis"), row.get("situation")), rules=ids)
        for name, row in table.items()
        for ids in [named.get(name, [])]
    ] + rows


def _regimen_row(rulebase: RuleBase, name, dose: dict, diagnosis, situation) -> dict:
    return {
        "regimen": name,
        "diagnosis": diagnosis,
        "diagnosis_label": value_label(rulebase, "diagnosis", diagnosis) if diagnosis else None,
        "situation": " ".join(str(situation).split()) if situation else None,
        "dose": dose_line(dose),
        **{k: dose.get(k) for k in DOSE_KEYS},
    }


def rule_named(rulebase: RuleBase, rule_id: str) -> RuleSpec:
    """The rule with this id; UnknownRule, suggesting the nearest id, if none."""
    if rule_id not in rulebase.by_id:
        raise UnknownRule(f"no rule '{rule_id}'{suggest(rule_id, rulebase.by_id)}", rule_id)
    return rulebase.by_id[rule_id]


def rules_for(
    rulebase: RuleBase,
    diagnosis: Optional[str] = None,
    basis: Optional[str] = None,
    stage: Optional[str] = None,
    log: Optional[ReviewLog] = None,
) -> List[RuleSpec]:
    """The rules that can fire for a diagnosis (shared safety rules included), filtered
    by basis and by lifecycle stage (signoff.STAGES; read from `log`, else the rule base's own)."""
    if stage is not None and stage not in STAGES:
        raise UnknownStage(f"no stage '{stage}'{suggest(stage, STAGES)} (stages: {', '.join(STAGES)})", stage)
    if stage is not None and log is None:
        log = ReviewLog.load(rulebase)
    out = []
    for rule in rulebase.rules if diagnosis is None else live_rules(rulebase, diagnosis):
        if basis is not None and rule.basis != basis:
            continue
        if stage is not None and log.state(rule).stage != stage:
            continue
        out.append(rule)
    return out


def _diagnoses(rulebase: RuleBase) -> Dict[str, set]:
    """rule id -> the diagnoses for which it can fire (analysis.live_rules)."""
    diagnoses: Dict[str, set] = {r.id: set() for r in rulebase.rules}
    for value in rulebase.schema.fields["diagnosis"].values:
        for rule in live_rules(rulebase, value):
            diagnoses[rule.id].add(value)
    return diagnoses


def feeds(rulebase: RuleBase) -> Dict[str, List[str]]:
    """rule id -> the rules that test a fact it derives (the dependency graph's edges).

    An edge needs the value to pass the test (stance = first-line feeds a
    rule testing for first-line, not one testing for not-effective) and a
    diagnosis for which both rules can fire (MMN's stance does not feed the
    GBS dose).
    """
    diagnoses = _diagnoses(rulebase)

    def passes(test, value):
        return test.op == "known" and test.operand or test.op != "known" and test.holds(value)

    out = {}
    for rule in rulebase.rules:
        targets = [
            other
            for other in rulebase.rules
            if other is not rule
            and diagnoses[rule.id] & diagnoses[other.id]
            and any(t.name in rule.derives and passes(t, rule.derives[t.name]) for t in conditions.tests(other.when))
        ]
        out[rule.id] = [t.id for t in targets]
    return out


def fed_by(edges: Dict[str, List[str]]) -> Dict[str, List[str]]:
    """The other direction of `feeds(...)` (or of `preempts(...)`): rule id -> the rules
    whose edges reach it."""
    out: Dict[str, List[str]] = {rule_id: [] for rule_id in edges}
    for source, targets in edges.items():
        for target in targets:
            out[target].append(source)
    return out


def preempts(rulebase: RuleBase) -> Dict[str, List[str]]:
    """rule id -> the rules it pre-empts: a stance set by one layer is final, so a rule
    that sets a stance keeps every rule of a later stance-setting layer from firing
    (whatever that rule concludes), for a diagnosis for which both can fire.

    The edges say what can happen, not what does for every patient: two rules
    whose conditions exclude each other (walks unaided, does not) still share
    an edge. Rules of one layer never pre-empt each other (a conflict inside a
    layer shows in the result).
    """
    diagnoses = _diagnoses(rulebase)
    out = {}
    for rule in rulebase.rules:
        layer = rulebase.layer(rule.layer)
        if not layer.sets_stance or STANCE not in rule.derives:
            out[rule.id] = []
            continue
        out[rule.id] = [
            other.id
            for other in rulebase.rules
            if rulebase.layer(other.layer).sets_stance
            and rulebase.layer(other.layer).index > layer.index
            and diagnoses[rule.id] & diagnoses[other.id]
        ]
    return out


preempted_by = fed_by  # the other direction of `preempts(...)`


def review_flags(rulebase: RuleBase, rule: RuleSpec) -> Dict[str, str]:
    """field -> the schema's review flag (the source's wording is uncertain), for each
    flagged case field the rule tests."""
    fields = rulebase.schema.fields
    return {
        t.name: " ".join(str(fields[t.name].review_flag).split())
        for t in conditions.tests(rule.when)
        if t.name in fields and fields[t.name].review_flag
    }


@dataclass
class RuleView:
    """`audit show`: one rule with its links to the others (what it feeds and is fed
    by, what it pre-empts and is pre-empted by), the review flags of the fields it
    tests, and the corpus cases that fire it (None: no corpus found)."""

    rulebase: RuleBase
    rule: RuleSpec
    log: ReviewLog
    feeds: List[str]
    fed_by: List[str]
    preempts: List[str]
    preempted_by: List[str]
    review_flags: Dict[str, str]
    cases: Optional[List[str]]

    @classmethod
    def of(cls, advisor: Advisor, rule_id: str, case_paths: Optional[List[str]] = None) -> "RuleView":
        """The view of one rule; UnknownRule before any work. The corpus defaults to the
        checkout's golden cases and examples (`default_corpus`)."""
        rulebase = advisor.rulebase
        rule = rule_named(rulebase, rule_id)
        paths = case_paths or default_corpus(rulebase)
        cases = (
            [r.id for r in run_corpus(advisor, paths) if r.ok and any(t["rule"] == rule_id for t in r.trace)]
            if paths
            else None
        )
        edges, over = feeds(rulebase), preempts(rulebase)
        return cls(
            rulebase,
            rule,
            ReviewLog.load(rulebase),
            edges[rule_id],
            fed_by(edges)[rule_id],
            over[rule_id],
            preempted_by(over)[rule_id],
            review_flags(rulebase, rule),
            cases,
        )

    def to_dict(self) -> dict:
        """`audit show --format json`: the rule's record (`rule_record`) and its links."""
        return dict(
            rule_record(self.rulebase, self.rule, self.log),
            feeds=self.feeds,
            fed_by=self.fed_by,
            preempts=self.preempts,
            preempted_by=self.preempted_by,
            review_flags=self.review_flags,
            cases=self.cases,
        )


# -- the static check -------------------------------------------------------


@dataclass
class CheckReport:
    """`audit check`: load errors or the verification, and where sign-off stands (of the rules,
    and of the later-evidence entries); `notes` are what a reviewer should look at that does not
    fail the check (a source to read again), findings under --strict."""

    findings: List[Finding]
    verification: Optional[Verification] = None
    signoff: Dict[str, int] = field(default_factory=dict)
    rulebase: Optional[RuleBase] = None
    notes: List[Finding] = field(default_factory=list)
    evidence_signoff: Dict[str, int] = field(default_factory=dict)
    impact: Optional[Any] = None  # with --against: what the edit changes for patients (impact.Impact)
    acknowledged: List[Finding] = field(default_factory=list)  # with --against: regressions a reviewer accepted
    against: Optional[str] = None  # the rule base named by --against

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict:
        """`audit check --format json`."""
        v = self.verification
        return {
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
            "notes": [f.to_dict() for f in self.notes],
            "combinations": v.combinations if v else None,
            "excluded": v.excluded if v else None,
            "states": v.states if v else None,
            "signoff": self.signoff,
            "evidence_signoff": self.evidence_signoff,
            "per_diagnosis": [
                {k: getattr(c, k) for k in ("diagnosis", "fields", "combinations", "excluded", "states")}
                for c in v.coverage
            ]
            if v
            else [],
            "against": None
            if self.impact is None
            else dict(self.impact.to_dict(), base=self.against, acknowledged=[f.to_dict() for f in self.acknowledged]),
        }


def check(directory=None, strict: bool = False, against: Optional[str] = None) -> CheckReport:
    """Load a rule base and verify it; every problem is a Finding with file:line.

    Load errors (schema, unknown names, duplicate ids, missing provenance) stop
    before the exhaustive walk, which needs a rule base that loads. `strict`
    also counts missing, stale and needs-change sign-offs as findings.
    """
    try:
        rulebase = RuleBase.load(directory)
    except RuleBaseInvalid as exc:
        root = Path(directory) if directory is not None else Path(str(resources.files("ivig_advisor") / "rules"))
        try:
            manifest = load_one((root / "rulebase.yaml").read_text(encoding="utf-8"), "rulebase.yaml")
        except (OSError, SourceError):
            manifest = {}
        return CheckReport(
            [Finding(e.kind, e.message + (f" [{e.field}]" if e.field else ""), e.source, e.line) for e in exc.errors]
            + unlisted(root, str(directory or "rules"), manifest)
        )
    report = check_rulebase(rulebase, strict)
    if against is not None:
        regressions_against(report, rulebase, against)
    return report


def regressions_against(report: CheckReport, rulebase: RuleBase, against: str):
    """`check --against`: the safety regressions of this rule base against the one named
    (audit/impact.py) go first among the findings, until acknowledged in the review log; the
    acknowledged ones are listed apart, with who accepted them and why."""
    from .against import load_base
    from .impact import impact, regression_findings

    base = load_base(against, rulebase)
    report.impact = impact(Advisor(base), Advisor(rulebase))
    log = ReviewLog.load(rulebase)
    findings, notes = regression_findings(report.impact, rulebase, against, log.acknowledged)
    report.findings[:0] = findings
    report.acknowledged, report.against = notes, against


def regressions(rulebase: RuleBase, against: str, ids: Iterable[str]) -> Dict[str, str]:
    """The safety regressions named by `ids` that this rule base has against `against`, id -> the
    change in words (for the review log); an id that is not one of them is refused, naming those
    that are (SignOffInvalid), so that a typo acknowledges nothing."""
    from .against import load_base
    from .impact import impact

    found = {c.id: c for c in impact(Advisor(load_base(against, rulebase)), Advisor(rulebase)).regressions}
    unknown = [i for i in ids if i not in found]
    if unknown:
        known = ", ".join(found) or "none"
        raise SignOffInvalid(
            f"no safety regression {', '.join(unknown)} against {against} (those there are: {known}); "
            "nothing was recorded",
            "--acknowledge",
        )
    return {i: f"{found[i].describe()} ({', '.join(found[i].diagnoses)})" for i in dict.fromkeys(ids)}


def unlisted(root, label: str, manifest) -> List[Finding]:
    """A finding for each YAML file below the rule directory, at any depth and with any case of
    extension, that the manifest does not name (rulebase.unlisted_files).

    The loader reads only what rulebase.yaml lists: a reviewer who drops a
    rule file in beside the others must not think its rules are live.
    """
    return [
        Finding(
            "unlisted",
            f"{name} is in the rule directory but not listed in rulebase.yaml "
            "(rule_files or data_files): its rules are not loaded",
            f"{label}/{name}",
            1,
        )
        for name in unlisted_files(root, manifest, ("rulebase.yaml", LOG_NAME))
    ]


def check_rulebase(rulebase: RuleBase, strict: bool = False) -> CheckReport:
    """`check` for a rule base already loaded, and its later evidence (audit.evidence)."""
    result = verify(rulebase)
    log = ReviewLog.load(rulebase)
    findings = list(result.findings)
    findings += [Finding("review-log", e.message, e.source, e.line, e.field) for e in log.errors]
    findings += unlisted(rulebase.root, rulebase.label, rulebase.manifest)
    findings += wording_findings(rulebase)
    later, notes = check_evidence(rulebase, result)
    findings += later
    if strict:
        findings += notes + unapproved(rulebase, log)
        notes = []
    entries = rulebase.later.entries
    return CheckReport(findings, result, log.counts(), rulebase, notes, log.counts(entries) if entries else {})


def unapproved(rulebase: RuleBase, log: ReviewLog) -> List[Finding]:
    """--strict: a finding for each rule, and each live later-evidence entry, without a current
    'approved' sign-off (a retired entry is shown to no one, so asks for none)."""
    signed = [("rule", rule) for rule in rulebase.rules] + [("later evidence", e) for e in rulebase.later.live()]
    out = []
    for kind, item in signed:
        signoff = log.state(item)
        if signoff.stage != "approved":
            out.append(Finding("sign-off", f"{kind} {item.id}: {signoff.describe()}", item.file, item.line, item.id))
    return out


# -- case corpora -----------------------------------------------------------


def read_corpus(
    paths: Iterable[str], stdin=None, notes: Optional[Callable[[str], None]] = None
) -> Iterator[CaseRecord]:
    """Case records from case files; golden files ({name, case, expect} items) give their cases.
    `notes`: told what the walk of a folder leaves out (io.cases.read_cases)."""
    for record in read_cases(paths, stdin=stdin, notes=notes):
        data = record.data
        if isinstance(data, dict) and "case" in data and set(data) <= {"name", "case", "expect"}:
            record = CaseRecord(
                data["case"], record.source, record.line, str(data.get("name") or record.default_id), record.error
            )
        yield record


def default_corpus(rulebase: RuleBase) -> List[str]:
    """The golden cases and examples of the checkout the rules live in, where present."""
    if rulebase.root is None:
        return []
    home = Path(str(rulebase.root)).parent
    return [str(p) for p in (home / "tests" / "cases", home / "examples") if p.is_dir()]


def run_corpus(
    advisor: Advisor, paths: Iterable[str], stdin=None, notes: Optional[Callable[[str], None]] = None
) -> Iterator[Result]:
    """One Result per case of a corpus, in order."""
    return evaluate_records(read_corpus(paths, stdin, notes), advisor)


def failed_case(result: Result) -> dict:
    """A case that could not be read or evaluated, as `audit coverage` and `audit diff` list it:
    its id, source, line and error, in the result contract's names."""
    return {"id": result.id, "source": result.source, "line": result.line, "error": result.error}


@dataclass
class CoverageReport:
    """How often each rule fired over a corpus; the cases that could not be read or
    evaluated are not counted, and are kept (`failed`) to be shown."""

    cases: int
    errors: int
    fired: Counter  # rule id -> cases in which it fired
    examples: Dict[str, List[str]]  # rule id -> the first few case ids
    rules: List[str] = field(default_factory=list)  # every rule id of the rule base, in order
    failed: List[Result] = field(default_factory=list)  # the error results, in order

    @property
    def ok(self) -> bool:
        """Whether every case was read and evaluated: a corpus with a case that was not
        must not pass for covered (`ivig audit coverage` exits 1)."""
        return not self.failed

    def never(self, rulebase: Optional[RuleBase] = None) -> List[str]:
        """The rules that fired in no case, in the rule base's order."""
        ids = [r.id for r in rulebase.rules] if rulebase is not None else self.rules
        return [rule_id for rule_id in ids if not self.fired[rule_id]]

    def to_dict(self) -> dict:
        """`audit coverage --format json`."""
        return {
            "cases": self.cases,
            "errors": self.errors,
            "failed": [failed_case(r) for r in self.failed],
            "rules": [{"id": r, "fired": self.fired[r], "cases": self.examples.get(r, [])} for r in self.rules],
            "never_fired": self.never(),
        }


def coverage(
    advisor: Advisor, paths: Iterable[str], stdin=None, keep: int = 5, notes: Optional[Callable[[str], None]] = None
) -> CoverageReport:
    """Run a corpus and count, per rule, the cases in which it fired."""
    report = CoverageReport(0, 0, Counter(), {}, [r.id for r in advisor.rulebase.rules])
    for result in run_corpus(advisor, paths, stdin, notes):
        report.cases += 1
        if not result.ok:
            report.errors += 1
            report.failed.append(result)
            continue
        for rule_id in dict.fromkeys(t["rule"] for t in result.trace):
            report.fired[rule_id] += 1
            examples = report.examples.setdefault(rule_id, [])
            if len(examples) < keep:
                examples.append(result.id)
    return report


# -- why not ----------------------------------------------------------------


@dataclass
class TestStatus:
    """One test of a rule's condition against a case: holds, fails, or unknown."""

    text: str
    verdict: Optional[bool]
    actual: str
    depth: int


@dataclass
class WhyNot:
    rule: RuleSpec
    case_id: str
    fired: bool
    tests: List[TestStatus]
    blocked_by: Optional[dict] = None  # the stance an earlier layer set
    fixes: List[Dict[str, object]] = field(default_factory=list)  # changes that make it fire
    result: Optional[Result] = None

    def to_dict(self) -> dict:
        """`audit why-not --format json`."""
        return {
            "id": self.case_id,
            "rule": self.rule.id,
            "fired": self.fired,
            "tests": [t.__dict__ for t in self.tests],
            "blocked_by": self.blocked_by,
            "would_fire_if": self.fixes,
        }


def why_not(
    advisor: Advisor, data: dict, rule_id: str, source=None, line=None, default_id=None, max_fixes: int = 5
) -> WhyNot:
    """Why a rule did not fire for a case, and the smallest changes of the case that make it fire.

    The condition is read test by test over the case and the facts the run
    derived; the changes are found by re-running the real engine with one
    field (then two) set to each value the rules distinguish.
    """
    rulebase = advisor.rulebase
    rule = rule_named(rulebase, rule_id)  # before any engine work
    case = advisor.validate(data, source, line, default_id)
    run = advisor.run(case)
    result, fired = run.result, rule_id in run.fired

    def lookup(name):
        if name in rulebase.schema.fields:
            return [case.facts[name]] if name in case.facts else []
        return run.derived.get(name, [])

    statuses: List[TestStatus] = []
    _walk_condition(rulebase, rule.when, lookup, statuses, 0)
    report = WhyNot(rule, case.id, fired, statuses, result=result)
    layer = rulebase.layer(rule.layer)
    if not fired and layer.sets_stance and result.ivig:
        setter = rulebase.by_id[result.ivig["rule"]]
        if rulebase.layer(setter.layer).index < layer.index:
            report.blocked_by = {"rule": setter.id, "stance": result.ivig["stance"], "layer": setter.layer}
    if not fired:
        report.fixes = _fixes(advisor, case.facts, rule, max_fixes)
    return report


def why_not_in(advisor: Advisor, path: str, rule_id: str, case_id: Optional[str] = None, stdin=None) -> WhyNot:
    """`why_not` for the case of a case file (golden files give their cases): the only
    one, or the one whose id is `case_id`.

    Raises UnknownRule before reading anything, CaseChoice when the file does not
    give exactly one case, CaseInvalid when that case cannot be read or validated.
    """
    rule_named(advisor.rulebase, rule_id)
    record = pick_case(read_corpus([path], stdin=stdin), case_id, path, advisor.rulebase.schema)
    if record.error is not None:
        raise CaseInvalid([record.error])
    return why_not(advisor, record.data, rule_id, record.source, record.line, record.default_id)


def _walk_condition(rulebase, cond, lookup, out, depth):
    if isinstance(cond, conditions.Test):
        verdict = conditions.truth(cond, lookup)
        values = lookup(cond.name)
        if cond.name in rulebase.schema.fields:
            actual = value_label(rulebase, cond.name, values[0]) if values else "unknown"
        else:
            actual = ", ".join(value_label(rulebase, cond.name, v) for v in values) if values else "not derived"
        if cond.op != "known" and not values:
            verdict = None if cond.name in rulebase.schema.fields else False
        out.append(TestStatus(condition_text(rulebase, cond), verdict, actual, depth))
        return

    def unknown_as_undecided(name):  # an unknown field leaves a branch undecided, not false
        values = lookup(name)
        return values if values or name not in rulebase.schema.fields else conditions.UNKNOWN

    verdict = conditions.truth(cond, unknown_as_undecided)
    kind = {conditions.AllOf: "all of", conditions.AnyOf: "any of", conditions.Not: "not"}[type(cond)]
    out.append(TestStatus(kind, verdict, "", depth))
    for item in cond.items if not isinstance(cond, conditions.Not) else (cond.item,):
        _walk_condition(rulebase, item, lookup, out, depth + 1)


def _fixes(advisor: Advisor, facts: dict, rule: RuleSpec, limit: int) -> List[dict]:
    """Changes of one field, else two, that make the rule fire (with the real engine)."""
    rulebase = advisor.rulebase
    space = domains(rulebase)
    own = fields_behind(rulebase, rule)
    names = sorted(space, key=lambda n: (n not in own, list(rulebase.schema.fields).index(n)))
    names = [n for n in names if n != "diagnosis" or n in own]

    def fires(change):
        trial = {k: v for k, v in dict(facts, **change).items() if v is not None}
        if not rulebase.schema.check_constraints(trial):
            return False
        firings = advisor.engine_for(trial).firings_for(trial, advisor.order)
        return any(f.rule.id == rule.id for f in firings)

    found = []
    for name in names:
        for value in space[name]:
            if value != facts.get(name) and fires({name: value}):
                found.append({name: value})
                break
        if len(found) >= limit:
            return found
    if found:
        return found
    pairs = [n for n in names if n in own]
    for i, a in enumerate(pairs):
        for b in pairs[i + 1 :]:
            for va in space[a]:
                if va == facts.get(a):
                    continue
                hit = next((vb for vb in space[b] if vb != facts.get(b) and fires({a: va, b: vb})), _NONE)
                if hit is not _NONE:
                    found.append({a: va, b: hit})
                    break
            if len(found) >= limit:
                return found
    return found


_NONE = object()


# -- diff -------------------------------------------------------------------


def outcome(result: Result) -> dict:
    """What a reviewer compares between two rule bases, in the result contract's
    own names and shapes (`ivig evaluate --format json`): status, error, the
    stance (`ivig`), the dose, the warnings (code, severity, rule), and the
    later evidence shown with the case (the ids of its entries)."""
    dose = result.dose
    return {
        "status": result.status,
        "error": result.error,
        "ivig": None if result.ivig is None else {k: result.ivig[k] for k in ("stance", "rule")},
        "dose": None if dose is None else {k: dose[k] for k in RESULT_DOSE_KEYS},
        "warnings": [{k: w[k] for k in ("code", "severity", "rule")} for w in result.warnings],
        "later_evidence": [note["id"] for note in result.later_evidence],
    }


def _compared(outcome: dict) -> dict:
    """An outcome as compared: which rule set the stance or gave a warning is shown, not counted."""
    return {
        "status": outcome["status"],
        "error": (outcome["error"] or {}).get("message"),
        "ivig": (outcome["ivig"] or {}).get("stance"),
        "dose": outcome["dose"],
        "warnings": sorted((w["code"], w["severity"]) for w in outcome["warnings"]),
        "later_evidence": sorted(outcome.get("later_evidence", ())),
    }


@dataclass
class Difference:
    """One case whose outcome differs between two rule bases."""

    id: str
    source: Optional[str]
    line: Optional[int]
    base: dict
    this: dict

    @property
    def changed(self) -> List[str]:
        """The parts of the outcome that differ (status, error, ivig, dose, warnings, later_evidence)."""
        before, after = _compared(self.base), _compared(self.this)
        return [k for k in before if before[k] != after[k]]

    def to_dict(self) -> dict:
        """One case of `audit diff --format json`: `id`, `source`, `line` as in a result."""
        return {
            "id": self.id,
            "source": self.source,
            "line": self.line,
            "base": self.base,
            "this": self.this,
            "changed": self.changed,
        }


@dataclass
class DiffReport:
    """`audit diff`: how many cases were compared, those whose outcome differs, and those
    that could not be compared (the same error under both rule bases: unreadable, invalid);
    and the rules whose text differs."""

    compared: int = 0
    differences: List[Difference] = field(default_factory=list)
    failed: List[Result] = field(default_factory=list)
    rules: List[RuleChange] = field(default_factory=list)
    impact: Optional[Any] = None  # over every patient (impact.Impact); None: the cases only

    @property
    def differ(self) -> int:
        return len(self.differences)

    @property
    def same(self) -> bool:
        return not self.differences

    @property
    def ok(self) -> bool:
        """No case differs, every case was compared, and no patient's advice changes (`ivig audit
        diff` exits 0)."""
        return self.same and not self.failed and not (self.impact is not None and self.impact.changes)

    def to_dict(self) -> dict:
        """`audit diff --format json`."""
        return {
            "compared": self.compared,
            "differ": self.differ,
            "failed": [failed_case(r) for r in self.failed],
            "cases": [d.to_dict() for d in self.differences],
            "rules": [r.to_dict() for r in self.rules],
            "every_patient": None if self.impact is None else self.impact.to_dict(),
        }


def diff(
    base: Advisor,
    this: Advisor,
    paths: Iterable[str],
    stdin=None,
    notes: Optional[Callable[[str], None]] = None,
    every_patient: bool = True,
) -> DiffReport:
    """Run a corpus under two rule bases; the cases whose stance, dose or warnings
    (or error) differ. Which rule set the stance is shown, not counted. A case with
    the same error under both is not compared but kept (`failed`): a case that cannot
    be read says nothing about an edit, and must not pass for one that did not change.
    `every_patient`: first compare the two over the whole fact space (audit/impact.py)."""
    from .impact import impact

    report = DiffReport(rules=rule_changes(base.rulebase, this.rulebase))
    report.impact = impact(base, this) if every_patient else None
    for record in read_corpus(paths, stdin, notes):
        a, b = evaluate_record(record, base), evaluate_record(record, this)
        before, after = outcome(a), outcome(b)
        if not a.ok and not b.ok and _compared(before) == _compared(after):
            report.failed.append(b)
            continue
        report.compared += 1
        if _compared(before) != _compared(after):
            report.differences.append(Difference(b.id, b.source, b.line, before, after))
    return report


__all__ = [
    "CheckReport",
    "CoverageReport",
    "DiffReport",
    "Difference",
    "RuleChange",
    "rule_changes",
    "TestStatus",
    "WhyNot",
    "check",
    "check_rulebase",
    "unapproved",
    "coverage",
    "default_corpus",
    "diagnosis_value",
    "diff",
    "failed_case",
    "fed_by",
    "feeds",
    "outcome",
    "preempted_by",
    "preempts",
    "read_corpus",
    "review_flags",
    "rule_named",
    "rule_record",
    "RuleView",
    "rules_for",
    "regimens",
    "run_corpus",
    "unlisted",
    "why_not",
    "why_not_in",
]
