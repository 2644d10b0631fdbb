"""The `ivig` command line: parses options and renders; the library does the work.

Heavy imports (the engine, experta) happen inside the commands, so that
`ivig --help` and `ivig --version` stay fast.

Every way a command can end has its own exit status (`exit_status` below).
The library's errors (engine.errors) end a command through one table,
`error_table()`: its class decides the status and how the message is shown.
A signal or an unexpected exception unwinds like Ctrl-C, so that workers
stop and no temporary file is left, and ends in one line on stderr.

The options commands share are made by one decorator each (`format_option`,
`output_option`, `rules_option`) and come first, in that order, in every
command that has them.
"""

import os
import signal
import sys

import click

from ivig_advisor import __version__

FORMATS = ("text", "json", "jsonl", "csv")  # render.FORMATS, spelled here so that `ivig --help` loads no engine
AUDIT_FORMATS = ("text", "json", "markdown")

EXIT_FOUND = 1  # what a command reports: a case with an error, a finding, a difference (see each command)
EXIT_USAGE = 2  # a usage error, or an input that cannot be used (found before anything is written)
EXIT_INTERNAL = 70  # sysexits.h EX_SOFTWARE: a bug in ivig, whatever the input
EXIT_WORKER = 71  # sysexits.h EX_OSERR: a worker process died (killed by hand, or out of memory)
EXIT_IO = 74  # sysexits.h EX_IOERR: a file or standard output could not be read or written
EXIT_PIPE = 128 + 13  # the reader of standard output went away, as if killed by SIGPIPE
STOP_SIGNALS = ("SIGTERM", "SIGHUP")  # handled like Ctrl-C (SIGINT); the status is 128 + the signal's number


def exit_status(one: str) -> str:
    """The help's exit-status table; `one` says what status 1 means for the command."""
    return f"""\b
Exit status:
  0    done
  1    {one}
  2    usage error, or an input that cannot be used: a path, the rule base, the
       one case a command reads (interview --resume, audit why-not), the review
       log (nothing was written)
  70   internal error, a bug: `ivig --debug ...` shows the traceback
  71   a worker process died (killed, or out of memory): the cases without a
       result are named, and an output file is left as it was
  74   a file or standard output could not be read or written (a full disk)
  130  stopped by Ctrl-C; 143 by SIGTERM, 129 by SIGHUP (128 + the signal);
       an output file is left as it was, and no worker or temporary file stays
  141  the reader of standard output went away (a closed pipe)"""


# -- how a command ends -------------------------------------------------------------


def error_table():
    """How each error ends a command: (class, exit status, how it is shown).

    The first row whose class the error is an instance of decides. The status
    is a number, or a function of the error (a signal's own number); `shown`
    gives the lines for stderr, or raises click's usage error about the
    parameter the error is about. The engine is imported only here, once a
    command has failed.
    """
    from ivig_advisor.engine.base.errors import (
        CaseChoice,
        FormatContradicted,
        InvalidSource,
        IvigError,
        LogLocked,
        LogUnusable,
        NoLogHere,
        OutputRefused,
        SignOffInvalid,
        Stopped,
        StreamClosed,
        UnknownDiagnosis,
        UnknownRule,
        UnknownStage,
        WorkerDied,
        WriteFailed,
    )

    return (
        (UnknownRule, EXIT_USAGE, _usage("RULE")),
        (UnknownDiagnosis, EXIT_USAGE, _usage("--disease")),
        (UnknownStage, EXIT_USAGE, _usage("--status")),
        (SignOffInvalid, EXIT_USAGE, _usage(None)),  # the error names its parameter
        (FormatContradicted, EXIT_USAGE, _usage(None)),
        (CaseChoice, EXIT_USAGE, _one()),
        (
            LogUnusable,
            EXIT_USAGE,
            _each("the review log is damaged; nothing was recorded (mend the log, then sign again)"),
        ),
        (InvalidSource, EXIT_USAGE, _each()),  # a case (CaseInvalid), a rule base (RuleBaseInvalid), ...
        (NoLogHere, EXIT_USAGE, _one("; nothing was recorded")),
        (LogLocked, EXIT_USAGE, _one("; nothing was recorded")),
        (OutputRefused, EXIT_USAGE, _one()),
        (WriteFailed, EXIT_IO, lambda exc, ctx: [f"error: {exc.strerror}"]),
        (StreamClosed, EXIT_IO, _one()),
        (WorkerDied, EXIT_WORKER, lambda exc, ctx: [f"error: {exc}" + _kept(ctx)]),
        (IvigError, EXIT_USAGE, _one()),  # any other error in what the user gave
        (OSError, EXIT_IO, _one()),
        (KeyboardInterrupt, 128 + signal.SIGINT, lambda exc, ctx: ["ivig: stopped by Ctrl-C (SIGINT)"]),
        (
            Stopped,
            lambda exc: 128 + exc.signum,
            lambda exc, ctx: [f"ivig: stopped by {signal.Signals(exc.signum).name}"],
        ),
        (
            BaseException,
            EXIT_INTERNAL,
            lambda exc, ctx: [
                f"ivig: internal error ({type(exc).__name__}: {exc}); this is a bug in ivig, "
                f"not in the input: run again as `ivig --debug ...` for the traceback"
            ],
        ),
    )


def _one(then: str = ""):
    """One `error:` line, the message and `then`."""
    return lambda exc, ctx: [f"error: {exc}{then}"]


def _each(then: str = ""):
    """One `error:` line per problem found (file:line: message), then `then` on a line of its own."""
    return lambda exc, ctx: [f"error: {e}" for e in exc.errors] + ([f"error: {then}"] if then else [])


def _flushes(stream) -> bool:
    """Whether what is buffered for `stream` can be written."""
    try:
        stream.flush()
    except (OSError, ValueError):
        return False
    return True


def _kept(ctx) -> str:
    """'; FILE was left as it was' when the command was writing an output file (-o)."""
    output = ctx.params.get("output")
    return f"; {output} was left as it was" if output else ""


def _usage(param):
    """click's usage error about `param` (the usage line, then "Invalid value for ..."), status 2."""

    def raise_it(exc, ctx):
        from ivig_advisor.engine.base.escape import for_terminal

        raise click.BadParameter(for_terminal(str(exc)), ctx=ctx, param_hint=param or exc.param) from None

    return raise_it


def _stop(signum, frame):
    from ivig_advisor.engine.base.errors import Stopped  # loaded already: the handler is set around a command

    for name in STOP_SIGNALS:  # once: a second signal must not cut the clean-up short
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Stopped(signum)


