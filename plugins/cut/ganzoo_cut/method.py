"""The CUT and FastCUT training method: one generator, one discriminator, PatchNCE for content.

A translated patch should stay closer to the input patch at the same place than to the
input's other patches (Park et al. 2020, eq. 5): the generator's own encoder features of
input and output are sampled at the same random positions, projected by the patch sampler
F, and compared with the PatchNCE loss. One step, in the reference's order
(``models/cut_model.py``): one generator pass (on ``cat(A, B)`` with identity NCE, so
``G(B)`` is judged by the same loss as ``G(A)``); the discriminator's update on that output;
then G and F together, against the just-updated D. FastCUT is the same method with the
identity term off, a tenfold NCE weight and flip equivariance (the input is mirrored at
random and the output's features mirrored back before they are compared).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganzoo import Method, MethodContext, RecipeError, set_requires_grad
from ganzoo_cut.patchnce import multilayer_patch_nce_loss


@dataclasses.dataclass(frozen=True)
class CUTConfig:
    """The ``[method]`` options of ``cut``, at the reference's ``--CUT_mode CUT`` defaults.

    The names are the reference's flags in lower case (``--lambda_NCE`` is ``lambda_nce``).

    Args:
        lambda_gan: weight of the adversarial loss of G.
        lambda_nce: weight of the PatchNCE loss (applied per patch, before the means).
        nce_idt: also translate real B and ask for PatchNCE between B and G(B), the
            identity term; the two NCE losses are averaged.
        nce_layers: module indices of the generator whose outputs are compared (for CUT's
            generators the reference's indices: 0 the padded input, 4 and 8 the down
            convolutions, 12 and 16 the first and fifth residual blocks).
        nce_t: temperature of the PatchNCE logits (``--nce_T``).
        nce_includes_all_negatives_from_minibatch: negatives from every image of the batch,
            not only the query's own (the reference's option for single-image training).
        flip_equivariance: mirror each step's generator input at random (probability 0.5)
            and the output's features back before PatchNCE.
    """

    lambda_gan: float = 1.0
    lambda_nce: float = 1.0
    nce_idt: bool = True
    nce_layers: tuple[int, ...] = (0, 4, 8, 12, 16)
    nce_t: float = 0.07
    nce_includes_all_negatives_from_minibatch: bool = False
    flip_equivariance: bool = False

    def __post_init__(self) -> None:
        for key in ("lambda_gan", "lambda_nce"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        layers = list(self.nce_layers)
        if not layers or min(layers) < 0 or any(b <= a for a, b in zip(layers, layers[1:])):
            raise ValueError(f"nce_layers must be increasing module indices >= 0, e.g. [0, 4, 8, 12, 16]; "
                             f"got {layers}")
        if not self.nce_t > 0:
            raise ValueError(f"nce_t must be > 0, got {self.nce_t}")
        if self.lambda_gan == 0 and self.lambda_nce == 0:
            raise ValueError("lambda_gan and lambda_nce are both 0: the generator would have nothing to learn")


@dataclasses.dataclass(frozen=True)
class FastCUTConfig(CUTConfig):
    """The ``[method]`` options of ``fastcut`` (``--CUT_mode FastCUT``): those of ``cut`` with
    no identity term, lambda_nce 10 and flip equivariance. Its 150 + 50 epochs are the
    recipe's ``[run]`` (see ``recipes/fastcut_horse2zebra.toml``)."""

    lambda_nce: float = 10.0
    nce_idt: bool = False
    flip_equivariance: bool = True


