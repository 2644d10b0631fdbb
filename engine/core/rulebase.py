"""The rule base: the rules, their layers and stances, the data files and the case schema they
are written against, read and checked once (`RuleBase.load`: loader.py); and the YAML files of
a rule directory its manifest does not list.

A rule as read is a RuleSpec (rulespec.py); its words (SEVERITIES, STANCE, ...) are named here
too, where the engine, the audit and the service import them from.
"""

import os
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional

from ..base.errors import RuleBaseInvalid
from .later import LaterEvidence
from .loader import read_rulebase
from .rulespec import APPLIES, BASES, DOSE_KEYS, DOSE_PER, GRADES, SEVERITIES, STANCE, STATUSES, Layer, RuleSpec
from .schema import CaseSchema

YAML_SUFFIXES = (".yaml", ".yml")  # in any case: .YML is YAML to a person and to an editor


class RuleBase:
    """The rules, their layers and the case schema they are written against."""

    def __init__(
        self,
        *,
        root,
        label: str,
        packaged: bool,
        manifest: dict,
        layers: List[Layer],
        stances: Dict[str, bool],
        rules: List[RuleSpec],
        schema: CaseSchema,
        extras: Dict[str, object],
        topics: Dict[str, str],
        maintenance: Dict[str, dict],
        later: Optional[LaterEvidence] = None,
        digest: str = "",
    ):
        """Built whole by `load`; the arguments are what it read."""
        self.root = root  # where the files are: a Path, or a Traversable for the packaged rules
        self.label = label  # how errors name that place
        self.packaged = packaged  # the rules shipped with ivig, not a directory a user named
        self.manifest = manifest
        self.layers = layers
        self.stances = stances  # stance -> whether it gives IVIG (the manifest's `stances`)
        self.rules = rules
        self.schema = schema
        self.extras = extras  # data files named by the manifest (evidence, claims, ...)
        self.topics = topics  # topic -> the title of its rule file
        self.maintenance = maintenance  # topic -> author, specialist, version (Arden's slots)
        self.later = later or LaterEvidence()  # the later evidence shown beside the rules (later.py)
        self.by_id = {r.id: r for r in rules}
        self.digest = digest  # sha256 of the schema and every file read, in order

    @property
    def stamp(self) -> dict:
        """What each result carries to tie it to these rules: name, version and a
        content hash (16 hex digits of `digest`; any edit to a rule, data or
        schema file changes it), so that an old result can be re-run on them."""
        return {"name": self.name, "version": self.version, "hash": f"sha256:{self.digest[:16]}"}

    @property
    def ivig_given(self) -> frozenset:
        """The stances under which the review supports giving IVIG: a regimen follows."""
        return frozenset(name for name, gives in self.stances.items() if gives)

    @property
    def review_year(self) -> Optional[int]:
        """The year of the review the rules encode (the manifest's `review_year`), or None."""
        year = self.manifest.get("review_year")
        return year if isinstance(year, int) and not isinstance(year, bool) else None

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", "rules"))

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "0"))

    def layer(self, name: str) -> Layer:
        return next(l for l in self.layers if l.name == name)

    def producers(self, name: str) -> List[RuleSpec]:
        """The rules that assert the derived fact `name`."""
        return [r for r in self.rules if name in r.derives]

    @classmethod
    def load(cls, directory: Optional[Path] = None, schema: Optional[CaseSchema] = None) -> "RuleBase":
        """Read and check a rule base (default: the packaged rules/; loader.py); raise RuleBaseInvalid."""
        return cls(**read_rulebase(directory, schema or CaseSchema.load()))


def unlisted_files(root, manifest, also_listed: Iterable[str] = ()) -> List[str]:
    """The YAML files below a rule directory that its manifest does not list (`rule_files`,
    `data_files`, and `also_listed`), as paths relative to it, sorted.

    The loader reads only what the manifest lists: a reviewer who drops a rule file in,
    at any depth and with any case of extension (`sub/x.yaml`, `Stray2.YML`), must not
    think its rules are live. A file counts as listed when a listed name inside the
    directory leads to it, through links or not; a link in the directory to a file out
    of it is named like any file. Links to directories are never entered (a file below
    one inside the directory is found where it is), so a link out or a loop is never
    followed. Hidden directories (`.git`) are tools' own and are not entered; a hidden YAML
    file (`.old.yaml`, or one named `.YAML`) is named like any other, since a reviewer who
    lists the directory with `ls -a` sees a YAML file there.
    """
    if not isinstance(root, Path) or not root.is_dir() or not isinstance(manifest, dict):
        return []
    base = os.path.realpath(root)
    inside = (os.path.realpath(root / name) for name in _manifest_files(manifest) + list(also_listed))
    listed = {path for path in inside if path.startswith(base + os.sep)}
    return sorted(
        path.relative_to(root).as_posix() for path in _yaml_files_below(root) if os.path.realpath(path) not in listed
    )


def _manifest_files(manifest: dict) -> List[str]:
    """The file names a manifest lists (rule_files, data_files, later_evidence), those that can name a file."""
    rule_files, data_files = manifest.get("rule_files"), manifest.get("data_files")
    names = (
        (list(rule_files) if isinstance(rule_files, list) else [])
        + (list(data_files.values()) if isinstance(data_files, dict) else [])
        + [manifest.get("later_evidence")]
    )
    return [name for name in names if isinstance(name, str) and name.strip() and "\0" not in name]


def _yaml_files_below(root: Path) -> Iterator[Path]:
    """Every entry below `root` with a YAML name that is not a directory, at any depth,
    with a stack rather than recursion (a deep tree is no crash); hidden directories and
    links to directories not entered, folders that cannot be read passed over."""
    folders = [root]
    while folders:
        try:
            with os.scandir(folders.pop()) as listing:
                entries = list(listing)
        except OSError:
            continue
        for entry in entries:
            try:
                folder = entry.is_dir(follow_symlinks=False)
            except OSError:  # gone, or not ours to look at
                continue
            if folder:
                if not entry.name.startswith("."):
                    folders.append(Path(entry.path))
            elif entry.name.lower().endswith(YAML_SUFFIXES):  # '.YAML' too: a YAML file with no stem
                yield Path(entry.path)


__all__ = [
    "APPLIES",
    "BASES",
    "DOSE_KEYS",
    "DOSE_PER",
    "GRADES",
    "SEVERITIES",
    "STANCE",
    "STATUSES",
    "Layer",
    "RuleBase",
    "RuleBaseInvalid",
    "RuleSpec",
    "unlisted_files",
]
