"""The `clipcov` command line: one sub-command per stage.

Each stage module exposes `register(subparsers)`, which adds its sub-command and sets `func`.
"""
import argparse
import logging
import sys

from . import __version__
from . import commands_data, commands_demo, commands_select, embed, evaluate, experiment, labels, train

STAGES = [commands_data, embed, labels, commands_select, train, evaluate, experiment, commands_demo]


def build_parser():
    parser = argparse.ArgumentParser(prog="clipcov", description="ClipCov data selection for CLIP training.")
    parser.add_argument("--version", action="version", version=f"clipcov-fast {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for stage in STAGES:
        stage.register(sub)
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
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f"clipcov {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
