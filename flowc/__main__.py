"""`python -m flowc ...`: the same as the `flowc` command."""
import sys

from .cli import main

sys.exit(main())
