"""Task module `framework.tasks.classify`: a pooled sequence classifier head on a
Transformer; see framework/tasks/heads.py."""

from framework.tasks.heads import ClassifyTask as Task, classify_default_config as default_config

__all__ = ["Task", "default_config"]
