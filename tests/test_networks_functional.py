"""Forward passes against independent functional re-implementations of the reference networks.

Each ``*_reference`` function below computes the reference architecture directly with
torch.nn.functional, one call per layer, reading weights from the state_dict by the
reference's key names. If a module's output matches, it computes the same function as the
reference with the same weights, so the reference's checkpoints behave identically here.
Weights are perturbed away from their initial values so that biases and norm affines matter.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganzoo.layers import ResnetBlock
from ganzoo.layers.patchgan import PatchGANConfig, ganzoo_register_discriminators
from ganzoo_cyclegan.generator import GENERATORS as RESNETS
from ganzoo_cyclegan.generator import ResnetConfig
from ganzoo_pix2pix.generator import GENERATORS as UNETS
from ganzoo_pix2pix.generator import UnetConfig

SPECS = {s.name: s for s in [*RESNETS, *UNETS, *ganzoo_register_discriminators()]}
TOL = dict(atol=1e-5, rtol=1e-5)


def perturbed(net: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Add noise to every parameter and running statistic; return a copy of the state_dict."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in net.state_dict().items():
            if key.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=gen) + 0.5)
            elif t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=gen) * 0.1)
    return {k: v.clone() for k, v in net.state_dict().items()}


def conv(sd, key, x, stride=1, padding=0):
    return F.conv2d(x, sd[f"{key}.weight"], sd.get(f"{key}.bias"), stride=stride, padding=padding)


def convt(sd, key, x, output_padding=0):
    return F.conv_transpose2d(
        x, sd[f"{key}.weight"], sd.get(f"{key}.bias"), stride=2, padding=1, output_padding=output_padding
    )


def batch_norm(sd, key, x, training):
    return F.batch_norm(
        x, sd[f"{key}.running_mean"].clone(), sd[f"{key}.running_var"].clone(),
        sd[f"{key}.weight"], sd[f"{key}.bias"], training=training, eps=1e-5,
    )


def resnet_reference(sd, x, n_blocks, pad_mode="reflect"):
    """Instance norm; pad_mode applies to the residual blocks (the 7x7 convs always reflect)."""
    inorm = lambda t: F.instance_norm(t, eps=1e-5)  # noqa: E731
    h = F.relu(inorm(conv(sd, "model.1", F.pad(x, (3, 3, 3, 3), mode="reflect"))))
    h = F.relu(inorm(conv(sd, "model.4", h, 2, 1)))
    h = F.relu(inorm(conv(sd, "model.7", h, 2, 1)))
    for i in range(n_blocks):
        p = f"model.{10 + i}.conv_block"
        r = F.relu(inorm(conv(sd, f"{p}.1", F.pad(h, (1, 1, 1, 1), mode=pad_mode))))
        h = h + inorm(conv(sd, f"{p}.5", F.pad(r, (1, 1, 1, 1), mode=pad_mode)))  # no ReLU after the sum
    u = 10 + n_blocks
    h = F.relu(inorm(convt(sd, f"model.{u}", h, output_padding=1)))
    h = F.relu(inorm(convt(sd, f"model.{u + 3}", h, output_padding=1)))
    return torch.tanh(conv(sd, f"model.{u + 7}", F.pad(h, (3, 3, 3, 3), mode="reflect")))


def unet_reference(sd, x, num_downs, training, activated_skip=False):
    """Batch norm, no dropout. In the reference the skip carries LeakyReLU(x), because its
    in-place LeakyReLU overwrites x before torch.cat reads it; ``activated_skip=True``
    computes that literally (it must not matter: a ReLU comes next)."""
    bn = lambda t, key: batch_norm(sd, key, t, training)  # noqa: E731

    def level(p, x, depth):
        a = F.leaky_relu(x, 0.2)
        d = conv(sd, f"{p}.1", a, 2, 1)
        if depth == num_downs - 1:
            u = bn(convt(sd, f"{p}.3", F.relu(d)), f"{p}.4")
        else:
            s = level(f"{p}.3.model", bn(d, f"{p}.2"), depth + 1)
            u = bn(convt(sd, f"{p}.5", F.relu(s)), f"{p}.6")
        return torch.cat([a if activated_skip else x, u], 1)

    s = level("model.model.1.model", conv(sd, "model.model.0", x, 2, 1), 1)
    return torch.tanh(convt(sd, "model.model.3", F.relu(s)))


def patchgan_reference(sd, x, norm, training):
    n = (lambda t, k: F.instance_norm(t, eps=1e-5)) if norm == "instance" else (  # noqa: E731
        lambda t, k: batch_norm(sd, k, t, training))
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    h = lrelu(conv(sd, "model.0", x, 2, 1))
    h = lrelu(n(conv(sd, "model.2", h, 2, 1), "model.3"))
    h = lrelu(n(conv(sd, "model.5", h, 2, 1), "model.6"))
    h = lrelu(n(conv(sd, "model.8", h, 1, 1), "model.9"))
    return conv(sd, "model.11", h, 1, 1)


def pixelgan_reference(sd, x):
    h = F.leaky_relu(conv(sd, "net.0", x), 0.2)
    h = F.leaky_relu(F.instance_norm(conv(sd, "net.2", h), eps=1e-5), 0.2)
    return conv(sd, "net.5", h)


def test_resnet_6blocks_matches_reference():
    torch.manual_seed(0)
    g = SPECS["resnet_6blocks"].build(ResnetConfig(ngf=4), in_channels=3, out_channels=3)
    sd = perturbed(g)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(g(x), resnet_reference(sd, x, 6), **TOL)


@pytest.mark.parametrize("padding, mode", [("reflect", "reflect"), ("replicate", "replicate"), ("zero", "constant")])
def test_resnet_block_padding_matches_reference(padding, mode):
    block = ResnetBlock(8, norm="instance", padding_type=padding)
    sd = perturbed(block)
    x = torch.randn(2, 8, 12, 12)
    a, b = ("conv_block.0", "conv_block.3") if padding == "zero" else ("conv_block.1", "conv_block.5")
    inorm = lambda t: F.instance_norm(t, eps=1e-5)  # noqa: E731
    r = F.relu(inorm(conv(sd, a, F.pad(x, (1, 1, 1, 1), mode=mode))))
    torch.testing.assert_close(block(x), x + inorm(conv(sd, b, F.pad(r, (1, 1, 1, 1), mode=mode))), **TOL)


def test_unet_128_matches_reference_in_training_mode():
    torch.manual_seed(0)
    g = SPECS["unet_128"].build(UnetConfig(ngf=4, dropout=False), in_channels=3, out_channels=3)
    sd = perturbed(g)
    x = torch.rand(2, 3, 128, 128) * 2 - 1
    out = g.train()(x)
    torch.testing.assert_close(out, unet_reference(sd, x, 7, training=True), **TOL)
    torch.testing.assert_close(out, unet_reference(sd, x, 7, training=True, activated_skip=True), **TOL)


def test_unet_128_with_dropout_matches_reference_in_eval_mode():
    torch.manual_seed(0)
    g = SPECS["unet_128"].build(UnetConfig(ngf=4, dropout=True), in_channels=3, out_channels=3)
    sd = perturbed(g)  # random running statistics, so eval-mode batch norm is not a no-op
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    torch.testing.assert_close(g.eval()(x), unet_reference(sd, x, 7, training=False), **TOL)


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_patchgan_70_matches_reference(norm):
    torch.manual_seed(0)
    d = SPECS["patchgan_70"].build(PatchGANConfig(ndf=8, norm=norm), in_channels=6)
    sd = perturbed(d)
    x = torch.rand(2, 6, 64, 64) * 2 - 1
    out = d(x)
    assert out.shape == (2, 1, 6, 6)
    torch.testing.assert_close(out, patchgan_reference(sd, x, norm, training=True), **TOL)


def test_pixelgan_matches_reference():
    d = SPECS["pixelgan"].build(PatchGANConfig(ndf=8), in_channels=3)
    sd = perturbed(d)
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(d(x), pixelgan_reference(sd, x), **TOL)
