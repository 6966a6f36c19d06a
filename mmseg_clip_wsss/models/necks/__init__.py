"""Necks: the RSC-A neck (multi-scale fusion, memory-bank aggregation, regional contrast) and its
FPN-compatible multi-level form for detection."""
from .rsca_fpn import RSCAFPN
from .rsca_neck import RSCANeck

__all__ = ['RSCANeck', 'RSCAFPN']
