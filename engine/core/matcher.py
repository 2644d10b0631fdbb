"""A matcher compiled from the rules' own shapes, inside experta's engine (issue 31).

experta's engine asks its matcher, at every step, which activations the facts
declared since the last step add and which they remove (`Matcher.changes`);
its agenda, conflict-resolution strategy, facts and the rules' actions stay
experta's. Its `ReteMatcher` answers by passing each fact through a network of
nodes, copying tokens at every node. The rules compiled here
(core/compiler.py) have one shape only: each positive pattern tests one fact
by its kind, its name and its value and binds it to a name of its own; a
negative pattern (`NOT`) tests the same way and binds nothing. No two patterns
share a variable, so a rule's matches are the products of the facts each of
its positive patterns accepts, unless some fact fits one of its negative
patterns. This matcher computes exactly that: as the Rete's alpha network, each
distinct pattern keeps the facts that pass it (its alpha memory), and each fact
is tested once against the patterns of its kind and name by one Python function
generated from the compiled rules (never from input: the constants a test
compares with are passed to the function, not written into its text); a branch
of a rule is the product of its positive patterns' memories while its negative
ones are empty. There is no beta network: nothing is joined.

What it gives experta is what the ReteMatcher gives, by construction:

- the branches are experta's own: each rule is put in disjunctive normal
  form by experta's `prepare_rule`, which also places `InitialFact` where the
  Rete places it, and the activations carry that prepared rule;
- an activation's facts and context are the Rete's: each bound name to the
  fact it matched, and the InitialFact under a ``__pattern_<n>__`` key, as
  experta names an unbound pattern (the engine never passes such keys to a
  rule's action);
- each call reports, per branch, the matches that are new since the last call
  (`added`) and those no longer valid (`removed`), as the Rete's conflict-set
  node does; a match that stays valid is never reported again, fired or not.

One thing cannot be the Rete's: the order of activations with equal keys
(same salience, same facts). The loader gives every rule its own salience, so
only one rule's branches can tie, over the same facts (an `any` matched two
ways by one list field); the Rete lists those in the order of Python's hashes
(it changes with PYTHONHASHSEED), and they fire alike. Here they come in the
order the branches are written. tests/core/test_matcher.py holds the two
matchers to each other at every step.

A rule of another shape (a variable shared between patterns, a TEST, EXISTS,
FORALL, a constraint that binds) is refused with NotCompilable: the engine
then needs experta's own matcher.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from itertools import product
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from ._experta import AND, NOT, OR, Activation, Fact, L, Matcher, P, prepare_rule

ANY_NAME = object()  # the index key of every fact of a kind, for a pattern that names none
_NO_NAME = object()  # a fact with no name (InitialFact)
_MISSING = object()  # a key the fact does not have: experta's check then fails
_NO_MATCHES: dict = {}  # what a branch matches before it matches anything (never written to)


class NotCompilable(TypeError):
    """A rule outside the shapes this matcher compiles (see the module doc)."""


@dataclass(frozen=True)
class Pattern:
    """One fact pattern of a branch: the facts of `kind` (named `name`, or ANY_NAME) that pass
    every check, `(key, how, constant)` with how "eq" (equals the constant) or "holds" (the
    constant, a predicate, holds for the value)."""

    kind: type
    name: object
    checks: Tuple[Tuple[object, str, object], ...]
    bind: Optional[str]  # the context key it is bound to (None in a NOT)

    @property
    def bucket(self) -> tuple:
        """The index key of the facts it can match."""
        return (self.kind, self.name)


@dataclass(frozen=True)
class Branch:
    """One conjunction of a rule in disjunctive normal form, compiled: the alpha memories (see
    Program) of its positive patterns, whose product is what it matches, and of its negative
    ones, any fact in which blocks it."""

    rule: int  # the rule's position in the engine
    binds: Tuple[str, ...]  # the context key of each positive pattern, in order
    positives: Tuple[int, ...]  # the alpha memory of each positive pattern, in order
    negatives: Tuple[int, ...]  # the alpha memories of its negative patterns


class CompiledActivation(Activation):
    """experta's Activation, as cheap to key as its strategy needs.

    experta's DepthStrategy keys each activation through an lru_cache, which hashes it (the
    hash of its rule walks the rule's whole condition tree) and compares it with the earlier
    equal activations it holds, whose facts and contexts are compared before their keys. The
    same hash here, with the rule's hashed once; the same equality, asking the key first."""

    def __init__(self, rule, facts, context, rule_hash: int):
        super().__init__(rule, facts, context)
        self.rule_hash = rule_hash
        self.hashed: Optional[int] = None

    def __eq__(self, other):
        try:
            return (
                self.key == other.key
                and self.context == other.context
                and self.facts == other.facts
                and self.rule == other.rule
            )
        except AttributeError:
            return False

    def __hash__(self):
        if self.hashed is None:  # a tuple's hash is made of its items' hashes: Activation's own
            self.hashed = hash((_Hashed(self.rule_hash), frozenset(self.facts), frozenset(self.context.items())))
        return self.hashed


