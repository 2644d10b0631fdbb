"""The one door to experta.

experta 1.9.4 (its last release) pins frozendict 1.2, which still reads
``collections.Mapping``; those aliases left ``collections`` in Python 3.10.
Restoring them from ``collections.abc`` before experta is imported is enough
for experta's own test-suite to pass on 3.11-3.13. Every module of this
package imports experta through here, never directly.
"""

import collections
import collections.abc

for _name in (
    "Mapping",
    "MutableMapping",
    "Sequence",
    "MutableSequence",
    "Iterable",
    "Iterator",
    "Callable",
    "Hashable",
    "Set",
    "MutableSet",
):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

from experta import AND, AS, NOT, OR, Fact, KnowledgeEngine, L, P, Rule  # noqa: E402
from experta.abstract import Matcher  # noqa: E402
from experta.activation import Activation  # noqa: E402
from experta.fact import InitialFact  # noqa: E402
from experta.matchers.rete import ReteMatcher  # noqa: E402
from experta.matchers.rete.utils import prepare_rule  # noqa: E402
from experta.strategies import DepthStrategy  # noqa: E402

EXPERTA_VERSION = "1.9.4"  # what `trim_overheads` assumes of experta's insides (tests/test_experta.py pins it)


def trim_overheads(engine: KnowledgeEngine) -> KnowledgeEngine:
    """Remember, for this engine, two things experta works out again for every case.

    - `ReteMatcher._get_conflict_set_nodes` walks the network for the nodes
      that hold activations. Its ``lru_cache(maxsize=1)`` is shared by every
      engine, so with one engine per diagnosis it is recomputed whenever two
      consecutive cases have different diagnoses. The network never changes
      once built: one list per engine.
    - `reset()` finds the engine's DefFacts with `inspect.getmembers` on every
      call. They are fixed by the class: found once.

    Both give what experta would have computed; results stay byte-identical.
    """
    matcher = engine.matcher
    if isinstance(matcher, ReteMatcher):
        nodes = ReteMatcher._get_conflict_set_nodes.__wrapped__(matcher)
        matcher._get_conflict_set_nodes = lambda: nodes
    deffacts = type(engine).get_deffacts(engine)
    engine.get_deffacts = lambda: deffacts
    return engine


__all__ = [
    "AS",
    "AND",
    "NOT",
    "OR",
    "Fact",
    "KnowledgeEngine",
    "L",
    "P",
    "Rule",
    "DepthStrategy",
    "Matcher",
    "Activation",
    "InitialFact",
    "ReteMatcher",
    "prepare_rule",
    "EXPERTA_VERSION",
    "trim_overheads",
]
