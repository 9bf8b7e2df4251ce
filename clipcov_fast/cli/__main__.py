import sys

from . import main

if __name__ == "__main__":  # not when a spawned worker of --engine local re-imports it as __mp_main__
    sys.exit(main())
