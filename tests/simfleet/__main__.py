"""`python3 -m simfleet ...` (run from tests/, or with PYTHONPATH=tests)."""
import sys

from .cli import main

sys.exit(main())