class _Hashed:
    """Stands in a tuple for an object whose hash is known."""

    __slots__ = ("value",)

    def __init__(self, value: int):
        self.value = value

    def __hash__(self):
        return self.value


# -- reading experta's prepared rules -------------------------------------------------------


def branches_of(prepared) -> List[tuple]:
    """The conjunctions of a rule as experta's prepare_rule leaves it: its OR's branches, or the
    rule itself; each as a tuple of elements (facts and NOTs)."""
    if len(prepared) == 1 and isinstance(prepared[0], OR):
        return [_elements(branch) for branch in prepared[0]]
    if any(isinstance(element, OR) for element in prepared):
        raise NotCompilable("an OR that is not the whole of a rule after prepare_rule")
    return [tuple(prepared)]


def _elements(branch) -> tuple:
    if isinstance(branch, AND):
        return tuple(branch)
    return (branch,)


def pattern_of(fact: Fact, negated: bool) -> Pattern:
    """What experta's alpha network checks of one fact pattern (matchers/rete/utils.py
    generate_checks), as data: its kind, the name it is indexed by, the other checks."""
    bind, name, checks = None, ANY_NAME, []
    for key, how in fact.items():
        if key == "__bind__":
            bind = how
            continue
        if isinstance(key, str) and "__" in key:
            raise NotCompilable(f"a nested or special key in a pattern: {key!r}")
        if getattr(how, "__bind__", None) is not None:
            raise NotCompilable(f"a field constraint that binds a variable: {key!r}")
        if key == "name" and _indexable(how):
            name = how.value if isinstance(how, L) else how
            continue
        checks.append(_check(key, how))
    if negated and bind is not None:
        raise NotCompilable("a bound pattern inside a NOT")
    if not negated and bind is None:
        # experta captures an unbound fact under a key of its id (generate_checks): the InitialFact
        bind = f"__pattern_{id(fact)}__"
    return Pattern(type(fact), name, tuple(checks), bind)


def _indexable(how) -> bool:
    """A name the index can look a fact up by: text, bare or as a literal."""
    return isinstance(how.value if isinstance(how, L) else how, str)


def _check(key, how) -> Tuple[object, str, object]:
    """One check of a pattern: L and P are the only constraints the compiler writes; a bare
    value is read by experta as L(value)."""
    if isinstance(how, L):
        return (key, "eq", how.value)
    if isinstance(how, P):
        return (key, "holds", how[0])
    if isinstance(how, tuple):  # W, or a composite constraint (ANDFC, ORFC, NOTFC): never written
        raise NotCompilable(f"a field constraint this matcher does not compile on {key!r}")
    return (key, "eq", how)


