"""Benchmark: our photonpump next to the published photon-pump 0.9.5.2, against one simulated node.

    nox -s bench -- bench/photonpump_vs_original.py
    PYTHONPATH=shared/src:packages/clustersim/src:packages/photonpump/src \\
        python bench/photonpump_vs_original.py [--original-python PATH]

Three processes: the simulator (``python -m clustersim eventstore --nodes 1``, fresh for each
client so neither reads the other's data), and each client running ``_photonpump_workload.py``
in its own interpreter: ours with this interpreter, the original in a virtual environment of
its own with pure-Python protobuf, which its generated code needs (``--original-python``, or
``$PHOTONPUMP_ORIGINAL_PYTHON``; without either, one is created in a cache folder). Prints
items/s per scenario and the ratio ours / original, plus ping p99 where measured. The aim is at
least twice the original's throughput in every scenario; the output says where it is not met.
Takes about two minutes (three alternated runs per client; the median is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import clustersim_eventstore  # bench/ is on sys.path when run as a script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKLOAD = HERE / "_photonpump_workload.py"
ORIGINAL = "photon-pump==0.9.5.2"
TIMEOUT = 600


def original_python(given: str | None) -> str:
    if given:
        return given
    folder = Path(tempfile.gettempdir()) / "photonpump-0.9.5.2-bench-venv"
    python = folder / "bin" / "python"
    if not python.exists():
        print(f"creating {folder} with {ORIGINAL} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", ORIGINAL], check=True)
    return str(python)


def simulator() -> tuple[subprocess.Popen[str], str]:
    env = dict(os.environ)
    env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "clustersim", "eventstore", "--nodes", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    return process, json.loads(process.stdout.readline())["tcp"][0]


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    if process.stdout is not None:
        process.stdout.close()


def run_workload(python: str, label: str, env: dict[str, str]) -> dict[str, dict[str, float]]:
    process, address = simulator()
    try:
        done = subprocess.run(
            [python, str(WORKLOAD), address, label],
            capture_output=True,
            text=True,
            env=env,
            cwd=tempfile.gettempdir(),  # never import this checkout's photonpump by accident
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        stop(process)
    if done.returncode != 0:
        raise SystemExit(f"{label} workload failed:\n{done.stderr[-3000:]}")
    result: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def median_of(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    """Per scenario and figure, the median over runs."""
    return {
        scenario: {key: statistics.median(run[scenario][key] for run in runs) for key in figures}
        for scenario, figures in runs[0].items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original-python", default=os.environ.get("PHOTONPUMP_ORIGINAL_PYTHON"))
    parser.add_argument("--rounds", type=int, default=3, help="runs per client (median kept)")
    args = parser.parse_args()
    ours_env = dict(os.environ)
    ours_env.pop("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", None)
    theirs_env = {**ours_env, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    theirs_env.pop("PYTHONPATH", None)  # only the original's environment
    theirs_python = original_python(args.original_python)
    ours_runs, theirs_runs = [], []
    for round_ in range(args.rounds):  # alternated, so drifts of the machine hit both alike
        ours_runs.append(run_workload(sys.executable, f"ours{round_}", ours_env))
        theirs_runs.append(run_workload(theirs_python, f"original{round_}", theirs_env))
    ours, theirs = median_of(ours_runs), median_of(theirs_runs)
    process, address = simulator()
    try:  # what the node serves to a raw-socket client: the most any client could get
        ceiling = asyncio.run(clustersim_eventstore.run(address))
    finally:
        stop(process)

    print(
        f"photonpump vs photon-pump 0.9.5.2, {datetime.now(UTC):%Y-%m-%d}, {platform.node()}, "
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(
        "one simulated node in its own process; each client in its own process; items/s, "
        f"median of {args.rounds} alternated runs"
    )
    print(f"  {'scenario':<45} {'ours':>10} {'original':>10} {'ratio':>7}")
    short = []
    for scenario, mine in ours.items():
        other = theirs[scenario]
        ratio = mine["rate"] / other["rate"]
        extra = ""
        if "p99_ms" in mine:
            extra = f"   p99 {mine['p99_ms']:.2f} ms vs {other['p99_ms']:.2f} ms"
        print(
            f"  {scenario:<45} {mine['rate']:>10,.0f} {other['rate']:>10,.0f} {ratio:>6.2f}x{extra}"
        )
        if ratio < 2:
            short.append(scenario)
    if short:
        print("below the 2x aim: " + "; ".join(short))
    print("the simulated node's ceiling (raw-socket client, no client work):")
    for name, value in ceiling.items():
        print(f"  {name:<45} {value:>10,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
