"""Example inputs for the distillation losses: ``[B, T, V]`` student and teacher logits."""

import jaxloss.distillation  # noqa: F401  (registers the losses)
from tests.specs import Spec

B, T, V = 4, 3, 5


def _logits(rng):
    return rng.normal(size=(B, T, V)) * 2.0


SPECS = {
    "knowledge_distillation_loss": Spec(lambda r: (_logits(r), _logits(r)), kwargs={"temperature": 2.0}),
    "generalized_jsd_loss": Spec(lambda r: (_logits(r), _logits(r)), kwargs={"beta": 0.3, "temperature": 1.5}),
}