def _fail(exc: BaseException, ctx: click.Context):
    """End the command that raised `exc` as `error_table()` says: the message on
    stderr (the traceback too with --debug), and its exit status."""
    from ivig_advisor.engine.base.escape import for_terminal

    if isinstance(exc, OSError) and exc.errno == 32:  # EPIPE, also as WriteFailed
        _silence_stdout()
        sys.exit(EXIT_PIPE)  # like a process killed by SIGPIPE, quietly: the reader chose to stop
    status, shown = next((code, shown) for klass, code, shown in error_table() if isinstance(exc, klass))
    lines = shown(exc, ctx)
    if isinstance(exc, OSError):
        _silence_stdout()
    if ctx.find_root().params.get("debug"):
        import traceback

        traceback.print_exception(type(exc), exc, exc.__traceback__)
    for line in lines:
        click.echo(for_terminal(line), err=True)
    code = status(exc) if callable(status) else status
    batch = sys.modules.get("ivig_advisor.engine.batch.pool")  # loaded only if a batch ran
    if (
        batch is not None and batch.abandoned_pools
    ):  # a signal stopped a pool: the interpreter's exit could wait on it for ever
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)


def _silence_stdout():
    """When standard output cannot be written, send what is still buffered nowhere,
    so that the interpreter's last flush adds no second error."""
    if not _flushes(sys.stdout):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):
            pass


def _ends_by_table(method):
    """A method of a command taking its context (`invoke`, `parse_args`), with whatever it
    raises ended by `_fail` (click's own ends pass)."""

    def run(self, ctx, *args):
        try:
            return method(self, ctx, *args)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except BaseException as exc:  # noqa: B036 - every other end is turned into an exit status
            _fail(exc, ctx)

    return run


# Commands that write nothing on standard output (a service logs on stderr): run with it closed.
WRITE_NO_STANDARD_OUTPUT = ("serve",)


def _streams_needed(command: "Command", ctx: click.Context) -> tuple:
    """What `command` will read standard input for and write standard output for (None: it will
    not), from its arguments: a path '-' is read from standard input, and a command writes on
    standard output unless it writes to a file (-o FILE), or declares otherwise."""
    reads_dash = any(
        value == "-" or (isinstance(value, tuple) and "-" in value)
        for param in command.params
        if isinstance(param.type, click.Path) and param.type.allow_dash
        for value in [ctx.params.get(param.name)]
    )
    stdin_for = command.stdin_for or ("'-' has nothing to read" if reads_dash else None)
    has_output = any(param.name == "output" for param in command.params)
    writes = command.name not in WRITE_NO_STANDARD_OUTPUT and not ctx.params.get("output")
    stdout_for = command.stdout_for or (("write to a file with -o FILE" if has_output else "") if writes else None)
    return stdin_for, stdout_for


def _invoke_command(command: "Command", ctx: click.Context):
    """Check the standard streams the command needs, before it does anything, then run it."""
    from ivig_advisor.engine.base.stdio import require_streams

    require_streams(*_streams_needed(command, ctx))
    return click.Command.invoke(command, ctx)


def _parsed_once(base):
    """`base.parse_args`, then a usage error (exit 2) for an option that takes one value given
    more than once (`-o x1.json -o x2.json`): click lets the last one win without a word."""

    def parse_args(self, ctx, args):
        given = list(args)  # click's parser consumes the list it is given
        rest = base.parse_args(self, ctx, args)
        if not ctx.resilient_parsing:  # shell completion parses half-typed lines
            _refuse_repeats(self, ctx, given)
        return rest

    return parse_args


def _refuse_repeats(command: click.Command, ctx: click.Context, args: list) -> None:
    _, _, order = command.make_parser(ctx).parse_args(args=args)  # each option once per time it is given
    single = [p for p in order if isinstance(p, click.Option) and not (p.multiple or p.count or p.is_flag)]
    for param in dict.fromkeys(single):
        times = single.count(param)
        if times > 1:
            raise click.BadOptionUsage(
                param.name,
                f"{' / '.join(param.opts)} is given "
                f"{'twice' if times == 2 else f'{times} times'}; it takes one value: give "
                "it once",
                ctx=ctx,
            )


class Command(click.Command):
    """An `ivig` command: an option that takes one value given twice is a usage error (exit 2), a
    standard stream it needs that was closed at start is said before it does anything (exit 74),
    and whatever it raises ends in one line and its own exit status.

    `stdin_for`, `stdout_for`: why the command reads standard input or writes standard output
    whatever its arguments (the interview's answers and questions)."""

    invoke = _ends_by_table(_invoke_command)
    parse_args = _parsed_once(click.Command)

    def __init__(self, *args, stdin_for: str = None, stdout_for: str = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stdin_for, self.stdout_for = stdin_for, stdout_for


class Group(click.Group):
    """A group of `ivig` commands (`ivig audit`)."""

    command_class = Command
    invoke = _ends_by_table(click.Group.invoke)
    parse_args = _parsed_once(click.Group)


class Ivig(Group):
    """The `ivig` group: a standard stream closed at start gets a stand-in before anything,
    click's own --help and --version included, so that using it fails in one line (exit 74);
    SIGTERM and SIGHUP unwind like Ctrl-C while a command runs."""

    group_class = Group
    parse_args = _ends_by_table(Group.parse_args)  # --help and --version write while parsing

    def main(self, *args, **kwargs):
        from ivig_advisor.engine.base.stdio import stand_in

        stand_in()
        return super().main(*args, **kwargs)

    def invoke(self, ctx):
        import threading
        from contextlib import ExitStack

        with ExitStack() as stack:
            for name in STOP_SIGNALS:  # only the main thread may set handlers (CliRunner in a thread)
                if hasattr(signal, name) and threading.current_thread() is threading.main_thread():
                    signum = getattr(signal, name)
                    stack.callback(signal.signal, signum, signal.signal(signum, _stop))
            return super().invoke(ctx)


def _exit(status: int):
    """End a command that ran to the end with the status its outcome gives (0, or 1: see its help)."""
    click.get_current_context().exit(status)


# -- the options commands share -------------------------------------------------------


def format_option(*choices, help=None, by_extension=False):
    """--format, the rendering (text for a person, the others for programs). `by_extension`: with
    no --format, the output file's extension decides (None is passed on to render.output_format)."""
    if by_extension:
        return click.option(
            "--format",
            "fmt",
            type=click.Choice(choices),
            default=None,
            help=(help or "") + " [default: what the -o file's extension names (.csv, .json, "
            ".jsonl, .ndjson), else text]",
        )
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default=choices[0],
        show_default=True,
        help=help or f"text for a person; {', '.join(choices[1:])} for programs.",
    )


def output_option(help, dash_is_stdout=True):
    """-o/--output, the file a command writes (atomically); `-o -` is standard output, as `-` is
    standard input (never a file named '-'), or refused where a file is the point (`audit report`)."""

    def dash(ctx, param, value):
        if value != "-":
            return value
        if dash_is_stdout:
            return None
        raise click.BadParameter(
            "this command writes a file: name it (-o - would be standard output; ./- is a file named '-')",
            ctx=ctx,
            param=param,
        )

    return click.option(
        "--output",
        "-o",
        "output",
        type=click.Path(),
        callback=dash,
        help=help + (" '-' is standard output." if dash_is_stdout else ""),
    )


