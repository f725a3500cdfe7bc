"""Knowledge-distillation losses over a class axis."""

from __future__ import annotations