class CUT(Method):
    """CUT / FastCUT (unpaired translation A -> B, no cycle).

    Networks: ``G`` (A -> B, a generator with ``encode(x, layers)``), ``D`` (judges domain
    B), and ``F`` (the ``[sampler]`` patch sampler), created from the first batch's feature
    shapes as in the reference; each has an Adam optimiser of its own name. The names are
    the reference's, so its ``{epoch}_net_{G,D,F}.pth`` files map one to one.

    Patch positions are drawn from :attr:`patch_rng`, a ``torch.Generator`` seeded from the
    run's seed and saved in checkpoints, so a resumed run draws what an uninterrupted one
    would. :meth:`train_step` also takes them (and the flip) explicitly, to replay a step of
    the reference with its own draws.
    """

    def __init__(self, cfg: CUTConfig, ctx: MethodContext) -> None:
        super().__init__(cfg, ctx)
        ca, cb = ctx.channels_a, ctx.channels_b
        if ca != cb and (cfg.lambda_nce > 0 or cfg.nce_idt):
            raise ValueError(
                f"CUT feeds G's output (and, with nce_idt, real B) back into G, so it needs channels_a == "
                f"channels_b (got {ca} and {cb}); set [data] channels_a and channels_b alike"
            )
        if ctx.recipe.run.precision == "fp16-mixed":
            # One loss updates G and F; the core scales a loss for one optimiser only.
            raise RecipeError(
                f'{ctx.recipe.source} [run] precision = "fp16-mixed": method "{ctx.recipe.method.name}" does '
                'not support fp16 gradient scaling yet. Use "bf16-mixed" or "fp32".'
            )
        G = ctx.features("generator", ctx.build("generator", in_channels=ca, out_channels=cb))
        feature_channels = getattr(G, "feature_channels", None)
        if feature_channels is not None:  # CUT's generators can check the indices before any data
            try:
                feature_channels(cfg.nce_layers)
            except ValueError as exc:
                raise ValueError(f"nce_layers {list(cfg.nce_layers)} do not fit [generator]: {exc}") from None
        self.G = ctx.network("G", G)
        # batch norm makes G(A) depend on the rest of the batch; instance norm does not
        self._per_sample = not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in G.modules())
        self.D = ctx.network("D", ctx.build("discriminator", in_channels=cb))
        ctx.optimizer("G", [self.G])
        ctx.optimizer("D", [self.D])
        self.F: nn.Module | None = None
        self.gan_loss = ctx.build("loss")
        self.patch_rng = torch.Generator().manual_seed(ctx.seed * 2 + 3)
        self.flipped = False  # whether the last step mirrored its input
        self._visuals: dict[str, Tensor] = {}

    def setup(self, real_a: Tensor, real_b: Tensor) -> None:
        """Create F for the channels of G's features on the first batch (the reference's
        ``data_dependent_initialize``; it also runs a throwaway step there, which changes
        nothing but the random state, so it is left out)."""
        with torch.no_grad():
            try:
                feats = self.G.encode(real_a[:1], self.cfg.nce_layers)
            except ValueError as exc:
                raise RecipeError(f"{self.ctx.recipe.source} [method] nce_layers = {list(self.cfg.nce_layers)}: "
                                  f"{exc}") from None
        self.F = self.ctx.network("F", self.ctx.build("sampler", channels=[f.shape[1] for f in feats]))
        if any(True for _ in self.F.parameters()):  # the ``sample`` sampler has none
            self.ctx.optimizer("F", [self.F])

    def generator(self, direction: str) -> nn.Module:
        if direction != "AtoB":
            raise ValueError(f"CUT translates A -> B only (no B -> A generator); got direction {direction!r}")
        return self.G

    def train_step(self, real_a: Tensor, real_b: Tensor, *, patch_ids: Sequence[Sequence[Tensor]] | None = None,
                   flip: bool | None = None) -> dict[str, float]:
        """One step: G forward, D update, G and F update.

        Args:
            real_a, real_b: batches in [-1, 1].
            patch_ids: positions to use instead of drawing them: one list per PatchNCE term
                (A -> G(A), then B -> G(B) with ``nce_idt``), each with one 1-D LongTensor per
                NCE layer (row-major ``h * W + w`` indices).
            flip: with ``flip_equivariance``, whether this step mirrors (instead of drawing it).
        """
        cfg, ctx, G, D = self.cfg, self.ctx, self.G, self.D
        if self.F is None:
            raise RuntimeError("CUT.setup(real_a, real_b) must run before the first train_step")
        if patch_ids is not None and len(patch_ids) != 1 + cfg.nce_idt:
            raise ValueError(f"patch_ids: expected {1 + cfg.nce_idt} lists (one per PatchNCE term), "
                             f"got {len(patch_ids)}")
        n = real_a.shape[0]
        flipped = False
        if cfg.flip_equivariance:
            flipped = bool(torch.rand((), generator=self.patch_rng) < 0.5) if flip is None else bool(flip)
        self.flipped = flipped
        losses: dict[str, Tensor] = {}

        mirror = (lambda t: torch.flip(t, [3])) if flipped else (lambda t: t)
        # The reference translates A and B (for identity NCE) in one batch and back-propagates
        # everything at once. With per-sample norms G(B) is the same apart, so it runs after A's
        # backward and only one branch's activations are alive at a time (same gradients).
        split = bool(cfg.nce_idt and cfg.lambda_nce > 0 and self._per_sample)
        with ctx.autocast():
            if cfg.nce_idt and not split:
                fake = G(mirror(torch.cat((real_a, real_b))))
                fake_b, idt_b = fake[:n], fake[n:]
            else:
                fake_b, idt_b = G(mirror(real_a)), None

        # D on this step's fake (no image pool in CUT) and on real B.
        set_requires_grad([D], True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        with ctx.autocast():
            losses["D_fake"] = self.gan_loss(D(fake_b.detach()), False)
            losses["D_real"] = self.gan_loss(D(real_b), True)
            losses["D"] = 0.5 * (losses["D_fake"] + losses["D_real"])
            penalty = self.gan_loss.penalty(D, real_b, fake_b)
        ctx.backward(losses["D"] if penalty is None else losses["D"] + penalty, "D")
        ctx.step("D")

        # G and F, with D frozen (it still judges, with its new weights).
        set_requires_grad([D], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        if "F" in self.optimizers:
            self.optimizers["F"].zero_grad(set_to_none=True)
        with ctx.autocast():
            terms = []
            if cfg.lambda_gan > 0:
                losses["G_GAN"] = self.gan_loss(D(fake_b), True, for_discriminator=False) * cfg.lambda_gan
                terms.append(losses["G_GAN"])
            if cfg.lambda_nce > 0:
                ids = patch_ids or [None, None]
                losses["NCE"] = self._nce(real_a, fake_b, flipped, ids[0])
                if cfg.nce_idt and not split:
                    losses["NCE_Y"] = self._nce(real_b, idt_b, flipped, ids[1])
                    terms.append(0.5 * (losses["NCE"] + losses["NCE_Y"]))
                else:
                    terms.append(0.5 * losses["NCE"] if split else losses["NCE"])
            loss = sum(terms[1:], terms[0])
        trains_f = "F" in self.optimizers
        ctx.backward(loss, "G", *(["F"] if trains_f else []))  # one loss trains G and F: one fp16 scale
        if split:
            with ctx.autocast():
                idt_b = G(mirror(real_b))
                losses["NCE_Y"] = self._nce(real_b, idt_b, flipped, ids[1])
                identity = 0.5 * losses["NCE_Y"]
            ctx.backward(identity, "G", *(["F"] if trains_f else []))
            loss = loss.detach() + identity.detach()
        ctx.step("G")
        if trains_f:
            ctx.step("F")
        set_requires_grad([D], True)

        self._visuals = {"real_A": real_a, "fake_B": mirror(fake_b.detach()), "real_B": real_b}
        if idt_b is not None:
            self._visuals["idt_B"] = mirror(idt_b.detach())
        losses["G"] = loss.detach()
        values = torch.stack([v.detach().float() for v in losses.values()]).tolist()  # one device sync
        return dict(zip(losses, values))

    def _nce(self, src: Tensor, tgt: Tensor, flipped: bool, ids: Sequence[Tensor] | None) -> Tensor:
        """PatchNCE between the input ``src`` (keys) and its translation ``tgt`` (queries)."""
        layers = self.cfg.nce_layers
        feat_q = self.G.encode(tgt, layers)
        if flipped:  # tgt came from the mirrored input: mirror its features back onto src's
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        # Keys take no gradient (PatchNCE detaches them), so their pass keeps no graph.
        with torch.no_grad():
            feat_k = self.G.encode(src, layers)
            keys, used = self.F(feat_k, patch_ids=ids, generator=self.patch_rng)
        queries, _ = self.F(feat_q, patch_ids=used)
        return multilayer_patch_nce_loss(
            queries, keys, batch_size=src.shape[0], weight=self.cfg.lambda_nce, temperature=self.cfg.nce_t,
            all_negatives_from_minibatch=self.cfg.nce_includes_all_negatives_from_minibatch,
        )

    def visuals(self) -> dict[str, Tensor]:
        return dict(self._visuals)

    def extra_state(self) -> dict:
        return {"patch_rng": self.patch_rng.get_state()}

    def load_extra_state(self, state: dict) -> None:
        self.patch_rng.set_state(state["patch_rng"])
