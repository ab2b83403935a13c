"""``python -m innreg.cli ...`` (the benchmark runs each method so, in its own process)."""

import sys

from innreg.cli import main

sys.exit(main())
