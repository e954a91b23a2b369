"""``python -m pymo URI ...``: see :mod:`pymo.cli`."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
