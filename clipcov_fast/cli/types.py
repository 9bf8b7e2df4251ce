"""argparse types shared by the commands: a bad value is refused by the parser, naming its flag."""
import argparse


def positive_int(text):
    """'4' -> 4; '0', '-3' and 'x' are refused."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return value
