"""``python -m neuroloop.cli``."""

from . import main

raise SystemExit(main())
