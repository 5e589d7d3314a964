"""Recipes: a TOML file (plus ``--set`` overrides) validated once into frozen dataclasses.

Past this module only typed objects flow. Core sections ([run], [data], [augment], [optim])
map onto the dataclasses below; component sections ([method], [generator],
[discriminator], [loss]) name a registered component and the rest of their keys build that
component's own config class. [data] also names a pairing, and the keys of [data] that are
not core keys build the pairing's config.
"""
from __future__ import annotations

import dataclasses
import difflib
import tomllib
from pathlib import Path
from typing import Any, Literal

from ganzoo._typed import FieldError, build_dataclass, to_plain
from ganzoo.components import KINDS
from ganzoo.errors import RecipeError
from ganzoo.registry import Registry

Precision = Literal["fp32", "bf16-mixed", "fp16-mixed"]


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """How long and where to train, and how often to log and save.

    Steps count training steps (one batch through every optimiser of the method).
    """

    name: str = "run"
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    n_epochs: int = 100  # epochs at the initial learning rate
    n_epochs_decay: int = 100  # epochs of linear decay to zero afterwards
    epoch_count: int = 1  # number of the first epoch (the reference's --epoch_count)
    max_steps: int = 0  # stop after this many steps; 0 means run all epochs
    save_every: int = 5000  # checkpoint every N steps (and always at the end); 0 = only at the end
    keep_last: int = 3  # checkpoints kept on disk
    log_every: int = 100  # scalars to TensorBoard every N steps
    image_every: int = 1000  # image grids every N steps; 0 = never
    precision: Precision = "fp32"
    nonfinite: Literal["stop", "skip"] = "stop"  # a NaN/Inf loss or gradient: stop, or skip the step
    channels_last: bool = False  # NHWC memory format for the networks (see docs/benchmarks.md)
    compile: bool = False  # torch.compile the networks (see docs/benchmarks.md)

    def __post_init__(self) -> None:
        for key in ("n_epochs", "n_epochs_decay", "max_steps", "save_every", "image_every"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        for key in ("log_every", "keep_last", "epoch_count"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.n_epochs + self.n_epochs_decay == 0 and self.max_steps == 0:
            raise ValueError("n_epochs + n_epochs_decay is 0: nothing to train")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they are batched. ``pairing`` names a registered pairing."""

    root: str
    pairing: str = "unaligned"
    batch_size: int = 1
    num_workers: int = 2
    channels_a: int = 3
    channels_b: int = 3
    max_dataset_size: int = 0  # 0 means use every image
    serial_batches: bool = False  # take images in order instead of shuffling
    bad_images: Literal["error", "skip"] = "error"  # unreadable files: stop naming the file, or skip and count

    def __post_init__(self) -> None:
        for key in ("batch_size", "channels_a", "channels_b"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        for key in ("num_workers", "max_dataset_size"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Geometry of the training crops, as the reference's --preprocess options."""

    preprocess: Literal["resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"] = (
        "resize_and_crop"
    )
    load_size: int = 286
    crop_size: int = 256
    flip: bool = True

    def __post_init__(self) -> None:
        if self.crop_size < 1 or self.load_size < 1:
            raise ValueError("load_size and crop_size must be >= 1")
        if "crop" in self.preprocess and self.preprocess != "crop" and self.crop_size > self.load_size:
            raise ValueError(f"crop_size {self.crop_size} is larger than load_size {self.load_size}")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam settings and the learning-rate policy shared by every optimiser of a method."""

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_policy: Literal["linear", "step", "plateau", "cosine"] = "linear"
    lr_decay_iters: int = 50  # epochs between x0.1 decays for lr_policy "step"

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("beta1 and beta2 must be in [0, 1)")
        if self.lr_decay_iters < 1:
            raise ValueError(f"lr_decay_iters must be >= 1, got {self.lr_decay_iters}")


@dataclasses.dataclass(frozen=True)
class Component:
    """A registered component chosen by a recipe section: its name and its typed config."""

    name: str
    config: Any


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A whole validated recipe. ``source`` names where it came from, for messages."""

    run: RunConfig
    data: DataConfig
    augment: AugmentConfig
    optim: OptimConfig
    pairing: Component
    method: Component
    generator: Component
    discriminator: Component
    loss: Component
    source: str = "<recipe>"


CORE_SECTIONS = {"run": RunConfig, "data": DataConfig, "augment": AugmentConfig, "optim": OptimConfig}
COMPONENT_SECTIONS = ("method", "generator", "discriminator", "loss")
SECTIONS = (*CORE_SECTIONS, *COMPONENT_SECTIONS)


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file; a missing file or a TOML syntax error is a RecipeError."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"{path}: recipe file not found. Check the path (recipes live in recipes/).") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe: {exc}.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}. Fix the syntax at that line.") from None


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value``; the value is read as TOML, or as a bare string."""
    where = f'--set "{text}"'
    if "=" not in text:
        raise RecipeError(f"{where}: expected section.key=value, e.g. --set generator.ngf=32.")
    dotted, raw = text.split("=", 1)
    parts = dotted.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise RecipeError(f"{where}: expected section.key=value, e.g. --set run.max_steps=100.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return parts[0], parts[1], value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``section.key=value`` overrides applied."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in SECTIONS:
            raise RecipeError(f'--set "{text}": {_unknown_section(section)}')
        out.setdefault(section, {})[key] = value
    return out


def _unknown_section(section: str) -> str:
    close = difflib.get_close_matches(section, SECTIONS, n=1)
    hint = f'Did you mean "[{close[0]}]"? ' if close else ""
    return f"unknown section [{section}]. {hint}Valid sections: {', '.join(SECTIONS)}."


def load_recipe(raw: dict[str, Any], registry: Registry, source: str = "<recipe>") -> Recipe:
    """Validate a raw recipe dict into a :class:`Recipe`; every problem is a RecipeError."""
    for section, body in raw.items():
        if section not in SECTIONS:
            raise RecipeError(f"{source}: {_unknown_section(section)}")
        if not isinstance(body, dict):
            raise RecipeError(f"{source}: [{section}] must be a table, got {body!r}.")
    built: dict[str, Any] = {}
    data_raw = dict(raw.get("data", {}))
    core_data_keys = {f.name for f in dataclasses.fields(DataConfig)}
    pairing_raw = {k: data_raw.pop(k) for k in list(data_raw) if k not in core_data_keys}
    for section, cls in CORE_SECTIONS.items():
        body = data_raw if section == "data" else raw.get(section, {})
        built[section] = _build(cls, body, source, section)
    built["pairing"] = _component(
        registry, "pairing", built["data"].pairing, pairing_raw, source, "data", extra_keys=core_data_keys
    )
    for section in COMPONENT_SECTIONS:
        body = dict(raw.get(section, {}))
        if "name" not in body:
            names = ", ".join(registry.names(section)) or "(none)"
            raise RecipeError(
                f'{source} [{section}]: missing key "name": which {section} to use. '
                f"Available: {names} (ganzoo list {KINDS[section]})"
            )
        name = body.pop("name")
        if not isinstance(name, str):
            raise RecipeError(f"{source} [{section}] name: expected a string, got {name!r}.")
        built[section] = _component(registry, section, name, body, source, section)
    return Recipe(**built, source=source)


def _build(cls: type, body: dict[str, Any], source: str, section: str) -> Any:
    try:
        return build_dataclass(cls, body)
    except FieldError as exc:
        key = f" {exc.key}" if exc.key else ""
        raise RecipeError(f"{source} [{section}]{key}: {exc}") from None


def _component(
    registry: Registry, kind: str, name: str, body: dict[str, Any], source: str, section: str,
    extra_keys: set[str] | None = None,
) -> Component:
    if registry.entry(kind, name) is None:
        key = "pairing" if section == "data" else "name"
        raise RecipeError(f'{source} [{section}] {key}="{name}": {registry.unknown_message(kind, name)}')
    spec = registry.get(kind, name)
    try:
        cfg = build_dataclass(spec.config_cls, body)
    except FieldError as exc:
        key = f" {exc.key}" if exc.key else ""
        msg = str(exc)
        if extra_keys and msg.startswith("unknown key"):
            msg += f" Core [data] keys: {', '.join(sorted(extra_keys))}."
        raise RecipeError(f"{source} [{section}]{key} ({kind} \"{name}\"): {msg}") from None
    return Component(name, cfg)


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The fully resolved recipe (every default filled in) as a TOML-ready dict."""
    out: dict[str, Any] = {section: to_plain(getattr(recipe, section)) for section in CORE_SECTIONS}
    out["data"].update(to_plain(recipe.pairing.config))
    for section in COMPONENT_SECTIONS:
        comp = getattr(recipe, section)
        out[section] = {"name": comp.name, **to_plain(comp.config)}
    return out


def dump_toml(data: dict[str, Any]) -> str:
    """Write a two-level dict of scalars and lists as TOML."""
    import tomli_w

    return tomli_w.dumps(data)
