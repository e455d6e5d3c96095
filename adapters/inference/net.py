"""The edge network (torch): a small MLP with monotone quantile, volatility and direction heads.

Input: ``(batch, n_features)`` float32 rows in :data:`adapters.features.FEATURE_NAMES`
order; column 0 is ``log_vol``, the log EWMA volatility used as the scale.
Output: ``(batch, k + 2)`` float32: ``k`` quantiles of the next log return (non-decreasing
by construction: a base plus cumulative softplus increments), then the forecast
standard deviation of that return, then the probability that it is positive.

The network works in units of the scale (``z = r / exp(log_vol)``) and multiplies
back at the end, so one set of weights serves quiet and turbulent markets alike.
Feature standardisation (``mean``, ``std``) is part of the graph, so the exported
ONNX model takes raw feature rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["EdgeEnsemble", "EdgeNet", "NetOutputs"]

_A_BOUND = 4.0  # bound on the log-variance adjustment: a factor e^±2 on the EWMA volatility


class NetOutputs:
    """The heads in scale units, for training losses (the exported graph returns raw units)."""

    __slots__ = ("a", "logit", "q_z")

    def __init__(self, q_z: torch.Tensor, a: torch.Tensor, logit: torch.Tensor) -> None:
        self.q_z = q_z
        self.a = a
        self.logit = logit


class EdgeNet(nn.Module):
    """See the module docstring.  ``frozen_inputs`` are input columns whose weights start and stay 0
    unless the data moves them (news features that are constant in training)."""

    mean: torch.Tensor
    std: torch.Tensor
    tri: torch.Tensor
    logit_scale: torch.Tensor

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        n_quantiles: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        frozen_inputs: Sequence[int] = (),
    ) -> None:
        super().__init__()
        if n_quantiles < 2 or not hidden:
            raise ValueError("EdgeNet needs >= 2 quantiles and >= 1 hidden layer")
        self.n_features = n_features
        self.n_quantiles = n_quantiles
        self.hidden = tuple(int(h) for h in hidden)
        self.register_buffer("mean", torch.tensor(mean if mean is not None else [0.0] * n_features))
        self.register_buffer("std", torch.tensor(std if std is not None else [1.0] * n_features))
        # cumsum as a matmul with an upper-triangular ones matrix: exports to a plain MatMul.
        self.register_buffer("tri", torch.triu(torch.ones(n_quantiles, n_quantiles)))
        # Temperature of the direction logit, fitted on the validation split after training.
        self.register_buffer("logit_scale", torch.ones(1))
        layers: list[nn.Module] = []
        width = n_features
        for h in self.hidden:
            layers += [nn.Linear(width, h), nn.SiLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_quantiles + 2)
        with torch.no_grad():
            first = self.body[0]
            assert isinstance(first, nn.Linear)
            for j in frozen_inputs:
                first.weight[:, j] = 0.0
            # Start near a standard normal in z units: spread the quantile increments.
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()
            self.head.bias[0] = -1.6
            self.head.bias[1:n_quantiles] = -0.94  # softplus -> ~0.33 z per step

    def heads(self, x: torch.Tensor) -> NetOutputs:
        z = (x - self.mean) / self.std
        o = self.head(self.body(z))
        k = self.n_quantiles
        steps = torch.cat([o[:, :1], nn.functional.softplus(o[:, 1:k])], dim=1)
        q_z = steps @ self.tri
        a = _A_BOUND * torch.tanh(o[:, k : k + 1] / _A_BOUND)
        return NetOutputs(q_z, a, o[:, k + 1 : k + 2] * self.logit_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _assemble(x, self.heads(x))


def _assemble(x: torch.Tensor, h: NetOutputs) -> torch.Tensor:
    scale = torch.exp(x[:, :1])
    quantiles = h.q_z * scale
    vol = scale * torch.exp(0.5 * h.a)
    prob = torch.sigmoid(h.logit)
    return torch.cat([quantiles, vol, prob], dim=1)


class EdgeEnsemble(nn.Module):
    """The teacher: ``members`` EdgeNets of one architecture, heads averaged in scale units.

    Quantiles stay monotone (a mean of non-decreasing vectors is non-decreasing); the
    direction logit is the members' mean times the ensemble's own fitted temperature.
    Same input and output layout as :class:`EdgeNet`.
    """

    logit_scale: torch.Tensor

    def __init__(self, n_features: int, hidden: Sequence[int], n_quantiles: int, members: int) -> None:
        super().__init__()
        if members < 1:
            raise ValueError("EdgeEnsemble needs >= 1 member")
        self.n_features = n_features
        self.n_quantiles = n_quantiles
        self.hidden = tuple(int(h) for h in hidden)
        self.members = nn.ModuleList(EdgeNet(n_features, hidden, n_quantiles) for _ in range(members))
        self.register_buffer("logit_scale", torch.ones(1))

    @classmethod
    def of(cls, nets: Sequence[EdgeNet]) -> EdgeEnsemble:
        first = nets[0]
        ens = cls(first.n_features, first.hidden, first.n_quantiles, len(nets))
        for mine, theirs in zip(ens.members, nets, strict=True):
            mine.load_state_dict(theirs.state_dict())
        return ens.eval()

    def heads(self, x: torch.Tensor) -> NetOutputs:
        hs = [m.heads(x) for m in self.members if isinstance(m, EdgeNet)]
        n = float(len(hs))
        q_z = torch.stack([h.q_z for h in hs]).sum(0) / n
        a = torch.stack([h.a for h in hs]).sum(0) / n
        logit = torch.stack([h.logit for h in hs]).sum(0) / n
        return NetOutputs(q_z, a, logit * self.logit_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _assemble(x, self.heads(x))
