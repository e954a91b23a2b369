"""Sans-I/O topology awareness for clustered datastores (filled in as modules land)."""
