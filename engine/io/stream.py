"""The input as UTF-8: bytes read a block at a time, a byte-order mark passed over, UTF-16 and
UTF-32 named rather than misread, and an undecodable byte told by its line and column."""

from typing import Optional, Tuple

from ..base.errors import SourceError

BLOCK = 1 << 16  # bytes read at a time
MAX_CASE_CHARS = 1_000_000  # one JSON element or JSON Lines line; a case is a few hundred
UTF8_BOM = b"\xef\xbb\xbf"


class PeekedBytes:
    """A binary stream with bytes already read put back in front of it."""

    def __init__(self, raw, head: bytes = b""):
        self.raw, self.head = raw, head

    def read(self, size: int = BLOCK) -> bytes:
        if self.head:
            out, self.head = self.head[:size], self.head[size:]
            return out
        return self.raw.read(size)

    def readline(self, limit: int) -> bytes:
        if self.head:
            cut = self.head.find(b"\n", 0, limit)
            cut = limit if cut < 0 else cut + 1
            if cut <= len(self.head):
                out, self.head = self.head[:cut], self.head[cut:]
                return out
            out, self.head = self.head, b""
            return out + self.raw.readline(limit - len(out))
        return self.raw.readline(limit)


class EncodedText:
    """A text stream (io.StringIO, say) read as UTF-8 bytes, for callers that pass one."""

    def __init__(self, stream):
        self.stream = stream

    def read(self, size: int = BLOCK) -> bytes:
        return self.stream.read(size).encode("utf-8", "surrogateescape")

    def readline(self, limit: int) -> bytes:
        return self.stream.readline(limit).encode("utf-8", "surrogateescape")


def _encoding_problem(head: bytes) -> Optional[str]:
    """What a file's first bytes say it is, when that is not UTF-8."""
    for bom, name in (
        (b"\x00\x00\xfe\xff", "UTF-32"),
        (b"\xff\xfe\x00\x00", "UTF-32"),
        (b"\xfe\xff", "UTF-16"),
        (b"\xff\xfe", "UTF-16"),
    ):
        if head.startswith(bom):
            return f"{name} text (it starts with a {name} byte-order mark)"
    if len(head) >= 4 and (head[:3] == b"\0\0\0" or head[1:4] == b"\0\0\0"):
        return "UTF-32 text (every character takes four bytes)"
    if len(head) >= 2 and (head[0] == 0) != (head[1] == 0):
        return "UTF-16 text (every other byte is zero)"
    return None


def utf8_stream(raw, source) -> Tuple[Optional[PeekedBytes], Optional[SourceError]]:
    """A stream past its UTF-8 byte-order mark, or the error naming its encoding."""
    head = b""
    while len(head) < 4:
        more = raw.read(4 - len(head))
        if not more:
            break
        head += more
    problem = _encoding_problem(head)
    if problem:
        return None, SourceError(f"the file is {problem}: save it as UTF-8", source, 1)
    return PeekedBytes(raw, head[3:] if head.startswith(UTF8_BOM) else head), None


class Utf8Text:
    """UTF-8 text decoded a block at a time; an undecodable byte is a SourceError
    naming its line, raised after the text before it has been given out."""

    def __init__(self, raw: PeekedBytes, source: str):
        self.raw, self.source = raw, source
        self.pending, self.newlines, self.failed = b"", 0, None

    def read(self, size: int = -1) -> str:
        while True:
            if self.failed:
                raise self.failed
            block = self.raw.read(max(size, BLOCK))
            data, self.pending = self.pending + block, b""
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                if block and exc.reason == "unexpected end of data":  # a character cut by the block
                    self.pending = data[exc.start :]
                else:
                    line = self.newlines + data.count(b"\n", 0, exc.start) + 1
                    self.failed = SourceError(
                        f"not UTF-8 text: byte 0x{data[exc.start]:02x} on line {line} "
                        "cannot be decoded (save the file as UTF-8)",
                        self.source,
                        line,
                    )
                data = data[: exc.start]
                text = data.decode("utf-8")
            self.newlines += data.count(b"\n")
            if text or (not block and not self.failed):
                return text  # '' only at the end; an error waits until the text before it is read


def undecodable(line: bytes, exc: UnicodeDecodeError, where: str = "") -> str:
    """What a line that is not UTF-8 is told: the byte and its column (`where`: of which line)."""
    return (
        f"not UTF-8 text: byte 0x{line[exc.start]:02x} at column {exc.start + 1}{where} cannot be decoded "
        "(save the file as UTF-8)"
    )
