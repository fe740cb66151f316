// Big screen, console: The incident queue: open incidents by severity then age, two timers against the targets, filters, drill incidents apart, a sound and a pulse for a new severe one.
// (to be written)
