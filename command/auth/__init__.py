"""The auth room: users, passwords, bearer tokens, API keys and their nonces, the login
throttle, and the caller of each request as a dependency."""
