"""Example inputs for the distillation losses: ``[B, T, V]`` student and teacher logits, and the fused
(linear) losses' hidden states and output projections."""

import jaxloss.distillation  # noqa: F401  (registers the losses)
from tests.specs import Spec

B, T, V = 4, 3, 5
# Fused losses: N tokens differ from both hidden sizes (so no weight is mistaken for a batch
# array), and V = 23 is not a multiple of the chunk (the shifted last chunk).
N, DS, DT, VOCAB = 6, 4, 5, 23


def _logits(rng):
    return rng.normal(size=(B, T, V)) * 2.0


def _projections(rng):
    return (rng.normal(size=(N, DS)), rng.normal(size=(DS, VOCAB)) * 0.7,
            rng.normal(size=(N, DT)), rng.normal(size=(DT, VOCAB)) * 0.7)


SPECS = {
    "knowledge_distillation_loss": Spec(lambda r: (_logits(r), _logits(r)), kwargs={"temperature": 2.0}),
    "generalized_jsd_loss": Spec(lambda r: (_logits(r), _logits(r)), kwargs={"beta": 0.3, "temperature": 1.5}),
    "linear_knowledge_distillation_loss": Spec(_projections, kwargs={"temperature": 2.0, "chunk_size": 8}),
    "linear_generalized_jsd_loss": Spec(_projections, kwargs={"beta": 0.3, "temperature": 1.5, "chunk_size": 8}),
}
