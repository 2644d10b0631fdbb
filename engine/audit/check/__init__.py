"""`ivig audit check`: static verification of a rule base, after Drools' Verifier:
unreachable, conflicting, redundant and subsumed rules, and gaps, checked exhaustively.

The fact space is finite once numbers are cut at the thresholds the rules
use (see `analysis.domains`): every field a rule tests takes each of its values, or
stays unknown. For each diagnosis the checker walks that space layer by
layer, as the engine fires, and after each layer merges the partial cases
that no later rule can tell apart (they agree on every field and derived
fact a later layer tests). Merging is exact, not sampling: each state
carries how many full combinations it stands for, and the report says how
many combinations were covered and how many distinct states that took.
Inside a layer a field is split into its values only when a still-undecided
rule needs it (MYCIN's "skip a rule whose premise is already false").

Numbers are split into intervals, not points: a group of rules that tests
age at 65 splits it into unknown, below 65 and 65 or more, whatever other
thresholds other rules use; a later group that tests 70 splits the interval
again where it needs to. A state's count is spread evenly over its interval
(each is a run of the cut domain's values), so the counts stay exact, and
its witness holds the interval's first value, which every test so far
treats as it treats the whole interval. Once no later rule of the diagnosis
can tell two intervals apart, they merge. Each diagnosis is walked with
only its live rules (`analysis.live_rules`), so thresholds that one
disease's rules use do not cut the numbers of another.

The walk reads the rules' conditions directly, so it is a second reading of
the engine's semantics (layers in order, each rule at most once, a stance
from an earlier stance layer final); tests/test_audit.py holds it to the
real experta engine on the golden cases and on random cases.

Its modules, by job:

- findings: what the check reports (Finding, Coverage, Verification), and how
  findings are kept and ordered;
- space: the space of values (each field's cut domain, the rules in groups,
  what later layers see) and a state of the walk;
- search: interval arithmetic, and firing a group's rules over its inputs;
- outcomes: the ways one group of rules can go from a state, merged;
- tally: where the rules fire (reach, co-firing, exclusions);
- fold: the walk's shortcuts (folding quiet groups, replaying the last layer);
- checks: conflicts and gaps per case, unreachable and redundant rules after the walk;
- walk: the layer-by-layer walk, `verify` and `walk_case`.
"""

from .findings import Coverage, Finding, Verification
from .walk import Walk, verify, walk_case

__all__ = ["Coverage", "Finding", "Verification", "Walk", "verify", "walk_case"]
