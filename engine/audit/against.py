"""The rule base an edit is compared against (`audit diff --base`, `audit check --against`):
a directory, or a git revision of the repository that holds this rule base's directory
(`main`, `HEAD~1`, a tag), whose rules are read as they were at that revision.

A revision is read with `git archive` into a temporary directory and loaded from there;
nothing in the checkout is touched. Its members are unpacked with tarfile's `data` filter,
so that no path in the archive can write outside the temporary directory."""

import dataclasses
import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..base.errors import BaseUnknown, RuleBaseInvalid, SourceError
from ..core.rulebase import RuleBase


def load_base(spec: str, this: RuleBase) -> RuleBase:
    """The rule base named by `spec`: a directory, or a git revision (see the module doc). A
    directory that holds a rule base wins; one that does not gives way to a revision of that
    name (`main` run beside a folder called main), and is read (and refused) only if there is none."""
    if os.path.isfile(os.path.join(spec, "rulebase.yaml")):
        return RuleBase.load(Path(spec))
    where = Path(str(this.root)).resolve()
    top = git_output(where, "rev-parse", "--show-toplevel")
    # a name that starts with '-' would read as an option of git's
    commit = (
        git_output(where, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}") if top and spec[:1] != "-" else ""
    )
    if os.path.isdir(spec) and not commit:
        return RuleBase.load(Path(spec))
    if not top or not commit:
        raise BaseUnknown(
            f"'{spec}' is neither a directory nor a git revision of the repository holding the rules ({where})"
        )
    prefix = where.relative_to(Path(top).resolve()).as_posix()
    archive = subprocess.run(
        ["git", "-C", top, "archive", "--format=tar", commit, prefix],
        capture_output=True,
        check=False,
        timeout=60,
    )
    if archive.returncode != 0:
        raise BaseUnknown(f"git revision '{spec}' has no {prefix}/ to compare against")
    with tempfile.TemporaryDirectory(prefix="ivig-base-") as tmp:
        try:
            with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
                tar.extractall(tmp, filter="data")
        except (tarfile.TarError, OSError) as exc:  # a link out of the tree, an absolute path: refused
            raise BaseUnknown(f"git revision '{spec}': {prefix}/ cannot be read as files: {exc}") from None
        try:
            return RuleBase.load(Path(tmp) / prefix)
        except RuleBaseInvalid as exc:  # named by the revision, not by a directory gone when we end
            raise RuleBaseInvalid([_at_revision(e, tmp, spec) for e in exc.errors]) from None


def _at_revision(error: SourceError, tmp: str, spec: str) -> SourceError:
    """A load error of a revision's rules, its file named `REV:rules/file.yaml`."""
    source = error.source or ""
    if source.startswith(tmp):
        source = f"{spec}:{Path(os.path.relpath(source, tmp)).as_posix()}"
    return dataclasses.replace(error, source=source)


def git_output(where: Path, *args: str, timeout: float = 30) -> str:
    """A git command's output in `where`, stripped; '' where git is missing or refuses."""
    try:
        done = subprocess.run(
            ["git", "-C", str(where), *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
