"""The `clipcov` command line: one sub-command per stage, one module per sub-command.

Each command module exposes `register(subparsers)`, which adds its sub-command and sets `func`; the
function turns the flags into a library call and prints what it wrote. Only this package parses flags
(types.py: the argparse types the commands share). Errors are one line, `clipcov COMMAND: error: ...`.
"""
import argparse
import logging
import sys

from .. import __version__
from . import data, demo, embed, eval, experiment, labels, report, select, study, sweep, train, work

COMMANDS = [data, embed, labels, select, report, work, train, eval, experiment, study, sweep, demo]


def build_parser():
    parser = argparse.ArgumentParser(prog="clipcov", description="ClipCov data selection for CLIP training.")
    parser.add_argument("--version", action="version", version=f"clipcov-fast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    # our loggers at INFO; other libraries' (open_clip logs model building to the root logger) at WARNING
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("clipcov_fast").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args) or 0
    except ModuleNotFoundError as e:  # an optional dependency: name the extra that brings it
        extra = "scale" if e.name in ("ray", "pyarrow") else "clip"
        return _error(args, f"this needs the Python package {e.name!r}, which is not installed; install the "
                            f"extra that brings it: pip install 'clipcov-fast[{extra}]'")
    except (ValueError, TypeError, OSError) as e:  # bad input, or the file system said no
        return _error(args, message(e))


def message(e):
    """One line for an error: an OS error's path and reason ('out/x.npy: No space left on device'),
    else the exception's own text."""
    if isinstance(e, OSError) and e.strerror:
        paths = " -> ".join(str(p) for p in (e.filename, e.filename2) if p is not None)
        return f"{paths}: {e.strerror}" if paths else e.strerror
    return str(e)


def _error(args, text):
    print(f"clipcov {args.command}: error: {text}", file=sys.stderr)
    return 2
