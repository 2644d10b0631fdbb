"""The interview at a terminal: asks the questions engine.interview chooses,
reads the answers line by line, and offers to save the case.

`run_interview` is the entry; `check_save_option` refuses a `--save` target
before the first question. At a terminal, input comes through GNU readline
or libedit when Python has it (line editing, the session's answers as
history, Tab completing the question's choices), and an answer that does not
fit is asked again; from a pipe it is read plainly, a scripted interview
shows its answers in the transcript, and an answer that does not fit stops
it (ScriptedAnswerInvalid, exit 2). Everything from input is shown made safe for
a terminal (escape.for_terminal), and text is wrapped to the terminal's
width (output.wrap). At the end the verdict comes last (VerdictLast), so
that the last screen shows it. quit, Ctrl-C at a question or the end of
input end the interview early: the advice so far and the answers are shown,
and the answers can be saved; SIGTERM and SIGHUP (errors.Stopped) show the
answers and unwind at once.
"""

import re
import shutil
import sys
from typing import Callable, Dict, Iterable, List, Optional

import click
import yaml

from ..base.errors import AnswerInvalid, OutputRefused, ScriptedAnswerInvalid, Stopped, WriteFailed
from ..base.escape import for_terminal
from ..core.advisor import Advisor
from ..core.result import Result
from ..output.render import TextRenderer, normalised_text, plain_style
from ..output.wrap import terminal_width, wrap
from .interview import COMMANDS, NO, YES, Interview, Step, check_save, save_case

INTERVIEW_HELP = """At any question you may answer:
  why      which rules need this answer; why again climbs to the goal they serve
  unknown  leave it unknown (it is reported as missing)
  back     change the previous answer
  how      the chain of rules so far
  help     this text, and what the question means
  quit     stop (the advice so far and the answers are shown; they can be saved)
At a terminal, Tab completes an answer, the arrow keys edit it, and up and down recall earlier ones."""

# The parts of the advice (interview.GOALS) as a `why` names them.
GOAL_WORDS = {"stance": "the stance on IVIG", "dose": "the dose", "warnings": "the warnings"}
# Rows kept free under the advice at the end: the save prompt, or the two lines saying where
# the case and the result were saved, and the shell's prompt after them.
ROWS_BELOW_ADVICE = 3


def say(text, err: bool = False, nl: bool = True) -> None:
    """Echo text that holds something from input (an id, a path, an answer) made safe for a terminal."""
    click.echo("\n".join(for_terminal(line) for line in str(text).split("\n")), err=err, nl=nl)


def show(text: str, hang=0) -> None:
    """Echo text that is already safe (input escaped, our own styles), each line
    wrapped to the terminal's width; further lines of a line start with `hang`
    (spaces, or the prefix itself). The width is read each time: a terminal may be resized."""
    width, prefix = terminal_width(), " " * hang if isinstance(hang, int) else hang
    click.echo("\n".join(wrap(line, width, prefix) for line in str(text).split("\n")))


def tell(text, hang=0) -> None:
    """`show` for plain text that holds something from input: escaped, then wrapped."""
    show("\n".join(for_terminal(line) for line in str(text).split("\n")), hang)


def check_save_option(path, overwrite: bool) -> None:
    """Refuse a --save that cannot be written before any question is asked (OutputRefused).

    An existing file is refused here only when nobody can be asked: at a
    terminal the question comes when the case is saved.
    """
    try:
        check_save(path, with_result=True, overwrite=overwrite or sys.stdin.isatty())
    except FileExistsError as exc:
        raise OutputRefused(f"{exc.filename} exists; add --overwrite to replace it, or --save another file") from None
    except OutputRefused:
        raise
    except OSError as exc:  # '', '.', 'dir/': not a file name
        raise OutputRefused(f"--save {path!r}: {exc.strerror or exc}") from None


def run_interview(
    advisor: Advisor,
    answers: Optional[Dict[str, object]] = None,
    case_id: Optional[str] = None,
    save_path=None,
    overwrite: bool = False,
    style: Callable = plain_style,
    resumed_from=None,
) -> bool:
    """Interview at the terminal until no question can change the advice, show the
    result (or the advice and the answers so far) and offer to save; True when it
    reached the end.

    `answers` and `case_id` come from a resumed case file (`resumed_from`);
    `save_path` saves without asking (an existing file is replaced after a yes
    at the terminal, or with `overwrite`). A scripted answer that does not fit
    its question raises ScriptedAnswerInvalid, naming the question and the line.
    """
    SCRIPT.line = 0
    return _Console(Interview(advisor, answers), style).run(case_id, save_path, overwrite, resumed_from)


