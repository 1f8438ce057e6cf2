"""``python -m edgesnn.serve serve --model m.esnn``: the daemon without the rest of the CLI."""

import sys

from edgesnn.serve.cli import main

sys.exit(main())
