"""Benchmark of `ivig audit check` (engine.audit.check) on rule bases with many threshold rules.

    python bench/bench_verify.py                 # N = 0, 2, 10, 40, 100, 300
    python bench/bench_verify.py --sizes 0 2 10  # other sizes
    python bench/bench_verify.py --profile 40    # cProfile of one size, top 25 by cumulative time

Target (issue 11): a few hundred threshold rules verify in seconds (here:
N = 300 in under 10 s). Each line says whether it is met.

`threshold_rules(directory, n)` copies the shipped rules to `directory` and
adds n rules with numeric thresholds on age and weight at distinct cut
points: classify rules that derive a fact of their own, safety warnings
(some testing those facts), and stance rules in the situation layer, some
with two thresholds. tests/audit/test_check_scale.py imports it.
"""

import argparse
import cProfile
import pstats
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import ivig_advisor
from ivig_advisor.engine import RuleBase
from ivig_advisor.engine.audit.check import verify

SHIPPED_RULES = Path(ivig_advisor.__file__).resolve().parent / "rules"
TARGET_N, TARGET_SECONDS = 300, 10.0

RULE = """
  - id: {id}
    title: A threshold rule added by the benchmark
    layer: {layer}
    when: {when}
    then: {then}
    basis: review
    claims: [C23]
    source: {{refs: [49]}}
"""

# Each diagnosis with its general stance, which its extra stance rules repeat
# (so where IVIG is given, the shipped dose rules still give a regimen).
STANCES = {
    "gbs": "first-line",
    "miller_fisher": "not-established",
    "cidp": "first-line",
    "mmn": "first-line",
    "myasthenia_gravis": "second-line",
    "lems": "second-line",
    "dermatomyositis": "second-line",
    "polymyositis": "not-established",
    "stiff_person_syndrome": "second-line",
    "multiple_sclerosis": "not-established",
    "childhood_epilepsy": "not-established",
}
FLAGS = ["diabetes", "renal_disease", "migraine", "volume_depletion", "thrombocytopenia"]


def _cuts(rnd, low, high, step, n):
    """n distinct cut points in (low, high), on a grid of `step`."""
    grid = [round(low + step * k, 2) for k in range(1, int((high - low) / step))]
    return rnd.sample(grid, min(n, len(grid)))


def threshold_rules(directory, n: int, seed: int = 11, source=None, shape: str = "disease") -> Path:
    """A copy of the shipped rules (or of `source`) in `directory` with n extra
    threshold rules; returns it.

    shape "disease" (how a rule base grows): of every 10 rules, 5 stance rules
    of one diagnosis in the situation layer (on age, age and weight, or a band
    derived earlier), 2 classify rules deriving a band of one diagnosis, 2
    safety warnings for one diagnosis, and 1 safety warning for every patient
    on age or weight. Shape "shared": every rule applies to every diagnosis
    (classify bands on age or weight, warnings on a risk factor and age, on
    weight or on a band, and stance rules on age and weight), so the
    thresholds of all the rules meet in every diagnosis's walk.
    """
    directory = Path(directory)
    if directory.exists():
        shutil.rmtree(directory)
    shutil.copytree(Path(source or SHIPPED_RULES), directory, ignore=shutil.ignore_patterns("review-log.yaml"))
    rnd = random.Random(seed)
    ages = iter(_cuts(rnd, 1, 119, 0.25, n + 1))
    weights = iter(_cuts(rnd, 2, 340, 0.5, n + 1))
    make = _disease_rule if shape == "disease" else _shared_rule
    bands: dict = {}
    rules = [RULE.format(id=f"bench-{i}", **make(i, rnd, ages, weights, bands)) for i in range(n)]
    (directory / "bench.yaml").write_text(
        "topic: bench\ntitle: Threshold rules added by the benchmark\nrules:\n" + "".join(rules) + "\n"
        if rules
        else "topic: bench\ntitle: none\nrules: []\n",
        encoding="utf-8",
    )
    manifest = directory / "rulebase.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert "  - safety.yaml\n" in text, "the manifest lists safety.yaml"
    manifest.write_text(text.replace("  - safety.yaml\n", "  - safety.yaml\n  - bench.yaml\n", 1), encoding="utf-8")
    return directory


def _test(rnd, ages, weights, field=None, ops=("lt", "ge")):
    field = field or rnd.choice(["age", "weight_kg"])
    return f"{{{field}: {{{rnd.choice(ops)}: {next(ages if field == 'age' else weights)}}}}}"


