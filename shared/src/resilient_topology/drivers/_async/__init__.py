"""asyncio drivers: the topology waiter and the monitor loop."""
