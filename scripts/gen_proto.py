"""Generate (or check) the EventStore message code from our own .proto.

    python scripts/gen_proto.py          # rewrite messages_pb2.py / messages_pb2.pyi
    python scripts/gen_proto.py --check  # exit 1 if the committed files differ

Run with grpcio-tools 1.66.x (protoc 27, gencode 5.27.2): the generated module then loads on
every protobuf runtime from 5.27.2 on (5.x, 6.x, 7.x) with its fast upb backend. A newer protoc
would raise that floor to its own version. ``nox -s proto`` runs the check in a virtual
environment with that pin.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOT = ROOT / "shared" / "src"
PROTO = Path("resilient_topology/eventstore/proto/messages.proto")
OUTPUTS = ("messages_pb2.py", "messages_pb2.pyi")


def generate(out: Path) -> None:
    from grpc_tools import protoc  # imported here: only this script needs grpcio-tools

    args = ["protoc", f"-I{SOURCE_ROOT}", f"--python_out={out}", f"--pyi_out={out}", str(PROTO)]
    if protoc.main(args) != 0:
        raise SystemExit(f"protoc failed on {PROTO}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args()
    committed = SOURCE_ROOT / PROTO.parent
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        stale = []
        for name in OUTPUTS:
            fresh = (Path(tmp) / PROTO.parent / name).read_text()
            target = committed / name
            if args.check:
                if not target.exists() or target.read_text() != fresh:
                    stale.append(str(target.relative_to(ROOT)))
            else:
                target.write_text(fresh)
    if stale:
        print("out of date (run python scripts/gen_proto.py):", *stale, sep="\n  ")
        return 1
    print("generated code is up to date" if args.check else f"wrote {', '.join(OUTPUTS)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
