"""``python -m pymo URI [--require WHAT] [--timeout SECONDS] [--json]``: a deployment check.

Exit status 0 with a one-line summary (the seed that decided, its type and round-trip time), 1
with one reason per seed when no seed suits, 2 for unusable arguments. Output names seeds by
``host:port`` only, so credentials in the URI are never printed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from ._sync.factory import open_checked
from .decision import SeedView
from .errors import PymoConfigurationError, ServerSelectionTryOnceTimeoutError
from .selectors import Selectors

__all__ = ["REQUIREMENTS", "main"]

REQUIREMENTS: dict[str, Selectors] = {
    "writable": Selectors(states=frozenset({"Writable"})),
    "readable": Selectors(states=frozenset({"Readable"})),
    "primary": Selectors(types=frozenset({"RSPrimary"})),
    "secondary": Selectors(types=frozenset({"RSSecondary"})),
    "mongos": Selectors(types=frozenset({"Mongos"})),
    # Any seed that answers with a recognised server type.
    "any": Selectors(
        types=frozenset(
            {"Mongos", "RSPrimary", "RSSecondary", "RSArbiter", "RSOther", "RSGhost", "Standalone"}
        )
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pymo", description=__doc__.splitlines()[0])
    parser.add_argument("uri", help="mongodb:// or mongodb+srv:// URI, or host[:port]")
    parser.add_argument(
        "--require",
        choices=sorted(REQUIREMENTS),
        help="what one seed must be; without it, every seed must answer without error",
    )
    parser.add_argument("--timeout", type=float, help="bound on the wait, in seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    selectors = REQUIREMENTS[args.require] if args.require else Selectors()
    try:
        client, verdict = open_checked((args.uri,), {}, selectors, args.timeout)
    except PymoConfigurationError as exc:
        return _report(args.json, {"ok": False, "error": str(exc)}, f"pymo: {exc}", 2)
    except ServerSelectionTryOnceTimeoutError as exc:
        seeds = list(exc.seeds.values())
        lines = [f"FAIL no suitable seed (wanted: {selectors.describe()})"]
        text = "\n".join(lines + [f"  {seed.describe()}" for seed in seeds])
        return _report(args.json, {"ok": False, "seeds": [_seed(s) for s in seeds]}, text, 1)
    client.close()
    assert verdict.matched is not None  # a successful verdict always names its seed
    seed = verdict.seeds[verdict.matched]
    rtt = "n/a" if seed.rtt is None else f"{seed.rtt * 1000:.1f} ms"
    text = f"OK {seed.address} {seed.server_type} rtt={rtt}"
    document = {
        "ok": True,
        "matched": _seed(seed),
        "seeds": [_seed(s) for s in verdict.seeds.values()],
    }
    return _report(args.json, document, text, 0)


def _seed(view: SeedView) -> dict[str, Any]:
    return {
        "address": str(view.address),
        "status": view.status,
        "type": view.server_type,
        "writable": view.writable,
        "readable": view.readable,
        "error": view.error,
        "rtt_ms": None if view.rtt is None else round(view.rtt * 1000, 3),
    }


def _report(as_json: bool, document: dict[str, Any], text: str, code: int) -> int:
    stream = sys.stdout if code == 0 or as_json else sys.stderr
    print(json.dumps(document) if as_json else text, file=stream)
    return code