def matcher_option(f):
    """--matcher compiled|rete: how the engines match facts to rules (the same output either way)."""
    return click.option(
        "--matcher",
        type=click.Choice(("compiled", "rete")),  # core/compiler.py MATCHERS (test_matcher.py holds them equal)
        default="compiled",
        show_default=True,
        help="How facts are matched to rules: compiled from the rules, or experta's own Rete, "
        "the reference (the output is the same; only slower).",
    )(f)


def as_of_option(f):
    """--as-of DATE: the evaluation date, at which a FHIR Patient's age is read from its birthDate."""
    return click.option(
        "--as-of",
        "as_of",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        callback=lambda ctx, param, value: value.date() if value else None,
        help="FHIR input: the date at which ages are computed from birthDate, YYYY-MM-DD [default: today].",
    )(f)


def _group_rules(ctx, param, value):
    """A subcommand's --rules, else the one given before it (`ivig audit --rules DIR check`)."""
    return value if value is not None else (ctx.obj or {}).get("rules_dir")


def rules_option(f):
    """--rules DIR, the rule base a command uses."""
    return click.option(
        "--rules",
        "rules_dir",
        type=click.Path(exists=True, file_okay=False),
        callback=_group_rules,
        help="Use another rule base directory (default: the packaged rules).",
    )(f)


def _completion_rulebase(ctx):
    """The rule base a command line being completed names with --rules, else the packaged one;
    None if it does not load."""
    from pathlib import Path

    from ivig_advisor.engine import RuleBase

    rules_dir = ctx.params.get("rules_dir") or (ctx.parent.params.get("rules_dir") if ctx.parent else None)
    try:
        return RuleBase.load(Path(rules_dir) if rules_dir else None)
    except Exception:  # noqa: BLE001 - completion must never print a traceback into the shell
        return None


def _complete_rule_ids(ctx, param, incomplete: str) -> list:
    """Shell completion of a rule id (`_IVIG_COMPLETE`), from the rule base the
    command line names with --rules, else the packaged one; nothing if it does not load."""
    rulebase = _completion_rulebase(ctx)
    return [rule.id for rule in rulebase.rules if rule.id.startswith(incomplete)] if rulebase else []


def _say(text: str, err=False):
    """Echo text that holds something from input (an id, a path) made safe for a terminal."""
    from ivig_advisor.engine.clinician.console import say

    say(text, err=err)


def _note(text: str):
    """A note on stderr about the input (a file a folder's walk left out), escaped: it names files."""
    _say(text, err=True)


def _emit(text: str, output=None):
    """A command's text on standard output, or written atomically to `output` (-o) and said so."""
    if output:
        from ivig_advisor.engine.base.atomic import writable_target, write_text_atomic

        writable_target(output)
        write_text_atomic(output, text + "\n")
        from ivig_advisor.engine.base.escape import for_terminal

        _say("wrote " + for_terminal(str(output)), err=True)  # one line, whatever the name holds
    else:
        click.echo(text)


def _echo_json(data):
    """JSON for programs, that a terminal shows safely too (escape.json_text)."""
    from ivig_advisor.engine.base.escape import json_text

    click.echo(json_text(data, indent=2))


def _style():
    """click.style, or plain text when NO_COLOR is set (https://no-color.org)."""
    from ivig_advisor.engine.output.render import plain_style

    return plain_style if os.environ.get("NO_COLOR") else click.style


def _load_rules(rules_dir):
    from ivig_advisor.engine import RuleBase

    return RuleBase.load(rules_dir)


# -- the commands -------------------------------------------------------------------------


@click.group(
    cls=Ivig,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=exit_status(
        "some case had an error, a check found something, or the interview stopped early (see each command)"
    ),
)
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
@format_option(
    *FORMATS,
    help="text for a person; json (one array), jsonl (one object per line) or csv (one row per case) for programs.",
    by_extension=True,
)
@output_option(
    "Write the results to this file, atomically: it appears whole or not at all. A link is "
    "written through; an input, a device or a file in a missing folder is refused (exit 2). "
    "A folder being read never reads it back."
)
@rules_option
@click.option(
    "--workers",
    "-j",
    type=click.IntRange(min=1),
    help="Processes evaluating cases [default: the number of cores, for batches of "
    "512 cases or more; at most 2 per core]. Output is identical for any number.",
)
@click.option("--no-chain", is_flag=True, help="Text format: leave out the chain of rules.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line and no summary on stderr.")
@click.option(
    "--no-cache",
    is_flag=True,
    help="Run the rules for every case, even one in a clinical situation seen before "
    "(the output is the same; only slower).",
)
@matcher_option
@as_of_option
def evaluate(paths, fmt, output, rules_dir, workers, no_chain, quiet, no_cache, matcher, as_of):
    """Evaluate case files (YAML, JSON, JSONL, CSV), FHIR R4 records (Bundles, Bulk
    Data NDJSON exports), directories (recursively) or - for stdin.

    Every case gets one result, in input order; a case that cannot be read or
    validated gets an error result naming file, line and field (for FHIR, the
    resource and its path). A FHIR record gives one case per Patient, and its
    result names the resource each input came from.
    """
    from contextlib import nullcontext

    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.base.atomic import GuardedStream, atomic_writer, writable_target
    from ivig_advisor.engine.batch.pipeline import fit_workers, refuse_output_over_inputs, write_results
    from ivig_advisor.engine.output.progress import Progress
    from ivig_advisor.engine.output.render import Formatter, output_format, plain_style
    from ivig_advisor.engine.output.wrap import terminal_width

    fmt = output_format(fmt, output)
    if output:  # before the rules load: a bad target is known at once
        refuse_output_over_inputs(output, paths, sys.stdin, fmt)
        writable_target(output)
    workers, note = fit_workers(workers)
    if note:
        click.echo(note, err=True)
    advisor = Advisor(_load_rules(rules_dir), matcher=matcher, **({"cache": 0} if no_cache else {}))
    colour = output is None and sys.stdout.isatty()  # as click.echo does: no escapes into files or pipes
    formatter = Formatter(
        fmt, chain=not no_chain, style=_style() if colour else plain_style, width=terminal_width() if colour else None
    )  # wrapped for a person, not a file
    progress = Progress() if not quiet and sys.stderr.isatty() else None
    target = atomic_writer(output) if output else nullcontext(GuardedStream(sys.stdout, "standard output"))
    with target as stream:
        summary = write_results(
            paths,
            advisor,
            stream,
            formatter,
            stdin=sys.stdin,
            workers=workers,
            exclude=output,
            progress=progress,
            as_of=as_of,
            notes=_note,
        )
    if not quiet:
        click.echo(str(summary), err=True)
    _exit(EXIT_FOUND if summary.failed else 0)


