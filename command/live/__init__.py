"""The live room: the command side of the realtime hub (realtime/ knows nothing of
incidents or tasks; this room tells it)."""
