"""Mixture-of-experts router regularisers."""

from __future__ import annotations
