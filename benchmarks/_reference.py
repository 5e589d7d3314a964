"""The reference implementation's CycleGAN training step, as a side-by-side baseline.

junyanz/pytorch-CycleGAN-and-pix2pix cannot be installed here (it is not a package), so this
module rebuilds what its ``cycle_gan_model.py`` does from its documented behaviour (see
../shared/REFERENCE.md), in plain PyTorch and independently of ganzoo: ``nn.Sequential``
ResNet generators and 70x70 PatchGANs with N(0, 0.02) init; ``optimize_parameters`` runs all
four generator passes first, then one ``backward`` of the summed six-term generator loss with
the discriminators frozen, one Adam step, then each discriminator's loss on a pooled fake,
each with its own ``backward``, and one Adam step. The LSGAN loss compares with a target
tensor expanded to the prediction's shape, as its ``GANLoss`` does.

Timing both in one process and one run cancels the machine's speed, which varies (a VM's
neighbours, turbo); ``benchmarks/test_bench_train_step.py`` runs it next to ganzoo's step.
"""
from __future__ import annotations

import random

import torch
from torch import Tensor, nn


def _resnet_block(dim: int) -> nn.Module:
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv_block = nn.Sequential(
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
                nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim),
            )

        def forward(self, x: Tensor) -> Tensor:
            return x + self.conv_block(x)

    return Block()


class _Wrapped(nn.Module):
    """The reference's networks keep their layers in ``self.model`` (keys ``model.N...``)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def resnet_generator(cin: int = 3, cout: int = 3, ngf: int = 64, n_blocks: int = 9) -> nn.Module:
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(cin, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
    for mult in (1, 2):
        layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1),
                   nn.InstanceNorm2d(ngf * mult * 2), nn.ReLU(True)]
    layers += [_resnet_block(ngf * 4) for _ in range(n_blocks)]
    for mult in (4, 2):
        layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(ngf * mult // 2), nn.ReLU(True)]
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, cout, 7), nn.Tanh()]
    return _Wrapped(layers)


def patchgan(cin: int = 3, ndf: int = 64, n_layers: int = 3) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(cin, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers + 1):
        prev, mult = mult, min(2**n, 8)
        stride = 2 if n < n_layers else 1
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1),
                   nn.InstanceNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
    return _Wrapped(layers)


def _init(net: nn.Module) -> nn.Module:
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


class _Pool:
    def __init__(self, size: int = 50) -> None:
        self.size, self.images = size, []

    def query(self, images: Tensor) -> Tensor:
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                i = random.randint(0, self.size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)


def _lsgan(prediction: Tensor, real: bool) -> Tensor:
    target = torch.tensor(1.0 if real else 0.0, device=prediction.device).expand_as(prediction)
    return nn.functional.mse_loss(prediction, target)


class ReferenceCycleGAN:
    """The four networks, two Adams and two pools of the reference, on ``device``."""

    def __init__(self, device: torch.device, *, ngf: int = 64, ndf: int = 64, lambda_a: float = 10.0,
                 lambda_b: float = 10.0, lambda_identity: float = 0.5) -> None:
        self.G_A, self.G_B = (_init(resnet_generator(ngf=ngf)).to(device) for _ in range(2))
        self.D_A, self.D_B = (_init(patchgan(ndf=ndf)).to(device) for _ in range(2))
        adam = dict(lr=2e-4, betas=(0.5, 0.999))
        self.opt_G = torch.optim.Adam([*self.G_A.parameters(), *self.G_B.parameters()], **adam)
        self.opt_D = torch.optim.Adam([*self.D_A.parameters(), *self.D_B.parameters()], **adam)
        self.pool_a, self.pool_b = _Pool(), _Pool()
        self.lambda_a, self.lambda_b, self.lambda_idt = lambda_a, lambda_b, lambda_identity

    @staticmethod
    def _set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
        for net in nets:
            for p in net.parameters():
                p.requires_grad = flag

    def _backward_d(self, net: nn.Module, real: Tensor, fake: Tensor) -> Tensor:
        loss = (_lsgan(net(real), True) + _lsgan(net(fake.detach()), False)) * 0.5
        loss.backward()
        return loss

    def train_step(self, real_a: Tensor, real_b: Tensor) -> dict[str, float]:
        fake_b = self.G_A(real_a)
        rec_a = self.G_B(fake_b)
        fake_a = self.G_B(real_b)
        rec_b = self.G_A(fake_a)

        self._set_requires_grad([self.D_A, self.D_B], False)
        self.opt_G.zero_grad()
        l1 = nn.functional.l1_loss
        idt_a = self.G_A(real_b)
        idt_b = self.G_B(real_a)
        loss_idt_a = l1(idt_a, real_b) * self.lambda_b * self.lambda_idt
        loss_idt_b = l1(idt_b, real_a) * self.lambda_a * self.lambda_idt
        loss_g = (_lsgan(self.D_A(fake_b), True) + _lsgan(self.D_B(fake_a), True)
                  + l1(rec_a, real_a) * self.lambda_a + l1(rec_b, real_b) * self.lambda_b + loss_idt_a + loss_idt_b)
        loss_g.backward()
        self.opt_G.step()

        self._set_requires_grad([self.D_A, self.D_B], True)
        self.opt_D.zero_grad()
        loss_d_a = self._backward_d(self.D_A, real_b, self.pool_b.query(fake_b))
        loss_d_b = self._backward_d(self.D_B, real_a, self.pool_a.query(fake_a))
        self.opt_D.step()
        return {"G": loss_g.item(), "D_A": loss_d_a.item(), "D_B": loss_d_b.item()}