class _Console:
    """One interview at the terminal: the session, and how text is styled."""

    def __init__(self, session: Interview, style: Callable):
        self.session = session
        self.style = style

    def run(self, case_id, save_path, overwrite, resumed_from) -> bool:
        session, style = self.session, self.style
        show(
            style("IVIG advice after Dalakas, JAMA 2004", bold=True)
            + " - type why, unknown, back, how, help or quit at any question."
        )
        if session.answers:
            tell(f"Resumed from {resumed_from}: {len(session.answers)} answers given.")
        try:
            finished = self.ask_all()
        except KeyboardInterrupt:
            click.echo("\nInterview interrupted.")
            finished = False
        except Stopped:  # SIGTERM, SIGHUP: no time to ask about saving, but the answers are shown
            if session.answers:
                try:
                    show_answers(session.case(), "\nInterview stopped. The answers so far:")
                except OSError:
                    pass  # the terminal is gone
            raise
        result = session.result() if "diagnosis" in session.answers else None
        if result is not None:
            result.id = case_id or "interview"
        if finished:
            click.echo("")
            click.echo("\n".join(self.renderer().verdict_last(result, self.open_questions(result), screen_rows())))
        elif result is not None:
            self.show_advice_so_far(result)
        if not finished and session.answers:
            show_answers(session.case(), "The answers so far:")
        case = dict({"id": case_id} if case_id else {}, **session.case())
        if session.answers:
            offer_save(case, result if finished else None, save_path, overwrite)
        return finished

    def renderer(self) -> "VerdictLast":
        """The text renderer, at the terminal's width now."""
        return VerdictLast(self.session.advisor.rulebase, style=self.style, width=terminal_width())

    def show_advice_so_far(self, result: Result) -> None:
        """When the interview stops early: the stance and the warnings the answers already
        decide, and the questions still unknown that could change them."""
        renderer, still = self.renderer(), self.open_questions(result)
        click.echo("")
        show(
            self.style("The advice so far", bold=True)
            + " (the interview stopped before the end"
            + (", so it may change" if still else "")
            + "):"
        )
        advice = renderer.verdict(result) + renderer.since_lines(result) + renderer.precaution_lines(result.warnings)
        click.echo("\n".join(advice))
        if still:
            click.echo("  " + self.style("Still unknown, could change the advice:", bold=True))
            click.echo("\n".join(renderer.fit(f"    - {question}", 6) for question in still))

    def open_questions(self, result) -> List[str]:
        """The questions left unknown that could still change the advice, as the clinician read them."""
        fields = self.session.schema.fields
        return [for_terminal(fields[name].question or name) for name in self.session.still_open(result)]

    def ask_all(self) -> bool:
        """Ask until no question can change the answer; False when stopped early."""
        session = self.session
        number = 0
        while True:
            spec = session.next_question()
            if spec is None:
                return True
            number += 1
            self.show_question(number, spec)
            outcome = self.answer(spec)
            if outcome is None:
                return False
            if outcome == "back":
                number -= 2

    def show_question(self, number: int, spec) -> None:
        """The question, its unit and range, and its choices, numbered."""
        safe = for_terminal
        click.echo("")
        show(
            self.style(f"{number}. {safe(spec.question or spec.name)}", bold=True)
            + safe(self.session.range_text(spec)),
            len(f"{number}. "),
        )
        for i, value in enumerate(spec.values, start=1):
            tell(f"   {i:2d}) {spec.values[value].get('label', value)}  [{value}]", 7)

    def answer(self, spec) -> Optional[str]:
        """Read answers to one question until one is taken: 'answered', 'back', or None to stop."""
        session = self.session
        hint = {"boolean": "yes/no", "list": "numbers or names, comma-separated, or none"}.get(spec.type, "")
        choices = session.choices(spec) + list(dict.fromkeys(COMMANDS.values()))
        whys = 0  # a further `why` at the same question climbs one goal higher
        while True:
            text = read_line("   > " + (self.style(f"({hint})", dim=True) + " " if hint else ""), choices)
            if text is None:
                click.echo("End of input.")
                return None
            command = COMMANDS.get(text.strip().lower())
            if command == "quit":
                return None
            if command == "why":
                self.show_why(spec, whys)
                whys += 1
                continue
            if command == "help":
                self.show_help(spec)
                continue
            if command == "how":
                self.show_how()
                continue
            if command == "back":
                undone = session.back()
                tell(
                    f"   Back to: {session.schema.fields[undone].question}" if undone else "   Nothing to go back to.",
                    5,
                )
                if undone:
                    return "back"
                continue
            if command == "unknown":
                if spec.required:
                    self.refuse(spec, text, "the diagnosis is needed: every rule starts from it")
                    continue
                session.skip(spec.name)
                return "answered"
            if self.take(spec, text):
                return "answered"

    def take(self, spec, text: str) -> bool:
        """Record an answer, echoing what a name or number stood for; False (with the reason) if it does not fit."""
        if not text.strip():
            self.refuse(
                spec,
                text,
                "an empty line: type unknown to leave it unknown",
                shown="   Please answer, or type unknown, why or help.",
            )
            return False
        try:
            value = self.session.parse(spec, text)
            self.session.give(spec.name, value)
        except AnswerInvalid as exc:
            self.refuse(spec, text, str(exc))
            return False
        if spec.type in ("enum", "list") and text.strip().lower() != spec.label(value).lower():
            tell(f"   → {spec.label(value)}", 5)  # 'mg' -> Myasthenia gravis: the clinician sees what was taken
        return True

    def refuse(self, spec, text: str, reason: str, shown: Optional[str] = None) -> None:
        """An answer that does not fit: at a terminal the reason (or `shown`), and the question
        is asked again; in a script, ScriptedAnswerInvalid naming the line, the question and the reason."""
        if not sys.stdin.isatty():
            raise ScriptedAnswerInvalid(
                f"line {SCRIPT.line} of standard input: {text.strip()!r} does not answer "
                f"'{spec.question or spec.name}' ({reason}). A script stops at an answer it "
                "cannot use, so that no later answer is taken for another question; nothing "
                "was saved"
            )
        if shown is not None:
            click.echo(shown)
        else:
            show(self.style(f"   ✗ {for_terminal(reason)}", fg="red"), 5)

    def show_help(self, spec) -> None:
        """What the question means (the schema's help and review flag), and the commands."""
        if spec.help:
            tell(f"   {' '.join(spec.help.split())}", 3)
        self.show_review_flag(spec)
        for line in INTERVIEW_HELP.split("\n"):
            show(line, 11 if line.startswith("  ") else 0)

    def show_why(self, spec, level: int) -> None:
        """The `level`-th answer to why at this question: one step up the goal
        tree each time, then the top goal, then that nothing is higher."""
        steps = self.session.why_chain(spec.name)
        if not steps:  # not reached by the questions the interview chooses; an answer all the same
            tell(
                "   No rule is waiting on this answer now."
                + (f" ({' '.join(spec.help.split())})" if spec.help else ""),
                5,
            )
        elif level < len(steps):
            self.show_step(spec, steps, level)
            if level == 0:
                self.show_review_flag(spec)
        elif level == len(steps):
            tell(
                f"   [{level + 1}] That is the top goal: {_joined(_goals_of(steps))}, what this consultation "
                "decides for the patient.",
                7,
            )
        else:
            tell(
                f"   Nothing is above the top goal ({_joined(_goals_of(steps))}). Answer the question, or type help.", 5
            )

    def show_step(self, spec, steps: List[Step], level: int) -> None:
        """One step of `why`: what it explains, the rules waiting on it, and where the next `why` leads."""
        step = steps[level]
        feeds = steps[level + 1].needs if level + 1 < len(steps) else []
        does = [f"feed {_joined(n.replace('_', ' ') for n in feeds)}"] if feeds else []
        does += [f"decide {_joined(step.goals)}"] if step.goals else []
        they = f"; they {' and '.join(does)}" if does else ""
        if level == 0 and not step.tested:
            head = f"No rule tests this answer, but these rules use it in what they conclude{they}:"
        elif level == 0:
            head = f"These rules test this answer{they}:"
        else:
            head = f"In turn, {_joined(n.replace('_', ' ') for n in step.needs)} is tested by these rules{they}:"
        tell(f"   [{level + 1}] {head}", 7)
        for reason in step.reasons:
            tell(f"   - {reason.sentence}" + (f"  [{reason.rule}; {reason.cite}]" if reason.cite else ""), 5)
        if level == 0 and not step.tested and spec.help:
            tell(f"     ({' '.join(spec.help.split())})", 6)  # the schema says what the answer is used for
        tell(
            "   (why again: "
            + (
                f"why {_joined(n.replace('_', ' ') for n in feeds)} matters)"
                if feeds
                else "the goal these rules serve)"
            ),
            5,
        )

    def show_review_flag(self, spec) -> None:
        """The schema's note that the source's wording behind this question is uncertain."""
        if spec.review_flag:
            show(self.style(f"   Review flag: {for_terminal(' '.join(str(spec.review_flag).split()))}", fg="yellow"), 5)

    def show_how(self) -> None:
        session = self.session
        if "diagnosis" not in session.answers:
            click.echo("   No answer yet.")
            return
        click.echo("\n".join(self.renderer().chain_lines(session.result(), prefix="   ")))


