"""Checkpoints of the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix), in and out.

Reading: :func:`read_reference_state_dict` loads a ``.pth`` with ``torch.load(weights_only=True)``,
so a file can hold tensors in plain containers but can never run code. :func:`infer_generator`
reads the architecture from the keys and shapes (ResNet or U-Net family, depth, width, norm,
dropout, zero padding), so ``ganzoo translate --checkpoint latest_net_G_A.pth`` needs no
architecture flags. What weights cannot show (reflect vs replicate padding; U-Net dropout,
which eval mode switches off anyway) is taken from a ``[generator]`` recipe section when one is
given, or lies next to the file as ``ganzoo_recipe.toml``, and otherwise from the reference's
defaults. Writing: :func:`export_reference` turns a ganzoo run into ``latest_net_<NAME>.pth``
files the reference loads, plus that ``ganzoo_recipe.toml``.
"""
from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Any, Literal, Mapping

import torch
from torch import Tensor, nn

from ganzoo import checkpoint
from ganzoo._typed import FieldError, build_dataclass
from ganzoo.config import dump_toml, load_recipe, read_toml, recipe_to_dict
from ganzoo.errors import CheckpointError
from ganzoo.inference import find_checkpoint, load_state_dict_checked
from ganzoo.layers.norm import strip_legacy_norm_keys
from ganzoo.registry import Registry

RECIPE_FILE = "ganzoo_recipe.toml"
Direction = Literal["AtoB", "BtoA"]

# Second-conv index inside a ResNet block's conv_block -> (padding, dropout). Reflect and
# replicate padding layers have no parameters, so both give the first pair of layouts.
_RESNET_BLOCK_LAYOUTS = {(1, 5): ("reflect", False), (1, 6): ("reflect", True),
                         (0, 3): ("zero", False), (0, 4): ("zero", True)}
_RESNET_NAMES = {6: "resnet_6blocks", 9: "resnet_9blocks"}
_UNET_NAMES = {7: "unet_128", 8: "unet_256"}
_SAFE_LOADING = (
    "ganzoo loads .pth files with torch.load(weights_only=True), which never executes code from "
    "the file, so only tensors in plain dicts/lists load"
)


