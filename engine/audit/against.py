"""The rule base an edit is compared against (`audit diff --base`, `audit check --against`):
a directory, or a git revision of the repository that holds this rule base's directory
(`main`, `HEAD~1`, a tag), whose rules are read as they were at that revision.

A revision is read with `git archive` into a temporary directory and loaded from there;
nothing in the checkout is touched. Its members are unpacked with tarfile's `data` filter,
so that no path in the archive can write outside the temporary directory."""

import io
import os
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..base.errors import BaseUnknown
from ..core.rulebase import RuleBase


def load_base(spec: str, this: RuleBase) -> RuleBase:
    """The rule base named by `spec`: a directory, or a git revision (see the module doc)."""
    if os.path.isdir(spec):
        return RuleBase.load(Path(spec))
    where = Path(str(this.root)).resolve()
    top = _git(where, "rev-parse", "--show-toplevel")
    # a name that starts with '-' would read as an option of git's
    commit = _git(where, "rev-parse", "--verify", "--quiet", f"{spec}^{{commit}}") if top and spec[:1] != "-" else ""
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
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        return RuleBase.load(Path(tmp) / prefix)


def _git(where: Path, *args: str) -> str:
    """A git command's output in `where`, stripped; '' where git is missing or refuses."""
    try:
        done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""
