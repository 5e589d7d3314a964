"""Checkpoints of reference implementations (the .pth state_dicts they publish), in and out.

Reading: :func:`read_reference_state_dict` loads a ``.pth`` with ``torch.load(weights_only=True)``,
so a file can hold tensors in plain containers but can never run code. :func:`infer_generator`
asks the plugins (``ganzoo_read_reference_state``) which registered generator the keys and
shapes are, with which settings, so ``ganzoo translate --checkpoint latest_net_G_A.pth``
needs no architecture flags. What weights cannot show (reflect vs replicate padding; U-Net
dropout, which eval mode switches off anyway) is taken from a ``[generator]`` recipe section when one is
given, or lies next to the file as ``ganzoo_recipe.toml``, and otherwise from the reference's
defaults. Writing: :func:`export_reference` turns a ganzoo run into ``latest_net_<NAME>.pth``
files the reference loads, plus that ``ganzoo_recipe.toml``.
"""
from __future__ import annotations

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
from ganzoo.reference import ReferenceLayout, read_reference_layout
from ganzoo.registry import Registry

RECIPE_FILE = "ganzoo_recipe.toml"
_NETWORK_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
Direction = Literal["AtoB", "BtoA"]

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
def _guess(state: Mapping[str, Tensor], source: str, registry: Registry) -> ReferenceLayout | None:
    """The plugins' reading of a reference generator layout (``ganzoo_read_reference_state``)."""
    return read_reference_layout(registry.pm, state, "generator", source)


def _what_is_it(state: Mapping[str, Tensor], source: str, registry: Registry) -> str:
    try:
        other = read_reference_layout(registry.pm, state, "discriminator", source)
    except CheckpointError:
        return ""
    if other is None:
        return ""
    return f" It looks like a {other.name} discriminator (a *_net_D*.pth file): translate with a generator file."


def infer_generator(
    state: Mapping[str, Tensor],
    registry: Registry | None = None,
    *,
    recipe: Mapping[str, Any] | None = None,
    direction: Direction = "AtoB",
    source: str = "state_dict",
) -> tuple[str, Any, int, int]:
    """The generator a reference-layout state_dict belongs to.

    The layout is read by the plugin that owns it (``ganzoo_read_reference_state``; the
    CycleGAN plugin reads ResNet generators, pix2pix U-Nets, CUT its anti-aliased ResNets),
    which also says which settings the weights cannot show and their reference defaults.

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
    guess = _guess(state, source, registry)
    if guess is None and "name" not in section:
        keys = ", ".join(list(state)[:4])
        raise CheckpointError(
            f"{source}: cannot infer the generator: no installed plugin recognises its layout (the reference "
            f"ResNet: model.1.weight, model.10.conv_block.1.weight, ...; U-Net: model.model.0.weight, ...); the "
            f"file starts with {keys}.{_what_is_it(state, source, registry)} If it is a generator of another architecture, write its recipe "
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


def _merge(guess: ReferenceLayout, section: Mapping[str, Any], source: str) -> dict[str, Any]:
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
def export_reference(checkpoint_or_run_dir: str | Path, out_dir: str | Path, registry: Registry, *,
                     weights: str = "ema", which: str = "latest") -> list[Path]:
    """Write a ganzoo checkpoint's networks as the reference's ``latest_net_<NAME>.pth`` files.

    Each network (``G_A``, ``G_B``, ``D_A``, ``D_B`` for CycleGAN; ``G``, ``D`` for pix2pix)
    becomes a plain state_dict saved with ``torch.save``; ``ganzoo_recipe.toml`` next to them
    holds the run's resolved recipe, so reading them back needs no retyping. Existing files
    of those names are replaced. With ``weights="ema"`` the generators of a run that kept an
    EMA are written with their averaged weights.

    Returns:
        The written paths, networks first and the recipe last.
    """
    ckpt = find_checkpoint(checkpoint_or_run_dir, which)
    tree = checkpoint.load(ckpt)
    recipe = load_recipe(tree["recipe"], registry, source=f"{ckpt} (stored recipe)")
    out_dir = Path(out_dir)
    written = []
    ema = tree.get("ema") if weights == "ema" and isinstance(tree.get("ema"), dict) else {}
    for name in tree["networks"]:  # names come from the file: a hostile one must not leave out_dir
        if not isinstance(name, str) or not _NETWORK_NAME.fullmatch(name):
            raise CheckpointError(
                f"{ckpt}: network name {name!r} is not a plain name (letters, digits, _ and -), so it cannot name a "
                f"file in {out_dir}; nothing was written. The checkpoint is damaged or crafted: do not use it."
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, state in tree["networks"].items():
        state = ema[name]["weights"] if name in ema else state
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
