"""``python -m cnnfast.bench``: the same as ``cnnfast bench``."""

from .command import main

raise SystemExit(main())
