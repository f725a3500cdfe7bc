"""Preference optimisation losses for language-model post-training (DPO and its relatives)."""

from __future__ import annotations
