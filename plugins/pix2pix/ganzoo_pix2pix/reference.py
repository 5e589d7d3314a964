"""What pix2pix's reference implementation published: its U-Net generator's state_dict layout
and its pretrained generators (junyanz/pytorch-CycleGAN-and-pix2pix)."""
from __future__ import annotations

from typing import Any, Mapping

from torch import Tensor

from ganzoo import CheckpointError, PretrainedModel, ReferenceLayout
from ganzoo.reference import conv_weight, norm_of

_NAMES = {7: "unet_128", 8: "unet_256"}
URL_BASE = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch"


def read_unet(state: Mapping[str, Tensor], source: str) -> ReferenceLayout | None:
    """The reference's UnetGenerator: nested ``model.model.1.model.3...`` levels of 4x4 convs."""
    if "model.model.0.weight" not in state:
        return None
    first = conv_weight(state, "model.model.0.weight", 4, source)
    ngf, cin = int(first.shape[0]), int(first.shape[1])
    last = conv_weight(state, "model.model.3.weight", 4, source)  # ConvTranspose2d: (C_in, C_out, 4, 4)
    depth, block = 1, "model.model.1"
    while f"{block}.model.1.weight" in state:  # each level's down conv; its submodule is model.3
        depth, block = depth + 1, f"{block}.model.3"
    if depth < 5:
        raise CheckpointError(f"{source}: a U-Net with {depth} levels; the reference's have at least 5.")
    norm = norm_of(state, "model.model.1.model.1", "model.model.1.model.2", source)
    name = _NAMES.get(depth, "unet")
    settings: dict[str, Any] = {"ngf": ngf, "norm": norm}
    if name == "unet":
        settings["num_downs"] = depth
    # Dropout layers hold no weights; the reference's pix2pix trains with them (no --no_dropout).
    return ReferenceLayout("generator", name, settings, {"dropout": True}, cin, int(last.shape[1]))


def _model(name: str, summary: str, reference_name: str = "") -> PretrainedModel:
    return PretrainedModel(name, f"{URL_BASE}/{reference_name or name}.pth", f"pix2pix: {summary}", "pix2pix", "unet")


# The names of the reference's scripts/download_pix2pix_model.sh. Three are also CycleGAN
# names; as with the datasets, those get a _pix2pix suffix.
PRETRAINED = [
    _model("facades_label2photo_pix2pix", "facade labels -> photos", "facades_label2photo"),
    _model("edges2shoes", "edge maps -> shoe photos"),
    _model("sat2map_pix2pix", "aerial photos -> Google Maps", "sat2map"),
    _model("map2sat_pix2pix", "Google Maps -> aerial photos", "map2sat"),
    _model("day2night", "daytime -> night webcam photos"),
]
