"""The `ivig` command line: parses options and renders; the library does the work.

Heavy imports (the engine, experta) happen inside the commands, so that
`ivig --help` and `ivig --version` stay fast.

Every way a command can end has its own exit status (`exit_status` below): a
signal or an unexpected exception unwinds like Ctrl-C, so that workers stop
and no temporary file is left, and ends in one line on stderr.
"""

import os
import signal
import sys

import click

from ivig_advisor import __version__

FORMATS = ("text", "json", "jsonl", "csv")

EXIT_USAGE = 2       # a usage error, or a path that cannot be used (found before anything is written)
EXIT_INTERNAL = 70   # sysexits.h EX_SOFTWARE: a bug in ivig, whatever the input
EXIT_IO = 74         # sysexits.h EX_IOERR: a file or standard output could not be read or written
STOP_SIGNALS = ("SIGTERM", "SIGHUP")  # handled like Ctrl-C (SIGINT); the status is 128 + the signal's number


def exit_status(one: str) -> str:
    """The help's exit-status table; `one` says what status 1 means for the command."""
    return f"""\b
Exit status:
  0    done
  1    {one}
  2    usage error, or a path that cannot be used (nothing was written)
  70   internal error, a bug: `ivig --debug ...` shows the traceback
  74   a file or standard output could not be read or written (a full disk)
  130  stopped by Ctrl-C; 143 by SIGTERM, 129 by SIGHUP (128 + the signal);
       an output file is left as it was, and no worker or temporary file stays
  141  the reader of standard output went away (a closed pipe)"""


class Stopped(BaseException):
    """SIGTERM or SIGHUP arrived: unwinds like KeyboardInterrupt, so that every
    `finally` runs (the pool is shut down, a temporary output file removed)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    for name in STOP_SIGNALS:  # once: a second signal must not cut the clean-up short
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Stopped(signum)


class Ivig(click.Group):
    """The `ivig` group: whatever a command raises ends in one line and its own exit status."""

    def invoke(self, ctx):
        import threading
        from contextlib import ExitStack
        with ExitStack() as stack:
            for name in STOP_SIGNALS:  # only the main thread may set handlers (CliRunner in a thread)
                if hasattr(signal, name) and threading.current_thread() is threading.main_thread():
                    signum = getattr(signal, name)
                    stack.callback(signal.signal, signum, signal.signal(signum, _stop))
            try:
                return super().invoke(ctx)
            except (click.ClickException, click.exceptions.Exit, click.Abort):
                raise
            except BaseException as exc:  # noqa: B036 - every other end is turned into an exit status
                if isinstance(exc, SystemExit):
                    raise
                _fail(exc, ctx.params.get("debug"))


def _fail(exc: BaseException, debug: bool):
    """Report how a command ended, in one line (the traceback with --debug), and exit."""
    from ivig_advisor.engine.atomic import OutputRefused, WriteFailed
    from ivig_advisor.engine.escape import for_terminal
    if isinstance(exc, (BrokenPipeError, WriteFailed)) and exc.errno == 32:
        _silence_stdout()
        sys.exit(128 + 13)  # like a process killed by SIGPIPE, quietly: the reader chose to stop
    if isinstance(exc, KeyboardInterrupt):
        status, line = 128 + signal.SIGINT, "ivig: stopped by Ctrl-C (SIGINT)"
    elif isinstance(exc, Stopped):
        status, line = 128 + exc.signum, f"ivig: stopped by {signal.Signals(exc.signum).name}"
    elif isinstance(exc, OutputRefused):
        status, line = EXIT_USAGE, f"error: {exc}"
    elif isinstance(exc, WriteFailed):
        status, line = EXIT_IO, f"error: {exc.strerror}"
    elif isinstance(exc, OSError):
        status, line = EXIT_IO, f"error: {exc}"
    else:
        status = EXIT_INTERNAL
        line = (f"ivig: internal error ({type(exc).__name__}: {exc}); this is a bug in ivig, "
                f"not in the input: run again as `ivig --debug ...` for the traceback")
    if isinstance(exc, OSError):
        _silence_stdout()
    if debug:
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__)
    click.echo(for_terminal(line), err=True)
    sys.exit(status)


def _silence_stdout():
    """When standard output cannot be written, send what is still buffered nowhere,
    so that the interpreter's last flush adds no second error."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass


