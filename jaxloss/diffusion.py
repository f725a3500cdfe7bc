"""Denoising-diffusion training losses."""

from __future__ import annotations