# ---- reading ------------------------------------------------------------------------------
def read_reference_state_dict(path: str | Path) -> dict[str, Tensor]:
    """Load a reference ``.pth`` as ``{key: tensor}`` without unpickling arbitrary objects.

    A ``{"state_dict": ...}`` wrapper and the ``module.`` prefix of DataParallel saves are
    removed. The old instance-norm buffers are kept here; :func:`load_reference_generator`
    drops them against the built network, as the reference's loader does.

    Raises:
        CheckpointError: the file is missing, damaged, not a state_dict, or refers to
            anything but tensors (a pickled model, or a malicious file).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file. Give the path of a .pth file such as latest_net_G_A.pth.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # untrusted bytes: every failure is the file's, reported as such
        raise CheckpointError(
            f"{path}: not a plain state_dict ({_load_failure(path, exc)}). {_SAFE_LOADING}. Re-save it with "
            "torch.save(net.state_dict(), path), or download it again."
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{path}: not a plain state_dict (it holds {_describe(obj)}). {_SAFE_LOADING}.")
    bad = [k for k, v in obj.items() if not (isinstance(k, str) and isinstance(v, Tensor))]
    if bad:
        raise CheckpointError(
            f"{path}: not a plain state_dict: {len(bad)} entries are not tensors (e.g. {bad[0]!r}: "
            f"{_describe(obj[bad[0]])}). Expected what torch.save(net.state_dict(), path) writes."
        )
    if all(k.startswith("module.") for k in obj):  # saved from nn.DataParallel
        obj = {k.removeprefix("module."): v for k, v in obj.items()}
    return dict(obj)


def _load_failure(path: Path, exc: Exception) -> str:
    """One line on why torch.load refused the file (torch's own text suggests unsafe loading)."""
    text = str(exc)
    # "Unsupported global: GLOBAL x.y", or "unsupported GLOBAL posix.system whose module posix is blocked"
    found = re.search(r"unsupported (?:global: )?GLOBAL ([\w.]+)", text, re.IGNORECASE)
    if found:
        return (f"it refers to {found.group(1)}, which a state_dict never does: it is a pickled object or "
                "model, or a malicious file; nothing from it was run")
    with open(path, "rb") as f:
        head = f.read(64)
    if not head:
        return "the file is empty"
    if head.lstrip()[:1] == b"<":
        return "it is text starting with '<', probably an HTML error page saved in place of the model"
    if isinstance(exc, EOFError) or "central directory" in text:
        return "the file is truncated or damaged"
    first = text.strip().splitlines()[0][:160] if text.strip() else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _describe(obj: Any) -> str:
    if isinstance(obj, dict):
        return f"a dict with keys {', '.join(map(repr, list(obj)[:5]))}" if obj else "an empty dict"
    return f"a {type(obj).__name__}"


# ---- inference ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Guess:
    """A generator layout read from a state_dict."""

    name: str
    settings: dict[str, Any]  # [generator] keys the weights decide
    defaults: dict[str, Any]  # keys the weights cannot show, at the reference's defaults
    in_channels: int
    out_channels: int


def _conv(state: Mapping[str, Tensor], key: str, kernel: int, source: str) -> Tensor:
    w = state[key]
    if w.dim() != 4 or tuple(w.shape[-2:]) != (kernel, kernel):
        raise CheckpointError(
            f"{source}: {key} has shape {tuple(w.shape)}, expected a {kernel}x{kernel} convolution "
            f"(C_out, C_in, {kernel}, {kernel}). The file is not in the reference's generator layout."
        )
    return w


def _norm(state: Mapping[str, Tensor], conv: str, norm: str, where: str) -> str:
    """instance: biased convs, no norm parameters; batch: norm parameters, no bias; none: neither."""
    bias, affine = f"{conv}.bias" in state, f"{norm}.weight" in state
    if affine and not bias and f"{norm}.running_mean" in state:
        return "batch"
    if bias and not affine:
        return "instance"  # possibly with legacy running stats, dropped when loading
    if not bias and not affine:
        return "none"
    raise CheckpointError(
        f"{where}: cannot tell the normalisation: {conv}.bias is {'present' if bias else 'absent'} and "
        f"{norm}.weight is {'present' if affine else 'absent'}, a combination the reference's "
        "instance/batch/none norms never produce."
    )


def _guess_resnet(state: Mapping[str, Tensor], source: str) -> _Guess:
    first = _conv(state, "model.1.weight", 7, source)
    ngf, cin = int(first.shape[0]), int(first.shape[1])
    blocks = sorted({int(m.group(1)) for k in state if (m := re.match(r"model\.(\d+)\.conv_block\.", k))})
    if blocks != list(range(10, 10 + len(blocks))):
        raise CheckpointError(f"{source}: residual blocks at model.{blocks} instead of model.10, model.11, ...: "
                              "not the reference's ResnetGenerator layout.")
    n = len(blocks)
    layouts = set()
    for b in blocks:
        prefix = f"model.{b}.conv_block."
        convs = sorted(int(k[len(prefix):].split(".")[0]) for k in state
                       if k.startswith(prefix) and k.endswith(".weight") and state[k].dim() == 4)
        layouts.add(tuple(convs))
    layout = _RESNET_BLOCK_LAYOUTS.get(next(iter(layouts))) if len(layouts) == 1 else None
    if layout is None:
        raise CheckpointError(f"{source}: residual blocks with convolutions at conv_block indices {sorted(layouts)}; "
                              f"the reference's layouts are {sorted(_RESNET_BLOCK_LAYOUTS)}.")
    padding, dropout = layout
    name = _RESNET_NAMES.get(n)
    if name is None:
        raise CheckpointError(
            f"{source}: a ResNet generator with {n} residual blocks; ganzoo registers "
            f"{', '.join(f'{v} ({k} blocks)' for k, v in _RESNET_NAMES.items())}, as the reference does."
        )
    last = _conv(state, f"model.{17 + n}.weight", 7, source)
    settings: dict[str, Any] = {"ngf": ngf, "norm": _norm(state, "model.1", "model.2", source), "dropout": dropout}
    defaults: dict[str, Any] = {}
    (settings if padding == "zero" else defaults)["padding_type"] = padding
    return _Guess(name, settings, defaults, cin, int(last.shape[0]))


def _guess_unet(state: Mapping[str, Tensor], source: str) -> _Guess:
    first = _conv(state, "model.model.0.weight", 4, source)
    ngf, cin = int(first.shape[0]), int(first.shape[1])
    last = _conv(state, "model.model.3.weight", 4, source)  # ConvTranspose2d: (C_in, C_out, 4, 4)
    depth, block = 1, "model.model.1"
    while f"{block}.model.1.weight" in state:  # each level's down conv; its submodule is model.3
        depth, block = depth + 1, f"{block}.model.3"
    if depth < 5:
        raise CheckpointError(f"{source}: a U-Net with {depth} levels; the reference's have at least 5.")
    norm = _norm(state, "model.model.1.model.1", "model.model.1.model.2", source)
    name = _UNET_NAMES.get(depth, "unet")
    settings: dict[str, Any] = {"ngf": ngf, "norm": norm}
    if name == "unet":
        settings["num_downs"] = depth
    # Dropout layers hold no weights; the reference's pix2pix trains with them (no --no_dropout).
    return _Guess(name, settings, {"dropout": True}, cin, int(last.shape[1]))


def _guess(state: Mapping[str, Tensor], source: str) -> _Guess | None:
    if "model.1.weight" in state and any(".conv_block." in k for k in state):
        return _guess_resnet(state, source)
    if "model.model.0.weight" in state:
        return _guess_unet(state, source)
    return None


def _what_is_it(state: Mapping[str, Tensor]) -> str:
    w = state.get("model.0.weight")
    if w is not None and w.dim() == 4 and tuple(w.shape[-2:]) == (4, 4):
        return " It looks like a PatchGAN discriminator (a *_net_D*.pth file): translate with a generator file."
    if "net.0.weight" in state:
        return " It looks like a PixelGAN discriminator: translate with a generator file."
    return ""


def infer_generator(
    state: Mapping[str, Tensor],
    registry: Registry | None = None,
    *,
    recipe: Mapping[str, Any] | None = None,
    direction: Direction = "AtoB",
    source: str = "state_dict",
) -> tuple[str, Any, int, int]:
    """The generator a reference-layout state_dict belongs to.

    Rules (all from keys and shapes):

    - ResNet when ``model.1.weight`` is a 7x7 conv (ngf, in, 7, 7) and ``model.N.conv_block``
      keys exist; 6 blocks -> ``resnet_6blocks``, 9 -> ``resnet_9blocks``; out channels from
      the last 7x7 conv ``model.{17+N}``. Inside a block the convs sit at (1, 5): reflect
      padding, (1, 6): reflect + dropout, (0, 3): zero padding, (0, 4): zero + dropout.
    - U-Net when ``model.model.0.weight`` is a 4x4 conv (ngf, in, 4, 4); the depth is the
      number of nested levels (7 -> ``unet_128``, 8 -> ``unet_256``, else ``unet`` with
      ``num_downs``); out channels from ``model.model.3`` (ConvTranspose2d).
    - Norm from the first normalised layer: biased conv and no norm parameters -> instance,
      norm weight and running_mean and no bias -> batch, neither -> none.
    - Not visible, so defaulted: reflect (not replicate) padding, as the reference always
      builds; U-Net dropout on, as pix2pix trains (eval mode ignores it).

    Args:
        state: the state_dict (see :func:`read_reference_state_dict`).
        registry: where generator configs come from; default: the installed plugins.
        recipe: a raw recipe dict whose ``[generator]`` section overrides what cannot be seen
            (``padding_type``, ``dropout``) or names another registered generator (whose keys
            are then used as they are). For an unrecognised layout its ``in_channels`` /
            ``out_channels`` keys or ``[data] channels_a/channels_b`` give the channels.
        direction: ``BtoA`` for a G_B file (swaps ``[data]`` channels in that last case).
        source: the file, for messages.

    Returns:
        ``(name, config, in_channels, out_channels)``, config being the generator's config
        dataclass, ready for ``registry.get("generator", name).build``.

    Raises:
        CheckpointError: the layout is not recognised and no recipe names it, or a recipe
            contradicts the weights.
    """
    if registry is None:
        from ganzoo.plugins import get_plugin_manager

        registry = Registry(get_plugin_manager())
    section = dict((recipe or {}).get("generator") or {})
    guess = _guess(state, source)
    if guess is None and "name" not in section:
        keys = ", ".join(list(state)[:4])
        raise CheckpointError(
            f"{source}: cannot infer the generator: neither the reference's ResNet layout (model.1.weight, "
            f"model.10.conv_block.1.weight, ...) nor its U-Net layout (model.model.0.weight, ...); the file starts "
            f"with {keys}.{_what_is_it(state)} If it is a generator of another architecture, write its recipe "
            f"section next to it as {Path(source).parent / RECIPE_FILE} (or pass recipe_path), e.g.\n"
            '[generator]\nname = "resnet_9blocks"   # see `ganzoo list generators`\nngf = 64\n'
            "in_channels = 3\nout_channels = 3"
        )
    if guess is not None:  # shapes decide the channels
        cin, cout = guess.in_channels, guess.out_channels
    else:
        cin, cout = _recipe_channels(recipe or {}, section, direction)
    if guess is not None and section.get("name", guess.name) == guess.name:
        name, values = guess.name, _merge(guess, section, source)
    else:  # the recipe names its generator: trust it, the strict load checks it
        name, values = section.get("name"), section
    values = {k: v for k, v in values.items() if k not in ("name", "in_channels", "out_channels")}
    if not isinstance(name, str) or registry.entry("generator", name) is None:
        raise CheckpointError(f"{source}: {registry.unknown_message('generator', str(name))}")
    try:
        cfg = build_dataclass(registry.get("generator", name).config_cls, values)
    except FieldError as exc:
        key = f" {exc.key}" if exc.key else ""
        raise CheckpointError(f"{source}: generator {name!r}{key}: {exc} (settings: {values})") from None
    return name, cfg, cin, cout


def _merge(guess: _Guess, section: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The reference's defaults, then what the weights show, then the recipe, which may only
    add what the weights cannot show (batch and syncbatch norms have the same weights)."""
    for key in section.keys() & guess.settings.keys():
        ours, theirs = section[key], guess.settings[key]
        batch_norms = ("batch", "syncbatch")
        if ours != theirs and not (ours in batch_norms and theirs in batch_norms):
            raise CheckpointError(
                f"{source}: the recipe says [generator] {key} = {ours!r} but the weights have {key} = {theirs!r}. "
                f"Remove {key} from the recipe (the weights decide it)."
            )
    return {**guess.defaults, **guess.settings, **section}


def _recipe_channels(recipe: Mapping[str, Any], section: Mapping[str, Any], direction: Direction) -> tuple[int, int]:
    """[generator] in_channels/out_channels, else [data] channels_a/channels_b (default 3)."""
    data = recipe.get("data") or {}
    a, b = int(data.get("channels_a", 3)), int(data.get("channels_b", 3))
    cin, cout = (b, a) if direction == "BtoA" else (a, b)
    return int(section.get("in_channels", cin)), int(section.get("out_channels", cout))


def _read_recipe(path: Path) -> dict[str, Any]:
    raw = read_toml(path)
    if not isinstance(raw.get("generator"), dict):
        raise CheckpointError(
            f"{path}: no [generator] section. A recipe for a reference checkpoint needs at least\n"
            '[generator]\nname = "resnet_9blocks"\nand the keys that cannot be read from the weights '
            '(e.g. padding_type = "replicate").'
        )
    return raw


def fit_reference_state(state: Mapping[str, Tensor], net: nn.Module) -> dict[str, Tensor]:
    """``state`` as ``net.load_state_dict(strict=True)`` takes it from an old reference save.

    Drops the instance-norm ``running_mean``/``running_var`` buffers PyTorch < 0.4 saved (the
    reference deletes them when loading) and adds the batch-norm ``num_batches_tracked``
    counters saves of PyTorch < 0.4.1 lack. Works for generators and discriminators alike.
    """
    state = strip_legacy_norm_keys(dict(state), net)
    for prefix, m in net.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
            key = f"{prefix}.num_batches_tracked"
            if f"{prefix}.running_mean" in state and key not in state:
                state[key] = torch.tensor(0, dtype=torch.long)
    return state


def load_reference_generator(
    path: str | Path, device: torch.device, registry: Registry, recipe_path: str | Path | None = None
) -> tuple[nn.Module, int]:
    """Build the generator a reference ``.pth`` file holds and load its weights strictly.

    The architecture is inferred (see :func:`infer_generator`); ``recipe_path``, or else a
    ``ganzoo_recipe.toml`` in the same folder, supplies what the weights cannot show.

    Returns:
        ``(network in eval mode on device, its input channels)``. Eval mode means batch norm
        uses its running statistics and dropout is off; the reference's ``test.py`` does that
        only with ``--eval`` (see :func:`reference_test_mode`).
    """
    path = Path(path)
    state = read_reference_state_dict(path)
    if recipe_path is None and (path.parent / RECIPE_FILE).is_file():
        recipe_path = path.parent / RECIPE_FILE
    raw = _read_recipe(Path(recipe_path)) if recipe_path is not None else None
    direction: Direction = "BtoA" if re.search(r"net_G_?B$", path.stem) else "AtoB"
    name, cfg, cin, cout = infer_generator(state, registry, recipe=raw, direction=direction, source=str(path))
    try:
        net = registry.get("generator", name).build(cfg, in_channels=cin, out_channels=cout)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: cannot build generator {name!r} with {cfg}: {exc}") from None
    state = fit_reference_state(state, net)
    load_state_dict_checked(net, state, f"{path} (read as {name}, {cin} -> {cout} channels, {cfg})")
    return net.to(device).eval(), cin


def reference_test_mode(net: nn.Module) -> nn.Module:
    """Put batch norm and dropout layers of ``net`` in training mode; return ``net``.

    This is how the reference's ``test.py`` runs without ``--eval``: batch norm normalises
    with the statistics of each test batch and dropout stays on (the pix2pix paper's choice).
    Translate one image per batch to match it; outputs then vary from run to run.
    """
    for m in net.modules():
        if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.Dropout)):
            m.train()
    return net


# ---- writing ------------------------------------------------------------------------------
def export_reference(checkpoint_or_run_dir: str | Path, out_dir: str | Path, registry: Registry) -> list[Path]:
    """Write a ganzoo checkpoint's networks as the reference's ``latest_net_<NAME>.pth`` files.

    Each network (``G_A``, ``G_B``, ``D_A``, ``D_B`` for CycleGAN; ``G``, ``D`` for pix2pix)
    becomes a plain state_dict saved with ``torch.save``; ``ganzoo_recipe.toml`` next to them
    holds the run's resolved recipe, so reading them back needs no retyping. Existing files
    of those names are replaced.

    Returns:
        The written paths, networks first and the recipe last.
    """
    ckpt = find_checkpoint(checkpoint_or_run_dir)
    tree = checkpoint.load(ckpt)
    recipe = load_recipe(tree["recipe"], registry, source=f"{ckpt} (stored recipe)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, state in tree["networks"].items():
        buf = io.BytesIO()
        torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buf)
        target = out_dir / f"latest_net_{name}.pth"
        checkpoint.atomic_write(target, buf.getvalue())
        written.append(target)
    header = (
        f"# Written by `ganzoo export --format reference` from {ckpt}.\n"
        "# The resolved recipe of that run. `ganzoo translate --checkpoint latest_net_G*.pth` reads\n"
        "# its [generator] section; `ganzoo run` trains with it again.\n\n"
    )
    checkpoint.atomic_write(out_dir / RECIPE_FILE, (header + dump_toml(recipe_to_dict(recipe))).encode())
    written.append(out_dir / RECIPE_FILE)
    return written
