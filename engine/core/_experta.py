"""The one door to experta.

experta 1.9.4 (its last release) pins frozendict 1.2, which still reads
``collections.Mapping``; those aliases left ``collections`` in Python 3.10.
Restoring them from ``collections.abc`` before experta is imported is enough
for experta's own test-suite to pass on 3.11-3.13. Every module of this
package imports experta through here, never directly.

The door also takes off experta costs that change nothing it computes
(issue 31), written against experta 1.9.4 (EXPERTA_VERSION):

- `trim_overheads` remembers for each engine what experta works out again
  for every case, and gives its Rete a reset that wipes each node's memory
  once, where experta's walks to a node through every path to it;
- experta's logging is asked first whether it would log (below, "experta's
  logging, asked first"), where experta calls it unasked about 500 times a
  case with its watchers off.
"""

import collections
import collections.abc
from contextlib import suppress
from logging import DEBUG, INFO, NOTSET

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

import experta  # noqa: E402
from experta import AND, AS, NOT, OR, Fact, KnowledgeEngine, L, P, Rule, watchers  # noqa: E402
from experta.abstract import Matcher  # noqa: E402
from experta.activation import Activation  # noqa: E402
from experta.fact import InitialFact  # noqa: E402
from experta.factlist import FactList  # noqa: E402
from experta.matchers.rete import ReteMatcher, check, nodes  # noqa: E402
from experta.matchers.rete import abstract as rete_abstract  # noqa: E402
from experta.matchers.rete.mixins import NoMemory  # noqa: E402
from experta.matchers.rete.token import Token  # noqa: E402
from experta.matchers.rete.utils import prepare_rule  # noqa: E402
from experta.strategies import DepthStrategy  # noqa: E402

EXPERTA_VERSION = "1.9.4"  # what the door assumes of experta's insides (tests/core/test_experta.py pins it)


def trim_overheads(engine: KnowledgeEngine) -> KnowledgeEngine:
    """Remember, for this engine, three things experta works out again for every case.

    - `ReteMatcher._get_conflict_set_nodes` walks the network for the nodes
      that hold activations. Its ``lru_cache(maxsize=1)`` is shared by every
      engine, so with one engine per diagnosis it is recomputed whenever two
      consecutive cases have different diagnoses. The network never changes
      once built: one list per engine.
    - `ReteMatcher.reset` walks the network from its root, and reaches a node
      once per path to it: about 400 visits a case for about 200 nodes. The
      nodes that have a memory to wipe are found once; a reset wipes each once
      (`_reset_each_node_once`).
    - `reset()` finds the engine's DefFacts with `inspect.getmembers` on every
      call. They are fixed by the class: found once.

    Each gives what experta would have computed; results stay byte-identical.
    """
    matcher = engine.matcher
    if isinstance(matcher, ReteMatcher):
        conflict_set_nodes = ReteMatcher._get_conflict_set_nodes.__wrapped__(matcher)
        matcher._get_conflict_set_nodes = lambda: conflict_set_nodes
        matcher.reset = _reset_each_node_once(matcher)
    deffacts = type(engine).get_deffacts(engine)
    engine.get_deffacts = lambda: deffacts
    return engine


def _network_nodes(root) -> list:
    """Every node of a Rete network once, in the order experta's reset first reaches each."""
    found: dict = {}  # id -> node: nodes are told apart by identity

    def visit(node):
        if id(node) not in found:
            found[id(node)] = node
            for child in node.children:
                visit(child.node)

    visit(root)
    return list(found.values())


def _reset_each_node_once(matcher: ReteMatcher):
    """A reset for this matcher that wipes the memory of each node of its network once.

    A node's `_reset` only puts empty memories in place, so once is what any number of
    visits leaves; a node without memory (`NoMemory`) has nothing to wipe. With experta's
    MATCHER watcher on, experta's own walk runs, so the log says what experta says."""
    expertas_reset = matcher.reset
    wipes = tuple(node._reset for node in _network_nodes(matcher.root_node) if not isinstance(node, NoMemory))

    def reset():
        if _MATCHER.isEnabledFor(DEBUG):
            expertas_reset()
            return
        for wipe in wipes:
            wipe()

    return reset


# -- experta's logging, asked first ------------------------------------------------------------
#
# experta calls its watchers' loggers at every token, check and fact (`MATCHER.debug(...)`)
# without asking whether they would log: with the watchers off (as always here) each call
# only finds that out, about 500 times a case, and once more for every node its own reset
# visits (about 400). The functions below are experta 1.9.4's own, copied, with each logging
# call asked for first with the logger's own question (`isEnabledFor`, what `Logger.debug`
# itself asks), so the same lines are logged exactly when experta would log them; where
# experta already asks, through `watchers.worth`, its test is written in place (the call cost
# more than the test), about 400 times a case. They replace experta's once, at import, and
# only in the experta they were copied from: another version runs as written.
# tests/core/test_experta.py pins the source of each function they replace, and checks that
# with the watchers on the log says what experta's own code says (a record's pathname and
# line then name this module).

