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
  case with its watchers off;
- its per-fact and per-activation bookkeeping is done with fewer calls
  (below, "experta's per-fact and per-activation work, leaner"), and
  `new_fact` makes a fact as `Fact.__init__` makes it.
"""

import bisect
import collections
import collections.abc
import inspect
from contextlib import suppress
from itertools import chain
from logging import DEBUG, INFO, NOTSET
from typing import Dict

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
from experta.abstract import Matcher, Strategy  # noqa: E402
from experta.activation import Activation  # noqa: E402
from experta.agenda import Agenda  # noqa: E402
from experta.conditionalelement import ConditionalElement  # noqa: E402
from experta.fact import InitialFact  # noqa: E402
from experta.factlist import FactList  # noqa: E402
from experta.matchers.rete import ReteMatcher, check, nodes  # noqa: E402
from experta.matchers.rete import abstract as rete_abstract  # noqa: E402
from experta.matchers.rete.mixins import NoMemory  # noqa: E402
from experta.matchers.rete.token import Token  # noqa: E402
from experta.matchers.rete.utils import prepare_rule  # noqa: E402
from experta.strategies import DepthStrategy  # noqa: E402
from experta.utils import freeze  # noqa: E402

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
    - `reset()` finds the engine's DefFacts with `inspect.getmembers`, and reads
      each one's signature, on every call. They are fixed by the class: found
      and read once (`_engine_reset` reads what is kept here).

    Each gives what experta would have computed; results stay byte-identical.
    """
    matcher = engine.matcher
    if isinstance(matcher, ReteMatcher):
        conflict_set_nodes = ReteMatcher._get_conflict_set_nodes.__wrapped__(matcher)
        matcher._get_conflict_set_nodes = lambda: conflict_set_nodes
        matcher.reset = _reset_each_node_once(matcher)
    deffacts = type(engine).get_deffacts(engine)
    engine.get_deffacts = lambda: deffacts
    engine._deffacts_read = tuple((deffact, _names_taken(deffact)) for deffact in deffacts)
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

