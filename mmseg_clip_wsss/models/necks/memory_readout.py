"""RSC-A's aggregation: every pixel reads the class prototypes of a memory bank."""
import math

import torch
import torch.nn as nn
from torch import Tensor

__all__ = ['MemoryReadout']


class MemoryReadout(nn.Module):
    """Gated attention of every pixel over the class prototypes of a memory bank.

    ``x + sigmoid(gate) * out(softmax_j(q(x) . k(m_j) / sqrt(C)) v(m_j))`` over the initialised rows
    ``m_j`` of the bank. The 1x1 query and output convs are linear and only K prototypes are read, so
    both fold into the K rows instead of running on every pixel (same result, C*C*H*W fewer MACs):
    ``q_p . k_j = x_p . (W_q^T k_j) + b_q . k_j`` and ``W_o (sum_j a_pj v_j) + b_o =
    sum_j a_pj (W_o v_j + b_o)`` (softmax rows sum to 1).

    Args:
        channels (int): Channels C of the features and of the prototypes.
        gate_init (float): Initial value of the sigmoid gate, in (0, 1).
    """

    def __init__(self, channels: int, gate_init: float):
        super().__init__()
        self.query = nn.Conv2d(channels, channels, 1)
        self.key = nn.Linear(channels, channels)
        self.value = nn.Linear(channels, channels)
        self.out_proj = nn.Conv2d(channels, channels, 1)
        self.gate = nn.Parameter(torch.tensor(math.log(gate_init / (1 - gate_init))))

    def forward(self, x: Tensor, bank: Tensor, valid: Tensor) -> Tensor:
        """Read the bank.

        Args:
            x (Tensor): Features (B, C, H, W).
            bank (Tensor): Prototypes (K, C).
            valid (Tensor): Bool (K,), the initialised rows.

        Returns:
            Tensor: (B, C, H, W); ``x`` itself while no row is initialised (with every parameter
            still in the graph when gradients are on, for distributed training).
        """
        b, c, h, w = x.shape
        has_memory = bool(valid.any())
        if not has_memory and not torch.is_grad_enabled():
            return x  # nothing to read, no graph to keep
        k = self.key(bank)  # (K, C)
        v = self.value(bank)  # (K, C)
        logits = (k @ self.query.weight.flatten(1)) @ x.flatten(2)  # (B, K, HW)
        if self.query.bias is not None:
            logits = logits + (k @ self.query.bias)[:, None]
        logits = logits / math.sqrt(c)
        if has_memory:
            logits = logits.masked_fill(~valid[:, None], float('-inf'))
        v_fold = v @ self.out_proj.weight.flatten(1).t()  # (K, C)
        if self.out_proj.bias is not None:
            v_fold = v_fold + self.out_proj.bias
        read = (v_fold.t() @ logits.softmax(dim=1)).reshape(b, c, h, w)  # (B, C, H, W)
        if not has_memory:
            read = read * 0.0
        return x + torch.sigmoid(self.gate) * read