def _say(text: str, err=False, nl=True):
    """Echo text that holds something from input (an id, a path, an answer) made safe for a terminal."""
    from ivig_advisor.engine.escape import for_terminal
    click.echo("\n".join(for_terminal(line) for line in str(text).split("\n")), err=err, nl=nl)


def _style():
    """click.style, or plain text when NO_COLOR is set (https://no-color.org)."""
    from ivig_advisor.engine.render import plain_style
    return plain_style if os.environ.get("NO_COLOR") else click.style


def _load_rules(rules_dir):
    from ivig_advisor.engine import RuleBase, RuleBaseInvalid
    try:
        return RuleBase.load(rules_dir)
    except RuleBaseInvalid as exc:
        for error in exc.errors:
            _say(f"error: {error}", err=True)
        raise SystemExit(2)


@click.group(cls=Ivig, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=exit_status("some case had an error, a check found something, or the interview "
                                "stopped early (see each command)"))
@click.version_option(__version__, prog_name="ivig")
@click.option("--debug", is_flag=True, help="On an internal error, show the traceback.")
def main(debug):
    """Advice on IVIG in autoimmune neuromuscular diseases, from production rules
    encoding Dalakas MC, JAMA 2004;291(19):2367-75 (PMID 15150209).

    Decision support for clinicians; it restates one 2004 review and is no
    substitute for clinical judgement or current guidelines.
    """


@main.command(epilog=exit_status("some case had an error (its result says which and where)"))
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text for a person; json (one array), jsonl (one object per line) or csv "
                   "(one row per case) for programs.")
@click.option("--output", "-o", "output", type=click.Path(),
              help="Write the results to this file, atomically: it appears whole or not at all. A link is "
                   "written through; an input, a device or a file in a missing folder is refused (exit 2). "
                   "A folder being read never reads it back.")
@click.option("--workers", "-j", type=click.IntRange(min=1),
              help="Processes evaluating cases [default: the number of cores, for batches of "
                   "512 cases or more; at most 2 per core]. Output is identical for any number.")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False),
              help="Use another rule base directory (default: the packaged rules).")
@click.option("--no-chain", is_flag=True, help="Text format: leave out the chain of rules.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line and no summary on stderr.")
def evaluate(paths, fmt, output, workers, rules_dir, no_chain, quiet):
    """Evaluate case files (YAML, JSON, JSONL), directories (recursively) or - for stdin.

    Every case gets one result, in input order; a case that cannot be read or
    validated gets an error result naming file, line and field.
    """
    from contextlib import closing, nullcontext

    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.atomic import GuardedStream, atomic_writer, refuse_inputs, writable_target
    from ivig_advisor.engine.batch import WORKERS_PER_CORE, evaluate_files, max_workers
    from ivig_advisor.engine.render import Formatter, Progress, ResultWriter, Summary, plain_style

    if output:  # before the rules load: a bad target is known at once
        refuse_inputs(output, paths, sys.stdin)
        writable_target(output)
    if workers is not None and workers > max_workers():
        click.echo(f"ivig: --workers {workers} is more than this machine can use; using {max_workers()} "
                   f"({WORKERS_PER_CORE} per core)", err=True)
        workers = max_workers()
    advisor = Advisor(_load_rules(rules_dir))
    colour = output is None and sys.stdout.isatty()  # as click.echo does: no escapes into files or pipes
    formatter = Formatter(fmt, chain=not no_chain, style=_style() if colour else plain_style)
    summary = Summary()
    progress = Progress() if not quiet and sys.stderr.isatty() else None
    target = atomic_writer(output) if output else nullcontext(GuardedStream(sys.stdout, "standard output"))
    with target as stream:
        writer = ResultWriter(stream, fmt)
        results = evaluate_files(paths, advisor, stdin=sys.stdin, workers=workers, finish=formatter, exclude=output)
        with closing(results):  # on any exit, at once: the pool stops before the temporary file goes
            try:
                for item in results:
                    summary.add(item)
                    writer.write(item)
                    if progress:
                        progress.add(item)
            finally:
                if progress:
                    progress.close()
        writer.close()
    if not quiet:
        click.echo(str(summary), err=True)
    sys.exit(1 if summary.failed else 0)