def split(elements: tuple) -> Tuple[List[Pattern], List[Pattern]]:
    """The positive and negative patterns of one conjunction."""
    positives, negatives = [], []
    for element in elements:
        if isinstance(element, NOT) and len(element) == 1 and isinstance(element[0], Fact):
            negatives.append(pattern_of(element[0], negated=True))
        elif isinstance(element, Fact):
            positives.append(pattern_of(element, negated=False))
        else:
            raise NotCompilable(f"a conditional element this matcher does not compile: {type(element).__name__}")
    binds = [p.bind for p in positives]
    if len(set(binds)) != len(binds):
        raise NotCompilable("two patterns of one branch bound to one name (a join)")
    if not positives:
        raise NotCompilable("a branch with no positive pattern")  # prepare_rule always gives one
    return positives, negatives


# -- generating the tests of the facts of one index key ----------------------------------------


class _Source:
    """The text of one generated function and the constants it reads, by generated names only:
    a value from the rules is passed in, never written into the text."""

    def __init__(self):
        self.lines: List[str] = []
        self.constants: Dict[str, object] = {"_MISSING": _MISSING}

    def constant(self, value) -> str:
        name = f"k{len(self.constants)}"
        self.constants[name] = value
        return name

    def test(self, var: str, pattern: Pattern) -> str:
        """The expression that is true when the fact `var` passes the pattern's checks (experta's
        FeatureCheck: a key the fact lacks fails; `L` compares with `==`, `P` calls)."""
        parts = []
        for key, how, value in pattern.checks:
            k = self.constant(key)
            if how == "eq":
                parts.append(f"((v := {var}.get({k}, _MISSING)) is not _MISSING and {self.constant(value)} == v)")
            else:
                parts.append(f"((v := {var}.get({k}, _MISSING)) is not _MISSING and {self.constant(value)}(v))")
        return " and ".join(parts)

    def compiled(self):
        namespace = dict(self.constants)
        exec(compile("\n".join(self.lines), "<ivig compiled matcher>", "exec"), namespace)  # noqa: S102
        return namespace["passed"]


def generate(patterns: List[Tuple[int, Pattern]]):
    """The function of one index key: `passed(fact)` -> the alpha memories (numbers) of the
    patterns, among `patterns` (number, pattern), whose checks the fact passes, in order."""
    source = _Source()
    source.lines += ["def passed(x):", "    out = []"]
    for number, pattern in patterns:
        test = source.test("x", pattern)
        source.lines.append(f"    if {test}: out.append({number})" if test else f"    out.append({number})")
    source.lines.append("    return out")
    return source.compiled()


# -- the program of an engine class -----------------------------------------------------------


