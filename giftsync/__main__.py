"""``python -m giftsync …`` — the same as the ``giftsync`` console script."""
from .cli import main

raise SystemExit(main())