def _warn(i, rnd):
    severity = rnd.choice(["info", "warning"])
    return f"{{warn: {{code: bench-{i}, severity: {severity}, applies: patient, summary: x, message: x}}}}"


def _disease_rule(i, rnd, ages, weights, bands) -> dict:
    diagnosis = rnd.choice(sorted(STANCES))
    kind = i % 10
    if kind < 5:  # a situation of one disease
        tests = [f"{{diagnosis: {diagnosis}}}"]
        if kind == 2 and bands.get(diagnosis):
            tests.append(f"{{{rnd.choice(bands[diagnosis])}: true}}")
        else:
            tests.append(_test(rnd, ages, weights, "age"))
        if kind >= 3:
            tests.append(_test(rnd, ages, weights, "weight_kg", ("le", "gt")))
        return {
            "layer": "situation",
            "when": f"{{all: [{', '.join(tests)}]}}",
            "then": f"{{recommend: {{stance: {STANCES[diagnosis]}, summary: x}}}}",
        }
    if kind < 7:  # a band of one disease
        bands.setdefault(diagnosis, []).append(f"bench_{i}")
        return {
            "layer": "classify",
            "when": f"{{all: [{{diagnosis: {diagnosis}}}, {_test(rnd, ages, weights)}]}}",
            "then": f"{{derive: {{bench_{i}: true}}}}",
        }
    if kind < 9:  # a warning in one disease
        return {
            "layer": "safety",
            "when": f"{{all: [{{diagnosis: {diagnosis}}}, {_test(rnd, ages, weights)}]}}",
            "then": _warn(i, rnd),
        }
    return {"layer": "safety", "when": _test(rnd, ages, weights, ops=("ge", "gt")), "then": _warn(i, rnd)}


def _shared_rule(i, rnd, ages, weights, bands) -> dict:
    kind = i % 5
    if kind == 0:  # a band on age or weight
        bands.setdefault(None, []).append(f"bench_{i}")
        op = rnd.choice(["lt", "ge"])
        return {
            "layer": "classify",
            "then": f"{{derive: {{bench_{i}: true}}}}",
            "when": f"{{any: [{{age: {{{op}: {next(ages)}}}}}, {{weight_kg: {{{op}: {next(weights)}}}}}]}}",
        }
    if kind == 1:  # a risk factor and an age
        return {
            "layer": "safety",
            "then": _warn(i, rnd),
            "when": f"{{all: [{{{rnd.choice(FLAGS)}: true}}, {_test(rnd, ages, weights, 'age', ('ge', 'gt'))}]}}",
        }
    if kind == 2:  # a weight, or a band and a risk factor
        if rnd.random() < 0.5:
            when = f"{{all: [{{{rnd.choice(bands[None])}: true}}, {{{rnd.choice(FLAGS)}: true}}]}}"
        else:
            when = _test(rnd, ages, weights, "weight_kg", ("gt", "le"))
        return {"layer": "safety", "when": when, "then": _warn(i, rnd)}
    diagnosis = rnd.choice(sorted(STANCES))
    tests = [f"{{diagnosis: {diagnosis}}}", _test(rnd, ages, weights, "age")]
    if kind == 4:
        tests.append(_test(rnd, ages, weights, "weight_kg", ("le", "gt")))
    return {
        "layer": "situation",
        "when": f"{{all: [{', '.join(tests)}]}}",
        "then": f"{{recommend: {{stance: {STANCES[diagnosis]}, summary: x}}}}",
    }


def time_verify(rulebase, check=verify):
    start = time.perf_counter()
    result = check(rulebase)
    return time.perf_counter() - start, result


