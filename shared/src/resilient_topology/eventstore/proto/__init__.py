"""EventStore's TCP messages, generated from ``messages.proto`` (extra ``eventstore``).

One copy shared by the simulator (``clustersim.eventstore``) and the client (``photonpump``):
both depend on the core already, so placing the generated code here adds no dependency between
them. Regenerate with ``python scripts/gen_proto.py``; ``nox -s proto`` checks it is current.
"""
