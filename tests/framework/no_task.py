"""A module named as a task that defines no `Task` class (a user error)."""

default_config = None
