"""The reference's published pretrained generators: their names, and a verified, resumable download.

``download_model`` streams ``NAME.pth`` from the reference's server into
``ROOT/NAME_pretrained/latest_net_G.pth.part`` with the resumable downloader of
:mod:`ganzoo.data.download`, then loads it the safe way (:mod:`ganzoo.interop`: tensors only,
architecture inferred) before renaming it into place, so a truncated file or an HTML error page
never passes for a model. A file already at the target (for instance copied there by hand on an
offline machine) is verified and used without any network access.
"""
from __future__ import annotations

import dataclasses
import difflib
import os
from pathlib import Path
from typing import Literal

from ganzoo.errors import CheckpointError
from ganzoo.registry import Registry

Kind = Literal["cyclegan", "pix2pix"]

# Mutable so tests (or a local mirror) can point the downloads elsewhere.
URL_BASES: dict[str, str] = {
    "cyclegan": "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models",
    "pix2pix": "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch",
}
# The generator family each kind publishes: CycleGAN ResNet-9 (instance norm), pix2pix U-Net-256.
_FAMILY = {"cyclegan": "resnet", "pix2pix": "unet"}
MODEL_FILE = "latest_net_G.pth"


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """A pretrained generator ``ganzoo models download`` knows.

    Args:
        name: the name to download it by; ``ROOT/<name>_pretrained/`` receives it.
        kind: ``cyclegan`` or ``pix2pix``: which of the reference's servers and scripts.
        file_name: the file on the server (the reference's own name for the model).
        summary: one line for listings: what goes in and what comes out.
    """

    name: str
    kind: Kind
    file_name: str
    summary: str

    @property
    def url(self) -> str:
        return f"{URL_BASES[self.kind]}/{self.file_name}"


def _cyclegan(name: str, summary: str) -> ModelInfo:
    return ModelInfo(name, "cyclegan", f"{name}.pth", f"CycleGAN: {summary}")


def _pix2pix(name: str, summary: str, reference_name: str = "") -> ModelInfo:
    return ModelInfo(name, "pix2pix", f"{reference_name or name}.pth", f"pix2pix: {summary}")


# The names of the reference's scripts/download_cyclegan_model.sh and download_pix2pix_model.sh.
# Three pix2pix names are also CycleGAN names; as with the datasets, those get a _pix2pix suffix.
PRETRAINED: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        _cyclegan("apple2orange", "apples -> oranges"),
        _cyclegan("orange2apple", "oranges -> apples"),
        _cyclegan("summer2winter_yosemite", "Yosemite in summer -> winter"),
        _cyclegan("winter2summer_yosemite", "Yosemite in winter -> summer"),
        _cyclegan("horse2zebra", "horses -> zebras"),
        _cyclegan("zebra2horse", "zebras -> horses"),
        _cyclegan("monet2photo", "Monet paintings -> photos"),
        _cyclegan("style_monet", "photos -> Monet paintings"),
        _cyclegan("style_cezanne", "photos -> Cezanne paintings"),
        _cyclegan("style_ukiyoe", "photos -> Ukiyo-e prints"),
        _cyclegan("style_vangogh", "photos -> Van Gogh paintings"),
        _cyclegan("sat2map", "aerial photos -> Google Maps"),
        _cyclegan("map2sat", "Google Maps -> aerial photos"),
        _cyclegan("cityscapes_photo2label", "street photos -> semantic labels"),
        _cyclegan("cityscapes_label2photo", "semantic labels -> street photos"),
        _cyclegan("facades_photo2label", "facade photos -> labels"),
        _cyclegan("facades_label2photo", "facade labels -> photos"),
        _cyclegan("iphone2dslr_flower", "iPhone flower photos -> DSLR (shallow depth of field)"),
        _pix2pix("facades_label2photo_pix2pix", "facade labels -> photos", "facades_label2photo"),
        _pix2pix("edges2shoes", "edge maps -> shoe photos"),
        _pix2pix("sat2map_pix2pix", "aerial photos -> Google Maps", "sat2map"),
        _pix2pix("map2sat_pix2pix", "Google Maps -> aerial photos", "map2sat"),
        _pix2pix("day2night", "daytime -> night webcam photos"),
    )
}


def lookup(name: str) -> ModelInfo:
    """The pretrained model called ``name``; an unknown name is a CheckpointError with a did-you-mean."""
    if name in PRETRAINED:
        return PRETRAINED[name]
    close = difflib.get_close_matches(name, list(PRETRAINED), n=1)
    hint = f' Did you mean "{close[0]}"?' if close else ""
    raise CheckpointError(
        f'pretrained model "{name}": unknown name.{hint} Available: {", ".join(PRETRAINED)} (ganzoo models list).'
    )


def model_path(name: str, root: str | Path) -> Path:
    """Where ``download_model`` puts ``name``: ``ROOT/NAME_pretrained/latest_net_G.pth``."""
    return Path(root) / f"{lookup(name).name}_pretrained" / MODEL_FILE


def download_model(name: str, root: str | Path, *, progress: bool = True, registry: Registry | None = None) -> Path:
    """Download pretrained generator ``name`` to ``ROOT/NAME_pretrained/latest_net_G.pth``.

    Resumes a partial download, verifies the file by loading it (tensors only) and inferring
    its architecture, and only then moves it into place. Does nothing but verify when the file
    is already there.

    Example:
        >>> download_model("horse2zebra", Path("checkpoints"))
        PosixPath('checkpoints/horse2zebra_pretrained/latest_net_G.pth')

    Raises:
        CheckpointError: unknown name, network failure (the message says where to put a file
            downloaded by hand), or a file that is not this model.
    """
    from ganzoo.data.download import fetch

    info = lookup(name)
    target = model_path(name, root)
    if target.exists():
        _verify(info, target, registry, f"{target}: exists but is not a usable {info.kind} generator",
                "Delete it and run again to download it afresh.")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    fetch(info.url, part, label=info.name, progress=progress, fail=lambda reason: _offline(info, reason, target))
    _verify(info, part, registry, f"{info.url}: the downloaded file is not a usable {info.kind} generator",
            f"It was deleted. Run again, or download it by hand and put it at {target}.", delete=True)
    os.replace(part, target)
    return target


def _offline(info: ModelInfo, reason: str, target: Path) -> CheckpointError:
    part = target.with_name(target.name + ".part")
    kept = f" The partial download {part} is kept and resumes on the next run." if part.exists() else ""
    return CheckpointError(
        f"cannot download {info.name} from {info.url}: {reason}. This machine may be offline: download that "
        f"file elsewhere and put it at {target} (it is verified on the next run), or run again when online.{kept}"
    )


def _verify(info: ModelInfo, path: Path, registry: Registry | None, what: str, fix: str, delete: bool = False) -> None:
    """Load ``path`` safely and check it holds a generator of the family ``info.kind`` publishes."""
    from ganzoo.interop import infer_generator, read_reference_state_dict

    try:
        try:
            name = infer_generator(read_reference_state_dict(path), registry, source=str(path))[0]
        except CheckpointError as exc:
            raise CheckpointError(f"{what}: {exc} {fix}") from None
        if not name.startswith(_FAMILY[info.kind]):
            raise CheckpointError(
                f"{what}: it holds a {name} generator, but the reference's {info.kind} models are "
                f"{_FAMILY[info.kind]} generators. {fix}"
            )
    except CheckpointError:
        if delete:
            path.unlink(missing_ok=True)
        raise
