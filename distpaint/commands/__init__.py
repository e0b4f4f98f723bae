"""Sub-commands of the `distpaint` CLI, one module each with `register(app)`."""
