"""Where a compiled miss's time goes, in process: the matching alone, experta's engine, the whole run.

    python bench/miss_parts.py              # 3,000 realistic cases, 3 rounds
    python bench/miss_parts.py --uniform    # cases drawn uniformly over the fact space

A miss (the situation cache off) is `Advisor.run(case)`: experta's engine runs the rules
(`firings_for`: the case's facts declared, matched, the rules fired), then the project makes
the Result, its trace, the undecided rules and missing fields, and attaches the later evidence.
Three figures, CPU ms a case, each round over the same validated cases:

- the whole run (`Advisor.run`);
- experta's engine alone (`engine.firings_for`), what CLIPS's time covers in bench/clips.py;
- the matching alone: every call the engines made to the compiled matcher over the cases
  (`changes`, `reset`, with the very facts), recorded once, then replayed on the matchers by
  themselves, activations made included.

The engine less the matching is experta's own bookkeeping and the rules' actions (facts made,
checked, numbered and kept, activations keyed and put on the agenda, rules called, the engine
reset); the run less the engine is the project's own work after the rules. Issue 31 asks the
miss path to be at most 3x CLIPS (about 0.045 ms a case here): this shows which part stands in
the way.
"""

import argparse
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench import machine, valid_cases  # noqa: E402
from ivig_advisor.engine import Advisor  # noqa: E402
from ivig_advisor.engine.core.matcher import CompiledMatcher  # noqa: E402


def recorded_calls(advisor: Advisor, cases: list) -> list:
    """Every call the engines make to their compiled matchers over the cases, in order."""
    calls = []
    changes, reset = CompiledMatcher.changes, CompiledMatcher.reset

    def recording_changes(self, adding=None, deleting=None):
        calls.append((self, list(adding or ()), list(deleting or ())))
        return changes(self, adding, deleting)

    def recording_reset(self):
        calls.append((self, None, None))
        return reset(self)

    CompiledMatcher.changes, CompiledMatcher.reset = recording_changes, recording_reset
    try:
        for case in cases:
            advisor.run(case)
    finally:
        CompiledMatcher.changes, CompiledMatcher.reset = changes, reset
    return calls


def per_case(work, n: int) -> float:
    gc.collect()
    start = time.process_time()
    work()
    return (time.process_time() - start) * 1000 / n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--uniform", action="store_true", help="cases drawn uniformly over the fact space")
    args = parser.parse_args()
    advisor = Advisor(cache=0)  # the compiled matcher, the default
    cases = valid_cases(advisor, args.cases, args.uniform)
    for case in cases[:300]:  # engines built, programs compiled, the later evidence's memo warm
        advisor.run(case)
    calls = recorded_calls(advisor, cases)
    n = len(cases)

    def run():
        for case in cases:
            advisor.run(case)

    def engine():
        for case in cases:
            advisor.engine_for(case.facts).firings_for(case.facts, advisor.order)

    def matching():
        for matcher, adding, deleting in calls:
            if adding is None:
                matcher.reset()
            else:
                matcher.changes(adding, deleting)

    print(machine())
    mix = "uniform" if args.uniform else "realistic"
    print(f"{n:,} valid cases ({mix}), CPU ms a case, compiled matcher, cache off")
    print(f"{'round':>5} {'whole run':>10} {'engine':>10} {'matching':>10} {'bookkeeping':>12} {'after rules':>12}")
    for number in range(1, args.rounds + 1):
        whole, rules, matched = per_case(run, n), per_case(engine, n), per_case(matching, n)
        print(f"{number:>5} {whole:10.3f} {rules:10.3f} {matched:10.3f} {rules - matched:12.3f} {whole - rules:12.3f}")
    print("bookkeeping: experta's engine less the matching; after rules: the whole run less the engine")


if __name__ == "__main__":
    main()
