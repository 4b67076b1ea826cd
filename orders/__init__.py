"""The Order service: orders, their life cycle and their event log."""
