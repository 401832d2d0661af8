"""Task module `framework.tasks.value`: a per-position value head (reward model) on a
Transformer; see framework/tasks/heads.py."""

from framework.tasks.heads import ValueTask as Task, value_default_config as default_config

__all__ = ["Task", "default_config"]
