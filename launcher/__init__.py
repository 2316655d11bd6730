"""Starting and stopping the system's processes: `make run` and the end-to-end tests use this."""
