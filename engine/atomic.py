"""Writing a file so that a crash never leaves half of it: a temporary file
beside the target, then a rename (atomic on POSIX and Windows)."""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_writer(path, encoding="utf-8"):
    """Open a text stream whose content replaces `path` only when the block ends without error."""
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding=encoding) as out:
            yield out
        os.chmod(temp, _mode(path))  # mkstemp makes 0600; keep what a plain open() would give
        os.replace(temp, path)
    except BaseException:
        os.unlink(temp)
        raise


def write_text_atomic(path, text: str):
    """Replace a file's content in one step."""
    with atomic_writer(path) as out:
        out.write(text)


def _mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
