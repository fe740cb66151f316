// Big screen, console: Call-taking (接警): the new-incident form, map-click placement, offline place search and reverse lookup, possible duplicates with attach-the-call.
// (to be written)
