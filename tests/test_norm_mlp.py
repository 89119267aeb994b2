"""LayerNorm + MLP with recomputation: same values and gradients as autograd
through the modules, and less kept for backward."""
import torch
import torch.nn as nn

from mmregionvit.models.norm_mlp import norm_mlp
from mmregionvit.models.regionvit import Mlp


def _modules(c=16):
    norm = nn.LayerNorm(c, eps=1e-6)
    nn.init.normal_(norm.weight, 1.0, 0.2)
    nn.init.normal_(norm.bias, 0.0, 0.2)
    return norm, Mlp(c, 4 * c)


def test_matches_autograd():
    norm, mlp = _modules()
    x = torch.randn(3, 5, 16, requires_grad=True)
    dy = torch.randn(3, 5, 16)
    params = [x, *norm.parameters(), *mlp.parameters()]

    out = norm_mlp(x, norm, mlp)
    grads = torch.autograd.grad(out, params, dy)
    with torch.no_grad():  # the inference path: modules as they are
        torch.testing.assert_close(norm_mlp(x, norm, mlp), out)
    reference = mlp.fc2(nn.functional.gelu(mlp.fc1(norm(x))))
    torch.testing.assert_close(out, reference)
    for g, r in zip(grads, torch.autograd.grad(reference, params, dy)):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)


def test_keeps_less_for_backward():
    norm, mlp = _modules(32)
    x = torch.randn(64, 50, 32, requires_grad=True)

    def saved_bytes(fn):
        sizes = []

        def pack(t):
            sizes.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn()
        return sum(sizes)

    ours = saved_bytes(lambda: norm_mlp(x, norm, mlp))
    plain = saved_bytes(lambda: mlp.fc2(nn.functional.gelu(
        mlp.fc1(norm(x)))))
    activation = x.numel() * x.element_size()
    # 5 values per channel (input, first linear's 4) plus weights, against
    # 10 plus weights
    assert ours < plain - 4.5 * activation
