"""``python -m conformance`` is the ``loss-conformance`` command."""
import sys

from conformance.cli import main

sys.exit(main())
