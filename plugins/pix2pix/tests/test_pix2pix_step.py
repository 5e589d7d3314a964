"""One pix2pix step equals an independent computation of the reference's formulas:
D first on concat(A, B), then G against the updated D with BCE + 100 * L1."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from ganzoo import testing

RECIPE = {
    "run": {"seed": 0, "device": "cpu"},
    "data": {"root": "unused", "pairing": "aligned"},
    "method": {"name": "pix2pix"},
    "generator": {"name": "unet_128", "ngf": 4},
    "discriminator": {"name": "patchgan_70", "ndf": 4, "norm": "batch"},
    "loss": {"name": "vanilla"},
}


def test_one_step_matches_reference_formulas(registry):
    method = testing.build_method(RECIPE, registry, seed=0)  # seeds every RNG, then builds on the CPU
    G, D = (copy.deepcopy(method.networks[k]) for k in ("G", "D"))
    real_a = torch.rand(2, 3, 128, 128) * 2 - 1
    real_b = torch.rand(2, 3, 128, 128) * 2 - 1

    # dropout draws random masks: give the method and the check the same draws
    state = torch.get_rng_state()
    metrics = testing.run_step(method, real_a, real_b)
    torch.set_rng_state(state)

    fake_b = G(real_a)
    bce = F.binary_cross_entropy_with_logits
    pred_fake = D(torch.cat((real_a, fake_b), 1).detach())
    pred_real = D(torch.cat((real_a, real_b), 1))
    loss_d = 0.5 * (bce(pred_fake, torch.zeros_like(pred_fake)) + bce(pred_real, torch.ones_like(pred_real)))
    assert metrics["D"] == pytest.approx(loss_d.item(), rel=1e-5)

    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()

    pred = D(torch.cat((real_a, fake_b), 1))  # the updated D judges the same fake
    loss_gan = bce(pred, torch.ones_like(pred))
    loss_l1 = 100.0 * (fake_b - real_b).abs().mean()
    assert metrics["G_GAN"] == pytest.approx(loss_gan.item(), rel=1e-5)
    assert metrics["G_L1"] == pytest.approx(loss_l1.item(), rel=1e-5)

    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g.zero_grad()
    (loss_gan + loss_l1).backward()
    opt_g.step()
    for name, ref in (("G", G), ("D", D)):
        for (key, got), want in zip(method.networks[name].state_dict().items(), ref.state_dict().values()):
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")