# -- ivig interview ----------------------------------------------------------

INTERVIEW_HELP = """At any question you may answer:
  why      which rules need this answer, and what they would conclude
  unknown  leave it unknown (it is reported as missing)
  back     change the previous answer
  how      the chain of rules so far
  help     this text, and what the question means
  quit     stop (the answers so far are shown, and can be saved)"""


@main.command(epilog=exit_status("the interview was stopped before the end (quit, Ctrl-C at a question, "
                                 "end of input)"))
@click.option("--resume", "resume_path", type=click.Path(exists=True, dir_okay=False),
              help="Start from the answers in this case file; only what is missing is asked.")
@click.option("--id", "wanted_id", help="The case to resume, when the --resume file holds several.")
@click.option("--save", "save_path", type=click.Path(dir_okay=False),
              help="Save the case here (and the result beside it: p.yaml -> p.result.json) without asking. "
                   "An existing file is replaced only after a yes at the terminal, or with --overwrite.")
@click.option("--overwrite", is_flag=True,
              help="Let --save replace existing files without asking (needed when input is not a terminal).")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False),
              help="Use another rule base directory (default: the packaged rules).")
def interview(resume_path, wanted_id, save_path, overwrite, rules_dir):
    """Interview in the terminal: only the questions that matter for this patient.

    Answers are read line by line, so the interview can be scripted by piping
    answers in.
    """
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.interview import Interview

    if save_path is not None:
        _check_save_option(save_path, overwrite)
    advisor = Advisor(_load_rules(rules_dir))
    answers, case_id = _resumed(advisor, resume_path, wanted_id) if resume_path else ({}, None)
    session = Interview(advisor, answers)
    style = _style()
    click.echo(style("IVIG advice after Dalakas, JAMA 2004", bold=True)
               + " - type why, unknown, back, how, help or quit at any question.")
    if answers:
        _say(f"Resumed from {resume_path}: {len(answers)} answers given.")
    try:
        finished = _ask_all(session, style)
    except KeyboardInterrupt:
        click.echo("\nInterview interrupted.")
        finished = False
    except Stopped:  # SIGTERM, SIGHUP: no time to ask about saving, but the answers are shown
        if session.answers:
            try:
                _show_answers(session.case(), "\nInterview stopped. The answers so far:")
            except OSError:
                pass  # the terminal is gone
        raise
    result = session.result() if "diagnosis" in session.answers else None
    if finished:
        from ivig_advisor.engine.render import TextRenderer
        result.id = case_id or "interview"
        click.echo("")
        click.echo(TextRenderer(advisor.rulebase, style=style).render(result))
    elif session.answers:
        _show_answers(session.case(), "The answers so far:")
    case = dict({"id": case_id} if case_id else {}, **session.case())
    if session.answers:
        _offer_save(case, result if finished else None, save_path, overwrite)
    sys.exit(0 if finished else 1)


def _check_save_option(path, overwrite):
    """Refuse a --save that cannot be written before any question is asked (exit 2).

    An existing file is refused here only when nobody can be asked: at a
    terminal the question comes when the case is saved.
    """
    from ivig_advisor.engine.interview import check_save
    try:
        check_save(path, with_result=True, overwrite=overwrite or sys.stdin.isatty())
    except FileExistsError as exc:
        _say(f"error: {exc.filename} exists; add --overwrite to replace it, or --save another file", err=True)
        raise SystemExit(EXIT_USAGE)
    except OSError as exc:  # '', '.', 'dir/': not a file name
        _say(f"error: --save {path!r}: {exc.strerror or exc}", err=True)
        raise SystemExit(EXIT_USAGE)


