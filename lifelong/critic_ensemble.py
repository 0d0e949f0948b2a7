"""The critics' network: :class:`CriticEnsemble`, ``n_members`` MLPs with independent parameters
stored stacked (``[n_members, in, out]`` per layer) and evaluated as one batched computation
(``torch.baddbmm``), so two critics cost about one wider matmul per layer instead of two
sequential networks (optionally one shared trunk with ``n_members`` heads).
"""
from __future__ import annotations

import math

import torch as th
from torch import nn

__all__ = ["CriticEnsemble"]


class CriticEnsemble(nn.Module):
    """``n_members`` independent MLPs ``in_dim -> hidden... -> out_dim``, evaluated batched.

    Layer ``i`` holds ``weight_i [m, d_in, d_out]`` and ``bias_i [m, 1, d_out]`` where ``m`` is
    ``n_members`` (or 1 for the trunk layers when ``share_trunk``). ``forward(x [B, in_dim])``
    returns ``[n_members, B, out_dim]``. Member ``k``'s computation uses only slice ``k`` of every
    tensor, so the members' parameters and gradients are independent.
    """

    def __init__(
        self,
        in_dim: int,
        hidden: list[int],
        n_members: int,
        out_dim: int,
        activation_fn: type[nn.Module] = nn.Tanh,
        share_trunk: bool = False,
    ) -> None:
        super().__init__()
        self.n_members = int(n_members)
        self.share_trunk = bool(share_trunk)
        dims = [int(in_dim), *[int(h) for h in hidden], int(out_dim)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            is_head = i == len(dims) - 2
            m = self.n_members if (is_head or not self.share_trunk) else 1
            self.weights.append(nn.Parameter(th.empty(m, d_in, d_out)))
            self.biases.append(nn.Parameter(th.zeros(m, 1, d_out)))
        self.activation = activation_fn()
        self.reset_parameters()

    @th.no_grad()
    def reset_parameters(self, ortho: bool = False, hidden_gain: float = math.sqrt(2), head_gain: float = 1.0) -> None:
        """Per member: orthogonal init (SB3's gains) when ``ortho``, else ``nn.Linear``'s default."""
        n_layers = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            d_in, d_out = w.shape[1], w.shape[2]
            for k in range(w.shape[0]):
                if ortho:
                    tmp = th.empty(d_out, d_in)
                    nn.init.orthogonal_(tmp, gain=head_gain if i == n_layers - 1 else hidden_gain)
                    w[k].copy_(tmp.t())
                    b[k].zero_()
                else:
                    bound = 1.0 / math.sqrt(d_in) if d_in > 0 else 0.0
                    w[k].uniform_(-bound, bound)
                    b[k].uniform_(-bound, bound)

    def forward_hidden(self, x: th.Tensor) -> tuple[th.Tensor, list[th.Tensor]]:
        """``(outputs [n, B, out], [post-activation hidden [n or 1, B, h] per hidden layer])``."""
        hidden: list[th.Tensor] = []
        h = x.unsqueeze(0)
        n_layers = len(self.weights)
        for i in range(n_layers):
            w, b = self.weights[i], self.biases[i]
            m = w.shape[0]
            if h.shape[0] != m:
                h = h.expand(m, -1, -1)
            h = th.baddbmm(b, h, w)
            if i < n_layers - 1:
                h = self.activation(h)
                hidden.append(h)
        return h, hidden

    def forward(self, x: th.Tensor) -> th.Tensor:
        h = x.unsqueeze(0)
        n_layers = len(self.weights)
        for i in range(n_layers):
            w, b = self.weights[i], self.biases[i]
            if h.shape[0] != w.shape[0]:
                h = h.expand(w.shape[0], -1, -1)
            h = th.baddbmm(b, h, w)
            if i < n_layers - 1:
                h = self.activation(h)
        return h

    def member_parameters(self, k: int) -> list[th.Tensor]:
        """Views of member ``k``'s slices of every layer (trunk slices shared when share_trunk)."""
        out = []
        for w, b in zip(self.weights, self.biases):
            j = k if w.shape[0] > 1 else 0
            out += [w[j], b[j]]
        return out
