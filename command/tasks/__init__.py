"""The tasks room: a unit's task at an incident, from dispatch (all or nothing, with what
the system recommended recorded next to the choice) to done."""