@main.command(
    epilog=exit_status("the interview was stopped before the end (quit, Ctrl-C at a question, end of input)"),
    stdin_for="the interview reads its answers there",
    stdout_for="the interview asks its questions there",
)
@rules_option
@click.option(
    "--resume",
    "resume_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Start from the answers in this case file; only what is missing is asked. A file that "
    "does not give one valid case is refused (exit 2).",
)
@click.option("--id", "wanted_id", help="The case to resume, when the --resume file holds several.")
@click.option(
    "--save",
    "save_path",
    type=click.Path(dir_okay=False),
    help="Save the case here (and the result beside it: p.yaml -> p.result.json) without asking. "
    "An existing file is replaced only after a yes at the terminal, or with --overwrite.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Let --save replace existing files without asking (needed when input is not a terminal).",
)
@matcher_option
def interview(rules_dir, resume_path, wanted_id, save_path, overwrite, matcher):
    """Interview in the terminal: only the questions that matter for this patient.

    Answers are read line by line, so the interview can be scripted by piping
    answers in.
    """
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.clinician.console import check_save_option, run_interview
    from ivig_advisor.engine.clinician.interview import resume

    if save_path is not None:
        check_save_option(save_path, overwrite)  # before any question
    advisor = Advisor(_load_rules(rules_dir), matcher=matcher)
    answers, case_id = resume(advisor, resume_path, wanted_id) if resume_path else ({}, None)
    finished = run_interview(advisor, answers, case_id, save_path, overwrite, _style(), resumed_from=resume_path)
    _exit(0 if finished else EXIT_FOUND)


@main.command("test", epilog=exit_status("some scenario failed, or could not be read or run"))
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@format_option("text", "json")
@rules_option
@matcher_option
def run_tests(paths, fmt, rules_dir, matcher):
    """Run scenario files: cases with an `expect:` block (stance, rule, dose,
    warnings, max_severity, severity, fired, not_fired, missing, not_missing).

    Each scenario passes or fails, with the differences shown; a scenario that
    cannot be read or checked (an unknown key, rule or field in `expect`) is
    an error. Exit 1 when any scenario did not pass. `ivig evaluate` reads the
    same files as cases.
    """
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.audit.scenarios import report_text, run_scenarios

    report = run_scenarios(paths, Advisor(_load_rules(rules_dir), matcher=matcher), stdin=sys.stdin)
    _echo_json(report.to_dict()) if fmt == "json" else click.echo(report_text(report, _style()))
    _exit(0 if report.ok else EXIT_FOUND)


@main.command("schema")
@format_option(
    "text",
    "json",
    "json-schema",
    help="text for a person; json (every field as data) or json-schema (a JSON Schema, draft "
    "2020-12, of a case file) for programs and form builders.",
)
@output_option("Write to this file, atomically, instead of standard output.")
@rules_option
def show_schema(fmt, output, rules_dir):
    """Every field of a case: name, type, values with labels and aliases, unit
    and range, question and help; or a JSON Schema of case files."""
    from ivig_advisor.engine.audit.scenarios import file_json_schema
    from ivig_advisor.engine.base.escape import json_text
    from ivig_advisor.engine.core.schema import schema_text

    rulebase = _load_rules(rules_dir)
    if fmt == "json-schema":
        text = json_text(file_json_schema(rulebase), indent=2)
    elif fmt == "json":
        text = json_text(rulebase.schema.describe(), indent=2)
    else:
        text = schema_text(rulebase.schema)
    _emit(text, output)


# -- ivig fhir ----------------------------------------------------------------


@main.group(epilog=exit_status("some record could not be read (map)"))
def fhir():
    """FHIR R4 input: what a record becomes, and the mapping that decides it (facts/fhir-map.yaml)."""


@fhir.command("map")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@output_option("Write the case file here, atomically, instead of standard output.")
@rules_option
@click.option("--id", "wanted_id", help="Only the case of this Patient id.")
@click.option(
    "--explain",
    is_flag=True,
    help="Say, beside each field, which resource and code set it, and list what was not read.",
)
@as_of_option
def fhir_map(paths, output, rules_dir, wanted_id, explain, as_of):
    """Print what FHIR records (Bundles, Bulk Data NDJSON) become as a case file:
    one YAML document per Patient, which `ivig evaluate` reads back."""
    import datetime

    from ivig_advisor.engine.io.cases import read_cases
    from ivig_advisor.engine.io.fhir.text import case_file

    schema = _load_rules(rules_dir).schema  # the case file's fields, in its schema's order
    records = read_cases(paths, stdin=sys.stdin, as_of=as_of, notes=_note)
    if wanted_id is not None:
        records = (r for r in records if r.case_id(schema) == wanted_id)
    failed, found, parts = False, False, []
    for record in records:
        found = True
        failed = failed or record.error is not None
        parts.append(case_file(record, schema, explain, as_of or datetime.date.today()))
    if not found:
        raise click.UsageError(f"no case with the id {wanted_id!r}" if wanted_id else "no case in the input")
    _emit("\n".join(parts), output)
    _exit(EXIT_FOUND if failed else 0)


@fhir.command("codes")
@format_option("text", "json")
@rules_option
def fhir_codes(fmt, rules_dir):
    """The mapping from coded FHIR data to case fields, for review: every entry with
    its codes and where each was checked, the statuses that count, the
    assumptions, and the gaps. With --rules, it is checked against that rule
    base's case schema."""
    from ivig_advisor.engine.io.fhir.mapping import FhirMap, default_map
    from ivig_advisor.engine.io.fhir.text import mapping_text

    fmap = FhirMap.load(schema=_load_rules(rules_dir).schema) if rules_dir else default_map()
    _echo_json(fmap.describe()) if fmt == "json" else click.echo(mapping_text(fmap))


# -- ivig audit --------------------------------------------------------------


@main.group(
    epilog=exit_status(
        "a finding (check), a difference or a case not compared (diff), a case with an "
        "error or a rule never fired (coverage)"
    )
)
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(exists=True, file_okay=False),
    hidden=True,
    help="The old form of each subcommand's --rules: `ivig audit --rules DIR check`.",
)
@click.pass_context
def audit(ctx, rules_dir):
    """For clinical reviewers: the rules in plain language, their provenance and
    sign-off, the later evidence beside them (since 2004), a static check,
    coverage, why a rule did not fire, and what an edit changes. Each subcommand
    takes --rules DIR (also accepted before the subcommand, as
    `ivig audit --rules DIR check`)."""
    ctx.obj = {"rules_dir": rules_dir}


@audit.command("rules")
@format_option(*AUDIT_FORMATS, help="text for a person; markdown for a review document; json for programs.")
@rules_option
@click.option("--disease", help="Only the rules that can fire for this diagnosis (abbreviations work: mg, gbs).")
@click.option("--basis", type=click.Choice(("review", "assumption")), help="Only rules on this basis.")
@click.option(
    "--status",
    help="Only rules at this stage of their lifecycle: draft, approved, needs-change, "
    "stale, retired (or unknown, while the review log has errors).",
)
def audit_rules(fmt, rules_dir, disease, basis, status):
    """Every rule in plain language, with its source in the review, basis, status and sign-off."""
    from ivig_advisor.engine.audit import views as A
    from ivig_advisor.engine.audit.signoff import ReviewLog
    from ivig_advisor.engine.audit.text import rules_markdown, rules_text

    rulebase = _load_rules(rules_dir)
    rules = A.rules_for(rulebase, A.diagnosis_value(rulebase, disease) if disease else None, basis, status)
    log = ReviewLog.load(rulebase)
    for error in log.errors:
        _say(f"warning: {error}", err=True)
    if fmt == "json":
        _echo_json([A.rule_record(rulebase, r, log) for r in rules])
    elif fmt == "markdown":
        click.echo(rules_markdown(rulebase, rules, log))
    else:
        click.echo(rules_text(rulebase, rules, log, _style()))