class Program:
    """Every branch of an engine's rules, compiled onto an alpha network, as in a Rete.

    Each distinct pattern (kind, name and checks) has an alpha memory: the facts that pass it, in
    the order they were declared. A fact is tested once against every pattern of its index key
    (one generated function per key), and a branch's matches are the product of its positive
    patterns' memories while its negative ones are empty. So a fact changes only the branches one
    of whose patterns it passes: through a positive one it can add matches, once each positive
    memory holds a fact; through a negative one only take them away, so a branch with none is not
    looked at."""

    def __init__(self, prepared_rules):
        self.branches: List[Branch] = []
        self.shape: List[int] = []  # the number of branches of each rule, in order
        self.memories: Dict[Pattern, int] = {}  # a distinct pattern (its bind aside) -> its alpha memory
        self.by_key: Dict[tuple, List[Tuple[int, Pattern]]] = {}  # index key -> its patterns, numbered
        self.positive: List[Tuple[int, ...]] = []  # per alpha memory: the branches it can add to
        self.negative: List[Tuple[int, ...]] = []  # per alpha memory: the branches it can block
        self.needs: List[int] = []  # per branch: how many distinct alpha memories its positive patterns read
        self.wide: set = set()  # kinds some pattern matches whatever their name
        for position, rule in enumerate(prepared_rules):
            conjunctions = branches_of(rule)
            self.shape.append(len(conjunctions))
            for elements in conjunctions:
                self._add(position, *split(elements))
        self.tests: Dict[tuple, Callable] = {key: generate(patterns) for key, patterns in self.by_key.items()}

    def _memory(self, pattern: Pattern) -> int:
        """The alpha memory of a pattern, shared by every equal pattern (whatever it binds); one of
        its own for a pattern that cannot be told equal (a constant that cannot be hashed)."""
        unbound = replace(pattern, bind=None)
        try:
            number = self.memories.get(unbound)
        except TypeError:
            number, unbound = None, pattern
        if number is None:
            number = len(self.positive)
            if unbound is not pattern:
                self.memories[unbound] = number
            self.positive.append(())
            self.negative.append(())
            self.by_key.setdefault(pattern.bucket, []).append((number, unbound))
            if pattern.name is ANY_NAME:
                self.wide.add(pattern.kind)
        return number

    def _add(self, position: int, positives: List[Pattern], negatives: List[Pattern]) -> None:
        number = len(self.branches)
        reads = tuple(self._memory(p) for p in positives)
        blocks = tuple(self._memory(p) for p in negatives)
        self.branches.append(Branch(position, tuple(str(p.bind) for p in positives), reads, blocks))
        self.needs.append(len(set(reads)))
        for memory in dict.fromkeys(reads):
            self.positive[memory] += (number,)
        for memory in dict.fromkeys(blocks):
            self.negative[memory] += (number,)


_PROGRAMS: "OrderedDict[tuple, Program]" = OrderedDict()
PROGRAMS_KEPT = 64  # engine classes' programs kept in a process (one per diagnosis, and all rules, per rule base)


_COMPILING = threading.Lock()  # engines may be built in several threads (a service's)


def program_for(key: tuple, prepared_rules) -> Program:
    """The program of the rules `key` names (compiler.matching_key), compiled on first use."""
    with _COMPILING:
        program = _PROGRAMS.get(key)
        if program is None:
            program = _PROGRAMS[key] = Program(prepared_rules)
            while len(_PROGRAMS) > PROGRAMS_KEPT:
                _PROGRAMS.popitem(last=False)
        else:
            _PROGRAMS.move_to_end(key)
    if program.shape != [len(branches_of(rule)) for rule in prepared_rules]:
        raise NotCompilable("two rule sets under one key")  # the key names what the compiler read
    return program


@dataclass(frozen=True)
class Plan:
    """What the matchers of one engine class share: the program and the class's prepared rules."""

    program: Program
    rules: tuple  # experta's prepared Rule of each rule, in order (an activation's `rule`)
    hashes: tuple  # the hash of each


def plan_for(engine_class) -> Plan:
    """The plan of an engine class built by compile_rulebase (kept on the class)."""
    plan = engine_class.__dict__.get("_compiled_plan")
    if plan is None:
        rules = getattr(engine_class, "experta_rules", None)
        key = getattr(engine_class, "matching_key", None)
        if rules is None or key is None:
            raise NotCompilable("the compiled matcher reads engines built by compiler.compile_rulebase")
        prepared = tuple(prepare_rule(rule) for rule in rules)
        plan = Plan(program_for(key, prepared), prepared, tuple(hash(rule) for rule in prepared))
        engine_class._compiled_plan = plan
    return plan


# -- the matcher ------------------------------------------------------------------------------


