"""Making text from input safe for where it is shown: a terminal or a spreadsheet.

Case files are written by people and exported by systems we do not control:
an id can hold an escape sequence that clears the screen and forges a line,
or a formula that a spreadsheet runs. Everything that came from input passes
through one of these functions on its way out: `for_terminal` (text for a
person), `for_spreadsheet` (CSV cells), `for_markdown` (a CDS Hooks card's
detail, which an EHR renders) or `json_text` (JSON).
"""

import json
import re
from typing import Optional

# C0 and C1 control characters and DEL; the Unicode marks that reorder or hide
# what a reader sees ("Trojan Source"): bidirectional overrides, isolates and
# marks, zero-width characters, line and paragraph separators, the soft
# hyphen, the byte-order mark and the tag characters.
_INVISIBLE = "\u00ad\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\U000e0000-\U000e007f"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f{_INVISIBLE}]")
# what json.dumps(ensure_ascii=False) leaves raw (it escapes C0 itself)
_JSON_RAW = re.compile(f"[\x7f-\x9f{_INVISIBLE}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}

# OWASP, CSV injection: a cell that starts with one of these is a formula
# (or becomes one) in Excel, LibreOffice and Google Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def for_terminal(text) -> str:
    """`text` with every control character shown as a visible escape (\\e, \\n, \\x07, ...).

    >>> for_terminal("p1\\x1b[2J\\nFAKE")
    'p1\\\\e[2J\\\\nFAKE'
    """
    return _escaped(str(text), _UNSAFE)


def hidden_character(text: str) -> Optional[str]:
    """The first character of `text` that `for_terminal` would escape (a control character, a
    bidirectional override, a zero-width space...), as it shows it (\\e, \\u202e), or None."""
    found = _UNSAFE.search(text)
    return for_terminal(found.group()) if found else None


def _escaped(text: str, unsafe) -> str:
    if not unsafe.search(text):
        return text
    return unsafe.sub(
        lambda m: _NAMED.get(
            m.group(),
            f"\\x{ord(m.group()):02x}"
            if ord(m.group()) < 0x100
            else f"\\u{ord(m.group()):04x}"
            if ord(m.group()) < 0x10000
            else f"\\U{ord(m.group()):08x}",
        ),
        text,
    )


# One encoder for the common case (json.dumps builds one per call unless called
# bare). The standard library's, not a faster one: results are a contract, and
# orjson's bytes differ (it writes floats and escapes otherwise). Without the
# check for circular references (the same bytes, a tenth faster): what it
# encodes is built by this package as plain data, never a cycle.
_ENCODER = json.JSONEncoder(ensure_ascii=False, check_circular=False)


def json_text(data, **options) -> str:
    """JSON that a terminal shows safely too: the characters json.dumps leaves
    raw (C1, DEL, the invisible and reordering marks) become \\u escapes of
    the same characters, so the data is unchanged."""
    encoder = _ENCODER if not options else json.JSONEncoder(ensure_ascii=False, **options)
    text = encoder.encode(data)
    if text.isascii() and "\x7f" not in text:  # the common case, checked a hundred times faster than the scan
        return text
    return _JSON_RAW.sub(lambda m: json.dumps(m.group())[1:-1], text)


# A lone surrogate: JSON may write \ud800 alone (RFC 8259, 8.2) and YAML \uD800, but it is no
# character: no UTF-8 or UTF-16 text holds it, so nothing can store, show or answer it.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate_at(data) -> Optional[tuple]:
    """The steps (keys and list indices, from the top) to the first string or key of parsed data
    that holds a lone surrogate, else None. Without recursion: a FHIR resource nests deep."""
    stack = [(data, None)]  # (node, (parent's trail, step)): a trail is made steps only once found
    while stack:
        node, trail = stack.pop()
        if isinstance(node, str) and LONE_SURROGATE.search(node):
            return _steps(trail)
        if isinstance(node, dict):
            for key, child in node.items():
                if isinstance(key, str) and LONE_SURROGATE.search(key):
                    return _steps((trail, key))
                stack.append((child, (trail, key)))
        elif isinstance(node, list):
            stack.extend((child, (trail, i)) for i, child in enumerate(node))
    return None


def _steps(trail) -> tuple:
    steps = []
    while trail is not None:
        trail, step = trail
        steps.append(step)
    return tuple(reversed(steps))


def for_spreadsheet(value):
    """A CSV cell that no spreadsheet will run as a formula.

    Strings that start like a formula get a leading apostrophe, as OWASP
    recommends; numbers and other values pass unchanged.

    >>> for_spreadsheet("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    """
    if not isinstance(value, str):
        return value
    # control characters are shown as escapes, a line break too: a row stays one physical
    # line, so that a reader going by lines (grep, wc -l, a careless import) sees one case
    value = _escaped(value, _UNSAFE)
    return "'" + value if value.startswith(_FORMULA_START) else value


# Markdown's punctuation that can start a link, an image, emphasis, code, a
# heading, a list, a table or raw HTML in GitHub Flavored Markdown.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~&])")


def for_markdown(text) -> str:
    """Text from input as literal Markdown: its punctuation backslash-escaped, so a
    display text cannot become a link, an image or HTML in an EHR's card; and no
    control or invisible character, shown as for a terminal.

    >>> for_markdown("[x](javascript:alert(1))")
    '\\\\[x\\\\]\\\\(javascript:alert\\\\(1\\\\)\\\\)'
    """
    return _MARKDOWN.sub(r"\\\1", for_terminal(" ".join(str(text).split())))