@audit.command("doses")
@format_option(*AUDIT_FORMATS, help="text for a person; markdown for a review document; json for programs.")
@rules_option
def audit_doses(fmt, rules_dir):
    """The review's regimens as one table (rules/regimens.yaml): diagnosis,
    situation, dose, repeat, and the rules that give each."""
    from ivig_advisor.engine.audit.text import regimens_markdown, regimens_text
    from ivig_advisor.engine.audit.views import regimens

    rows = regimens(_load_rules(rules_dir))
    if fmt == "json":
        _echo_json(rows)
    elif fmt == "markdown":
        click.echo(regimens_markdown(rows))
    else:
        click.echo(regimens_text(rows, _style()))


@audit.command("table")
@click.argument("diagnoses", metavar="[DIAGNOSIS]...", nargs=-1)
@format_option(*AUDIT_FORMATS, help="text for a terminal; markdown for a review document; json for programs.")
@rules_option
@click.option(
    "--shared/--no-shared",
    default=None,
    help="The table of the rules every disease shares too (default: with no DIAGNOSIS).",
)
def audit_table(diagnoses, fmt, rules_dir, shared):
    """Each diagnosis's rules as a decision table: rows the rules in firing order, columns the
    fields they test, cells the tests, and what each row concludes; the hit policy, and the
    gaps and conflicts the exhaustive check finds (abbreviations work: mg, gbs)."""
    import shutil

    from ivig_advisor.engine.audit import views as A
    from ivig_advisor.engine.audit.check.walk import verify
    from ivig_advisor.engine.audit.table import decision_tables, table_markdown, table_text
    from ivig_advisor.engine.base.errors import UnknownDiagnosis

    rulebase = _load_rules(rules_dir)
    try:
        named = [A.diagnosis_value(rulebase, d) for d in diagnoses]
    except UnknownDiagnosis as exc:
        raise click.BadParameter(str(exc), param_hint="DIAGNOSIS") from None
    tables = decision_tables(rulebase, named or None, verify(rulebase), shared if shared is not None else not named)
    if fmt == "json":
        _echo_json([t.to_dict() for t in tables])
    elif fmt == "markdown":
        click.echo("\n\n".join(table_markdown(t) for t in tables))
    else:
        width = shutil.get_terminal_size((80, 24)).columns if sys.stdout.isatty() else 80
        click.echo("\n\n".join(table_text(t, max(width, 60)) for t in tables))


@audit.command("show")
@click.argument("rule_id", metavar="RULE", shell_complete=_complete_rule_ids)
@format_option("text", "json")
@rules_option
@click.option(
    "--cases",
    "case_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="Case files or directories to find the cases that fire the rule "
    "(default: the checkout's tests/cases and examples).",
)
def audit_show(rule_id, fmt, rules_dir, case_paths):
    """One rule in full: provenance, evidence, the rules that feed it and that it
    feeds, the rules it pre-empts and that pre-empt it, and the cases that
    exercise it."""
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.audit.text import show_text
    from ivig_advisor.engine.audit.views import RuleView

    rulebase = _load_rules(rules_dir)
    view = RuleView.of(Advisor(rulebase), rule_id, list(case_paths) or None)
    if fmt == "json":
        _echo_json(view.to_dict())
    else:
        click.echo(show_text(view, _style()))


@audit.command("evidence")
@format_option(*AUDIT_FORMATS, help="text for a person; markdown for a review document; json for programs.")
@rules_option
def audit_evidence(fmt, rules_dir):
    """The later evidence beside the review (since 2004): every entry with its situation in
    words, what it found, its kind, relation, year, source, quote and where it was read, its
    harm finding and its sign-off; then the leads that could not be confirmed (gaps)."""
    from ivig_advisor.engine.audit.evidence import evidence_listing
    from ivig_advisor.engine.audit.signoff import ReviewLog
    from ivig_advisor.engine.audit.text import evidence_markdown, evidence_text

    rulebase = _load_rules(rules_dir)
    log = ReviewLog.load(rulebase)
    for error in log.errors:
        _say(f"warning: {error}", err=True)
    listing = evidence_listing(rulebase, log)
    if fmt == "json":
        _echo_json(listing)
    elif fmt == "markdown":
        click.echo(evidence_markdown(listing))
    else:
        click.echo(evidence_text(listing, _style()))


@audit.command("check", epilog=exit_status("a finding"))
@format_option("text", "json")
@rules_option
@click.option(
    "--strict",
    is_flag=True,
    help="Also fail on rules and later-evidence entries without a current 'approved' sign-off, and on notes.",
)
@click.option(
    "--against",
    metavar="BASE",
    help="Also compare with the rule base BASE (a directory, or a git revision such as main) over every "
    "patient, and fail on each safety regression no reviewer has acknowledged (audit sign --acknowledge).",
)
def audit_check(fmt, rules_dir, strict, against):
    """Static verification, exhaustive over the fact space; exit 1 on any finding.

    On load: schema errors, unknown fields or values, duplicate ids, missing
    provenance. Then, for every diagnosis and every combination of the values
    the rules distinguish: unreachable rules, conflicting stances, doses or
    warning severities, redundant and subsumed rules, and gaps. Of the later
    evidence: situations that can never hold, harm resting on neither a
    controlled trial nor a regulator, retired rules spoken to; a source not
    checked for three years is a note (a finding with --strict).

    With --against BASE, the edit from BASE to these rules is walked over every
    patient too: a warning lost or given to fewer patients, a severity lowered, a
    dose raised, a stance more favourable to IVIG is a safety regression, listed
    first, with a representative patient, until a reviewer acknowledges it.
    """
    from ivig_advisor.engine.audit.text import check_text
    from ivig_advisor.engine.audit.views import check

    report = check(rules_dir, strict=strict, against=against)
    _echo_json(report.to_dict()) if fmt == "json" else click.echo(check_text(report, _style()))
    _exit(0 if report.ok else EXIT_FOUND)


@audit.command(
    "coverage", epilog=exit_status("a case could not be read or evaluated; with --require-all, some rule never fired")
)
@click.argument("paths", nargs=-1, type=click.Path(exists=True, allow_dash=True))
@format_option("text", "json")
@rules_option
@click.option("--require-all", is_flag=True, help="Exit 1 if some rule never fired.")
def audit_coverage(paths, fmt, rules_dir, require_all):
    """How often each rule fired over a case corpus (default: the golden cases and
    examples shipped with the rules, as `show` and `report` read), and the rules never fired.
    A case that cannot be read or evaluated is shown with its error, and exits 1."""
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.audit.text import coverage_text
    from ivig_advisor.engine.audit.views import coverage, default_corpus

    rulebase = _load_rules(rules_dir)
    paths = paths or default_corpus(rulebase)
    if not paths:
        raise click.UsageError(
            "no CASES given, and no golden cases or examples beside the rules: name the case files or folders to read"
        )
    report = coverage(Advisor(rulebase), paths, stdin=sys.stdin, notes=_note)
    _echo_json(report.to_dict()) if fmt == "json" else click.echo(coverage_text(rulebase, report, _style()))
    _exit(EXIT_FOUND if not report.ok or (require_all and report.never()) else 0)