# -- the advice at the end ----------------------------------------------------------


class VerdictLast(TextRenderer):
    """The result as the interview ends: the chain and the details first, the verdict (the
    headline, every warning about this patient, the stance and the dose) last, so that the
    last screen shows what the clinician must not miss (`evaluate`'s text has the same
    parts in reading order, the verdict first)."""

    def verdict_last(self, result: Result, unknown: List[str], rows: Optional[int] = None) -> List[str]:
        """The lines of a result, the verdict last. With `rows` (a terminal's height), the
        verdict is laid out so that the headline and the warnings about this patient are on
        the last screen: the stance and dose go above the headline when all does not fit, and
        the headline, which names every critical code, under the warnings when they alone
        fill the screen, the most severe warnings last, right above it: what scrolls off is
        the least severe (findings of later evidence add warnings that can fill a screen)."""
        details = self.detail_lines(result, unknown)
        head, warns, stance = self.headline(result), self.patient_warning_lines(result), self.stance_lines(result)
        room = rows - ROWS_BELOW_ADVICE if rows else None
        if room is None or _height(head + warns + stance) <= room:
            verdict = head + warns + stance
        elif _height(head + warns) < room:
            verdict = stance + [""] + head + warns
        else:
            verdict = stance + self.patient_warning_lines(result, most_severe_last=True) + head
        return details + [""] + verdict

    def verdict(self, result: Result) -> List[str]:
        """The headline, every warning about this patient (critical first), the stance and the dose."""
        return self.headline(result) + self.patient_warning_lines(result) + self.stance_lines(result)

    def detail_lines(self, result: Result, unknown: List[str]) -> List[str]:
        """The chain of rules, then the general precautions, what was read from another
        spelling, the questions left unknown that could change the advice, and the later
        evidence ('Since 2004'), right above the review's stance in the verdict."""
        s, lines = self.style, []
        if self.chain and result.trace:
            lines.append("  " + s("How:", bold=True))
            lines.extend(self.chain_lines(result, prefix="    "))
        lines.extend(self.precaution_lines(result.warnings))
        if result.normalised:
            lines.append(self.fit("  " + s("Read as: ", bold=True) + normalised_text(result.normalised), 4))
        lines.extend(self.unknown_lines(result.missing, unknown))
        lines.extend(self.since_lines(result))
        return lines


