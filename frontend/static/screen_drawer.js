// Big screen, console: The incident drawer: details and status actions, the recommendation with routes on the map, one-action dispatch, the task timeline.
// (to be written)
