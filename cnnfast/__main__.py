"""``python -m cnnfast``: the same command line as the ``cnnfast`` script."""

from .cli import main

raise SystemExit(main())
