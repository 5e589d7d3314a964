"""The reference CUT networks written out independently of ganzoo_cut, for the tests to compare.

Two descriptions, both read from the reference's models/networks.py (ResnetGenerator,
NLayerDiscriminator, Downsample, Upsample, get_filter) and written here without ganzoo code:

- ``expect_*``: the (key, shape) list its state_dict has, in order, fixed filters included.
- ``*_reference``: its forward pass, one torch.nn.functional call per layer, with weights read
  by the reference's keys and the blur filters from the constants below (not from the file),
  the blurs computed as explicit sums over filter taps.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

DOWN_TAPS = (1.0, 2.0, 1.0)  # get_filter(3): outer product / 16
UP_TAPS = (1.0, 3.0, 3.0, 1.0)  # get_filter(4) * stride**2: outer product / 64 * 4


def down_filter(channels: int) -> torch.Tensor:
    t = torch.tensor(DOWN_TAPS)
    return (torch.outer(t, t) / 16).expand(channels, 1, 3, 3).clone()


def up_filter(channels: int) -> torch.Tensor:
    t = torch.tensor(UP_TAPS)
    return (torch.outer(t, t) / 64 * 4).expand(channels, 1, 4, 4).clone()


# --- state_dict layouts ---------------------------------------------------------------------

class Expect:
    """Accumulates the (key, shape) list of a state_dict, in registration order."""

    def __init__(self, norm: str) -> None:
        self.norm, self.bias, self.keys = norm, norm == "instance", []

    def conv(self, key, cout, cin, k, bias=None):
        self.keys.append((f"{key}.weight", (cout, cin, k, k)))
        if self.bias if bias is None else bias:
            self.keys.append((f"{key}.bias", (cout,)))

    def convt(self, key, cin, cout, k):
        self.keys.append((f"{key}.weight", (cin, cout, k, k)))  # ConvTranspose2d: (in, out, k, k)
        if self.bias:
            self.keys.append((f"{key}.bias", (cout,)))

    def norm_(self, key, c):
        if self.norm in ("batch", "syncbatch"):
            self.keys += [(f"{key}.{n}", (c,)) for n in ("weight", "bias", "running_mean", "running_var")]
            self.keys.append((f"{key}.num_batches_tracked", ()))

    def filt(self, key, c, k):
        self.keys.append((f"{key}.filt", (c, 1, k, k)))


def expect_cut_resnet(ngf, n_blocks, cin, cout, *, norm="instance", dropout=False, padding="reflect",
                      no_antialias=False, no_antialias_up=False):
    """ResnetGenerator: pad, conv7, norm, relu | 2 down stages | blocks | 2 up stages | pad, conv7, tanh."""
    e, i = Expect(norm), 4
    e.conv("model.1", ngf, cin, 7); e.norm_("model.2", ngf)
    for c in (ngf, 2 * ngf):  # down: conv, norm, relu [, Downsample]
        e.conv(f"model.{i}", 2 * c, c, 3); e.norm_(f"model.{i + 1}", 2 * c)
        if no_antialias:
            i += 3
        else:
            e.filt(f"model.{i + 3}", 2 * c, 3)
            i += 4
    a, b = (0, 3) if padding == "zero" else (1, 5)
    d = 1 if dropout else 0
    for _ in range(n_blocks):
        p = f"model.{i}.conv_block"
        e.conv(f"{p}.{a}", 4 * ngf, 4 * ngf, 3); e.norm_(f"{p}.{a + 1}", 4 * ngf)
        e.conv(f"{p}.{b + d}", 4 * ngf, 4 * ngf, 3); e.norm_(f"{p}.{b + d + 1}", 4 * ngf)
        i += 1
    for c in (4 * ngf, 2 * ngf):  # up: [Upsample,] conv or convT, norm, relu
        if no_antialias_up:
            e.convt(f"model.{i}", c, c // 2, 3); e.norm_(f"model.{i + 1}", c // 2)
            i += 3
        else:
            e.filt(f"model.{i}", c, 4)
            e.conv(f"model.{i + 1}", c // 2, c, 3); e.norm_(f"model.{i + 2}", c // 2)
            i += 4
    e.conv(f"model.{i + 1}", cout, ngf, 7, bias=True)  # after ReflectionPad2d(3); then Tanh
    return e.keys, i + 3  # the layout and the number of modules in ``model``


def expect_cut_patchgan(ndf, n_layers, cin, *, norm="instance", no_antialias=False):
    e, i, mult = Expect(norm), 0, 1
    e.conv("model.0", ndf, cin, 4, bias=True)
    if no_antialias:
        i = 2
    else:
        e.filt("model.2", ndf, 3)
        i = 3
    for n in range(1, n_layers):
        prev, mult = mult, min(2**n, 8)
        e.conv(f"model.{i}", ndf * mult, ndf * prev, 4); e.norm_(f"model.{i + 1}", ndf * mult)
        if no_antialias:
            i += 3
        else:
            e.filt(f"model.{i + 3}", ndf * mult, 3)
            i += 4
    top = ndf * min(2**n_layers, 8)
    e.conv(f"model.{i}", top, ndf * mult, 4); e.norm_(f"model.{i + 1}", top)
    e.conv(f"model.{i + 3}", 1, top, 4, bias=True)
    return e.keys


def random_state(layout, seed=0):
    """A state_dict of this layout: random weights, the true blur filters, sane norm statistics."""
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in layout:
        if key.endswith(".filt"):
            out[key] = (down_filter if shape[-1] == 3 else up_filter)(shape[0])
        elif key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(shape, generator=gen) + 0.5
        else:
            out[key] = torch.randn(shape, generator=gen) * 0.2
    return out


def perturbed(net: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Add noise to every parameter (not the fixed filters); return a copy of the state_dict."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in net.state_dict().items():
            if t.is_floating_point() and not key.endswith(".filt"):
                t.add_(torch.randn(t.shape, generator=gen) * 0.1)
    return {k: v.clone() for k, v in net.state_dict().items()}


# --- forward passes -------------------------------------------------------------------------

def blur_down(x):
    """Reflect-pad 1, then out[i, j] = sum_ab w_a w_b / 16 * x_pad[2i + a, 2j + b]."""
    h, w = x.shape[-2:]
    ho, wo = (h - 1) // 2 + 1, (w - 1) // 2 + 1
    xp = F.pad(x, (1, 1, 1, 1), mode="reflect")
    out = torch.zeros(*x.shape[:2], ho, wo, dtype=x.dtype)
    for a, wa in enumerate(DOWN_TAPS):
        for b, wb in enumerate(DOWN_TAPS):
            out = out + wa * wb / 16 * xp[:, :, a:a + 2 * ho - 1:2, b:b + 2 * wo - 1:2]
    return out


def blur_up(x):
    """Replicate-pad 1, scatter x_pad[i, j] * w_a w_b / 16 to (2i + a, 2j + b), keep rows 3..2H+2."""
    h, w = x.shape[-2:]
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    full = torch.zeros(*x.shape[:2], 2 * h + 6, 2 * w + 6, dtype=x.dtype)
    for a, wa in enumerate(UP_TAPS):
        for b, wb in enumerate(UP_TAPS):
            full[:, :, a:a + 2 * (h + 2):2, b:b + 2 * (w + 2):2] += wa * wb / 16 * xp
    return full[:, :, 3:3 + 2 * h, 3:3 + 2 * w]


def _conv(sd, key, x, stride=1, padding=0):
    return F.conv2d(x, sd[f"{key}.weight"], sd.get(f"{key}.bias"), stride=stride, padding=padding)


def _inorm(x):
    return F.instance_norm(x, eps=1e-5)


def cut_resnet_reference(sd, x, n_blocks, *, no_antialias=False, no_antialias_up=False):
    """Instance norm, reflect padding, no dropout. Returns (output, {model index: feature})."""
    feats = {}
    h = F.pad(x, (3, 3, 3, 3), mode="reflect")
    feats[0] = h
    h = F.relu(_inorm(_conv(sd, "model.1", h)))
    i = 4
    for _ in range(2):
        if no_antialias:
            c = _conv(sd, f"model.{i}", h, 2, 1)
            feats[i] = c
            h = F.relu(_inorm(c))
            i += 3
        else:
            c = _conv(sd, f"model.{i}", h, 1, 1)
            feats[i] = c
            h = blur_down(F.relu(_inorm(c)))
            i += 4
    for _ in range(n_blocks):
        p = f"model.{i}.conv_block"
        r = F.relu(_inorm(_conv(sd, f"{p}.1", F.pad(h, (1, 1, 1, 1), mode="reflect"))))
        h = h + _inorm(_conv(sd, f"{p}.5", F.pad(r, (1, 1, 1, 1), mode="reflect")))
        feats[i] = h
        i += 1
    for _ in range(2):
        if no_antialias_up:
            w, b = sd[f"model.{i}.weight"], sd.get(f"model.{i}.bias")
            h = F.relu(_inorm(F.conv_transpose2d(h, w, b, stride=2, padding=1, output_padding=1)))
            i += 3
        else:
            h = F.relu(_inorm(_conv(sd, f"model.{i + 1}", blur_up(h), 1, 1)))
            i += 4
    return torch.tanh(_conv(sd, f"model.{i + 1}", F.pad(h, (3, 3, 3, 3), mode="reflect"))), feats


def cut_patchgan_reference(sd, x, n_layers=3):
    """Anti-aliased PatchGAN with instance norm."""
    lrelu = lambda t: F.leaky_relu(t, 0.2)  # noqa: E731
    h = blur_down(lrelu(_conv(sd, "model.0", x, 1, 1)))
    i = 3
    for _ in range(1, n_layers):
        h = blur_down(lrelu(_inorm(_conv(sd, f"model.{i}", h, 1, 1))))
        i += 4
    h = lrelu(_inorm(_conv(sd, f"model.{i}", h, 1, 1)))
    return _conv(sd, f"model.{i + 3}", h, 1, 1)
