"""The WebSocket hub: topics, sequence numbers, acknowledgement and replay, fan-out, and
the PostgreSQL bus that wakes it. Knows nothing of the domain: command/live tells it who
may see what."""