def _resumed(advisor, path, wanted_id):
    """The answers and id of the case to resume; exit 2 naming the file when there is not exactly one."""
    from ivig_advisor.engine import CaseInvalid
    from ivig_advisor.engine.caseio import read_cases
    from ivig_advisor.engine.interview import ResumeError, pick_case
    from ivig_advisor.engine.words import plain
    try:
        record = pick_case(read_cases([path]), wanted_id, path)
        if record.error is not None:
            raise CaseInvalid([record.error])
        case = advisor.validate(record.data, record.source, record.line, record.default_id)
    except ResumeError as exc:
        _say(f"error: {exc}", err=True)
        raise SystemExit(EXIT_USAGE)
    except CaseInvalid as exc:
        for error in exc.errors:
            _say(f"error: {error}", err=True)
        raise SystemExit(EXIT_USAGE)
    answers = {k: plain(v) for k, v in case.facts.items()}
    return answers, case.id if case.id != record.default_id else None


def _read(prompt):
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
    _say(line.rstrip("\n"))  # a scripted answer shows in the transcript, escaped like all input
    return line.rstrip("\n")


def _ask_all(session, style) -> bool:
    """Ask until no question can change the answer; False when stopped early."""
    from ivig_advisor.engine.escape import for_terminal as safe
    from ivig_advisor.engine.interview import COMMANDS, AnswerError
    number = 0
    while True:
        spec = session.next_question()
        if spec is None:
            return True
        number += 1
        click.echo("")
        click.echo(style(f"{number}. {safe(spec.question or spec.name)}", bold=True) + safe(session.range_text(spec)))
        options = list(spec.values)
        for i, value in enumerate(options, start=1):
            _say(f"   {i:2d}) {spec.values[value].get('label', value)}  [{value}]")
        hint = {"boolean": "yes/no", "list": "numbers or names, comma-separated, or none"}.get(spec.type, "")
        while True:
            text = _read(f"   > {'(' + hint + ') ' if hint else ''}")
            if text is None:
                click.echo("End of input.")
                return False
            command = COMMANDS.get(text.strip().lower())
            if command == "quit":
                return False
            if command == "help":
                _say(f"   {spec.help}" if spec.help else "")
                click.echo(INTERVIEW_HELP)
                continue
            if command == "why":
                for reason in session.why(spec.name):
                    _say(f"   - {reason.sentence}" + (f"  [{reason.rule}; {reason.cite}]" if reason.cite else ""))
                continue
            if command == "how":
                _show_how(session, style)
                continue
            if command == "back":
                undone = session.back()
                _say(f"   Back to: {session.schema.fields[undone].question}" if undone else "   Nothing to go back to.")
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


def _show_how(session, style):
    from ivig_advisor.engine.render import TextRenderer
    if "diagnosis" not in session.answers:
        click.echo("   No answer yet.")
        return
    renderer = TextRenderer(session.advisor.rulebase, style=style)
    result = session.result()
    click.echo("\n".join("   " + line for line in renderer.chain_lines(result)))


def _show_answers(case, heading):
    import yaml
    _say(heading + "\n" + yaml.safe_dump(case, sort_keys=False, allow_unicode=True).rstrip())


def _offer_save(case, result, save_path, overwrite):
    """Save the case (and the result, when there is one) as files `ivig evaluate` reads.

    A path that cannot be written asks for another; an existing file is
    replaced only after a yes at the terminal (or with --overwrite); if no
    file is saved after a failure, the answers are printed, so none is lost.
    """
    from ivig_advisor.engine.atomic import OutputRefused, WriteFailed
    from ivig_advisor.engine.interview import save_case
    path, confirmed, failed = save_path, set(), False
    while True:
        if path is None:
            path = _ask_file_name()
            if path is None:
                if failed:
                    _show_answers(case, "Not saved. The answers, to keep:")
                return
        try:
            written = save_case(path, case, result, overwrite=overwrite or path in confirmed)
        except FileExistsError as exc:
            many = " and " in exc.filename
            exist = f"{exc.filename} exist{'' if many else 's'}"
            if sys.stdin.isatty() and _yes(f"{exist}. Overwrite {'them' if many else 'it'}? [y/N] "):
                confirmed.add(path)
                continue
            _say(f"   {exist}: not replaced (--overwrite replaces it); give another name.")
        except (OutputRefused, WriteFailed, OSError) as exc:
            _say(f"   ✗ cannot save there: {exc.strerror if isinstance(exc, WriteFailed) else exc}")
            failed = True
        else:
            for what, target in zip(("case", "result"), written):
                _say(f"Saved the {what} to {target}")
            return
        path = None