def _height(lines: List[str]) -> int:
    """The rows lines take on the screen (a wrapped line holds its breaks)."""
    return sum(line.count("\n") + 1 for line in lines)


def screen_rows() -> Optional[int]:
    """The rows of the terminal standard output is, or None when it is not one."""
    if terminal_width() is None:
        return None
    return shutil.get_terminal_size().lines


def _goals_of(steps: List[Step]) -> List[str]:
    """The parts of the advice a chain of steps decides, in GOAL_WORDS's order."""
    reached = {g for step in steps for g in step.goals}
    return [g for g in GOAL_WORDS if g in reached]


def _joined(items: Iterable[str]) -> str:
    """'a', 'a and b', 'a, b and c' (goals in their words)."""
    items = [GOAL_WORDS.get(i, i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1] if items else ""


# -- reading a line ---------------------------------------------------------------

_COMPLETIONS: List[str] = []  # what Tab completes at the current prompt
_SGR = re.compile(r"\x1b\[[0-9;]*m")


def line_editor():
    """The readline module when both input and output are a terminal, set up once
    (Tab completes, only ',' separates words); None otherwise, or when Python
    has no readline: then input is read plainly and nothing is sent to the terminal.

    History is the process's own: `ivig` loads no history file and saves none,
    so up and down recall this session's answers only, and none outlives it."""
    try:
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return None
    except (AttributeError, ValueError):
        return None
    try:
        import readline
    except ImportError:  # Windows, or a Python built without it
        return None
    if readline.get_completer() is not _complete:
        libedit = "libedit" in (readline.__doc__ or "") or getattr(readline, "backend", "") == "editline"
        readline.parse_and_bind("bind ^I rl_complete" if libedit else "tab: complete")
        readline.set_completer_delims(",")  # a list answer completes each item; spaces belong to names
        readline.set_completer(_complete)
    return readline


def _complete(text: str, state: int) -> Optional[str]:
    """readline's completer: the state-th choice that starts with what was typed (any case)."""
    typed = text.lstrip()
    matches = [text[: len(text) - len(typed)] + c for c in _COMPLETIONS if c.lower().startswith(typed.lower())]
    return matches[state] if state < len(matches) else None


def ignore_markers(prompt: str) -> str:
    """The prompt with each style sequence between readline's ignore markers
    (\\001, \\002), so that it counts the prompt's columns right."""
    return _SGR.sub(lambda m: "\001" + m.group() + "\002", prompt)


def read_line(prompt: str, choices: Iterable[str] = ()) -> Optional[str]:
    """One line of input, None at end of input: edited at a terminal (Tab completes
    `choices`), plainly from a pipe, where it is echoed so the transcript shows it."""
    editor = line_editor()
    if editor is not None:
        _COMPLETIONS[:] = list(choices)
        try:
            return input(ignore_markers(prompt))
        except EOFError:
            click.echo("")
            return None
    click.echo(prompt, nl=False)
    if sys.stdin.isatty():  # a terminal without readline, or output to a file
        try:
            return input()
        except EOFError:
            click.echo("")
            return None
    line = sys.stdin.readline()
    if not line:
        click.echo("")
        return None
    SCRIPT.line += 1
    say(line.rstrip("\n"))  # a scripted answer shows in the transcript, escaped like all input
    return line.rstrip("\n")


class _ScriptPosition:
    """How many lines of a script (standard input that is not a terminal) were read: the
    line an unusable answer is on. Reset when an interview starts."""

    line = 0


SCRIPT = _ScriptPosition()


def show_answers(case: dict, heading: str) -> None:
    say(heading + "\n" + yaml.safe_dump(case, sort_keys=False, allow_unicode=True).rstrip())


def offer_save(case: dict, result, save_path, overwrite: bool) -> None:
    """Save the case (and the result, when there is one) as files `ivig evaluate` reads.

    A path that cannot be written asks for another; an existing file is
    replaced only after a yes at the terminal (or with --overwrite); if no
    file is saved after a failure, the answers are printed, so none is lost.
    """
    path, confirmed, failed = save_path, set(), False
    while True:
        if path is None:
            path = ask_file_name()
            if path is None:
                if failed:
                    show_answers(case, "Not saved. The answers, to keep:")
                return
        try:
            written = save_case(path, case, result, overwrite=overwrite or path in confirmed)
        except FileExistsError as exc:
            many = " and " in exc.filename
            exist = f"{exc.filename} exist{'' if many else 's'}"
            if sys.stdin.isatty() and yes(f"{for_terminal(exist)}. Overwrite {'them' if many else 'it'}? [y/N] "):
                confirmed.add(path)
                continue
            say(f"   {exist}: not replaced (--overwrite replaces it); give another name.")
        except (OutputRefused, WriteFailed, OSError) as exc:
            say(f"   ✗ cannot save there: {exc.strerror if isinstance(exc, WriteFailed) else exc}")
            failed = True
        else:
            for what, target in zip(("case", "result"), written):
                say(f"Saved the {what} to {target}")
            return
        path = None


def ask_file_name() -> Optional[str]:
    """A file name from the save prompt; None to skip (Enter, no, end of input, Ctrl-C)."""
    prompt = "Save the case to a file? (file name, or Enter to skip) "
    while True:
        try:
            text = read_line(prompt)
        except KeyboardInterrupt:
            click.echo("")
            return None
        word = (text or "").strip()
        if not word or word.lower() in NO or word.lower() in ("q", "quit", "skip"):
            return None
        if word.lower() in ("help", "back", "why", "how", "unknown", "?") or word in ("~", "-"):
            say(f"   '{word}' is not a file name here: type a file name, or Enter to skip.")
            continue
        if word.lower() not in YES:
            return word
        prompt = "File name (or Enter to skip): "


def yes(question: str) -> bool:
    try:
        answer = read_line(question)
    except KeyboardInterrupt:
        return False
    return (answer or "").strip().lower() in ("y", "yes")
