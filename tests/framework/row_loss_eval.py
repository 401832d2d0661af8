"""A CollectingEvaluator for tests: each validation row's mean loss, written per row."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from framework import eval_metrics, evaluators


class Evaluator(evaluators.CollectingEvaluator):
    def collect(self, model, batch):
        logp_BTV = jax.nn.log_softmax(model(batch["inputs"]), axis=-1)
        logp_BT = jnp.take_along_axis(logp_BTV, batch["targets"][..., None], axis=-1)[..., 0]
        return {"row_loss": -logp_BT.mean(axis=1), "_valid": batch["mask"].sum(axis=1) > 0}

    def compute(self, values):
        losses = values["row_loss"]
        self.write_outputs([{"row": i, "loss": float(x)} for i, x in enumerate(losses)])
        above = (losses > np.median(losses)).astype(int)
        return {"rows": float(len(losses)), "auroc_self": eval_metrics.auroc(above, losses)}