def _ask_file_name():
    """A file name from the save prompt; None to skip (Enter, no, end of input, Ctrl-C)."""
    from ivig_advisor.engine.interview import NO, YES
    prompt = "Save the case to a file? (file name, or Enter to skip) "
    while True:
        try:
            text = _read(prompt)
        except KeyboardInterrupt:
            click.echo("")
            return None
        word = (text or "").strip()
        if not word or word.lower() in NO or word.lower() in ("q", "quit", "skip"):
            return None
        if word.lower() in ("help", "back", "why", "how", "unknown", "?") or word in ("~", "-"):
            _say(f"   '{word}' is not a file name here: type a file name, or Enter to skip.")
            continue
        if word.lower() not in YES:
            return word
        prompt = "File name (or Enter to skip): "


def _yes(question) -> bool:
    try:
        answer = _read(question)
    except KeyboardInterrupt:
        return False
    return (answer or "").strip().lower() in ("y", "yes")


# -- ivig audit --------------------------------------------------------------

AUDIT_FORMATS = ("text", "json", "markdown")


def _echo_json(data):
    """JSON for programs, that a terminal shows safely too (escape.json_text)."""
    from ivig_advisor.engine.escape import json_text
    click.echo(json_text(data, indent=2))


@main.group(epilog=exit_status("a finding (check), a difference (diff), a rule never fired (coverage "
                               "--require-all), or a case that cannot be read (why-not)"))
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False),
              help="Audit another rule base directory (default: the packaged rules).")
@click.pass_context
def audit(ctx, rules_dir):
    """For clinical reviewers: the rules in plain language, their provenance and
    sign-off, a static check, coverage, why a rule did not fire, and what an
    edit changes."""
    ctx.obj = {"rules_dir": rules_dir}


def _rulebase(ctx):
    return _load_rules(ctx.obj["rules_dir"])


@audit.command("rules")
@click.option("--disease", help="Only the rules that can fire for this diagnosis (abbreviations work: mg, gbs).")
@click.option("--basis", type=click.Choice(("review", "assumption")), help="Only rules on this basis.")
@click.option("--status", help="Only rules with this review status (draft, reviewed, approved, ...).")
@click.option("--format", "fmt", type=click.Choice(AUDIT_FORMATS), default="text", show_default=True)
@click.pass_context
def audit_rules(ctx, disease, basis, status, fmt):
    """Every rule in plain language, with its source in the review, basis, status and sign-off."""
    from ivig_advisor.engine import audit as A
    from ivig_advisor.engine.audit_text import rules_markdown, rules_text
    from ivig_advisor.engine.signoff import ReviewLog

    rulebase = _rulebase(ctx)
    try:
        diagnosis = A.diagnosis_value(rulebase, disease) if disease else None
    except ValueError as exc:
        raise click.BadParameter(_safe(exc), param_hint="--disease")
    rules = A.rules_for(rulebase, diagnosis, basis, status)
    log = ReviewLog.load(rulebase)
    for error in log.errors:
        _say(f"warning: {error}", err=True)
    if fmt == "json":
        _echo_json([A.rule_record(rulebase, r, log) for r in rules])
    elif fmt == "markdown":
        click.echo(rules_markdown(rulebase, rules, log))
    else:
        click.echo(rules_text(rulebase, rules, log, _style()))


@audit.command("show")
@click.argument("rule_id", metavar="RULE")
@click.option("--cases", "case_paths", multiple=True, type=click.Path(exists=True),
              help="Case files or directories to find the cases that fire the rule "
                   "(default: the checkout's tests/cases and examples).")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.pass_context