_MATCH, _MATCHER, _FACTS, _RULES, _AGENDA = (
    watchers.MATCH,
    watchers.MATCHER,
    watchers.FACTS,
    watchers.RULES,
    watchers.AGENDA,
)


def _node_reset(self):
    """Reset itself and recursively all its children."""
    if _MATCHER.isEnabledFor(DEBUG):
        _MATCHER.debug("Node <%s> reset", self)
    self._reset()
    for child in self.children:
        child.node.reset()


def _one_input_activate(self, token):
    """Make a copy of the received token and call `self._activate`."""
    if NOTSET < _MATCHER.level <= DEBUG:  # watchers.worth('MATCHER', 'DEBUG')
        _MATCHER.debug("Node <%s> activated with token %r", self, token)
    return self._activate(token.copy())


def _two_input_activate_left(self, token):
    """Make a copy of the received token and call `_activate_left`."""
    if _MATCHER.isEnabledFor(DEBUG):
        _MATCHER.debug("Node <%s> activated left with token %r", self, token)
    return self._activate_left(token.copy())


def _two_input_activate_right(self, token):
    """Make a copy of the received token and call `_activate_right`."""
    if _MATCHER.isEnabledFor(DEBUG):
        _MATCHER.debug("Node <%s> activated right with token %r", self, token)
    return self._activate_right(token.copy())


def _bus_add(self, fact):
    """Create a VALID token and send it to all children."""
    token = Token.valid(fact)
    if _MATCHER.isEnabledFor(DEBUG):
        _MATCHER.debug("<BusNode> added %r", token)
    for child in self.children:
        child.callback(token)


def _bus_remove(self, fact):
    """Create an INVALID token and send it to all children."""
    token = Token.invalid(fact)
    if _MATCHER.isEnabledFor(DEBUG):
        _MATCHER.debug("<BusNode> added %r", token)  # sic: experta's words
    for child in self.children:
        child.callback(token)


def _ordinary_match_activation(self, token, branch_memory, matching_memory, is_left=True):
    """Node activation internal function (experta's `OrdinaryMatchNode.__activation`)."""
    if token.is_valid():
        branch_memory.append(token.to_info())
    else:
        with suppress(ValueError):
            branch_memory.remove(token.to_info())

    for other_data, other_context in matching_memory:
        other_context = dict(other_context)
        if is_left:
            left_context = token.context
            right_context = other_context
        else:
            left_context = other_context
            right_context = token.context

        match = self.matcher(left_context, right_context)

        if match:
            if _MATCH.isEnabledFor(INFO):
                _MATCH.info("%s (%s | %s) = True", self.__class__.__name__, left_context, right_context)

            newcontext = {k: v for k, v in token.context.items() if isinstance(k, str)}

            for k, v in other_context.items():
                if not isinstance(k, tuple):
                    # Negated value are not needed any further
                    newcontext[k] = v

            newtoken = Token(token.tag, token.data | other_data, newcontext)

            for child in self.children:
                child.callback(newtoken)
        elif _MATCH.isEnabledFor(DEBUG):
            _MATCH.debug("%s (%s | %s) = False", self.__class__.__name__, left_context, right_context)


def _match_said(res, *args):
    """experta's check.py logging: INFO for a check that passed, DEBUG for one that failed."""
    (_MATCH.info if res else _MATCH.debug)(*args)


def _type_check(self, fact):
    res = type(fact) == self.fact_type  # noqa: E721 (experta's test, as written)
    if _MATCH.isEnabledFor(INFO if res else DEBUG):
        _match_said(res, "type(%s) == %s = %r", fact, self.fact_type.__name__, res)
    return res


def _fact_capture(self, fact):
    if _MATCH.isEnabledFor(INFO):
        _MATCH.info("%r <= %s", self.__bind__, fact)
    return {self.__bind__: fact}


def _feature_check(self, data, is_fact=True):
    if is_fact:
        if isinstance(self.what, str):
            record = data
            if not self.what.startswith("__") and not self.what.endswith("__"):
                try:
                    for p in self.what.split("__"):
                        record = record[int(p) if p.isnumeric() else p]
                except (IndexError, KeyError, TypeError):
                    return False
        else:
            try:
                record = data[self.what]
            except (IndexError, KeyError, TypeError):
                return False
    else:
        record = data

    res = self.check(record, self.expected)

    if _MATCH.isEnabledFor(INFO if res else DEBUG):
        _match_said(res, "what=%r, how=%r, fact=%s = %r", self.what, self.how, data, res)

    return res


