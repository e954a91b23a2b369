"""The photonpump benchmark workload, run unchanged by either client in its own process.

    python bench/_photonpump_workload.py HOST:PORT LABEL

Imports whichever ``photonpump`` the interpreter has (ours, or the published 0.9.5.2 in its own
virtual environment), runs every scenario against the node at HOST:PORT with stream names
prefixed by LABEL, and prints one JSON object: scenario -> {"rate": items/s, ...}. Both
clients are driven through the API they share, with the same inputs and payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
import sys
import time
from typing import Any

import photonpump
from photonpump import messages

N = 20_000  # events in the read, iterate and catch-up scenarios
SEQUENTIAL = 2_000
CONCURRENT = 200
CONCURRENT_TOTAL = 10_000
BATCH = 100
BATCHES = 100
PAGE = 500
PINGS = 1_000
GUARD = 120  # seconds: a hang fails the run instead of stalling it


def body(i: int) -> dict[str, int]:
    return {"i": i}


async def timed(coroutine: Any) -> float:
    started = time.perf_counter()
    async with asyncio.timeout(GUARD):
        await coroutine
    return time.perf_counter() - started


async def scenarios(client: Any, label: str) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}

    latencies = []
    for _ in range(PINGS):
        started = time.perf_counter()
        await client.ping()
        latencies.append(time.perf_counter() - started)
    latencies.sort()
    results["ping, sequential"] = {
        "rate": PINGS / sum(latencies),
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }

    async def sequential() -> None:
        for i in range(SEQUENTIAL):
            await client.publish_event(f"{label}-seq", "tick", body=body(i))

    elapsed = await timed(sequential())
    results["publish_event, sequential"] = {"rate": SEQUENTIAL / elapsed}

    async def concurrent() -> None:
        semaphore = asyncio.Semaphore(CONCURRENT)

        async def one(i: int) -> None:
            async with semaphore:
                await client.publish_event(f"{label}-conc", "tick", body=body(i))

        await asyncio.gather(*(one(i) for i in range(CONCURRENT_TOTAL)))

    elapsed = await timed(concurrent())
    results[f"publish_event, {CONCURRENT} concurrent"] = {"rate": CONCURRENT_TOTAL / elapsed}

    async def batched(stream: str, batches: int) -> None:
        for b in range(batches):
            events = [messages.NewEvent("tick", data=body(b * BATCH + i)) for i in range(BATCH)]
            await client.publish(stream, events)

    elapsed = await timed(batched(f"{label}-batch", BATCHES))
    results[f"publish, {BATCH} events per request"] = {"rate": BATCHES * BATCH / elapsed}

    stream = f"{label}-read"
    await timed(batched(stream, N // BATCH))

    async def pages() -> int:
        count = 0
        for start in range(0, N, PAGE):
            count += len(await client.get(stream, from_event=start, max_count=PAGE))
        return count

    started = time.perf_counter()
    async with asyncio.timeout(GUARD):
        count = await pages()
    results[f"get, {PAGE} per page"] = {"rate": count / (time.perf_counter() - started)}

    async def iterate() -> int:
        return len([event async for event in client.iter(stream, batch_size=PAGE)])

    started = time.perf_counter()
    async with asyncio.timeout(GUARD):
        count = await iterate()
    assert count == N, count
    results[f"iter over {N:,} events"] = {"rate": count / (time.perf_counter() - started)}

    async def catch_up() -> int:
        subscription = await client.subscribe_to(stream, start_from=0, batch_size=PAGE)
        seen = 0
        async for _ in subscription.events:
            seen += 1
            if seen == N:
                break
        await subscription.unsubscribe()
        return seen

    started = time.perf_counter()
    async with asyncio.timeout(GUARD):
        count = await catch_up()
    results[f"catch-up subscription over {N:,} events"] = {
        "rate": count / (time.perf_counter() - started)
    }

    async def slow_reader() -> None:
        async for index, _ in aenumerate(client.iter(stream, batch_size=PAGE)):
            if index % 50 == 0:
                await asyncio.sleep(0.005)  # a consumer that falls behind

    reader = asyncio.create_task(slow_reader())
    await asyncio.sleep(0.05)
    latencies = []
    for _ in range(PINGS // 2):
        started = time.perf_counter()
        async with asyncio.timeout(GUARD):
            await client.ping()
        latencies.append(time.perf_counter() - started)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    latencies.sort()
    results["ping p99 while an iterator drains slowly"] = {
        "rate": len(latencies) / sum(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
    }
    return results


async def aenumerate(iterator: Any) -> Any:
    index = 0
    async for item in iterator:
        yield index, item
        index += 1


async def main(address: str, label: str) -> None:
    host, _, port = address.rpartition(":")
    client = photonpump.connect(host=host, port=int(port))
    await client.connect()
    try:
        results = await scenarios(client, label)
    finally:
        await client.close()
    print(json.dumps(results))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
