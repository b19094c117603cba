"""torch.compile: a compiled forward/backward of a sparse MLP keeps masked entries at 0.

Masks are applied outside the forward (post-step, to weights and state) and by
mask_gradients(), which runs eagerly even when called inside a compiled function
(torch.compiler.disable), so mask updates and the step counter never trigger recompiles.
"""

import pytest
import torch
from sparse_toys import ToyMLP

from torchrl_mst.sparse import RigL, sparsify

# torch 2.13 internals: dynamo reads .grad of non-leaf tensors while wrapping inputs, and
# inductor's import touches torch.jit.script_method. Neither comes from this package.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated"),
]


def run(backend, steps=8):
    torch.manual_seed(0)
    net = ToyMLP()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, weight_decay=0.1)
    ctl = sparsify(net, RigL(update_interval=2, stop_step=100, drop_fraction=0.5), opt, seed=0)
    compiled_net = torch.compile(net, backend=backend)

    def train_step(x, y):
        loss = (compiled_net(x) - y).pow(2).mean()
        loss.backward()
        ctl.mask_gradients()  # graph break: runs eagerly
        return loss

    step_fn = torch.compile(train_step, backend=backend)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        opt.zero_grad()
        step_fn(torch.randn(8, 6, generator=g), torch.randn(8, 1, generator=g))
        for name, mask in ctl.masks.items():
            assert torch.count_nonzero(net.get_parameter(name).grad[~mask]) == 0
        opt.step()
        ctl.step()
        for name, mask in ctl.masks.items():
            w = net.get_parameter(name)
            assert torch.count_nonzero(w.detach()[~mask]) == 0
            assert torch.count_nonzero(opt.state[w]["exp_avg"][~mask]) == 0
    assert ctl.num_updates == steps // 2
    # the compiled forward sees the masked weights: same output as eager
    x = torch.randn(4, 6)
    torch.testing.assert_close(compiled_net(x), net(x))
    return ctl


def test_compiled_step_aot_eager():
    run("aot_eager")


@pytest.mark.slow
def test_compiled_step_inductor():
    run("inductor", steps=4)


def test_mask_updates_do_not_recompile():
    compiles = []

    def counting_backend(gm, example_inputs):
        compiles.append(gm)
        return gm.forward

    torch.manual_seed(0)
    net = ToyMLP()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    ctl = sparsify(net, RigL(update_interval=2, stop_step=100, drop_fraction=0.5), opt, seed=0)

    @torch.compile(backend=counting_backend)
    def train_step(x, y):
        loss = (net(x) - y).pow(2).mean()
        loss.backward()
        ctl.mask_gradients()
        return loss

    after_warmup = None
    for i in range(10):
        opt.zero_grad()
        train_step(torch.randn(8, 6), torch.randn(8, 1))
        opt.step()
        ctl.step()
        if i == 1:
            after_warmup = len(compiles)
    assert ctl.num_updates == 5
    assert len(compiles) == after_warmup
