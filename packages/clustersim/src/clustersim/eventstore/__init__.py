"""A simulated EventStore cluster speaking the legacy TCP client protocol and HTTP gossip."""
