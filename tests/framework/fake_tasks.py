"""Tasks that misbehave on purpose, named by module path in tests' configs."""

from framework.tasks import lm


class Task(lm.Task):
    """The LM task whose model cannot be built: a crash (exit 1), not a user error."""

    def build_model(self, rngs):
        raise RuntimeError("boom: this task always fails to build its model")