def audit_show(ctx, rule_id, case_paths, fmt):
    """One rule in full: provenance, evidence, the rules that feed it and that it
    feeds, and the cases that exercise it."""
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine import audit as A
    from ivig_advisor.engine.audit_text import show_text
    from ivig_advisor.engine.words import suggest
    from ivig_advisor.engine.signoff import ReviewLog

    rulebase = _rulebase(ctx)
    if rule_id not in rulebase.by_id:
        raise click.BadParameter(_safe(f"no rule '{rule_id}'{suggest(rule_id, rulebase.by_id)}"), param_hint="RULE")
    rule = rulebase.by_id[rule_id]
    paths = list(case_paths) or A.default_corpus(rulebase)
    cases = None
    if paths:
        cases = [r.id for r in A.run_corpus(Advisor(rulebase), paths)
                 if r.ok and any(t["rule"] == rule_id for t in r.trace)]
    feeds = A.feeds(rulebase)
    fed_by = A.fed_by(feeds)
    log = ReviewLog.load(rulebase)
    if fmt == "json":
        _echo_json(dict(A.rule_record(rulebase, rule, log), feeds=feeds[rule_id], fed_by=fed_by[rule_id],
                        cases=cases))
    else:
        click.echo(show_text(rulebase, rule, log, feeds, fed_by, cases, _style()))


@audit.command("check")
@click.option("--strict", is_flag=True, help="Also fail on rules without a current 'approved' sign-off.")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.pass_context
def audit_check(ctx, strict, fmt):
    """Static verification, exhaustive over the fact space; exit 1 on any finding.

    On load: schema errors, unknown fields or values, duplicate ids, missing
    provenance. Then, for every diagnosis and every combination of the values
    the rules distinguish: unreachable rules, conflicting stances, doses or
    warning severities, redundant and subsumed rules, and gaps.
    """
    from ivig_advisor.engine.audit import check
    from ivig_advisor.engine.audit_text import check_text

    report = check(ctx.obj["rules_dir"], strict=strict)
    if fmt == "json":
        v = report.verification
        _echo_json({"ok": report.ok, "findings": [f.to_dict() for f in report.findings],
                    "combinations": v.combinations if v else None, "excluded": v.excluded if v else None,
                    "states": v.states if v else None, "signoff": report.signoff,
                    "per_diagnosis": [{k: getattr(c, k) for k in ("diagnosis", "fields", "combinations",
                                                                  "excluded", "states")}
                                      for c in v.coverage] if v else []})
    else:
        click.echo(check_text(report, _style()))
    sys.exit(0 if report.ok else 1)


@audit.command("coverage")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.option("--require-all", is_flag=True, help="Exit 1 if some rule never fired.")
@click.pass_context
def audit_coverage(ctx, paths, fmt, require_all):
    """How often each rule fired over a case corpus, and the rules never fired."""
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.audit import coverage
    from ivig_advisor.engine.audit_text import coverage_text

    rulebase = _rulebase(ctx)
    report = coverage(Advisor(rulebase), paths, stdin=sys.stdin)
    if fmt == "json":
        _echo_json({"cases": report.cases, "errors": report.errors,
                    "rules": [{"id": r.id, "fired": report.fired[r.id], "cases": report.examples.get(r.id, [])}
                              for r in rulebase.rules],
                    "never_fired": report.never(rulebase)})
    else:
        click.echo(coverage_text(rulebase, report))
    sys.exit(1 if require_all and report.never(rulebase) else 0)


