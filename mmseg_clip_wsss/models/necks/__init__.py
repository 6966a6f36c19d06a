"""Necks: the RSC-A neck (multi-scale fusion, memory-bank aggregation, regional contrast)."""
from .rsca_neck import RSCANeck

__all__ = ['RSCANeck']
