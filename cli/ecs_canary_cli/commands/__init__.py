"""The CLI's commands, one module per area; each command is ``(App) -> exit code``."""
