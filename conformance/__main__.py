"""``python -m loss_conformance`` is the ``loss-conformance`` command."""
import sys

from loss_conformance.cli import main

if __name__ == "__main__":  # a spawned worker process imports this module again: it must not run
    sys.exit(main())
