"""``python -m solver`` is the ``constrict`` command."""

from solver.cli import entry

entry()
