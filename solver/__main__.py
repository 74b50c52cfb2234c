"""``python -m solver`` is the ``constrict`` command."""

import sys

from solver.cli import main

sys.exit(main())