def summary(result, witnesses=True):
    """What two walks must agree on: findings (with their witnesses), coverage and reach."""
    return (
        [
            (f.kind, f.message, f.file, f.line, f.rule, f.combinations)
            + ((sorted(f.witness.items(), key=repr),) if witnesses else ())
            for f in result.findings
        ],
        [(c.diagnosis, c.fields, c.combinations, c.excluded, sorted(c.fired)) for c in result.coverage],
        sorted((k, v) for k, v in result.reach.items() if v),
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 2, 10, 40, 100, 300])
    parser.add_argument(
        "--shape",
        choices=["disease", "shared"],
        default="disease",
        help="how the extra rules are spread (see threshold_rules)",
    )
    parser.add_argument("--rules", type=Path, help="the rule base to add to (default: the shipped rules/)")
    parser.add_argument(
        "--reference-up-to",
        type=int,
        default=10,
        metavar="N",
        help="also time the walk before issue 11, and compare, up to N extra rules",
    )
    parser.add_argument("--profile", type=int, metavar="N", help="profile verify() on N extra rules")
    parser.add_argument(
        "--limit", type=float, default=600.0, help="stop growing N once one size takes longer than this (s)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        if args.profile is not None:
            rulebase = RuleBase.load(
                threshold_rules(Path(tmp) / "rules", args.profile, source=args.rules, shape=args.shape)
            )
            profiler = cProfile.Profile()
            profiler.runcall(verify, rulebase)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
            return 0
        print(f"shape: {args.shape}")
        print(
            f"{'N':>5} {'rules':>6} {'before s':>9} {'after s':>8} {'states before':>14} {'after':>7} "
            f"{'combinations':>22} {'findings':>9} {'identical':>9}"
        )
        met = True
        for n in args.sizes:
            rulebase = RuleBase.load(threshold_rules(Path(tmp) / f"rules-{n}", n, source=args.rules, shape=args.shape))
            seconds, result = time_verify(rulebase)
            before, states_before, same = "-", "-", "-"
            if n <= args.reference_up_to:
                old_seconds, old = time_verify(rulebase, reference_verify)
                before, states_before = f"{old_seconds:.2f}", f"{old.states:,}"
                same = "yes" if summary(old) == summary(result) else "NO"
            print(
                f"{n:>5} {len(rulebase.rules):>6} {before:>9} {seconds:>8.2f} {states_before:>14} "
                f"{result.states:>7,} {result.combinations:>22,} {len(result.findings):>9} {same:>9}",
                flush=True,
            )
            if n == TARGET_N:
                met = seconds < TARGET_SECONDS
            if seconds > args.limit:
                print(f"stopping: N={n} took over {args.limit:.0f} s")
                met = False
                break
        if TARGET_N in args.sizes:
            print(f"target: N={TARGET_N} in under {TARGET_SECONDS:.0f} s: {'met' if met else 'NOT met'}")
    return 0


# -- the reference: engine/verify.py's walk before issue 11 -------------------------------
# Slow (its cost grows with the product of every threshold), exact; only the walk
# and `satisfiable` changed, the rest (now engine/audit/check/) is shared.

from collections import Counter  # noqa: E402
from fractions import Fraction  # noqa: E402
from itertools import product  # noqa: E402
from math import prod  # noqa: E402
from typing import Dict, List, Optional  # noqa: E402

from ivig_advisor.engine.audit.check.checks import concludes_all as _concludes_all  # noqa: E402
from ivig_advisor.engine.audit.check.findings import Coverage, Finding, Verification  # noqa: E402
from ivig_advisor.engine.audit.check.findings import order as _order  # noqa: E402
from ivig_advisor.engine.audit.check.outcomes import Outcome as _Outcome  # noqa: E402
from ivig_advisor.engine.audit.check.space import UNSET as _UNSET  # noqa: E402
from ivig_advisor.engine.audit.check.space import Group as _Group  # noqa: E402
from ivig_advisor.engine.audit.check.space import State as _State  # noqa: E402
from ivig_advisor.engine.audit.check.space import groups_of as _groups  # noqa: E402
from ivig_advisor.engine.audit.check.walk import merged as _merged  # noqa: E402
from ivig_advisor.engine.core import conditions  # noqa: E402
from ivig_advisor.engine.core.analysis import domains, live_rules  # noqa: E402
from ivig_advisor.engine.core.rulebase import STANCE, RuleSpec  # noqa: E402
from ivig_advisor.engine.core.schema import CaseSchema  # noqa: E402


def reference_verify(rulebase) -> Verification:
    """engine.verify.verify as it was before issue 11."""
    return ReferenceWalk(rulebase).run()


class ReferenceWalk:
    """The walk as it was before issue 11 (points, not intervals; every rule in
    every diagnosis; no folding), kept verbatim as the reference the new one must equal."""

    def __init__(self, rulebase: RuleBase, fixed: Optional[dict] = None):
        self.rb = rulebase
        self.schema: CaseSchema = rulebase.schema
        self.domains = domains(rulebase)
        if fixed is not None:  # one case: every field takes its one value
            self.domains = {name: [fixed.get(name)] for name in self.domains}
        self.findings: Dict[tuple, Finding] = {}
        self.reach: Counter = Counter()
        self.cofire: Dict[str, set] = {}
        self.by_layer = {
            l.name: sorted((r for r in rulebase.rules if r.layer == l.name), key=lambda r: -r.salience)
            for l in rulebase.layers
        }
        self.derives = {r.id: r.derives for r in rulebase.rules}
        self.groups = {name: _groups(rules, self.schema.fields) for name, rules in self.by_layer.items()}
        self.constrained = {
            t.name for w, r, _, _ in self.schema.constraints for c in (w, r) for t in conditions.tests(c)
        }
        self.cache: Dict[tuple, list] = {}
        self.fired_now: set = set()
        severities: Dict[str, set] = {}
        for rule in rulebase.rules:
            for warning in rule.warnings:
                severities.setdefault(warning["code"], set()).add(warning["severity"])
        self.multi_severity = {code for code, found in severities.items() if len(found) > 1}
        self.stance_layers = [l.name for l in rulebase.layers if l.sets_stance]
        self.last_stance = self.stance_layers[-1] if self.stance_layers else None
        # what each layer's successors can see: fields and derived names they test
        self.seen_after = {}
        later_names = set()
        for layer in reversed(rulebase.layers):
            self.seen_after[layer.name] = set(later_names)
            for rule in self.by_layer[layer.name]:
                later_names |= {t.name for t in conditions.tests(rule.when)}

    def add(self, kind, message, rule: Optional[RuleSpec], state_or_witness, count, key=None):
        witness = state_or_witness.witness if isinstance(state_or_witness, _State) else state_or_witness
        key = key or (kind, rule.id if rule else message)
        finding = self.findings.get(key)
        if finding is None:
            # a gap belongs to no rule: it is placed at the diagnosis in the case schema
            where = (rule.file, rule.line) if rule else (self.schema.source, self.schema.fields["diagnosis"].line)
            self.findings[key] = Finding(kind, message, *where, rule.id if rule else None, dict(witness), count)
        else:
            finding.combinations += count

    def run(self) -> Verification:
        coverage = [self.walk_diagnosis(value) for value in self.schema.fields["diagnosis"].values]
        self.unreachable()
        self.redundant()
        return Verification(sorted(self.findings.values(), key=_order), coverage, self.reach)

    def live_fields(self, diagnosis) -> List[str]:
        """The fields tested by the rules that the diagnosis alone does not rule out."""
        names = {
            t.name
            for rule in live_rules(self.rb, diagnosis)
            for t in conditions.tests(rule.when)
            if t.name in self.domains and t.name != "diagnosis"
        }
        return [n for n in self.schema.fields if n in names]

    def walk_diagnosis(self, diagnosis) -> Coverage:
        names = self.live_fields(diagnosis)
        total = prod(len(self.domains[n]) for n in names)
        self.excluded = 0
        states = [_State({"diagnosis": diagnosis}, {}, total, {"diagnosis": diagnosis})]
        evaluated = 0
        for layer in self.rb.layers:
            evaluated += len(states)

            def settled(state, layer=layer):
                for after in self.settle(state, layer):
                    self.after_layer(after, layer)
                    yield self.project(after, layer)

            states = _merged(after for state in states for after in settled(state))
        fired = frozenset(self.fired_now)
        self.fired_now = set()
        return Coverage(diagnosis, names, total, self.excluded, evaluated, fired)

    def settle(self, state: _State, layer):
        """Fire one layer over a state; yield one state per way the layer can go.

        The layer's rules fall into independent groups (no field or derived
        fact in common); each group's outcomes are worked out once per input
        it can see, and the layer's outcomes are their product.
        """
        if layer.sets_stance and state.stance_layer not in (None, layer.name):
            yield self.conclude(state, layer, [], dict(state.derived))  # an earlier stance is final
            return
        parts = [self.outcomes(state, layer.name, group) for group in self.groups[layer.name]]
        for combo in product(*parts):
            weight = prod((part.weight for part in combo), start=Fraction(1))
            count = state.count * weight
            assert count.denominator == 1, "a state's count splits evenly over a field's values"
            witness = dict(state.witness)
            assign = dict(state.assign)
            derived = {k: list(v) for k, v in state.derived.items()}
            for part in combo:
                witness.update(part.witness)
                assign.update(part.assign)
                for name, values in part.derived.items():
                    derived.setdefault(name, []).extend(v for v in values if v not in derived[name])
            if not self.schema.check_constraints({k: v for k, v in witness.items() if v is not None}):
                self.excluded += int(count)
                continue
            fired = sorted((r for part in combo for r in part.fired), key=lambda r: -r.salience)
            yield self.conclude(
                _State(
                    assign,
                    state.derived,
                    int(count),
                    witness,
                    state.stance_layer,
                    state.dose,
                    state.stance_rule,
                    state.warned,
                ),
                layer,
                fired,
                derived,
            )

    def outcomes(self, state: _State, layer_name: str, group: "_Group") -> List["_Outcome"]:
        """The ways one group of a layer's rules can go from this state, merged."""
        seen = tuple(state.assign.get(n, _UNSET) for n in group.fields) + tuple(
            state.derived.get(n) for n in group.derived
        )
        key = (layer_name, group.index, seen)
        if key in self.cache:
            return self.cache[key]
        keep = self.seen_after[layer_name] | self.constrained
        merged: Dict[tuple, _Outcome] = {}
        stack = [({}, Fraction(1))]
        while stack:
            added, weight = stack.pop()
            fired, derived, need = self.fire(group.rules, dict(state.assign, **added), state.derived)
            if need is not None:
                values = self.domains[need]
                stack.extend((dict(added, **{need: v}), weight / len(values)) for v in reversed(values))
                continue
            visible = {k: v for k, v in added.items() if k in keep}
            new = {k: v for k, v in derived.items() if v != list(state.derived.get(k, ()))}
            mkey = (
                tuple(r.id for r in fired),
                tuple(sorted(visible.items())),
                tuple(sorted((k, tuple(v)) for k, v in new.items())),
            )
            if mkey in merged:
                merged[mkey].weight += weight
            else:
                merged[mkey] = _Outcome(fired, visible, added, new, weight)
        self.cache[key] = list(merged.values())
        return self.cache[key]

    def fire(self, rules: List[RuleSpec], assign: dict, before: dict):
        """The rules of a group that fire, or the field to split on first."""
        derived = {k: list(v) for k, v in before.items()}
        decided: Dict[str, bool] = {}
        fired: List[RuleSpec] = []
        fields = self.schema.fields
        pending = {n for r in rules for n in self.derives[r.id]}  # facts a rule still undecided may add

        def lookup(name):
            if name in fields:
                if name not in assign:
                    return conditions.UNKNOWN
                value = assign[name]
                return [] if value is None else [value]
            return conditions.UNKNOWN if name in pending else derived.get(name, [])

        progress = True
        while progress:
            progress = False
            for rule in rules:
                if rule.id in decided:
                    continue
                verdict = conditions.truth(rule.when, lookup)
                if verdict is None:
                    continue
                decided[rule.id], progress = verdict, True
                if verdict:
                    fired.append(rule)
                    for name, value in self.derives[rule.id].items():
                        if value not in derived.setdefault(name, []):
                            derived[name].append(value)
                pending = {n for r in rules if r.id not in decided for n in self.derives[r.id]}
        for rule in rules:
            if rule.id not in decided:
                for test in conditions.tests(rule.when):
                    if test.name in fields and test.name not in assign:
                        return fired, derived, test.name
        return fired, derived, None  # the rest wait only on each other: none can fire

    def conclude(self, state: _State, layer, fired: List[RuleSpec], derived: dict) -> _State:
        ids = {r.id for r in fired}
        for rule in fired:
            self.reach[rule.id] += state.count
            self.fired_now.add(rule.id)
            self.cofire[rule.id] = self.cofire.get(rule.id, ids) & ids
        after = _State(
            dict(state.assign),
            {k: tuple(v) for k, v in derived.items() if v},
            state.count,
            state.witness,
            state.stance_layer,
            state.dose,
            state.stance_rule,
            state.warned,
        )
        stances = [r for r in fired if "recommend" in r.then]
        if stances and after.stance_layer is None:
            after.stance_layer, after.stance_rule = layer.name, stances[0].id
        different = sorted({r.then["recommend"]["stance"] for r in stances})
        if len(different) > 1:
            pair = [r for r in stances if r.then["recommend"]["stance"] != stances[0].then["recommend"]["stance"]]
            self.add(
                "conflict",
                f"rules {stances[0].id} ({stances[0].then['recommend']['stance']}) and "
                f"{pair[0].id} ({pair[0].then['recommend']['stance']}) set different stances "
                f"for one case",
                pair[0],
                state,
                state.count,
                ("conflict", stances[0].id, pair[0].id),
            )
        for rule in fired:
            if "dose" not in rule.then:
                continue
            dose = tuple(sorted(rule.then["dose"].items()))
            if after.dose is None:
                after.dose = (rule.id, dose)
            elif after.dose[1] != dose:
                self.add(
                    "conflict",
                    f"rules {after.dose[0]} and {rule.id} give different doses for one case",
                    rule,
                    state,
                    state.count,
                    ("dose-conflict", after.dose[0], rule.id),
                )
        self.severity_conflicts(fired, state, after)
        return after

    def severity_conflicts(self, fired, state, after):
        """One warning code at two severities for one case, within a layer or across layers."""
        seen = {code: (self.rb.by_id[rule_id], severity) for code, severity, rule_id in state.warned}
        for rule in fired:
            for warning in rule.warnings:
                other = seen.setdefault(warning["code"], (rule, warning["severity"]))
                if other[1] != warning["severity"]:
                    self.add(
                        "conflict",
                        f"rules {other[0].id} and {rule.id} give warning "
                        f"'{warning['code']}' different severities for one case",
                        rule,
                        state,
                        state.count,
                        ("severity", other[0].id, rule.id),
                    )
                elif warning["code"] in self.multi_severity and other[0] is rule:
                    after.warned += ((warning["code"], warning["severity"], rule.id),)

    def after_layer(self, state: _State, layer):
        """Gaps: checked where the layer that should have closed them has run."""
        diagnosis = state.witness["diagnosis"]
        if layer.name == self.last_stance and STANCE not in state.derived:
            self.add(
                "gap",
                f"no rule sets a stance for diagnosis '{diagnosis}' in this situation",
                None,
                state,
                state.count,
                ("gap", diagnosis),
            )
        if layer.index == len(self.rb.layers) - 1:
            given = [s for s in state.derived.get(STANCE, ()) if s in self.rb.ivig_given]
            if given and state.dose is None:
                self.add(
                    "gap",
                    f"IVIG is {given[0]} for diagnosis '{diagnosis}' (rule {state.stance_rule}) "
                    f"but no rule gives a regimen",
                    self.rb.by_id.get(state.stance_rule),
                    state,
                    state.count,
                    ("dose-gap", diagnosis, given[0]),
                )

    def project(self, state: _State, layer) -> _State:
        seen = self.seen_after[layer.name]
        state.assign = {k: v for k, v in state.assign.items() if k in seen or k == "diagnosis"}
        state.derived = {k: v for k, v in state.derived.items() if k in seen or k == STANCE}
        return state

    def unreachable(self):
        for rule in self.rb.rules:
            if self.reach[rule.id]:
                continue
            if reference_satisfiable(rule, self.domains, self.rb):
                why = (
                    "its conditions can hold, but never when it could fire: an earlier stance "
                    "layer always decides first, or a fact it tests is never derived"
                )
            else:
                why = "its conditions can never hold together"
            self.add("unreachable", f"rule {rule.id} fires in none of the combinations: {why}", rule, {}, 0)

    def redundant(self):
        """A rule that always fires with another that concludes at least as much."""
        for rule in self.rb.rules:
            if not self.reach[rule.id]:
                continue
            for other_id in sorted(self.cofire.get(rule.id, ()) - {rule.id}):
                other = self.rb.by_id[other_id]
                if not _concludes_all(other, rule):
                    continue
                if self.reach[other_id] > self.reach[rule.id]:
                    kind, how = "subsumed", "narrower than"
                elif (
                    rule.id in self.cofire.get(other_id, ())
                    and _concludes_all(rule, other)
                    and rule.position < other.position
                ):
                    continue  # an equivalent pair is reported once, on the later rule
                else:
                    kind, how = "redundant", "equivalent to"
                self.add(
                    kind,
                    f"rule {rule.id} is {how} {other_id}: whenever it fires, {other_id} fires and concludes the same",
                    rule,
                    {},
                    self.reach[rule.id],
                    (kind, rule.id, other_id),
                )
                break


def reference_satisfiable(rule: RuleSpec, domains: Dict[str, list], rulebase: RuleBase) -> bool:
    """Whether some values of the names a rule tests make its condition true
    (a derived fact may be absent or take any value some rule derives)."""
    names = sorted({t.name for t in conditions.tests(rule.when)})
    choices = []
    for name in names:
        if name in domains:
            values = [v for v in domains[name] if v is not None]
        else:
            values = list(dict.fromkeys(r.derives[name] for r in rulebase.producers(name)))
        choices.append([[]] + [[v] for v in values])
    for combo in product(*choices):
        table = dict(zip(names, combo))
        if conditions.truth(rule.when, table.__getitem__):
            return True
    return False


if __name__ == "__main__":
    sys.exit(main())
