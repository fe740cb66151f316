"""Vehicle location (AVL): fixes from every path, group-committed to the partitioned
track, trackers (OsmAnd / Traccar), the live map's coalesced updates, and tracks for
review."""