@audit.command("why-not", epilog=exit_status("not used: a case that cannot be read, chosen or validated is 2"))
@click.argument("case_path", metavar="CASE", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.argument("rule_id", metavar="RULE", shell_complete=_complete_rule_ids)
@format_option("text", "json")
@rules_option
@click.option("--id", "case_id", help="The case to explain, when the file holds several.")
def audit_why_not(case_path, rule_id, fmt, rules_dir, case_id):
    """Which condition of RULE failed for the case in CASE, and what values would make it fire."""
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.audit.text import why_not_text
    from ivig_advisor.engine.audit.views import why_not_in

    rulebase = _load_rules(rules_dir)
    answer = why_not_in(Advisor(rulebase), case_path, rule_id, case_id, stdin=sys.stdin)
    _echo_json(answer.to_dict()) if fmt == "json" else click.echo(why_not_text(rulebase, answer, _style()))


@audit.command(
    "diff",
    epilog=exit_status("the advice differs for some patient, or a case could not be compared (an error under both)"),
)
@click.argument("paths", metavar="[CASES]...", nargs=-1, type=click.Path(exists=True, allow_dash=True))
@format_option("text", "json")
@rules_option
@click.option(
    "--base",
    "base_dir",
    metavar="DIR|GIT-REV",
    required=True,
    help="The rule base to compare against: a directory, or a git revision (main, HEAD~1) of the rules' repository.",
)
@click.option(
    "--cases-only", is_flag=True, help="Compare over the cases only, not over every patient (the exhaustive walk)."
)
def audit_diff(paths, fmt, rules_dir, base_dir, cases_only):
    """What changes for patients between --base and this rule base, and what changed in
    each rule's text.

    Over every patient: the exhaustive walk of `audit check` over both rule bases
    finds each way the stance, dose or warnings change, with how many combinations
    show it, one representative patient and the rules behind it, safety regressions
    first. Over the cases: those whose outcome differs, side by side (default
    CASES: the golden cases and examples beside the rules, or beside --base).
    Exit 0 when nothing differs, 1 when something does (like diff), or when a
    case has an error under both rule bases (it cannot be read or validated): shown,
    not compared."""
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.audit.against import load_base
    from ivig_advisor.engine.audit.text import diff_text
    from ivig_advisor.engine.audit.views import default_corpus, diff

    this = Advisor(_load_rules(rules_dir))
    base = Advisor(load_base(base_dir, this.rulebase))
    paths = paths or default_corpus(this.rulebase) or default_corpus(base.rulebase)
    if not paths:
        raise click.UsageError(
            "no CASES given, and no golden cases or examples beside the rules: name the case files or folders to read"
        )
    report = diff(base, this, paths, stdin=sys.stdin, notes=_note, every_patient=not cases_only)
    if fmt == "json":
        _echo_json(report.to_dict())
    else:
        click.echo(
            diff_text(this.rulebase, report, f"base ({base_dir})", f"this ({rules_dir or 'packaged rules'})", _style())
        )
    _exit(0 if report.ok else EXIT_FOUND)


def _complete_signable_ids(ctx, param, incomplete: str) -> list:
    """Shell completion of what `audit sign` takes: a rule's id, or a later-evidence entry's."""
    from ivig_advisor.engine.audit.signoff import signables

    rulebase = _completion_rulebase(ctx)
    return [i for i in signables(rulebase) if i.startswith(incomplete)] if rulebase else []


@audit.command("sign")
@click.argument("rule_ids", metavar="[RULE]...", nargs=-1, shell_complete=_complete_signable_ids)
@rules_option
@click.option("--verdict", type=click.Choice(("approved", "needs-change")), help="The verdict on RULE...")
@click.option("--reviewer", required=True, help="Who gives the verdict.")
@click.option("--comment", help="What to change (required with needs-change).")
@click.option("--date", help="The date of the review (default: today), YYYY-MM-DD.")
@click.option(
    "--acknowledge",
    "regression_ids",
    metavar="ID",
    multiple=True,
    help="Instead of a verdict: accept the safety regression ID that `audit check --against BASE` found.",
)
@click.option("--against", metavar="BASE", help="With --acknowledge: the rule base the check compared with.")
@click.option("--reason", help="With --acknowledge: why the change is accepted (required).")
def audit_sign(rule_ids, rules_dir, verdict, reviewer, comment, date, regression_ids, against, reason):
    """Record a reviewer's verdict on rules, or on later-evidence entries (by their ids, as
    `ivig audit evidence` lists them), in the review log beside the rules.

    The verdict is tied to a hash of what decides the rule's outcome: edit the
    rule, a rule that feeds or pre-empts it, or the layer order, and the
    sign-off shows as stale; an entry's, when the entry, a rule that decides
    its situation, or a rule it speaks to changes. All or nothing: one bad id
    or a damaged log records nothing (exit 2).

    With --acknowledge ID --against BASE --reason TEXT (and no RULE): accept
    a safety regression that `ivig audit check --against BASE` lists, so that
    the check passes on it; the id changes if the rules behind it are edited again.
    """
    from ivig_advisor.engine.audit.signoff import git_identity, sign, signed_id, writable_log_path

    rulebase = _load_rules(rules_dir)
    identity = git_identity(writable_log_path(rulebase).parent)
    if regression_ids:
        _acknowledge(rulebase, rule_ids, verdict, regression_ids, against, reason, reviewer, date, identity)
        return
    if not rule_ids:
        raise click.UsageError("name the RULE(s) to sign, or a regression to --acknowledge")
    if not verdict:
        raise click.MissingParameter(param_hint="'--verdict'", param_type="option")
    path, entries = sign(rulebase, rule_ids, verdict, reviewer, comment, date, identity=identity)
    for entry in entries:
        _say(f"{signed_id(entry)}: {verdict} by {entry['reviewer']} on {entry['date']} (hash {entry['hash']})")
    _say(f"recorded {len(entries)} sign-off{'s' if len(entries) != 1 else ''} in {path}")


def _acknowledge(rulebase, rule_ids, verdict, regression_ids, against, reason, reviewer, date, identity):
    """`audit sign --acknowledge`: the regressions named, found again against BASE, recorded."""
    from ivig_advisor.engine.audit.signoff import acknowledge
    from ivig_advisor.engine.audit.views import regressions

    if rule_ids or verdict:
        raise click.UsageError("--acknowledge records an acknowledgement, not a verdict on RULE: give one or the other")
    if not against:
        raise click.MissingParameter(param_hint="'--against'", param_type="option")
    found = regressions(rulebase, against, regression_ids)
    path, entries = acknowledge(rulebase, found, reason, reviewer, date, identity=identity)
    for entry in entries:
        _say(f"{entry['acknowledge']}: acknowledged by {entry['reviewer']} on {entry['date']}: {entry['regression']}")
    _say(f"recorded {len(entries)} acknowledgement{'s' if len(entries) != 1 else ''} in {path}")


@audit.command("review")
@rules_option
@click.option("--reviewer", required=True, help="Who gives the verdicts (recorded with the git identity, if any).")
@click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address to listen on.")
@click.option("--port", default=0, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option("--no-browser", is_flag=True, help="Do not open the page in a browser; only print its address.")
def audit_review(rules_dir, reviewer, host, port, no_browser):
    """Serve the report on a loopback address with approve / needs-change on each
    rule card, writing the review log beside the rules as `audit sign` does (the
    same lock); the page shows each rule's lifecycle as verdicts are given. Open the
    address it prints: it carries this run's key (other users of the machine get no page).
    Ctrl-C stops it. Needs the serve extra: pip install -e ".[serve]"."""
    from ivig_advisor.engine.audit.review import serve_review

    serve_review(rules_dir, reviewer, host=host, port=port, open_browser=not no_browser, say=_say)


@audit.command("report")
@output_option("The HTML file to write.", dash_is_stdout=False)
@rules_option
@click.option("--out", "out_path", type=click.Path(), hidden=True, help="The old name of --output.")
@click.option(
    "--cases",
    "case_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="The corpus for coverage (default: the checkout's tests/cases and examples).",
)
@click.option(
    "--against",
    metavar="BASE",
    help="List first the safety regressions of the edit from BASE (a directory, or a git revision), "
    "as `audit check --against` finds them.",
)
def audit_report(output, rules_dir, out_path, case_paths, against):
    """One self-contained HTML file for reviewers: rules by disease with provenance,
    status and sign-off, what changed since 2004 beside each disease's rules, the
    assumptions, the check, coverage and the rule graph."""
    from ivig_advisor.engine.audit.report import write_report

    output = output or out_path
    if not output:
        raise click.MissingParameter(
            ctx=click.get_current_context(), param_hint="'-o' / '--output'", param_type="option"
        )
    summary = write_report(_load_rules(rules_dir), output, list(case_paths) or None, against=against)
    _say(
        f"wrote {output}: {summary}", err=True
    )  # as every command writing a file says it: standard output is not needed


def feedback_db_option(what: str):
    """--db FILE, the SQLite file `ivig serve` keeps, which an audit reads (it must exist)."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(exists=True, dir_okay=False),
        default="ivig-feedback.sqlite",
        show_default=True,
        help=f"The feedback file `ivig serve` keeps (--feedback-db){what}.",
    )


@audit.command("overrides")
@format_option("text", "json")
@rules_option
@feedback_db_option("")
def audit_overrides(fmt, rules_dir, db_path):
    """Which rules' cards clinicians accept or override in the EHR, and the reasons they
    give: from the feedback `ivig serve` received."""
    from ivig_advisor.engine.service.feedback import overrides, overrides_text

    rows = overrides(db_path)  # read-only: the file is never created nor changed
    _echo_json(rows) if fmt == "json" else click.echo(overrides_text(rows))


def _period_end(end: bool):
    """A click callback reading --since (`end` False) or --until (True) as calls.instant does."""

    def read(ctx, param, value):
        from ivig_advisor.engine.service.calls import instant, until_instant

        try:
            return None if value is None else (until_instant if end else instant)(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc), ctx=ctx, param=param) from None

    return read


@audit.command("calls")
@format_option("text", "json", "csv")
@rules_option
@feedback_db_option(", which holds the trail of calls")
@click.option(
    "--since", metavar="WHEN", callback=_period_end(False), help="Calls from this ISO date or date and time on (UTC)."
)
@click.option(
    "--until",
    metavar="WHEN",
    callback=_period_end(True),
    help="Calls up to this ISO date and time, or to the end of this date (UTC).",
)
@click.option("--issuer", help="Calls of this issuer alone (as the trust file names it).")
@click.option("--status", type=int, help="Calls answered with this HTTP status alone.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    help="The latest calls listed [default: 20 in text, all in json and csv]; the summary counts every call chosen.",
)
def audit_calls(fmt, rules_dir, db_path, since, until, issuer, status, limit):
    """The trail of CDS Hooks calls `ivig serve` answered: calls by status, by service and
    hook, latency percentiles, cards by indicator, records read in part, then the latest
    calls, each with its time, status, latency, caller (issuer and tenant) and hookInstance.
    No patient data is kept. Read-only, also while the service runs."""
    from ivig_advisor.engine.service.calls import CallQuery, calls_csv, calls_text, report

    query = CallQuery(since=since, until=until, issuer=issuer, status=status)
    got = report(db_path, query, limit=20 if limit is None and fmt == "text" else limit)
    if fmt == "json":
        _echo_json(got)
    else:
        click.echo(calls_text(got) if fmt == "text" else calls_csv(got["calls"]), nl=fmt == "text")


# -- ivig serve ----------------------------------------------------------------


@main.command("serve")
@rules_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    "-j",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes (each with its own engines).",
)
@click.option(
    "--trust",
    "trust_path",
    type=click.Path(exists=True, dir_okay=False),
    help="The issuers whose signed JWTs are accepted, with their JWK Sets (YAML or JSON: issuers: [{iss, jwks}]).",
)
@click.option(
    "--insecure-dev", is_flag=True, help="Accept calls without a JWT: for development on a loopback address only."
)
@click.option(
    "--public-url", help="The base URL clients call, which their JWT's aud names [default: http://HOST:PORT]."
)
@click.option(
    "--feedback-db",
    default="ivig-feedback.sqlite",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The SQLite file where cards and clinicians' feedback are kept.",
)
@click.option(
    "--cors-origin",
    "cors_origins",
    multiple=True,
    help="A browser origin allowed to call (CORS); repeat for several [default: the CDS Hooks sandbox].",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a client has to send a request's headers, then the connection is closed [default: 5].",
)
@click.option(
    "--body-timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds a client has, after the headers, to send the whole body, then 408 [default: 15].",
)
@click.option(
    "--max-connections",
    type=click.IntRange(min=1),
    help="Open connections each worker serves at once; a call beyond them is 503 [default: 100].",
)
@click.option(
    "--ssl-certfile",
    type=click.Path(exists=True, dir_okay=False),
    help="Serve https with this certificate (PEM, its chain after it; the key too unless --ssl-keyfile).",
)
@click.option(
    "--ssl-keyfile",
    type=click.Path(exists=True, dir_okay=False),
    help="The certificate's private key (PEM, unencrypted).",
)
@click.option(
    "--behind-proxy",
    is_flag=True,
    help="A reverse proxy terminates TLS in front of the service: listen beyond loopback without it, "
    "and take the proxy's X-Forwarded-For/Proto.",
)
@click.option(
    "--forwarded-allow-ips",
    default="127.0.0.1",
    show_default=True,
    help="With --behind-proxy: the proxy's addresses (comma-separated), whose X-Forwarded-* alone are taken.",
)
@click.option(
    "--keep-calls-days",
    type=click.FloatRange(min=0, min_open=True),
    help="Forget the calls the trail keeps (ivig audit calls) once older than this many days [default: keep them all].",
)
@matcher_option
@click.option(
    "--check",
    is_flag=True,
    help="Check the settings (trust file, certificate, database, rules) as a start would, say what would be "
    "served, and exit without listening.",
)
def serve(
    rules_dir,
    host,
    port,
    workers,
    trust_path,
    insecure_dev,
    public_url,
    feedback_db,
    cors_origins,
    header_timeout,
    body_timeout,
    max_connections,
    ssl_certfile,
    ssl_keyfile,
    behind_proxy,
    forwarded_allow_ips,
    keep_calls_days,
    matcher,
    check,
):
    """Serve the advice as a CDS Hooks 2.0 service: cards in the EHR when a clinician
    orders IVIG (order-select, order-sign) or opens a patient's chart (patient-view).

    Plain http on a loopback address only: beyond it, https (--ssl-certfile) or a reverse
    proxy that terminates TLS (--behind-proxy). GET /healthz and /readyz answer a load balancer.

    Needs the serve extra: pip install -e ".[serve]".
    """
    try:
        import uvicorn

        from ivig_advisor.engine.service.app import ENV, Settings, is_loopback, prepared, uvicorn_options
    except ImportError as exc:
        raise click.UsageError(f'ivig serve needs the serve extra (pip install -e ".[serve]"): {exc}') from None
    _refuse_unsafe_listening(host, is_loopback(host), insecure_dev, bool(ssl_certfile), behind_proxy)
    if not insecure_dev and not trust_path:
        raise click.UsageError("give --trust FILE (the EHRs whose JWTs to accept), or --insecure-dev on localhost")
    if ssl_keyfile and not ssl_certfile:
        raise click.UsageError("--ssl-keyfile needs --ssl-certfile: the certificate the key serves")
    if behind_proxy and not public_url and not insecure_dev:
        raise click.UsageError("--behind-proxy needs --public-url: the https:// URL the EHR calls through the proxy")
    given = {
        "header_timeout": header_timeout,
        "body_timeout": body_timeout,
        "max_connections": max_connections,
        "cors_origins": list(cors_origins) or None,
        "keep_calls_days": keep_calls_days,
    }
    settings = Settings(
        matcher=matcher,
        public_url=public_url or _served_url(host, port, bool(ssl_certfile)),
        trust=trust_path,
        insecure_dev=insecure_dev,
        feedback_db=feedback_db,
        rules=rules_dir,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        behind_proxy=behind_proxy,
        forwarded_allow_ips=forwarded_allow_ips,
        **{key: value for key, value in given.items() if value is not None},
    )
    # a bad trust file, certificate, rule base or database is said now; --check creates and writes nothing
    trust, _store, rulebase = prepared(settings, store=not check)
    if check:
        from ivig_advisor.engine.service.feedback import store_check

        _say(_serve_check_text(settings, host, port, workers, trust, rulebase, store_check(settings.feedback_db)))
        return
    os.environ[ENV] = settings.to_env()
    _say(
        f"ivig serve: CDS Hooks discovery at {settings.public_url}/cds-services"
        + (" (insecure-dev: no JWT needed)" if insecure_dev else ""),
        err=True,
    )
    uvicorn.run(
        "ivig_advisor.engine.service.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        **uvicorn_options(settings),
    )


def _refuse_unsafe_listening(host: str, loopback: bool, insecure_dev: bool, tls: bool, behind_proxy: bool) -> None:
    """A usage error for an address `ivig serve` must not listen on as asked: beyond loopback, no
    --insecure-dev (no token asked), and no plain http unless a reverse proxy terminates TLS."""
    if loopback:
        return
    if insecure_dev:
        raise click.BadParameter(
            "--insecure-dev listens on a loopback address only (127.0.0.0/8, ::1, localhost)", param_hint="'--host'"
        )
    if not tls and not behind_proxy:
        raise click.BadParameter(
            f"{host} is beyond loopback, where the EHR's tokens and patients' records must not travel in "
            "plain http: give --ssl-certfile and --ssl-keyfile (https), or --behind-proxy when a reverse "
            "proxy terminates TLS in front of the service",
            param_hint="'--host'",
        )


def _serve_check_text(settings, host: str, port: int, workers: int, trust, rulebase, database: str) -> str:
    """What `ivig serve --check` found: where and how it would listen, and what it would serve; each
    value read escaped, so that a newline in one (an issuer, a path) cannot print a line of its own."""
    from ivig_advisor.engine.base.escape import for_terminal as shown
    from ivig_advisor.engine.core.rulebase import RuleBase

    stamp = (rulebase or RuleBase.load()).stamp
    transport = "https" if settings.ssl_certfile else "http behind a TLS proxy" if settings.behind_proxy else "http"
    callers = "none: --insecure-dev, no token asked" if settings.insecure_dev else ", ".join(map(shown, trust.issuers))
    return "\n".join(
        [
            "ivig serve --check: the settings are sound; nothing was started",
            f"  listen       {shown(host)}:{port} ({transport}), {workers} worker{'s' if workers != 1 else ''}",
            f"  public URL   {shown(settings.public_url)}",
            f"  issuers      {callers}",
            f"  database     {shown(settings.feedback_db)} ({database})"
            + (f", calls kept {settings.keep_calls_days:g} days" if settings.keep_calls_days else ""),
            f"  rules        {shown(stamp['name'])} {shown(stamp['version'])} {stamp['hash']}",
        ]
    )


# -- ivig backup ---------------------------------------------------------------


@main.command("backup")
@click.argument("database", type=click.Path(dir_okay=False))
@click.argument("destination", type=click.Path())
@rules_option
def backup_command(database, destination, rules_dir):
    """Copy the SQLite file `ivig serve` keeps (--feedback-db: cards, feedback, the trail of
    calls) to DESTINATION, a new file or a folder (there named for the file and the UTC time),
    while the service runs: one consistent state, checked, never over an existing file.
    Prints the copy's path."""
    from ivig_advisor.engine.base.escape import for_terminal
    from ivig_advisor.engine.service.backup import backup

    done = backup(database, destination)
    _say(for_terminal(done.path))  # one line, whatever the name holds (_say keeps a newline)
    rows = ", ".join(f"{for_terminal(table)} {count:,}" for table, count in done.rows.items())
    _say(f"ivig backup: {done.size:,} bytes, checked; rows: {rows}", err=True)


def _served_url(host: str, port: int, tls: bool) -> str:
    """The URL the service answers at, as a client writes it (an IPv6 address in brackets)."""
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"{'https' if tls else 'http'}://{shown}:{port}"


if __name__ == "__main__":  # pragma: no cover
    main()
