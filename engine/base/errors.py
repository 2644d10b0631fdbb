"""The errors the library raises on purpose, in one hierarchy under `IvigError`.

Each says what is wrong with what the user gave (a case, a rule id, a path, a
review log) in a message meant for that user; the command line maps each
class to an exit status and a message in one table (cli.ERRORS). Any other
exception is a bug in ivig.

Each class also derives from the built-in error it refines (a `ValueError`,
`LookupError`, `OSError`, `TimeoutError`), so that code written against
those keeps working. This module imports nothing of the engine: every other
module may import it.

Two classes live beside what they guard and derive from `InvalidSource`
here: `schema.CaseInvalid` (a case) and `rulebase.RuleBaseInvalid` (a rule
base).
"""

from dataclasses import dataclass
from typing import Optional, Sequence


class IvigError(Exception):
    """An error in what the user gave ivig, said in the message; not a bug."""


@dataclass
class SourceError(Exception):
    """A problem in a file, with the place it was found."""

    message: str
    source: Optional[str] = None
    line: Optional[int] = None
    field: Optional[str] = None
    kind: str = "schema"  # what an audit calls it: schema, duplicate-id, provenance, ...

    def __reduce__(self):  # so that an error crosses to and from worker processes
        return (SourceError, (self.message, self.source, self.line, self.field, self.kind))

    def __str__(self):
        where = self.source or "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        field = f" [{self.field}]" if self.field else ""
        return f"{where}:{field} {self.message}"


class InvalidSource(IvigError):
    """A file that breaks its contract; `errors` lists every SourceError (file:line: message), the
    first is the headline."""

    def __init__(self, errors: Sequence[SourceError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = list(errors)


class CaseInvalid(InvalidSource):
    """A case that breaks the schema; `errors` are SourceErrors, the first is the headline."""

    def __init__(self, errors: Sequence[SourceError]):
        super().__init__(errors)
        self.args = (str(errors[0]),)  # the message is the headline: one case, one line


class RuleBaseInvalid(InvalidSource):
    """A rule base with errors; `errors` lists every SourceError found."""


class FhirMapInvalid(InvalidSource):
    """A mapping file that breaks its contract; `errors` lists every problem."""


# -- names a user typed -------------------------------------------------------


class UnknownRule(IvigError, LookupError):
    """A rule id that is not in the rule base; the message suggests the nearest."""

    def __init__(self, message: str, rule_id: str):
        super().__init__(message)
        self.rule_id = rule_id


class UnknownDiagnosis(IvigError, LookupError):
    """A diagnosis that no value, label or alias of the schema names; the message lists them."""

    def __init__(self, message: str, text: str):
        super().__init__(message)
        self.text = text


class UnknownStage(IvigError, LookupError):
    """A lifecycle stage (draft, approved, ...) that is not one; the message lists them."""

    def __init__(self, message: str, text: str):
        super().__init__(message)
        self.text = text


class CaseChoice(IvigError, ValueError):
    """A case file that does not give exactly the one case a command needs (none, several
    without --id, no case with the --id); the message names the file and the ids in it."""


ResumeError = CaseChoice  # the name `interview --resume` knew it by


class FormatContradicted(IvigError, ValueError):
    """--format names one format and the output file's extension another (`-o r.csv --format json`)."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


# -- the review log -----------------------------------------------------------------


class SignOffInvalid(IvigError, ValueError):
    """An argument of a sign-off is wrong; `param` names it (RULE, --date, ...)."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


class LogUnusable(InvalidSource, ValueError):
    """The log on disk is not a well-formed review log; nothing was written."""


class NoLogHere(IvigError, ValueError):
    """The rule base has no place where a sign-off may be written."""


class BaseUnknown(IvigError, ValueError):
    """The rule base to compare against (--base, --against) is neither a directory nor a git
    revision of the repository holding the rules."""


class LogLocked(IvigError, TimeoutError):
    """Another process holds the review log's lock; nothing was written."""


# -- the interview ---------------------------------------------------------------


class AnswerInvalid(IvigError, ValueError):
    """An answer that does not fit the question; the message says why."""


class ScriptedAnswerInvalid(IvigError, ValueError):
    """A scripted answer (standard input not a terminal) that does not fit its question. The
    script stops there (exit 2): asking again would take the next line, meant for the next
    question, as this one's answer, and shift every later answer onto the wrong question."""


# -- the service -----------------------------------------------------------------


class Unauthorized(IvigError):
    """A call whose token is missing or not trusted; the message is for the log, never the client."""


class TrustInvalid(IvigError, ValueError):
    """A trust file that cannot be used; the message names the file and the problem."""


class HookRefused(IvigError):
    """A request a server of ivig cannot answer (a CDS Hooks call, a verdict posted to `audit
    review`), with its HTTP status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class CdsServicesInvalid(InvalidSource):
    """facts/cds-services.yaml breaks its contract."""


class FeedbackInvalid(IvigError, ValueError):
    """A feedback body that breaks the CDS Hooks 2.0 contract; the message says where."""


class UnknownCard(IvigError, LookupError):
    """Feedback that names a card this service did not issue to the caller; the message says which."""


# -- signals -----------------------------------------------------------------------


class Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like KeyboardInterrupt, so that every
    `finally` runs (the pool is shut down, a temporary output file removed)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class StoreUnreadable(IvigError, ValueError):
    """The service's SQLite file is missing or no SQLite file (a backup or a report of it)."""


# -- writing files -------------------------------------------------------------------


class OutputRefused(IvigError, ValueError):
    """A target that must not or cannot be written; found before writing anything."""


class WriteFailed(IvigError, OSError):
    """Writing failed midway (a full disk, an I/O error); the old file is untouched."""


class StreamClosed(IvigError, OSError):
    """A standard stream (input or output) was closed when ivig started (`ivig ... >&-`)."""

    def __init__(self, name: str, needed_for: str = ""):
        reason = f"{name} is closed (ivig was started with it closed)" + (f": {needed_for}" if needed_for else "")
        super().__init__(9, reason)  # EBADF, as the system says of a closed descriptor

    def __str__(self) -> str:
        return self.strerror


# -- the machine ----------------------------------------------------------------------


class WorkerDied(IvigError, ChildProcessError):
    """A worker process of a batch died (killed by hand, or by the system when memory ran out):
    not a bug, not the input's fault. The message says how it died and from which case on there
    are no results; `written` results came before it."""

    def __init__(self, message: str, written: int):
        super().__init__(message)
        self.written = written


__all__ = [
    "SignOffInvalid",
    "CaseChoice",
    "FormatContradicted",
    "InvalidSource",
    "IvigError",
    "LogLocked",
    "LogUnusable",
    "NoLogHere",
    "OutputRefused",
    "ResumeError",
    "Stopped",
    "StreamClosed",
    "UnknownDiagnosis",
    "UnknownRule",
    "UnknownStage",
    "WorkerDied",
    "WriteFailed",
]