_MATCH, _MATCHER, _FACTS, _RULES, _AGENDA, _ACTIVATIONS = (
    watchers.MATCH,
    watchers.MATCHER,
    watchers.FACTS,
    watchers.RULES,
    watchers.AGENDA,
    watchers.ACTIVATIONS,
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
    """Assert (in clips terminology) a fact (experta's `FactList.declare`; for a plain fact
    (`plain_kind`), what its `validate`, `_get_fact_id` and `__factid__` do, written in place)."""
    if not isinstance(fact, Fact):
        raise ValueError("The fact must descend the Fact class.")

    plain = plain_kind(type(fact))
    if plain:  # no field to validate; its id is its kind and its items but the special ones
        fact_id = frozenset(
            [fact.__class__]
            + [(k, v) for k, v in fact.items() if not (isinstance(k, str) and k[:2] == "__" and k[-2:] == "__")]
        )
    else:
        # Validate fact, will raise on validation error.
        fact.validate()

        fact_id = self._get_fact_id(fact)

    if self.duplication or fact_id not in self.reference_counter:
        # Assign the ID to the fact
        idx = self.last_index
        if plain:
            dict.__setitem__(fact, "__factid__", idx)
        else:
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


# -- experta's per-fact and per-activation work, leaner ------------------------------------------
#
# With the matching compiled (core/matcher.py), what is left of a case's time in experta is its
# bookkeeping: each fact made key by key through `Fact.__setitem__` (which asks the fact's id
# and dispatches `freeze` per value), checked by two method calls, keyed by a third; every
# reset reading its DefFacts' signatures again; every activation keyed by the strategy through
# an lru_cache that can never answer (below). The functions here are experta 1.9.4's, with
# those steps written in place or kept from the last call; each computes what experta's does.


def _names_taken(deffact):
    """The keyword names a DefFacts takes (None: any), as experta's `reset` reads its signature."""
    signature = inspect.signature(deffact)
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        return None
    return set(signature.parameters.keys())


def _engine_reset(self, **kwargs):
    """Performs a reset as per CLIPS behaviour (experta's `KnowledgeEngine.reset`), each DefFacts'
    signature read once per engine (`trim_overheads`) instead of at every reset."""
    self.agenda = Agenda()
    self.facts = FactList()

    self.matcher.reset()

    deffacts = []
    read = getattr(self, "_deffacts_read", None)
    if read is None:  # an engine the door has not trimmed
        read = [(deffact, _names_taken(deffact)) for deffact in self.get_deffacts()]
    for deffact, names in read:
        if names is not None:
            # There is not **kwargs defined. Pass only the defined names.
            deffacts.append(deffact(**{k: v for k, v in kwargs.items() if k in names}))
        else:
            deffacts.append(deffact(**kwargs))

    # Declare all facts yielded by deffacts
    self._KnowledgeEngine__declare(*chain.from_iterable(deffacts))

    self.running = False


def _engine_declare(self, *facts):
    """Internal declaration method (experta's `KnowledgeEngine.__declare`); for plain facts
    (`plain_kind`), `Fact.has_field_constraints` and `Fact.has_nested_accessor` written in place."""
    if all(plain_kind(type(f)) for f in facts):
        for f in facts:
            for v in f.values():
                if isinstance(v, ConditionalElement):
                    raise TypeError("Declared facts cannot contain conditional elements")
        for f in facts:
            for k in f:
                if "__" in str(k).strip("__"):  # noqa: B005 (experta's test, as written)
                    raise KeyError("Cannot declare facts containing double underscores as keys.")
    elif any(f.has_field_constraints() for f in facts):
        raise TypeError("Declared facts cannot contain conditional elements")
    elif any(f.has_nested_accessor() for f in facts):
        raise KeyError("Cannot declare facts containing double underscores as keys.")
    last_inserted = None
    declare = self.facts.declare
    for fact in facts:
        last_inserted = declare(fact)

    if not self.running:
        added, removed = self.get_activations()
        self.strategy.update_agenda(self.agenda, added, removed)

    return last_inserted


def _strategy_update_agenda(self, agenda, added, removed):
    """experta's `Strategy.update_agenda`, its `watchers.worth` test written in place."""
    if NOTSET < _ACTIVATIONS.level <= INFO:  # watchers.worth('ACTIVATIONS', 'INFO')
        for act in removed:
            _ACTIVATIONS.info(
                " <== %r: %s %s",
                getattr(act.rule, "__name__", None),
                ", ".join(str(f) for f in act.facts),
                "[EXECUTED]" if act not in agenda.activations else "",
            )

        for act in added:
            _ACTIVATIONS.info(" ==> %r: %s", getattr(act.rule, "__name__", None), ", ".join(str(f) for f in act.facts))

    self._update_agenda(agenda, added, removed)


# DepthStrategy.get_key is an lru_cache over activations, and can never give back anything but
# what it computes. An activation is keyed as soon as the cache is asked, so every activation the
# cache holds has a key; an activation's equality includes its key, and a matcher (experta's Rete
# and core/matcher.py alike) hands the strategy new activations, without one: none is ever equal
# to one held, and a lookup can only hit the very same object, whose key is then what it was. And
# an activation equal to a held one anyway has equal facts (with their ids) and an equal rule (with
# its salience), hence the same key. Computed each time, it is the same, without hashing every
# activation (its rule's whole condition tree, for experta's own) and keeping 128 of them alive.
_depth_key = DepthStrategy.get_key.__wrapped__


def _depth_update_agenda(self, agenda, added, removed):
    """experta's `DepthStrategy._update_agenda`, each key computed by `get_key`'s own function."""
    for act in removed:
        act.key = _depth_key(self, act)
        idx = bisect.bisect_left(agenda.activations, act)
        for o in (0, 1, -1):
            try:
                if agenda.activations[idx + o] == act:
                    del agenda.activations[idx + o]
                else:
                    continue
            except IndexError:
                pass
            else:
                break
    for act in added:
        act.key = _depth_key(self, act)
        bisect.insort(agenda.activations, act)


# What `Fact.__setitem__` leaves a value as: `freeze` gives these back as they are.
_FROZEN_AS_IS = frozenset({str, int, float, bool, type(None)})

# What a kind of fact must take from Fact as it is for the steps above to be written in place.
_FACTS_OWN = (
    "__init__",
    "__setitem__",
    "validate",
    "has_field_constraints",
    "has_nested_accessor",
    "is_special",
    "__factid__",
    "keys",
    "values",
    "items",
    "__iter__",
)
_PLAIN_KINDS: Dict[type, bool] = {}


def plain_kind(kind: type) -> bool:
    """Whether a kind of fact is made, checked, validated and numbered by Fact's own code, and has
    no field to validate (as Given, Derived and InitialFact): what the door writes in place of
    those calls is then what they do."""
    plain = _PLAIN_KINDS.get(kind)
    if plain is None:
        own = (getattr(kind, name) is getattr(Fact, name) for name in _FACTS_OWN)
        fields = getattr(kind, "__fields__", None)  # what experta's Validable metaclass gives a Fact
        plain = _PLAIN_KINDS[kind] = issubclass(kind, Fact) and not fields and all(own)
    return plain


def new_fact(kind: type, **fields) -> Fact:
    """`kind(**fields)`: the fact experta's `Fact.__init__` makes, each value frozen as its
    `__setitem__` freezes it, without their per-key calls. A kind that is not plain
    (`plain_kind`) is made by its own code."""
    if not plain_kind(kind) or "__factid__" in fields:  # experta's __setitem__ refuses a set id
        return kind(**fields)
    fact: Fact = dict.__new__(kind)
    for key, value in fields.items():
        dict.__setitem__(fact, key, value if type(value) in _FROZEN_AS_IS else freeze(value))
    fact._Fact__defaults = {}
    return fact


# (experta's class, the attribute replaced, the door's version)
_REPLACED = (
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
    (KnowledgeEngine, "reset", _engine_reset),
    (KnowledgeEngine, "_KnowledgeEngine__declare", _engine_declare),
    (Strategy, "update_agenda", _strategy_update_agenda),
    (DepthStrategy, "_update_agenda", _depth_update_agenda),
)
# experta's own functions, as they were before the door replaced them: (class, attribute) -> function
EXPERTA_ORIGINALS = {(owner, name): vars(owner)[name] for owner, name, _ in _REPLACED}

if experta.__version__ == EXPERTA_VERSION:
    for _owner, _attribute, _ours in _REPLACED:
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
    "new_fact",
    "plain_kind",
    "EXPERTA_VERSION",
    "EXPERTA_ORIGINALS",
    "trim_overheads",
]
