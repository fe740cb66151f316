// Big screen, console: Plan all (全部规划): POST /api/dispatch/plan, the proposal as a list and on the map, apply with one confirmation.
// (to be written)
