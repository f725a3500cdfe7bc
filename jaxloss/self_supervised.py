"""Self-supervised pre-training losses (BYOL, SimSiam, Barlow Twins, VICReg, DINO)."""

from __future__ import annotations
