"""The one door to experta.

experta 1.9.4 (its last release) pins frozendict 1.2, which still reads
``collections.Mapping``; those aliases left ``collections`` in Python 3.10.
Restoring them from ``collections.abc`` before experta is imported is enough
for experta's own test-suite to pass on 3.11-3.13. Every module of this
package imports experta through here, never directly.
"""

import collections
import collections.abc

for _name in ("Mapping", "MutableMapping", "Sequence", "MutableSequence",
              "Iterable", "Iterator", "Callable", "Hashable", "Set", "MutableSet"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

from experta import AS, NOT, OR, AND, Fact, KnowledgeEngine, L, P, Rule  # noqa: E402
from experta.strategies import DepthStrategy  # noqa: E402

__all__ = ["AS", "AND", "NOT", "OR", "Fact", "KnowledgeEngine", "L", "P", "Rule",
           "DepthStrategy"]
