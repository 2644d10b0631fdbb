"""Safe YAML reading that remembers where every value came from.

Rule files, the case schema and case files are all read through here, so an
error can name ``file:line`` and the field. Only PyYAML's safe constructors
are used: nothing in a file is ever executed or turned into a Python object
other than plain dicts, lists, strings, numbers, booleans and null.
"""

from dataclasses import dataclass
from typing import Optional

import yaml

# libyaml's parser when present: the same safety, several times the speed.
_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Located(dict):
    """A mapping that knows the line of itself and of each of its keys."""

    line: Optional[int] = None
    key_lines: dict

    def line_of(self, key) -> Optional[int]:
        """The 1-based line of ``key`` in its file, or of the mapping itself."""
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    """A list that knows its line and the line of each item."""

    line: Optional[int] = None
    item_lines: list

    def line_of(self, index) -> Optional[int]:
        try:
            return self.item_lines[index]
        except IndexError:
            return self.line


class _LineLoader(_BaseLoader):
    pass


def _construct_mapping(loader, node):
    pairs = []
    key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, (str, int, float, bool)) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain scalar", key_node.start_mark)
        if key in key_lines:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        key_lines[key] = key_node.start_mark.line + 1
        pairs.append((key, loader.construct_object(value_node, deep=True)))
    result = Located(pairs)
    result.line = node.start_mark.line + 1
    result.key_lines = key_lines
    return result


def _construct_sequence(loader, node):
    result = LocatedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


@dataclass
class SourceError(Exception):
    """A problem in a file, with the place it was found."""

    message: str
    source: Optional[str] = None
    line: Optional[int] = None
    field: Optional[str] = None
    kind: str = "schema"  # what an audit calls it: schema, duplicate-id, provenance, ...

    def __reduce__(self):  # so that an error crosses to and from worker processes
        return (SourceError, (self.message, self.source, self.line, self.field, self.kind))

    def __str__(self):
        where = self.source or "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        field = f" [{self.field}]" if self.field else ""
        return f"{where}:{field} {self.message}"


def _yaml_error(exc: yaml.YAMLError, source: str) -> SourceError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    message = f"not valid YAML: {problem}" + (f" ({context})" if context else "")
    return SourceError(message, source, mark.line + 1 if mark else None)


def load_one(text: str, source: str):
    """Parse one YAML (or JSON) document with line information; raise SourceError."""
    try:
        return yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None


def load_all(stream, source: str):
    """Yield the documents of a multi-document YAML stream lazily.

    A syntax error ends the stream: it is raised as SourceError after the
    documents before it have been yielded.
    """
    loader = _LineLoader(stream)
    try:
        while loader.check_data():
            yield loader.get_data()
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()