class CompiledMatcher(Matcher):
    """experta's Matcher for an engine built by compile_rulebase, compiled (see the module doc)."""

    def __init__(self, engine):
        super().__init__(engine)
        plan = plan_for(type(engine))
        self.program, self.rules, self.hashes = plan.program, plan.rules, plan.hashes
        self.reset()

    def reset(self) -> None:
        """Forget every fact and every match (experta's reset, before InitialFact is declared)."""
        self.alpha: List[list] = [[] for _ in self.program.positive]  # per alpha memory: its facts
        # per branch: key -> activation; one empty dict shared until a branch matches (a branch's
        # matches are replaced whole, never changed in place: _rematch)
        self.matches: List[dict] = [_NO_MATCHES] * len(self.program.branches)
        self.filled = [0] * len(self.program.branches)  # per branch: its positive memories holding a fact

    def changes(self, adding=None, deleting=None):
        """The activations the facts declared (`adding`) and retracted (`deleting`) since the
        last call add and remove, as experta's ReteMatcher.changes gives them."""
        touched: set = set()
        for fact in deleting or ():
            self._forget(fact, touched)
        for fact in adding or ():
            self._learn(fact, touched)
        added: List[Activation] = []
        removed: List[Activation] = []
        for number in sorted(touched):
            self._rematch(number, added, removed)
        return added, removed

    def _rematch(self, number: int, added: list, removed: list) -> None:
        """A branch matched again over the alpha memories: what is new is added, what is gone
        removed, what stays is kept (so that it is never activated twice)."""
        branch = self.program.branches[number]
        alpha, before = self.alpha, self.matches[number]
        if any(alpha[memory] for memory in branch.negatives):
            found: Iterable[tuple] = ()
        elif len(branch.positives) == 1:
            found = [(fact,) for fact in alpha[branch.positives[0]]]
        else:
            found = product(*[alpha[memory] for memory in branch.positives])
        now = {}
        for facts in found:
            key = tuple(map(id, facts))  # the facts stay alive while an activation holds them
            activation = before.get(key)
            if activation is None:
                rule = branch.rule
                activation = CompiledActivation(
                    self.rules[rule], facts, dict(zip(branch.binds, facts)), self.hashes[rule]
                )
                added.append(activation)
            now[key] = activation
        # New objects, as the Rete's are: experta's DepthStrategy keys activations through an
        # lru_cache, and an activation's equality changes once the agenda has set its `key`.
        # Handed back with its key set, one can meet a stale entry of an earlier equal activation
        # there and be given another's key, and then stays on the agenda (seen: a general stance
        # rule fired after a situation's stance), or the cache breaks (seen: CPython 3.11 crashed
        # in it). One with no key yet never meets one.
        removed.extend(
            CompiledActivation(old.rule, old.facts, old.context, old.rule_hash)
            for key, old in before.items()
            if key not in now
        )
        self.matches[number] = now if now else _NO_MATCHES

    def _passed(self, fact) -> list:
        """The alpha memories whose patterns the fact passes: those of its kind and name, and
        those of its kind alone where a pattern names none."""
        kind, tests = type(fact), self.program.tests
        try:
            test = tests.get((kind, fact.get("name", _NO_NAME)))
        except TypeError:  # a name no pattern can be indexed by
            test = None
        passed = test(fact) if test is not None else []
        if kind in self.program.wide:
            passed += tests[(kind, ANY_NAME)](fact)
        return passed

    def _learn(self, fact, touched: set) -> None:
        program, alpha, filled, matches = self.program, self.alpha, self.filled, self.matches
        needs = program.needs
        for memory in self._passed(fact):
            facts = alpha[memory]
            facts.append(fact)
            for number in program.positive[memory]:
                if len(facts) == 1:
                    filled[number] += 1
                if filled[number] == needs[number]:
                    touched.add(number)
            touched.update(number for number in program.negative[memory] if matches[number])

    def _forget(self, fact, touched: set) -> None:
        program, alpha, filled = self.program, self.alpha, self.filled
        for memory in self._passed(fact):
            facts = alpha[memory]
            if not any(held is fact for held in facts):
                continue
            facts[:] = [held for held in facts if held is not fact]
            for number in program.positive[memory]:
                if not facts:
                    filled[number] -= 1
                touched.add(number)  # it may lose matches
            touched.update(program.negative[memory])  # it may gain some
