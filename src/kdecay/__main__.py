"""``python -m kdecay``: the same command line as the ``kdecay`` console script."""

from kdecay.cli import main

raise SystemExit(main())
