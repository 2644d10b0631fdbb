"""Making text from input safe for where it is shown: a terminal or a spreadsheet.

Case files are written by people and exported by systems we do not control:
an id can hold an escape sequence that clears the screen and forges a line,
or a formula that a spreadsheet runs. Everything that came from input passes
through one of these two functions on its way out.
"""

import re

# C0 and C1 control characters, DEL, and the Unicode bidirectional overrides
# and isolates (they reorder what a reader sees: "Trojan Source").
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\e"}

# OWASP, CSV injection: a cell that starts with one of these is a formula
# (or becomes one) in Excel, LibreOffice and Google Sheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def for_terminal(text) -> str:
    """`text` with every control character shown as a visible escape (\\e, \\n, \\x07, ...).

    >>> for_terminal("p1\\x1b[2J\\nFAKE")
    'p1\\\\e[2J\\\\nFAKE'
    """
    text = str(text)
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(lambda m: _NAMED.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                            else f"\\u{ord(m.group()):04x}"), text)


def for_spreadsheet(value):
    """A CSV cell that no spreadsheet will run as a formula.

    Strings that start like a formula get a leading apostrophe, as OWASP
    recommends; numbers and other values pass unchanged.

    >>> for_spreadsheet("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
