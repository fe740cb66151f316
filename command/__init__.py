"""The command side: the rooms (one folder per capability, each with its models, schemas,
service and router) and the platform that puts them together (app, errors, CLI, server,
migrations). See README.md, "Layout"."""
