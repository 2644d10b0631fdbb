"""Safe YAML reading that remembers where every value came from, and how it was written.

Rule files, the case schema, the review log and case files are all read
through here, so an error can name ``file:line`` and the field. Only plain
dicts, lists, strings, numbers, booleans and null are ever built: nothing in
a file is executed, and no tag outside YAML's core schema is accepted.

Scalars are resolved close to YAML 1.2's core schema, not PyYAML's YAML 1.1:
a case file is written by people and spreadsheets, so a number means what a
person reads. ``070`` is seventy (never octal 56); hexadecimal, octal,
binary, base-60 (``1:10``), underscored forms and dates stay text, so that a
number field refuses them by name instead of reading another number;
booleans are ``true``/``false`` only (the schema reads ``yes``/``no`` for
boolean fields itself, so ``diagnosis: no`` stays the text 'no').

Every document is bounded before it is built: nesting depth, the length of
any one scalar, and the values that aliases add (a 300-byte "billion laughs"
would otherwise stand for a billion strings).
"""

import re
from typing import Iterator, Optional, Tuple

import yaml
from yaml.constructor import BaseConstructor
from yaml.nodes import MappingNode, ScalarNode, SequenceNode
from yaml.resolver import BaseResolver

from .errors import SourceError

# libyaml's parser when present: the same safety, several times the speed.
try:
    from yaml.cyaml import CParser as _Parser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = None

MAX_DEPTH = 50  # nesting of mappings and lists; cases are flat, rules ~13 deep
MAX_SCALAR = 100_000  # characters in one value
MAX_ALIAS_VALUES = 10_000  # values that aliases may add to one document
MAX_NUMBER = 100  # characters of a number; longer digit strings stay text


class Located(dict):
    """A mapping that knows the line of itself and of each of its keys, and
    the text as written of scalar values that were not read as text."""

    line: Optional[int] = None
    key_lines: dict
    texts: dict = {}  # key -> the text as written, for values read as numbers, booleans or null

    def line_of(self, key) -> Optional[int]:
        """The 1-based line of ``key`` in its file, or of the mapping itself."""
        return self.key_lines.get(key, self.line)

    def text_of(self, key) -> Optional[str]:
        """How the value of ``key`` was written, when it was read as a number,
        boolean or null (an id of 00123 is '00123', not 123)."""
        return self.texts.get(key)


class LocatedList(list):
    """A list that knows its line and the line of each item."""

    line: Optional[int] = None
    item_lines: list

    def line_of(self, index) -> Optional[int]:
        try:
            return self.item_lines[index]
        except IndexError:
            return self.line


class _Refused(Exception):
    """A document the loader will not build; becomes a SourceError with the file's name."""

    def __init__(self, message: str, line: Optional[int] = None, field: Optional[str] = None):
        super().__init__(message)
        self.message, self.line, self.field = message, line, field


def shown(text, limit: int = 40) -> str:
    """A value for an error message: quoted, and cut short so that a huge value
    cannot make a huge message."""
    text = str(text)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text):,} characters)"
    return f"'{text}'"


# -- resolving: YAML 1.2 core, decimal only ------------------------------------

STR, INT, FLOAT, BOOL, NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
SEQ, MAP = BaseResolver.DEFAULT_SEQUENCE_TAG, BaseResolver.DEFAULT_MAPPING_TAG
DECIMAL_INT = re.compile(r"[-+]?[0-9]+\Z")
DECIMAL_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?\Z")


class _Resolver(BaseResolver):
    """Plain scalars: null, true/false, decimal integers and decimals; all else is text."""

    def resolve(self, kind, value, implicit):
        # A digit string too long for a person to mean it as a number stays
        # text: an id keeps it, a number field refuses it by name.
        if kind is ScalarNode and implicit[0] and len(value) > MAX_NUMBER:
            return STR
        return super().resolve(kind, value, implicit)


_Resolver.yaml_implicit_resolvers = {}
_Resolver.add_implicit_resolver(BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_Resolver.add_implicit_resolver(INT, re.compile(r"^[-+]?[0-9]+$"), list("-+0123456789"))
_Resolver.add_implicit_resolver(
    FLOAT, re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"), list("-+.0123456789")
)
_Resolver.add_implicit_resolver(NULL, re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""])


