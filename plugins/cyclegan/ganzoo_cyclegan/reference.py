"""What CycleGAN's reference implementation published: its ResNet generator's state_dict layout
and its pretrained generators (junyanz/pytorch-CycleGAN-and-pix2pix)."""
from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from ganzoo import CheckpointError, PretrainedModel, ReferenceLayout
from ganzoo.reference import conv_weight, norm_of

# Second-conv index inside a ResNet block's conv_block -> (padding, dropout). Reflect and
# replicate padding layers have no parameters, so both give the first pair of layouts.
_BLOCK_LAYOUTS = {(1, 5): ("reflect", False), (1, 6): ("reflect", True), (0, 3): ("zero", False), (0, 4): ("zero", True)}
_NAMES = {6: "resnet_6blocks", 9: "resnet_9blocks"}
URL_BASE = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models"


def read_resnet(state: Mapping[str, Tensor], source: str) -> ReferenceLayout | None:
    """The reference's ResnetGenerator: a 7x7 conv at ``model.1`` and residual blocks from ``model.10``.

    Blocks elsewhere (CUT's anti-aliased generator puts them later) are not this layout.
    """
    if "model.1.weight" not in state or not any(".conv_block." in k for k in state):
        return None
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    if blocks != list(range(10, 10 + len(blocks))):
        if blocks and blocks[0] != 10:
            return None
        raise CheckpointError(f"{source}: residual blocks at model.{blocks} instead of model.10, model.11, ...: "
                              "not the reference's ResnetGenerator layout.")
    first = conv_weight(state, "model.1.weight", 7, source)
    ngf, cin = int(first.shape[0]), int(first.shape[1])
    n = len(blocks)
    layouts = set()
    for b in blocks:
        prefix = f"model.{b}.conv_block."
        layouts.add(tuple(sorted(int(k[len(prefix):].split(".")[0]) for k in state
                                 if k.startswith(prefix) and k.endswith(".weight") and state[k].dim() == 4)))
    layout = _BLOCK_LAYOUTS.get(next(iter(layouts))) if len(layouts) == 1 else None
    if layout is None:
        raise CheckpointError(f"{source}: residual blocks with convolutions at conv_block indices {sorted(layouts)}; "
                              f"the reference's layouts are {sorted(_BLOCK_LAYOUTS)}.")
    padding, dropout = layout
    last = conv_weight(state, f"model.{17 + n}.weight", 7, source)
    settings: dict[str, Any] = {"ngf": ngf, "norm": norm_of(state, "model.1", "model.2", source), "dropout": dropout}
    defaults: dict[str, Any] = {}
    (settings if padding == "zero" else defaults)["padding_type"] = padding
    name = _NAMES.get(n, "resnet")
    if name == "resnet":
        settings["n_blocks"] = n
    return ReferenceLayout("generator", name, settings, defaults, cin, int(last.shape[0]))


def _model(name: str, summary: str) -> PretrainedModel:
    return PretrainedModel(name, f"{URL_BASE}/{name}.pth", f"CycleGAN: {summary}", "cyclegan", "resnet")


# The names of the reference's scripts/download_cyclegan_model.sh.
PRETRAINED = [
    _model("apple2orange", "apples -> oranges"),
    _model("orange2apple", "oranges -> apples"),
    _model("summer2winter_yosemite", "Yosemite in summer -> winter"),
    _model("winter2summer_yosemite", "Yosemite in winter -> summer"),
    _model("horse2zebra", "horses -> zebras"),
    _model("zebra2horse", "zebras -> horses"),
    _model("monet2photo", "Monet paintings -> photos"),
    _model("style_monet", "photos -> Monet paintings"),
    _model("style_cezanne", "photos -> Cezanne paintings"),
    _model("style_ukiyoe", "photos -> Ukiyo-e prints"),
    _model("style_vangogh", "photos -> Van Gogh paintings"),
    _model("sat2map", "aerial photos -> Google Maps"),
    _model("map2sat", "Google Maps -> aerial photos"),
    _model("cityscapes_photo2label", "street photos -> semantic labels"),
    _model("cityscapes_label2photo", "semantic labels -> street photos"),
    _model("facades_photo2label", "facade photos -> labels"),
    _model("facades_label2photo", "facade labels -> photos"),
    _model("iphone2dslr_flower", "iPhone flower photos -> DSLR (shallow depth of field)"),
]
