"""``python -m innreg ...`` (and ``torchrun ... -m innreg train ...``): the command line."""

import sys

from innreg.cli import main

sys.exit(main())
