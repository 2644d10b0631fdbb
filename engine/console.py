"""The interview at a terminal: asks the questions engine.interview chooses,
reads the answers line by line, and offers to save the case.

`run_interview` is the entry; `check_save_option` refuses a `--save` target
before the first question. Input comes with line editing at a terminal and
plainly from a pipe (a scripted interview shows its answers in the
transcript); everything from input is shown made safe for a terminal
(escape.for_terminal). Ctrl-C at a question ends the interview (its answers
are shown and can be saved); SIGTERM and SIGHUP (errors.Stopped) show the
answers and unwind at once.
"""

import sys
from typing import Callable, Dict, Optional

import click
import yaml

from .errors import OutputRefused, Stopped, WriteFailed
from .escape import for_terminal
from .evaluate import Advisor
from .interview import COMMANDS, NO, YES, AnswerError, Interview, check_save, save_case
from .render import TextRenderer, plain_style

INTERVIEW_HELP = """At any question you may answer:
  why      which rules need this answer, and what they would conclude
  unknown  leave it unknown (it is reported as missing)
  back     change the previous answer
  how      the chain of rules so far
  help     this text, and what the question means
  quit     stop (the answers so far are shown, and can be saved)"""


def say(text, err: bool = False, nl: bool = True) -> None:
    """Echo text that holds something from input (an id, a path, an answer) made safe for a terminal."""
    click.echo("\n".join(for_terminal(line) for line in str(text).split("\n")), err=err, nl=nl)


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


def run_interview(advisor: Advisor, answers: Optional[Dict[str, object]] = None, case_id: Optional[str] = None,
                  save_path=None, overwrite: bool = False, style: Callable = plain_style,
                  resumed_from=None) -> bool:
    """Interview at the terminal until no question can change the advice, show the
    result (or the answers so far) and offer to save; True when it reached the end.

    `answers` and `case_id` come from a resumed case file (`resumed_from`);
    `save_path` saves without asking (an existing file is replaced after a yes
    at the terminal, or with `overwrite`).
    """
    return _Console(Interview(advisor, answers), style).run(case_id, save_path, overwrite, resumed_from)


class _Console:
    """One interview at the terminal: the session, and how text is styled."""

    def __init__(self, session: Interview, style: Callable):
        self.session = session
        self.style = style

    def run(self, case_id, save_path, overwrite, resumed_from) -> bool:
        session, style = self.session, self.style
        click.echo(style("IVIG advice after Dalakas, JAMA 2004", bold=True)
                   + " - type why, unknown, back, how, help or quit at any question.")
        if session.answers:
            say(f"Resumed from {resumed_from}: {len(session.answers)} answers given.")
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
        if finished:
            result.id = case_id or "interview"
            click.echo("")
            click.echo(TextRenderer(session.advisor.rulebase, style=style).render(result))
        elif session.answers:
            show_answers(session.case(), "The answers so far:")
        case = dict({"id": case_id} if case_id else {}, **session.case())
        if session.answers:
            offer_save(case, result if finished else None, save_path, overwrite)
        return finished

    def ask_all(self) -> bool:
        """Ask until no question can change the answer; False when stopped early."""
        session, style, safe = self.session, self.style, for_terminal
        number = 0
        while True:
            spec = session.next_question()
            if spec is None:
                return True
            number += 1
            click.echo("")
            click.echo(style(f"{number}. {safe(spec.question or spec.name)}", bold=True)
                       + safe(session.range_text(spec)))
            options = list(spec.values)
            for i, value in enumerate(options, start=1):
                say(f"   {i:2d}) {spec.values[value].get('label', value)}  [{value}]")
            hint = {"boolean": "yes/no", "list": "numbers or names, comma-separated, or none"}.get(spec.type, "")
            while True:
                text = read_line(f"   > {'(' + hint + ') ' if hint else ''}")
                if text is None:
                    click.echo("End of input.")
                    return False
                command = COMMANDS.get(text.strip().lower())
                if command == "quit":
                    return False
                if command == "help":
                    say(f"   {spec.help}" if spec.help else "")
                    self.show_review_flag(spec)
                    click.echo(INTERVIEW_HELP)
                    continue
                if command == "why":
                    for reason in session.why(spec.name):
                        say(f"   - {reason.sentence}" + (f"  [{reason.rule}; {reason.cite}]" if reason.cite else ""))
                    self.show_review_flag(spec)
                    continue
                if command == "how":
                    self.show_how()
                    continue
                if command == "back":
                    undone = session.back()
                    say(f"   Back to: {session.schema.fields[undone].question}" if undone
                        else "   Nothing to go back to.")
                    if undone:
                        number -= 2
                        break
                    continue
                if command == "unknown":
                    if spec.required:
                        click.echo(style("   ✗ the diagnosis is needed: every rule starts from it", fg="red"))
                        continue
                    session.skip(spec.name)
                    break
                if not text.strip():
                    click.echo("   Please answer, or type unknown, why or help.")
                    continue
                try:
                    session.give(spec.name, session.parse(spec, text))
                    break
                except AnswerError as exc:
                    click.echo(style(f"   ✗ {safe(exc)}", fg="red"))

    def show_review_flag(self, spec) -> None:
        """The schema's note that the source's wording behind this question is uncertain."""
        if spec.review_flag:
            say(self.style(f"   Review flag: {' '.join(str(spec.review_flag).split())}", fg="yellow"))

    def show_how(self) -> None:
        session = self.session
        if "diagnosis" not in session.answers:
            click.echo("   No answer yet.")
            return
        renderer = TextRenderer(session.advisor.rulebase, style=self.style)
        click.echo("\n".join("   " + line for line in renderer.chain_lines(session.result())))


def read_line(prompt: str) -> Optional[str]:
    """One line of input: with line editing on a terminal, plainly from a pipe; None at end of input."""
    click.echo(prompt, nl=False)
    if sys.stdin.isatty():
        try:
            return input()
        except EOFError:
            click.echo("")
            return None
    line = sys.stdin.readline()
    if not line:
        click.echo("")
        return None
    say(line.rstrip("\n"))  # a scripted answer shows in the transcript, escaped like all input
    return line.rstrip("\n")


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
            if sys.stdin.isatty() and yes(f"{exist}. Overwrite {'them' if many else 'it'}? [y/N] "):
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