# -- constructing: plain values only, bounded -----------------------------------


class _Constructor(BaseConstructor):
    """Builds Located mappings, LocatedLists and plain scalars, after measuring the document."""

    def construct_document(self, node):
        _measure(node)
        try:
            return super().construct_document(node)
        finally:  # a refused document must not leave state behind for the next one
            self.constructed_objects, self.recursive_objects = {}, {}
            self.state_generators, self.deep_construct = [], False


def _line(node) -> int:
    return node.start_mark.line + 1


def _measure(root) -> None:
    """Refuse a document nested too deep, with a scalar too long, that contains
    itself, or whose aliases add too many values; before anything is built.

    Walks without recursion, so that depth itself cannot crash the walk; a
    node reached again through an alias counts again, as it would when used."""
    nodes, seen, expanded = 0, set(), 0
    stack = [(root, 1, ())]
    while stack:
        node, depth, path = stack.pop()
        if depth > MAX_DEPTH:
            raise _Refused(f"nested more than {MAX_DEPTH} levels deep", _line(node))
        if id(node) in seen:
            expanded += 1
            if expanded > MAX_ALIAS_VALUES:
                raise _Refused(
                    f"aliases (*name) expand to more than {MAX_ALIAS_VALUES:,} values: refused as an alias bomb",
                    _line(node),
                )
        else:
            seen.add(id(node))
            nodes += 1
        if isinstance(node, ScalarNode):
            if len(node.value) > MAX_SCALAR:
                raise _Refused(f"a value of {len(node.value):,} characters (at most {MAX_SCALAR:,})", _line(node))
            continue
        if id(node) in path:
            raise _Refused("a value that contains itself (an alias to an enclosing anchor)", _line(node))
        children = node.value if isinstance(node, SequenceNode) else [n for pair in node.value for n in pair]
        stack.extend((child, depth + 1, path + (id(node),)) for child in children)


def _text(node) -> str:
    """The text of a scalar node; a scalar tag on a mapping or list is refused."""
    if not isinstance(node, ScalarNode):
        raise _Refused(f"the tag {shown(node.tag)} needs a single value, not a mapping or list", _line(node))
    return node.value


def _scalar(loader, node) -> str:
    return _text(node)


def _int(loader, node) -> int:
    if not DECIMAL_INT.match(_text(node)):  # only an explicit !!int tag gets here with another form
        raise _Refused(f"{shown(node.value)} is not a number as written: write it in decimal", _line(node))
    return int(node.value)


def _float(loader, node) -> float:
    if not DECIMAL_FLOAT.match(_text(node)):
        raise _Refused(f"{shown(node.value)} is not a number as written: write it in decimal", _line(node))
    return float(node.value)


def _bool(loader, node) -> bool:
    if _text(node).lower() not in ("true", "false"):
        raise _Refused(f"{shown(node.value)} is not true or false", _line(node))
    return node.value.lower() == "true"


def _null(loader, node) -> None:
    # `!!null true` would turn a written value into "unknown" without a word
    if _text(node) not in ("", "~", "null", "Null", "NULL"):
        raise _Refused(f"{shown(node.value)} is not null: the tag !!null would drop a written value", _line(node))
    return None


def _undefined(loader, node):
    raise _Refused(f"the tag {shown(node.tag)} is not allowed: write plain values", _line(node))


def _mapping(loader, node) -> Located:
    if not isinstance(node, MappingNode):
        raise _Refused("a !!map tag on a value that is not a mapping", _line(node))
    result = Located()
    result.line, result.key_lines, result.texts = _line(node), {}, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise _Refused("a mapping key must be a plain scalar", _line(key_node))
        if key in result.key_lines:
            raise _Refused(
                f"duplicate key {shown(key)}: first on line {result.key_lines[key]}, again on line {_line(key_node)}",
                _line(key_node),
                str(key),
            )
        result.key_lines[key] = _line(key_node)
        value = loader.construct_object(value_node, deep=True)
        if isinstance(value_node, ScalarNode) and not isinstance(value, str):
            result.texts[key] = value_node.value
        result[key] = value
    return result


