"""CUT and FastCUT for ganzoo (Park et al. 2020): contrastive unpaired translation.

Loaded through the ``ganzoo`` entry-point group, like any third-party plugin, and reaching
the core only through its public API. It registers:

- methods ``cut`` and ``fastcut`` (:mod:`ganzoo_cut.method`): one generator ``G`` (A -> B),
  one discriminator ``D`` and a patch sampler ``F``; PatchNCE between input and output
  patches replaces CycleGAN's second generator and cycle. Their recipes have the sections
  ``[generator]``, ``[discriminator]``, ``[loss]`` and ``[sampler]``;
- generators ``cut_resnet_9blocks``, ``cut_resnet_6blocks``, ``cut_resnet`` (any depth):
  the reference's ResNet with anti-aliased down- and up-sampling, whose ``encode(x, layers)``
  returns the features ``[method] nce_layers`` names (:mod:`ganzoo_cut.generator`);
- discriminators ``cut_patchgan_70`` and ``cut_patchgan`` (:mod:`ganzoo_cut.discriminator`);
- a component kind, ``patch_sampler`` (``ganzoo list patch_samplers``), with ``mlp`` (CUT's
  F) and ``sample`` (no MLP) (:mod:`ganzoo_cut.sampler`);
- the reference's checkpoint layouts (:mod:`ganzoo_cut.reference`): ``ganzoo translate
  --checkpoint latest_net_G.pth`` builds the right generator from a reference CUT file, and
  ``ganzoo run RECIPE --init-from DIR`` trains on from its ``{epoch}_net_{G,D,F}.pth``.

Quick start (32 px glyphs, a few minutes on a CPU; the end of the run compares held-out A -> B
translations with their ground truth)::

    ganzoo data download glyphs
    ganzoo run recipes/cut_quickstart.toml

The paper's settings: ``recipes/cut_horse2zebra.toml`` and ``recipes/fastcut_horse2zebra.toml``.
The reference's flags map to recipe keys as follows. ``--CUT_mode`` is ``[method] name``
(``cut`` / ``fastcut``, which set the mode's defaults); ``--lambda_GAN``, ``--lambda_NCE``,
``--nce_idt``, ``--nce_layers`` (a list of ints), ``--nce_T`` (``nce_t``),
``--nce_includes_all_negatives_from_minibatch`` and ``--flip_equivariance`` are ``[method]``
keys in lower case. ``--netF`` is ``[sampler] name`` (``mlp_sample`` -> ``mlp``, ``sample``),
``--netF_nc`` is ``[sampler] nc`` and ``--num_patches`` is ``[sampler] num_patches``.
``--netG`` / ``--netD`` are ``[generator]`` / ``[discriminator] name`` (``resnet_9blocks`` ->
``cut_resnet_9blocks``, ``basic`` -> ``cut_patchgan_70``, ``n_layers`` -> ``cut_patchgan``
with ``n_layers`` for ``--n_layers_D``); ``--ngf``, ``--ndf``, ``--normG``/``--normD``
(``norm``), ``--no_dropout`` (``dropout = false``), ``--no_antialias``, ``--no_antialias_up``,
``--init_type`` and ``--init_gain`` are keys of those sections. ``--gan_mode`` is ``[loss]
name``. ``--lr``, ``--beta1``, ``--beta2``, ``--lr_policy`` are ``[optim]``; ``--n_epochs``,
``--n_epochs_decay``, ``--epoch_count`` are ``[run]``; ``--batch_size``, ``--input_nc`` /
``--output_nc`` (``channels_a`` / ``channels_b``) and ``--direction`` are ``[data]``;
``--load_size``, ``--crop_size``, ``--preprocess`` and ``--no_flip`` (``flip = false``) are
``[augment]``. ``--pool_size`` has no counterpart: CUT keeps no image pool.

The published CUT/FastCUT models come as one archive
(``http://efrosgans.eecs.berkeley.edu/CUT/pretrained_models.tar``); unpacked, its
``checkpoints/<name>_pretrained/latest_net_G.pth`` files translate with ``ganzoo translate
--checkpoint``. They are not in ``ganzoo models list``: its downloads fetch one file per model.
"""
from __future__ import annotations

from ganzoo import ComponentSpec, KindSpec, MethodSpec, hookimpl
from ganzoo_cut.discriminator import DISCRIMINATORS
from ganzoo_cut.generator import GENERATORS
from ganzoo_cut.method import CUT, CUTConfig, FastCUTConfig
from ganzoo_cut.reference import read_discriminator, read_generator, read_sampler
from ganzoo_cut.sampler import PATCH_SAMPLER_KIND, SAMPLERS

_SECTIONS = {"generator": "generator", "discriminator": "discriminator", "loss": "loss",
             "sampler": PATCH_SAMPLER_KIND}
_REFERENCE_FILES = {n: f"{{epoch}}_net_{n}.pth" for n in ("G", "D", "F")}
# A tiny recipe for the registry-wide tests: 6 blocks so the default nce_layers exist.
_EXAMPLE = {"generator": {"name": "cut_resnet_6blocks", "ngf": 4},
            "discriminator": {"name": "cut_patchgan_70", "ndf": 4},
            "loss": {"name": "lsgan"}, "sampler": {"name": "mlp", "nc": 16, "num_patches": 16}}
_READERS = {"generator": read_generator, "discriminator": read_discriminator, PATCH_SAMPLER_KIND: read_sampler}


@hookimpl
def ganzoo_register_kinds() -> list[KindSpec]:
    return [KindSpec(PATCH_SAMPLER_KIND, "patch_samplers",
                     "picks feature vectors at random positions for PatchNCE; build(cfg, *, channels) gets the "
                     "channel count of each feature map", example_args={"channels": [3, 8, 16]})]


@hookimpl
def ganzoo_register_components() -> list[ComponentSpec]:
    return list(SAMPLERS)


@hookimpl
def ganzoo_register_generators() -> list[ComponentSpec]:
    return list(GENERATORS)


@hookimpl
def ganzoo_register_discriminators() -> list[ComponentSpec]:
    return list(DISCRIMINATORS)


@hookimpl
def ganzoo_register_methods() -> list[MethodSpec]:
    return [
        MethodSpec("cut", CUTConfig, CUT,
                   "unpaired translation A -> B: one generator, GAN + PatchNCE (+ identity NCE on B)",
                   sections=_SECTIONS, paired=False, monitor="G", reference_files=_REFERENCE_FILES,
                   example=_EXAMPLE),
        MethodSpec("fastcut", FastCUTConfig, CUT,
                   "CUT without identity NCE, lambda_nce 10 and flip equivariance: lighter and faster",
                   sections=_SECTIONS, paired=False, monitor="G", reference_files=_REFERENCE_FILES,
                   example=_EXAMPLE),
    ]


@hookimpl
def ganzoo_read_reference_state(state, kind: str, source: str):
    reader = _READERS.get(kind)
    return None if reader is None else reader(state, source)
