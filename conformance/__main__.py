"""``python -m conformance`` is the ``loss-conformance`` command."""
import sys

from conformance.cli import main

if __name__ == "__main__":  # a spawned worker process imports this module again: it must not run
    sys.exit(main())