def _sequence(loader, node) -> LocatedList:
    if not isinstance(node, SequenceNode):
        raise _Refused("a !!seq tag on a value that is not a list", _line(node))
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = _line(node)
    result.item_lines = [_line(child) for child in node.value]
    return result


_Constructor.yaml_constructors = {}
for _tag, _build in [
    (STR, _scalar),
    (INT, _int),
    (FLOAT, _float),
    (BOOL, _bool),
    (NULL, _null),
    (MAP, _mapping),
    (SEQ, _sequence),
    (None, _undefined),
]:
    _Constructor.add_constructor(_tag, _build)


# LineLoader: the YAML 1.2 core loader that records lines (the C parser when
# PyYAML has it); signoff subclasses it for the review log.
if _Parser is not None:

    class LineLoader(_Parser, _Constructor, _Resolver):
        def __init__(self, stream):
            _Parser.__init__(self, stream)
            _Constructor.__init__(self)
            _Resolver.__init__(self)
else:  # pragma: no cover - PyYAML without libyaml
    from yaml.composer import Composer
    from yaml.parser import Parser
    from yaml.reader import Reader
    from yaml.scanner import Scanner

    class LineLoader(Reader, Scanner, Parser, Composer, _Constructor, _Resolver):
        def __init__(self, stream):
            Reader.__init__(self, stream)
            Scanner.__init__(self)
            Parser.__init__(self)
            Composer.__init__(self)
            _Constructor.__init__(self)
            _Resolver.__init__(self)


# -- reading -------------------------------------------------------------------


def yaml_error(exc: yaml.YAMLError, source: str) -> SourceError:
    """A YAML syntax error as a SourceError at the line where the parser stopped."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"not valid YAML: {problem}" + (f" ({context})" if context else "")
    return SourceError(message, source, mark.line + 1 if mark else None)


def _as_source_error(exc: BaseException, source: str, line: Optional[int] = None) -> SourceError:
    """Whatever reading a document raised, as an error that names the file."""
    if isinstance(exc, SourceError):
        return exc
    if isinstance(exc, _Refused):
        return SourceError(exc.message, source, exc.line or line, exc.field)
    if isinstance(exc, yaml.YAMLError):
        return yaml_error(exc, source)
    if isinstance(exc, RecursionError):
        return SourceError(f"nested too deep to read (at most {MAX_DEPTH} levels)", source, line)
    if isinstance(exc, MemoryError):
        return SourceError("too large to read", source, line)
    return SourceError(f"cannot be read: {type(exc).__name__}: {shown(exc, 200)}", source, line)


def load_one(text: str, source: str):
    """Parse one YAML (or JSON) document with line information; raise SourceError."""
    loader = LineLoader(text)
    try:
        return loader.get_single_data()
    except Exception as exc:  # whatever one file raises is that file's error, never a crash
        raise _as_source_error(exc, source) from None
    finally:
        loader.dispose()


def read_documents(stream, source: str) -> Iterator[Tuple[object, Optional[int], Optional[SourceError]]]:
    """The documents of a multi-document YAML stream, lazily: ``(data, line, error)``.

    `stream` is text or a file-like object whose ``read`` gives text; it is
    read a block at a time, never whole. A document that cannot be built (a
    bad value, a duplicate key, an alias bomb) is one error and the documents
    after it are still read; a syntax error, or an error from the stream
    itself, ends the stream after the documents before it.
    """
    loader = LineLoader(stream)
    try:
        while True:
            try:
                if not loader.check_node():
                    return
                node = loader.get_node()
            except Exception as exc:  # the parser's state is unknown: nothing after can be trusted
                error = _as_source_error(exc, source)
                # say so: documents after this point are lost, and the reader must know
                error.message += "; nothing after this point in the file was read (fix it and run again)"
                yield None, None, error
                return
            line = _line(node) if node is not None else None
            try:
                yield loader.construct_document(node), line, None
            except Exception as exc:
                yield None, line, _as_source_error(exc, source, line)
    finally:
        loader.dispose()


def load_all(stream, source: str):
    """Yield the documents of a multi-document YAML stream lazily.

    The first error, of syntax or of a document, is raised as SourceError
    after the documents before it have been yielded.
    """
    for data, _, error in read_documents(stream, source):
        if error is not None:
            raise error
        yield data
