"""Later evidence: the trials, guidelines and regulatory actions published since the review,
as read from the rule base's `later_evidence` file (rules/later-evidence.yaml; read and checked
on load, every problem at its file:line, by laterfile.py).

An entry is not a rule. It says what a later source found about a situation the review speaks
to (`when`, in the rules' condition language, so that it attaches to a case exactly as a rule
would: attach.py), how that relates to the review's statement (`relation`), and where its words
were read (`source`: a sentence quoted from the abstract or the regulator's text, the page it
was read on, the date it was checked). It never changes what the review's rules decide; only
an entry that reports harm in the patient's situation carries a finding of its own (`harm`),
shown among the patient's warnings and marked as later evidence. A lead that could not be
confirmed is a `gap`, listed, never an entry.
"""

import re
import urllib.parse
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from ..base.yamlsrc import Located
from . import conditions

# What kind of source an entry rests on; a regulatory action may have neither PMID nor DOI.
KINDS = ("controlled-trial", "observational-study", "guideline", "regulatory-action", "review")
# How it bears on the review's statement. `reports-harm` is the one relation that carries a finding.
RELATIONS = ("confirms", "extends", "contradicts", "reports-harm")
# Whose report of harm is shown among the patient's warnings: a controlled trial's or a regulator's
HARM_KINDS = ("controlled-trial", "regulatory-action")
RELATION_WORDS = {  # how each relation reads beside the review's advice, in every output
    "confirms": "confirms the review",
    "extends": "extends the review",
    "contradicts": "contradicts the review",
    "reports-harm": "reports harm",
}


def kind_words(kind: str) -> str:
    """A kind of source as a reader reads it ('controlled trial')."""
    return kind.replace("-", " ")


def since(review_year: Optional[int]) -> str:
    """The heading of what came after the review: 'Since 2004' (or 'Since the review', when the
    rule base does not say its year)."""
    return f"Since {review_year}" if review_year else "Since the review"


STATUSES = ("draft", "retired")  # approval is a sign-off in the review log, as for a rule
# An http(s) address as a link needs it: a host with a dot, ASCII, and only the characters RFC 3986
# allows in a path, query and fragment (no quote, angle bracket, backslash, space or control).
URL_PATTERN = re.compile(
    r"https?://[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+"
    r"(?::[0-9]{1,5})?(?:[/?#][A-Za-z0-9\-._~:/?#@!$&'()*+,;=%]*)?"
)
PUBMED = "https://pubmed.ncbi.nlm.nih.gov/{}/"
DOI_RESOLVER = "https://doi.org/"
DOI_SAFE = "/;:()"  # a DOI's characters that stay as written in its link; the others are percent-encoded


@dataclass
class LaterEntry:
    """One later source, as written and checked, with where it was written."""

    id: str
    title: str
    topic: str  # the rule file (its topic) whose rules the entry is shown beside
    when: conditions.Condition
    kind: str
    relation: str
    year: int
    citation: str
    finding: str
    quote: str
    read_at: str
    checked: str
    speaks_to: Tuple[str, ...]  # the review's rules whose statement it bears on
    file: str
    line: int
    pmid: Optional[str] = None
    doi: Optional[str] = None
    harm: Optional[dict] = None  # the finding an entry that reports harm adds (a warning's keys)
    status: str = "draft"
    changes: Tuple[str, ...] = ()
    raw: Located = field(default_factory=Located)

    @property
    def link(self) -> str:
        """Where a clinician reads the source: its PubMed abstract, else its DOI (percent-encoded),
        else the page read; always an http(s) address (URL_PATTERN), or '' when none is one."""
        candidates = [
            PUBMED.format(self.pmid) if self.pmid else "",
            DOI_RESOLVER + urllib.parse.quote(str(self.doi), safe=DOI_SAFE) if self.doi else "",
            self.read_at,
        ]
        # the loader lets no other through; an entry built otherwise must not make a link of javascript:
        return next((url for url in candidates if isinstance(url, str) and URL_PATTERN.fullmatch(url)), "")

    def as_note(self) -> dict:
        """The entry as a result and a reviewer read it: what it is, what it found, where to read
        it, the rules it speaks to and the code of its harm finding (None: it carries none)."""
        return {
            "id": self.id,
            "title": self.title,
            "kind": self.kind,
            "relation": self.relation,
            "year": self.year,
            "citation": self.citation,
            "pmid": self.pmid,
            "doi": self.doi,
            "link": self.link,
            "finding": self.finding,
            "speaks_to": list(self.speaks_to),
            "harm": self.harm["code"] if self.harm else None,
        }

    @property
    def cited(self) -> str:
        """The citation with its identifiers, on one line."""
        ids = [f"PMID {self.pmid}" if self.pmid else "", f"doi:{self.doi}" if self.doi else ""]
        return "; ".join([self.citation] + [i for i in ids if i])


@dataclass
class Gap:
    """A lead that could not be confirmed against its source: listed, never used."""

    lead: str
    citation: str
    why: str
    line: int


@dataclass
class LaterEvidence:
    """The later-evidence file: its entries, its gaps and who maintains it."""

    entries: List[LaterEntry] = field(default_factory=list)
    gaps: List[Gap] = field(default_factory=list)
    title: str = ""
    maintenance: dict = field(default_factory=dict)
    file: Optional[str] = None  # how errors name it; None: the rule base has no such file
    recheck_after_years: Optional[int] = None  # a source older than this is read again (audit check)

    @property
    def by_id(self) -> Dict[str, LaterEntry]:
        """The entries by id, retired ones too (a few dozen: built when asked)."""
        return {e.id: e for e in self.entries}

    def live(self) -> List[LaterEntry]:
        """The entries shown with a case: every one not retired."""
        return [e for e in self.entries if e.status != "retired"]


__all__ = [
    "HARM_KINDS",
    "KINDS",
    "RELATIONS",
    "RELATION_WORDS",
    "Gap",
    "LaterEntry",
    "LaterEvidence",
    "kind_words",
    "since",
]
