"""Batched constitutive backends and their registry."""
from .base import Backend, MaterialPoints, Response, State
from .registry import available, get, register

__all__ = ["Backend", "MaterialPoints", "Response", "State", "available", "get", "register"]