def _where_check(self, context):
    parameters = {k: context.get(k) for k in self.parameters}
    res = self.test(**parameters)

    if _MATCH.isEnabledFor(INFO if res else DEBUG):
        _match_said(res, "TEST %r(%r) == %r", self.test, parameters, res)

    return res


def _factlist_declare(self, fact):
    """Assert (in clips terminology) a fact (experta's `FactList.declare`)."""
    if not isinstance(fact, Fact):
        raise ValueError("The fact must descend the Fact class.")

    # Validate fact, will raise on validation error.
    fact.validate()

    fact_id = self._get_fact_id(fact)

    if self.duplication or fact_id not in self.reference_counter:
        # Assign the ID to the fact
        idx = self.last_index
        fact.__factid__ = idx

        # Insert the fact in the factlist
        self[idx] = fact

        self.last_index += 1

        self.added.append(fact)
        self.reference_counter[fact_id] += 1

        if _FACTS.isEnabledFor(INFO):
            _FACTS.info(" ==> %s: %r", fact, fact)
        return fact
    else:
        return None


def _factlist_retract(self, idx_or_fact):
    """Retract a previously asserted fact (experta's `FactList.retract`)."""
    if isinstance(idx_or_fact, int):
        idx = idx_or_fact
    else:
        idx = idx_or_fact.__factid__

    if idx not in self:
        raise IndexError("Fact not found.")

    fact = self[idx]

    # Decrement value reference counter
    fact_id = self._get_fact_id(fact)
    self.reference_counter[fact_id] -= 1
    if self.reference_counter[fact_id] == 0:
        self.reference_counter.pop(fact_id)

    if _FACTS.isEnabledFor(INFO):
        _FACTS.info(" <== %s: %r", fact, fact)
    self.removed.append(fact)

    del self[idx]

    return idx


def _engine_run(self, steps=float("inf")):
    """Execute agenda activations (experta's `KnowledgeEngine.run`)."""
    self.running = True
    activation = None
    execution = 0
    while steps > 0 and self.running:
        added, removed = self.get_activations()
        self.strategy.update_agenda(self.agenda, added, removed)

        if NOTSET < _AGENDA.level <= DEBUG:  # watchers.worth('AGENDA', 'DEBUG')
            for idx, act in enumerate(self.agenda.activations):
                _AGENDA.debug("%d: %r %r", idx, act.rule.__name__, ", ".join(str(f) for f in act.facts))

        activation = self.agenda.get_next()

        if activation is None:
            break
        else:
            steps -= 1
            execution += 1

            if _RULES.isEnabledFor(INFO):
                _RULES.info(
                    "FIRE %s %s: %s",
                    execution,
                    activation.rule.__name__,
                    ", ".join(str(f) for f in activation.facts),
                )

            activation.rule(self, **{k: v for k, v in activation.context.items() if not k.startswith("__")})

    self.running = False


# (experta's class, the attribute replaced, the door's version)
_ASKED_FIRST = (
    (rete_abstract.Node, "reset", _node_reset),
    (rete_abstract.OneInputNode, "activate", _one_input_activate),
    (rete_abstract.TwoInputNode, "activate_left", _two_input_activate_left),
    (rete_abstract.TwoInputNode, "activate_right", _two_input_activate_right),
    (nodes.BusNode, "add", _bus_add),
    (nodes.BusNode, "remove", _bus_remove),
    (nodes.OrdinaryMatchNode, "_OrdinaryMatchNode__activation", _ordinary_match_activation),
    (check.TypeCheck, "__call__", _type_check),
    (check.FactCapture, "__call__", _fact_capture),
    (check.FeatureCheck, "__call__", _feature_check),
    (check.WhereCheck, "__call__", _where_check),
    (FactList, "declare", _factlist_declare),
    (FactList, "retract", _factlist_retract),
    (KnowledgeEngine, "run", _engine_run),
)
# experta's own functions, as they were before the door replaced them: (class, attribute) -> function
EXPERTA_ORIGINALS = {(owner, name): vars(owner)[name] for owner, name, _ in _ASKED_FIRST}

if experta.__version__ == EXPERTA_VERSION:
    for _owner, _attribute, _ours in _ASKED_FIRST:
        setattr(_owner, _attribute, _ours)


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
    "EXPERTA_ORIGINALS",
    "trim_overheads",
]
