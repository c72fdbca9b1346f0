"""``python -m gmmhmm`` runs the command-line interface."""

from gmmhmm.cli import main

raise SystemExit(main())
