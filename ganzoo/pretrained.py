"""Published pretrained generators: the plugins' catalogues, and a verified, resumable download.

Each model family's plugin lists what its reference published (``ganzoo_register_pretrained``).
``download_model`` streams the file into ``ROOT/NAME_pretrained/latest_net_G.pth.part`` with the
resumable downloader of :mod:`ganzoo.data.download`, then loads it the safe way
(:mod:`ganzoo.reference_checkpoints`: tensors only, architecture inferred) before renaming it into place, so a
truncated file or an HTML error page never passes for a model. A file already at the target
(for instance copied there by hand on an offline machine) is verified and used without any
network access.
"""
from __future__ import annotations

import os
from pathlib import Path

from ganzoo._names import did_you_mean
from ganzoo.errors import CheckpointError
from ganzoo.reference import PretrainedModel, pretrained_models
from ganzoo.registry import Registry

MODEL_FILE = "latest_net_G.pth"
# URL prefix -> replacement: a local mirror of the reference servers (mutable, as tests do).
URL_REWRITES: dict[str, str] = {}


def catalogue(registry: Registry) -> dict[str, PretrainedModel]:
    """Every installed plugin's published models, by name."""
    return pretrained_models(registry.pm)


def lookup(name: str, registry: Registry) -> PretrainedModel:
    """The pretrained model called ``name``; an unknown name is a CheckpointError with a did-you-mean."""
    models = catalogue(registry)
    if name in models:
        return models[name]
    raise CheckpointError(f'pretrained model "{name}": unknown name. {did_you_mean(name, models)}'
                          f'Available: {", ".join(models)} (ganzoo models list).')


def url_of(info: PretrainedModel) -> str:
    for prefix, replacement in URL_REWRITES.items():
        if info.url.startswith(prefix):
            return replacement + info.url[len(prefix):]
    return info.url


def model_path(info: PretrainedModel, root: str | Path) -> Path:
    """Where ``download_model`` puts a model: ``ROOT/NAME_pretrained/latest_net_G.pth``."""
    return Path(root) / f"{info.name}_pretrained" / MODEL_FILE


def download_model(name: str, root: str | Path, registry: Registry, *, progress: bool = True) -> Path:
    """Download pretrained generator ``name`` to ``ROOT/NAME_pretrained/latest_net_G.pth``.

    Resumes a partial download, verifies the file by loading it (tensors only) and inferring
    its architecture, and only then moves it into place. Does nothing but verify when the file
    is already there.

    Example:
        >>> download_model("horse2zebra", Path("checkpoints"), registry)
        PosixPath('checkpoints/horse2zebra_pretrained/latest_net_G.pth')

    Raises:
        CheckpointError: unknown name, network failure (the message says where to put a file
            downloaded by hand), or a file that is not this model.
    """
    from ganzoo.data.download import fetch

    info = lookup(name, registry)
    target = model_path(info, root)
    if target.exists():
        _verify(info, target, registry, f"{target}: exists but is not a usable {info.family} generator",
                "Delete it and run again to download it afresh.")
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    url = url_of(info)
    fetch(url, part, label=info.name, progress=progress, fail=lambda reason: _offline(info, url, reason, target))
    _verify(info, part, registry, f"{url}: the downloaded file is not a usable {info.family} generator",
            f"It was deleted. Run again, or download it by hand and put it at {target}.", delete=True)
    os.replace(part, target)
    return target


def _offline(info: PretrainedModel, url: str, reason: str, target: Path) -> CheckpointError:
    part = target.with_name(target.name + ".part")
    kept = f" The partial download {part} is kept and resumes on the next run." if part.exists() else ""
    return CheckpointError(
        f"cannot download {info.name} from {url}: {reason}. This machine may be offline: download that "
        f"file elsewhere and put it at {target} (it is verified on the next run), or run again when online.{kept}"
    )


def _verify(info: PretrainedModel, path: Path, registry: Registry, what: str, fix: str, delete: bool = False) -> None:
    """Load ``path`` safely and check it holds a generator of the kind ``info`` names (and its digest)."""
    from ganzoo.reference_checkpoints import infer_generator, read_reference_state_dict

    try:
        try:
            name = infer_generator(read_reference_state_dict(path), registry, source=str(path))[0]
        except CheckpointError as exc:
            raise CheckpointError(f"{what}: {exc} {fix}") from None
        if not name.startswith(info.generator_prefix):
            raise CheckpointError(
                f"{what}: it holds a {name} generator, but the reference's {info.family} models are "
                f"{info.generator_prefix} generators. {fix}"
            )
        if info.sha256 is not None:
            import hashlib

            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != info.sha256:
                raise CheckpointError(f"{what}: its sha256 is {digest}, the published file's is {info.sha256}. {fix}")
    except CheckpointError:
        if delete:
            path.unlink(missing_ok=True)
        raise