@audit.command("why-not")
@click.argument("case_path", metavar="CASE", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.argument("rule_id", metavar="RULE")
@click.option("--id", "case_id", help="The case to explain, when the file holds several.")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.pass_context
def audit_why_not(ctx, case_path, rule_id, case_id, fmt):
    """Which condition of RULE failed for the case in CASE, and what values would make it fire."""
    from ivig_advisor.engine import Advisor, CaseInvalid
    from ivig_advisor.engine.audit import read_corpus, why_not
    from ivig_advisor.engine.audit_text import why_not_text

    rulebase = _rulebase(ctx)
    records = list(read_corpus([case_path], stdin=sys.stdin))
    chosen = [r for r in records if case_id is None or _record_id(r) == case_id]
    if len(chosen) != 1:
        ids = ", ".join(_record_id(r) for r in records)
        raise click.BadParameter(_safe(f"{'no case ' + repr(case_id) if case_id else 'the file holds several cases'}"
                                       f" (cases: {ids}); choose one with --id"), param_hint="CASE")
    record = chosen[0]
    try:
        if record.error is not None:
            raise CaseInvalid([record.error])
        answer = why_not(Advisor(rulebase), record.data, rule_id, record.source, record.line, record.default_id)
    except CaseInvalid as exc:
        for error in exc.errors:
            _say(f"error: {error}", err=True)
        sys.exit(1)
    except ValueError as exc:
        raise click.BadParameter(_safe(exc), param_hint="RULE")
    if fmt == "json":
        _echo_json({"case": answer.case_id, "rule": rule_id, "fired": answer.fired,
                    "tests": [t.__dict__ for t in answer.tests], "blocked_by": answer.blocked_by,
                    "would_fire_if": answer.fixes})
    else:
        click.echo(why_not_text(rulebase, answer, _style()))


def _record_id(record):
    from ivig_advisor.engine.interview import record_id
    return record_id(record)


def _safe(text) -> str:
    from ivig_advisor.engine.escape import for_terminal
    return for_terminal(text)


@audit.command("diff")
@click.option("--base", "base_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The rule base to compare against (e.g. the rules before an edit).")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@click.pass_context
def audit_diff(ctx, base_dir, paths, fmt):
    """The cases whose stance, dose or warnings differ between --base and this
    rule base, side by side. Exit 0 when none differ, 1 when some do (like diff)."""
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.audit import diff
    from ivig_advisor.engine.audit_text import diff_text

    base, this = Advisor(_load_rules(base_dir)), Advisor(_rulebase(ctx))
    compared, differences = 0, []
    for difference in diff(base, this, paths, stdin=sys.stdin):
        compared += 1
        if difference is not None:
            differences.append(difference)
    if fmt == "json":
        _echo_json({"compared": compared, "differ": len(differences),
                    "cases": [d.__dict__ | {"changed": d.changed} for d in differences]})
    else:
        click.echo(diff_text(differences, compared, f"base ({base_dir})",
                             f"this ({ctx.obj['rules_dir'] or 'packaged rules'})"))
    sys.exit(1 if differences else 0)


@audit.command("sign")
@click.argument("rule_ids", metavar="RULE...", nargs=-1, required=True)
@click.option("--verdict", type=click.Choice(("approved", "needs-change")), required=True)
@click.option("--reviewer", required=True, help="Who gives the verdict.")
@click.option("--comment", help="What to change (required with needs-change).")
@click.option("--date", help="The date of the review (default: today), YYYY-MM-DD.")
@click.pass_context
def audit_sign(ctx, rule_ids, verdict, reviewer, comment, date):
    """Record a reviewer's verdict on rules in the review log beside the rules.

    The verdict is tied to a hash of what decides the rule's outcome: edit the
    rule, a rule that feeds or pre-empts it, or the layer order, and the
    sign-off shows as stale. All or nothing: one bad rule id or a damaged log
    records nothing (exit 2).
    """
    from ivig_advisor.engine.signoff import BadSignOff, LogUnusable, NoLogHere, sign

    rulebase = _rulebase(ctx)
    try:
        path, entries = sign(rulebase, rule_ids, verdict, reviewer, comment, date)
    except BadSignOff as exc:
        raise click.BadParameter(str(exc), param_hint=exc.param)
    except LogUnusable as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        click.echo("error: the review log is damaged; nothing was recorded (mend the log, then sign again)",
                   err=True)
        raise SystemExit(2)
    except (NoLogHere, TimeoutError) as exc:
        click.echo(f"error: {exc}; nothing was recorded", err=True)
        raise SystemExit(2)
    for entry in entries:
        click.echo(f"{entry['rule']}: {verdict} by {entry['reviewer']} on {entry['date']} (hash {entry['hash']})")
    click.echo(f"recorded {len(entries)} sign-off{'s' if len(entries) != 1 else ''} in {path}")


@audit.command("report")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The HTML file to write.")
@click.option("--cases", "case_paths", multiple=True, type=click.Path(exists=True),
              help="The corpus for coverage (default: the checkout's tests/cases and examples).")
@click.pass_context
def audit_report(ctx, out_path, case_paths):
    """One self-contained HTML file for reviewers: rules by disease with provenance,
    status and sign-off, the assumptions, the check, coverage and the rule graph."""
    from ivig_advisor.engine.report import write_report

    rulebase = _rulebase(ctx)
    summary = write_report(rulebase, out_path, list(case_paths) or None)
    _say(f"wrote {out_path}: {summary}")


if __name__ == "__main__":  # pragma: no cover
    main()
