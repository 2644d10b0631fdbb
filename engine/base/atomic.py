"""Writing a file so that nothing is lost: not the old file, not an input, not a device.

The content goes to a temporary file beside the target, is synced to disk,
and replaces the target in one rename (atomic on POSIX and Windows); the
folder is synced too, so that the rename survives a power cut. A crash, a
signal or a full disk leaves the old file as it was and no temporary file.

The target is checked before anything is written: a symbolic link is written
through (the link stays a link), anything that is not a regular file (a
device such as /dev/null, a pipe) is refused, and so is a target that is one
of the inputs, since writing it would destroy what is being read.
"""

import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Optional

from .errors import OutputRefused, WriteFailed  # noqa: F401 - raised here, and imported from here


def writable_target(path) -> Path:
    """The regular file that writing `path` would replace, links followed; OutputRefused if none."""
    target = Path(os.path.realpath(path))
    if target.is_symlink():  # realpath gives up on a loop of links
        raise OutputRefused(f"{path}: a loop of symbolic links")
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise OutputRefused(f"{path}: {exc.strerror}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputRefused(f"{path}: not a regular file ({_kind(mode)}); results are written only to regular files")
    folder = target.parent
    if not folder.exists():
        raise OutputRefused(f"{path}: no such folder: {folder}")
    if not folder.is_dir():
        raise OutputRefused(f"{path}: {_nearest_file(folder)} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputRefused(f"{path}: the folder {folder} is not writable")
    return target


def refuse_inputs(path, inputs: Iterable[str], stdin=None) -> None:
    """OutputRefused if writing `path` would replace one of `inputs` ('-': `stdin`).

    Files are compared by device and inode, so the same file reached through a
    link, a hard link or another relative path is found too.
    """
    try:
        out = os.stat(path)
    except OSError:
        return  # a file that does not exist yet is nobody's input
    for name in inputs:
        if name == "-":
            same = _same(out, _fstat(stdin))
            what = "standard input comes from it"
        else:
            same = _same(out, _stat(name))
            what = f"it is the input {name}"
        if same:
            raise OutputRefused(f"{path} is one of the inputs ({what}); write the results to another file")


def same_file(path, other) -> bool:
    """Whether two paths name one file (links and relative paths resolved)."""
    return _same(_stat(path), _stat(other))


@contextmanager
def atomic_writer(path, encoding="utf-8"):
    """A text stream whose content replaces `path` only when the block ends without error.

    Raises OutputRefused before writing when the target is unfit, WriteFailed
    when writing fails; in both cases the old file is left as it was.
    """
    target = writable_target(path)
    try:
        handle, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        raise OutputRefused(f"{path}: cannot write in {target.parent}: {exc.strerror}") from None
    out = GuardedStream(os.fdopen(handle, "w", encoding=encoding), path)
    try:
        yield out
        out.sync()
        os.chmod(temp, _mode(target))  # mkstemp makes 0600; keep what the old file or a plain open() gives
        os.replace(temp, target)
    except BaseException:
        out.discard()
        _unlink(temp)
        raise
    _sync_folder(target.parent)


def write_text_atomic(path, text: str):
    """Replace a file's content in one step."""
    with atomic_writer(path) as out:
        out.write(text)


class GuardedStream:
    """A text stream whose write errors say which output failed (WriteFailed):
    atomic_writer's temporary file, or standard output."""

    def __init__(self, file, path):
        self._file, self._path = file, path

    def write(self, text):
        try:
            return self._file.write(text)
        except WriteFailed:  # named already (standard output: stdio)
            raise
        except OSError as exc:
            raise WriteFailed(exc.errno, f"cannot write {self._path}: {exc.strerror}") from None

    def flush(self):
        try:
            self._file.flush()
        except WriteFailed:
            raise
        except OSError as exc:
            raise WriteFailed(exc.errno, f"cannot write {self._path}: {exc.strerror}") from None

    def sync(self):
        """Flush, then make the bytes durable before the rename makes them visible."""
        self.flush()
        try:
            os.fsync(self._file.fileno())
            self._file.close()
        except OSError as exc:
            raise WriteFailed(exc.errno, f"cannot write {self._path}: {exc.strerror}") from None

    def discard(self):
        try:
            self._file.close()
        except OSError:
            pass  # the unflushed rest of a file that is being thrown away

    def __getattr__(self, name):
        return getattr(self._file, name)


def _sync_folder(folder: Path):
    """Make a rename in `folder` durable; not every system can open a folder, so best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _mode(path: Path) -> int:
    if path.exists():
        return path.stat().st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _kind(mode) -> str:
    for test, word in (
        (stat.S_ISCHR, "a device"),
        (stat.S_ISBLK, "a device"),
        (stat.S_ISFIFO, "a pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a folder"),
    ):
        if test(mode):
            return word
    return "not a file"


def _nearest_file(path: Path) -> Path:
    """The part of `path` that exists and is a file (for 'x.jsonl/out.jsonl')."""
    while not path.exists():
        path = path.parent
    return path


def _stat(path) -> Optional[os.stat_result]:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _fstat(stream) -> Optional[os.stat_result]:
    try:
        return os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None  # not a real file (a test's StringIO, a closed stdin)


def _same(a, b) -> bool:
    return a is not None and b is not None and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
