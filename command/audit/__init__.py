"""The audit room: who changed what, when, readable and verifiable over HTTP.

The chain itself (links, keys, checkpoints, verification) is core/audit.py,
core/checkpoint.py and core/audit_verify.py; this room only serves it."""
