"""Telling formats apart: a case file's by its name (CASE_SUFFIXES), standard input's by its first
line, and a FHIR export's NDJSON file from a file of cases by its first lines."""

import json
import re
from pathlib import Path
from typing import Tuple

from .fhir import bundles
from .stream import MAX_CASE_CHARS, UTF8_BOM, PeekedBytes

CASE_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
SNIFF_LINES = 20  # lines looked at to tell a FHIR export's file from a file of cases
# A header as a spreadsheet writes it: names (quoted or not) separated by commas.
_CSV_HEADER = re.compile(rb'"?[A-Za-z_][A-Za-z0-9_ ]*"?(?:[ \t]*,[ \t]*(?:"?[A-Za-z_][A-Za-z0-9_ ]*"?)?)+\Z')


def sniff_stdin(stream: PeekedBytes) -> Tuple[str, PeekedBytes]:
    """The format of standard input, read as it arrives: JSON Lines when its first line is a
    whole JSON object, a JSON list when it starts with '[{"' (or '[]'), CSV when it is a
    header of names separated by commas, YAML otherwise; and the stream with the lines looked
    at put back in front."""
    seen = b""
    while not seen.strip():  # blank lines first: they decide nothing
        line = stream.readline(MAX_CASE_CHARS)
        if not line:
            break
        seen += line
    first = seen.strip()
    while first.startswith(b"[") and len(first) < 2:  # '[' alone on its line: look at what follows
        line = stream.readline(MAX_CASE_CHARS)
        if not line:
            break
        seen += line
        first = seen.strip()
    return _stdin_kind(first), PeekedBytes(stream, seen)


def _stdin_kind(first: bytes) -> str:
    """The format that the first line of standard input that is not blank says."""
    if first.startswith(b"{") and b"\n" not in first:
        try:
            if isinstance(json.loads(first), dict):
                return "jsonl"
        except Exception:  # not JSON (or JSON too odd to sniff): YAML will say what is wrong
            pass
    if re.match(rb'\[[ \t\r\n]*(?:\{[ \t\r\n]*["}]|\])', first):  # not a YAML flow list: [{diagnosis: als}]
        return "json"
    if _CSV_HEADER.match(first):  # YAML would read it as one text, never a case
        return "csv"
    return "yaml"


def is_fhir_export_file(path: str) -> bool:
    """Whether a JSON Lines file is part of a FHIR export: one of its first lines is a
    FHIR resource other than a Bundle (a file of Bundles holds whole records). A damaged
    line among them costs that line, not the file's reading as an export."""
    if Path(path).suffix.lower() not in (".ndjson", ".jsonl"):
        return False
    try:
        with open(path, "rb") as handle:
            looked = 0
            for line in iter(lambda: handle.readline(MAX_CASE_CHARS), b""):
                line = line.removeprefix(UTF8_BOM) if looked == 0 else line
                if not line.strip():
                    continue
                looked += 1
                try:
                    value = json.loads(line.decode("utf-8"))
                except (ValueError, RecursionError):  # damaged, nested too deep, or not JSON: look further
                    value = None
                if bundles.is_fhir(value) and value["resourceType"] != "Bundle":
                    return True
                if isinstance(value, dict) and not bundles.is_fhir(value):
                    return False  # a case
                if looked >= SNIFF_LINES:
                    return False
    except OSError:  # unreadable: the case reader says so
        return False
    return False
