"""One CycleGAN step equals an independent computation of the reference's formulas.

The expected losses and updates are computed here from copies of the networks with plain
torch ops (MSE to 1/0, L1, the reference's weights and step order), without ganzoo code.
"""
from __future__ import annotations

import copy

import pytest
import torch

from ganzoo import testing

RECIPE = {
    "run": {"seed": 0, "device": "cpu"},
    "data": {"root": "unused"},
    "method": {"name": "cyclegan"},
    "generator": {"name": "resnet_6blocks", "ngf": 4},
    "discriminator": {"name": "patchgan_70", "ndf": 4},
    "loss": {"name": "lsgan"},
}


def _mse(pred, value):
    return ((pred - value) ** 2).mean()


@pytest.mark.parametrize("lambda_identity", [0.5, 0.0])
def test_one_step_matches_reference_formulas(registry, lambda_identity):
    raw = copy.deepcopy(RECIPE)
    raw["method"]["lambda_identity"] = lambda_identity
    method = testing.build_method(raw, registry, seed=0)  # seeds every RNG, then builds on the CPU
    nets = {k: copy.deepcopy(v) for k, v in method.networks.items()}
    real_a = torch.rand(2, 3, 32, 32) * 2 - 1
    real_b = torch.rand(2, 3, 32, 32) * 2 - 1

    metrics = testing.run_step(method, real_a, real_b)

    # --- generator step, D frozen ---
    ga, gb, da, db = nets["G_A"], nets["G_B"], nets["D_A"], nets["D_B"]
    fake_b, fake_a = ga(real_a), gb(real_b)
    rec_a, rec_b = gb(fake_b), ga(fake_a)
    lam = 10.0
    expected = {
        "G_A": _mse(da(fake_b), 1.0),
        "G_B": _mse(db(fake_a), 1.0),
        "cycle_A": lam * (rec_a - real_a).abs().mean(),
        "cycle_B": lam * (rec_b - real_b).abs().mean(),
    }
    if lambda_identity:
        expected["idt_A"] = lam * lambda_identity * (ga(real_b) - real_b).abs().mean()
        expected["idt_B"] = lam * lambda_identity * (gb(real_a) - real_a).abs().mean()
    loss_g = sum(expected.values())
    # the pool is empty on the first step, so D sees exactly this step's fakes
    loss_da = 0.5 * (_mse(da(real_b), 1.0) + _mse(da(fake_b.detach()), 0.0))
    loss_db = 0.5 * (_mse(db(real_a), 1.0) + _mse(db(fake_a.detach()), 0.0))

    expected = {k: v.detach() for k, v in expected.items()}
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value.item(), rel=1e-5, abs=1e-6), key
    assert metrics["G"] == pytest.approx(loss_g.item(), rel=1e-5)
    assert metrics["D_A"] == pytest.approx(loss_da.item(), rel=1e-5)
    assert metrics["D_B"] == pytest.approx(loss_db.item(), rel=1e-5)
    assert set(metrics) == {*expected, "G", "D_A", "D_B"}

    # --- the updates: Adam(2e-4, betas 0.5/0.999) on each loss's own gradients ---
    g_params = [*ga.parameters(), *gb.parameters()]
    d_params = [*da.parameters(), *db.parameters()]
    grads_g = torch.autograd.grad(loss_g, g_params)
    grads_d = torch.autograd.grad(loss_da + loss_db, d_params)
    for params, grads in ((g_params, grads_g), (d_params, grads_d)):
        for p, g in zip(params, grads):
            p.grad = g
        opt = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
        opt.step()
    for name in nets:
        for (key, got), want in zip(method.networks[name].state_dict().items(), nets[name].state_dict().values()):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")


def test_image_pool_reference_policy():
    from ganzoo_cyclegan.pool import ImagePool

    pool = ImagePool(2, seed=0)
    first = pool.query(torch.zeros(2, 1, 2, 2))
    assert torch.equal(first, torch.zeros(2, 1, 2, 2))  # filling: returned as is
    seen_old = False
    for i in range(20):
        out = pool.query(torch.full((1, 1, 2, 2), float(i + 1)))
        seen_old |= bool(out.ne(float(i + 1)).any())
    assert seen_old  # once full, stored images come back with probability 0.5
    state = pool.state_dict()
    clone = ImagePool(2, seed=123)
    clone.load_state_dict(state)
    x = torch.full((4, 1, 2, 2), 99.0)
    assert torch.equal(pool.query(x), clone.query(x))
    assert ImagePool(0).query(x) is x
