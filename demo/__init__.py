"""A narrated tour of the toolkit: ``python -m demo`` (``nox -s demo``).

Starts an embedded clustersim replica set and EventStore cluster, runs pymo, mongomancy,
mongo_observer and photonpump through failovers, checks what they promise and exits 0 only when
every invariant holds (1 otherwise, 2 for bad arguments). ``--mongo-uri`` and ``--eventstore``
point the same scenario at real servers, where no node is ever killed (see :mod:`demo.plan`).
"""
