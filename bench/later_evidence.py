"""What attaching the later evidence costs a case: the same cases through an Advisor of the
shipped rules and through one whose later evidence is removed, in process, cache off (so every
case runs its rules), in alternating rounds (without, with, with, without, ...): this machine's
speed drifts, and both sides of the ratio drift alike.

    python bench/later_evidence.py                  # 10,000 cases, 3 rounds of each
    python bench/later_evidence.py --cases 2000 --rounds 1
"""

import argparse
import copy
import random
import time

from ivig_advisor.engine import Advisor, RuleBase
from ivig_advisor.engine.core.analysis import domains
from ivig_advisor.engine.core.later import LaterEvidence


def random_cases(rulebase: RuleBase, count: int, seed: int = 7) -> list:
    """Valid cases drawn over the fact space: a diagnosis, and each other field known at 30%."""
    space, rnd, cases = domains(rulebase), random.Random(seed), []
    diagnoses = [d for d in space["diagnosis"] if d is not None]
    while len(cases) < count:
        case = {"diagnosis": rnd.choice(diagnoses)}
        for name, values in space.items():
            if name != "diagnosis" and rnd.random() < 0.3:
                value = rnd.choice([v for v in values if v is not None])
                case[name] = list(value) if isinstance(value, tuple) else value
        if rulebase.schema.check_constraints(case):
            cases.append(case)
    return cases


def ms_per_case(rulebase: RuleBase, cases: list) -> float:
    advisor = Advisor(rulebase, cache=0)
    validated = [advisor.validate(case) for case in cases]
    start = time.perf_counter()
    for case in validated:
        advisor.evaluate(case)
    return (time.perf_counter() - start) / len(validated) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    shipped = RuleBase.load()
    bare = copy.copy(shipped)
    bare.later = LaterEvidence()
    cases = random_cases(shipped, args.cases)
    times = {"without": [], "with": []}
    for round_ in range(args.rounds):
        order = ("without", "with") if round_ % 2 == 0 else ("with", "without")
        for label in order:
            times[label].append(ms_per_case(shipped if label == "with" else bare, cases))
    for label, values in times.items():
        rounds = ", ".join(f"{v:.3f}" for v in values)
        print(f"{label:8} later evidence: {sum(values) / len(values):.3f} ms/case (rounds: {rounds})")
    ratio = sum(times["with"]) / sum(times["without"])
    print(f"{len(cases):,} cases, cache off: with vs without later evidence {ratio:.3f}x the time")


if __name__ == "__main__":
    main()
