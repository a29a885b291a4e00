"""``ami-console``'s command line: which run, which command, and the exit code.

Exit codes, for scripts: 0 when the run did what was asked, 1 when it did not, refused,
or could not be reached (one line on stderr names the URL and the cause), 2 for a
usage error (argparse's own).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

from ami.console.client import ConsoleError, ControlClient, Endpoint, parse_url
from ami.console.commands import COMMANDS, execute, help_text
from ami.console.finding import RunApi, logs_folder, newest_live_run, run_from_path

PROGRAM = "ami-console"
TOKEN_VARIABLE = "AMI_API_TOKEN"
_TOKEN_TEXT = re.compile(r"[\x21-\x7e]+")
"""What a header can carry and ``web_api.token`` accepts: refused here, not as a traceback."""
DEFAULT_TIMEOUT = 5.0
"""Seconds a request may take: the API answers at once unless the run is in trouble."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command, or the prompt when none is given; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    endpoint: Endpoint | None = None
    if args.url is not None:
        try:
            endpoint = parse_url(args.url)
        except ValueError as error:
            parser.error(str(error))
    try:
        if args.command == "help":
            print(help_text(interactive=False), flush=True)
            return 0
        return _run(args, endpoint)
    except ConsoleError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\n{PROGRAM}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`| head`): nothing more to say to it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush fails no more
        return 1


def _run(args: argparse.Namespace, endpoint: Endpoint | None) -> int:
    run: RunApi | None = None
    if endpoint is None:
        run = _find_run(args.run)
        endpoint = run.endpoint
    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    if token is not None and not _TOKEN_TEXT.fullmatch(token):
        source = "--token" if args.token else TOKEN_VARIABLE
        raise ConsoleError(
            f"{source}: a token is printable ASCII without spaces, as web_api.token must be"
        )
    if run is not None and run.token_required and token is None:
        raise ConsoleError(
            f"the run at {endpoint.url} needs a token ({run.file.name} says "
            f"token_required): pass --token <web_api.token> or set {TOKEN_VARIABLE}"
        )
    client = ControlClient(endpoint, token, args.timeout)
    if args.command is None:
        from ami.console.shell import run_shell  # readline only where it is used

        return run_shell(client, run, args.json)
    result = execute(client, args.command, args.json)
    print(result.text, flush=True)
    return 0 if result.ok else 1


def _find_run(run_dir: str | None) -> RunApi:
    """The run ``--run`` names, else the newest live one, which is named on stderr."""
    if run_dir is not None:
        return run_from_path(Path(run_dir).expanduser())
    run, others = newest_live_run(logs_folder())
    note = ""
    if others:
        listed = ", ".join(other.describe() for other in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        note = f"; {len(others)} other live run(s), pick one with --run: {listed}{more}"
    print(f"{PROGRAM}: the newest live run: {run.describe()}{note}", file=sys.stderr)
    return run


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description=textwrap.fill(
            "Talk to a running ami system through its control API. With a COMMAND, run "
            "it once and exit (0: done, 1: refused, not done or unreachable, 2: usage); "
            "without one, open a prompt with help, Tab completion and history.",
            88,
        ),
        epilog=help_text(interactive=False)
        + "\n\n"
        + textwrap.fill(
            "Without --url or --run: the newest run under $AMI_ROOT/logs (else ./logs) "
            "whose control_api.json names a live process.",
            88,
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help="the API's base URL, e.g. http://127.0.0.1:8391")
    where.add_argument(
        "--run",
        metavar="RUN_DIR",
        help="a run folder (or its control_api.json), e.g. logs/default/runs/<stamp>",
    )
    parser.add_argument(
        "--token",
        help=f"the run's web_api.token (default: ${TOKEN_VARIABLE}, which other users "
        "cannot see in the process list)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the API's reply as JSON instead of a summary"
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long each request may take (default {DEFAULT_TIMEOUT:g}; a pause may "
        "take web_api.pause_ack_timeout longer)",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=[*COMMANDS, "help"],
        metavar="COMMAND",
        help=f"one of {', '.join([*COMMANDS, 'help'])}; none opens the prompt",
    )
    return parser


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds > 0, e.g. 5") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected seconds > 0, e.g. 5")
    return value
