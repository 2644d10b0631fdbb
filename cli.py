"""The `ivig` command line: parses options and renders; the library does the work.

Heavy imports (the engine, experta) happen inside the commands, so that
`ivig --help` and `ivig --version` stay fast.
"""

import os
import sys

import click

from ivig_advisor import __version__

FORMATS = ("text", "json", "jsonl")


def _style():
    """click.style, or plain text when NO_COLOR is set (https://no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return lambda text, **_: text
    return click.style


def _load_rules(rules_dir):
    from ivig_advisor.engine import RuleBase, RuleBaseInvalid
    try:
        return RuleBase.load(rules_dir)
    except RuleBaseInvalid as exc:
        for error in exc.errors:
            click.echo(f"error: {error}", err=True)
        raise SystemExit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ivig")
def main():
    """Advice on IVIG in autoimmune neuromuscular diseases, from production rules
    encoding Dalakas MC, JAMA 2004;291(19):2367-75 (PMID 15150209).

    Decision support for clinicians; it restates one 2004 review and is no
    substitute for clinical judgement or current guidelines.
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, allow_dash=True))
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text for a person; json (one array) or jsonl (one object per line) for programs.")
@click.option("--rules", "rules_dir", type=click.Path(exists=True, file_okay=False),
              help="Use another rule base directory (default: the packaged rules).")
@click.option("--no-chain", is_flag=True, help="Text format: leave out the chain of rules.")
@click.option("--quiet", "-q", is_flag=True, help="No summary line on stderr.")
def evaluate(paths, fmt, rules_dir, no_chain, quiet):
    """Evaluate case files (YAML, JSON, JSONL), directories (recursively) or - for stdin.

    Exit status: 0 when every case was evaluated, 1 when some case had an
    error (each error has its own result), 2 for usage errors.
    """
    from ivig_advisor.engine import Advisor
    from ivig_advisor.engine.batch import evaluate_files
    from ivig_advisor.engine.render import Summary, TextRenderer, to_json

    advisor = Advisor(_load_rules(rules_dir))
    renderer = TextRenderer(advisor.rulebase, style=_style(), chain=not no_chain)
    summary = Summary()
    first = True
    if fmt == "json":
        click.echo("[")
    for result in evaluate_files(paths, advisor, stdin=sys.stdin):
        summary.add(result)
        if fmt == "text":
            click.echo(("" if first else "\n") + renderer.render(result))
        elif fmt == "json":
            click.echo(("" if first else ",\n") + to_json(result), nl=False)
        else:
            click.echo(to_json(result))
        first = False
    if fmt == "json":
        click.echo("\n]")
    if not quiet:
        click.echo(str(summary), err=True)
    sys.exit(1 if summary.failed else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
