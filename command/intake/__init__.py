"""The intake room: CAP warning messages from the warning system become stored alerts,
incidents and warning zones.

``cap`` parses (pure: no database, no web), ``mapping`` reads what a message asks for,
``service`` stores alerts in batches, ``thread`` applies one to its thread's incidents and
zones, ``queue`` batches concurrent posts, ``router`` is HTTP."""
