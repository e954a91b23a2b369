"""The demo is a top-level folder of the checkout, not an installed distribution.

``python -m pytest`` from the root finds it through the current directory, but the ``pytest``
script (what nox runs) does not put the root on ``sys.path``; this makes ``import demo`` work
either way, before the test modules are collected.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
