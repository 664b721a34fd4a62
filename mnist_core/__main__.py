"""`python -m mnist_core ...`: the command line (train, evaluate, export; mnist_core/cli.py)."""
import sys

from .cli import main

sys.exit(main())
