"""Recipes: a TOML file (plus ``--set`` overrides) validated once into frozen dataclasses.

Past this module only typed objects flow. Core sections ([run], [data], [augment], [optim])
map onto the dataclasses below. [method] names a registered method, whose MethodSpec declares
the component sections the recipe must have (CycleGAN and pix2pix: [generator],
[discriminator], [loss]; other methods their own, of any kind); each names a registered
component of its kind and the rest of its keys build that component's config class. [data]
also names a pairing, and the keys of [data] that are not core keys build the pairing's config.
"""
from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

from ganzoo._names import did_you_mean
from ganzoo._typed import FieldError, build_dataclass, to_plain
from ganzoo.errors import RecipeError

if TYPE_CHECKING:
    from ganzoo.registry import Registry

Precision = Literal["fp32", "bf16-mixed", "fp16-mixed"]
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
MAX_IMAGE_SIDE = 16384  # training crops and load sizes; larger images are translated in tiles
MAX_RECIPE_BYTES = 1 << 20


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
        if not _PLAIN_NAME.fullmatch(self.name) or self.name in (".", ".."):
            raise ValueError(f"name {self.name!r} must be a plain name (letters, digits, . _ -): it names runs/<name>")
        if not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {self.seed}")
        for key in ("n_epochs", "n_epochs_decay", "epoch_count"):
            if getattr(self, key) > 1_000_000:
                raise ValueError(f"{key} must be at most 1000000, got {getattr(self, key)}")
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
        for key, most in (("batch_size", 65536), ("num_workers", 256), ("channels_a", 64), ("channels_b", 64)):
            if getattr(self, key) > most:
                raise ValueError(f"{key} must be at most {most}, got {getattr(self, key)}")


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
        for key in ("load_size", "crop_size"):
            if not 1 <= getattr(self, key) <= MAX_IMAGE_SIDE:
                raise ValueError(f"{key} must be in [1, {MAX_IMAGE_SIDE}], got {getattr(self, key)}")
        if "crop" in self.preprocess and self.preprocess != "crop" and self.crop_size > self.load_size:
            raise ValueError(f"crop_size {self.crop_size} is larger than load_size {self.load_size}")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Adam settings and the learning-rate policy shared by every optimiser of a method."""

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    # linear, step, plateau, cosine: per epoch as the reference; linear_steps: per training step
    lr_policy: Literal["linear", "step", "plateau", "cosine", "linear_steps"] = "linear"
    lr_decay_iters: int = 50  # epochs between x0.1 decays for lr_policy "step"
    warmup_steps: int = 0  # linear_steps: ramp from lr / warmup_steps up to lr over this many steps
    decay_start_step: int = 0  # linear_steps: the rate stays constant until this step ...
    decay_end_step: int = 0  # ... then falls linearly to 0 at this step (0: the run's last step)
    ema_decay: float = 0.0  # EMA of the generators' weights per step (e.g. 0.999); 0 = off
    ema_start_step: int = 0  # the EMA follows the weights until this step, then averages

    def __post_init__(self) -> None:
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("beta1 and beta2 must be in [0, 1)")
        if self.lr_decay_iters < 1:
            raise ValueError(f"lr_decay_iters must be >= 1, got {self.lr_decay_iters}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1) (0 turns the EMA off), got {self.ema_decay}")
        for key in ("warmup_steps", "decay_start_step", "decay_end_step", "ema_start_step"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0, got {getattr(self, key)}")
        step_keys = [k for k in ("warmup_steps", "decay_start_step", "decay_end_step") if getattr(self, k)]
        if self.lr_policy != "linear_steps" and step_keys:
            raise ValueError(f'{step_keys[0]} needs lr_policy = "linear_steps" (got "{self.lr_policy}")')
        if self.decay_end_step and self.decay_end_step <= self.decay_start_step:
            raise ValueError(f"decay_end_step {self.decay_end_step} must come after decay_start_step "
                             f"{self.decay_start_step}")


EVAL_METRICS = ("fid", "kid", "psnr", "ssim", "l1")
LOWER_IS_BETTER = {"fid": True, "kid": True, "l1": True, "psnr": False, "ssim": False}


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation during training, on a validation split that is never the test split.

    ``select`` names the metric whose best value picks ``checkpoints/best.safetensors``
    (FID, KID and L1 lower, PSNR and SSIM higher is better); empty keeps no best checkpoint.
    """

    every: int = 0  # steps between evaluations; 0 = never
    metrics: list[str] = dataclasses.field(default_factory=lambda: ["fid", "kid"])
    images: int = 50  # at most this many validation inputs per evaluation
    split: str = "val"  # the folders valA/valB (or val/ for aligned pairs) of [data] root
    # > 0: instead of `split`, hold out this many train images (unpaired: this many A and B each),
    # chosen by [run] seed and never trained on, for data without a val split
    holdout: int = 0
    direction: Literal["AtoB", "BtoA"] = "AtoB"
    select: str = "fid"
    # the end-of-run report on the test split (metrics that do not apply are left out with a note)
    report: list[str] = dataclasses.field(default_factory=lambda: ["psnr", "ssim", "l1"])

    @property
    def validation_split(self) -> str:
        """The name the scores are logged under: ``holdout`` or the split's."""
        return "holdout" if self.holdout else self.split

    def __post_init__(self) -> None:
        if any(m not in EVAL_METRICS for m in self.report):
            raise ValueError(f"report must list some of {', '.join(EVAL_METRICS)}, got {list(self.report)}")
        if self.holdout < 0 or self.holdout == 1:
            raise ValueError(f"holdout must be 0 (use the split's folders) or at least 2 images, got {self.holdout}")
        if self.every < 0 or self.images < 2:
            raise ValueError(f"every must be >= 0 and images >= 2, got every={self.every}, images={self.images}")
        unknown = [m for m in self.metrics if m not in EVAL_METRICS]
        if unknown or not self.metrics:
            raise ValueError(f"metrics must be some of {', '.join(EVAL_METRICS)}, got {list(self.metrics)}")
        if self.split == "test":
            raise ValueError('split "test" is kept for the final report: evaluate during training on "val"')
        if self.select and self.select not in self.metrics:
            raise ValueError(f'select "{self.select}" must be one of the metrics {list(self.metrics)} (or "")')


@dataclasses.dataclass(frozen=True)
class Component:
    """A registered component chosen by a recipe section: its kind, name and typed config."""

    name: str
    config: Any
    kind: str = ""


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A whole validated recipe. ``source`` names where it came from, for messages.

    ``sections`` holds the method's component sections (name -> Component), in the order its
    MethodSpec declares them; ``recipe.generator`` is short for ``recipe.sections["generator"]``.
    """

    run: RunConfig
    data: DataConfig
    augment: AugmentConfig
    optim: OptimConfig
    pairing: Component
    method: Component
    sections: Mapping[str, Component] = dataclasses.field(default_factory=dict)
    eval: EvalConfig = dataclasses.field(default_factory=EvalConfig)
    source: str = "<recipe>"

    def __getattr__(self, name: str) -> Component:
        sections = self.__dict__.get("sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"the recipe's method has no [{name}] section (it has: {', '.join(sections)})")

    def section_names(self) -> tuple[str, ...]:
        return ("method", *self.sections)


CORE_SECTIONS = {"run": RunConfig, "data": DataConfig, "augment": AugmentConfig, "optim": OptimConfig,
                 "eval": EvalConfig}
DEFAULT_METHOD_SECTIONS = ("generator", "discriminator", "loss")  # CycleGAN's and pix2pix's
MAX_TABLE_DEPTH = 4  # sections hold scalars, lists and small tables: deeper nesting is an error


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a recipe file; a missing file or a TOML syntax error is a RecipeError."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_RECIPE_BYTES:
            raise RecipeError(f"{path}: {path.stat().st_size} bytes, not a recipe (recipes are small TOML files, "
                              f"at most {MAX_RECIPE_BYTES} bytes). Check the path.")
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


def apply_overrides(raw: dict[str, Any], overrides: list[str], registry: Registry | None = None) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``section.key=value`` overrides applied.

    A section the recipe does not have must be one its method declares (or a core one).
    """
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for text in overrides:
        section, key, value = parse_override(text)
        if section not in out:
            valid = _valid_sections(out, registry)
            if section not in valid:
                raise RecipeError(f'--set "{text}": {_unknown_section(section, valid)}')
        out.setdefault(section, {})[key] = value
    return out


def _valid_sections(raw: Mapping[str, Any], registry: Registry | None) -> tuple[str, ...]:
    """Core sections, [method] and the sections of the recipe's method (if it is known)."""
    name = (raw.get("method") or {}).get("name") if isinstance(raw.get("method"), dict) else None
    entry = registry.entry("method", name) if registry is not None and isinstance(name, str) else None
    sections = tuple(entry.spec.sections) if entry is not None else DEFAULT_METHOD_SECTIONS
    return (*CORE_SECTIONS, "method", *sections)


def _unknown_section(section: str, valid: tuple[str, ...]) -> str:
    hint = did_you_mean(section, valid, form='"[{}]"')
    return f"unknown section [{section}]. {hint}Valid sections: {', '.join(valid)}."


def _check_values(node: Any, where: str, depth: int = 0) -> None:
    """No NaN or infinite float anywhere, and no deeply nested tables."""
    if depth > MAX_TABLE_DEPTH:
        raise RecipeError(f"{where}: nested more than {MAX_TABLE_DEPTH} levels deep. Recipes hold flat sections.")
    if isinstance(node, float) and not math.isfinite(node):
        raise RecipeError(f"{where}: {node} is not a finite number. Use a finite value.")
    if isinstance(node, dict):
        for k, v in node.items():
            _check_values(v, f"{where}.{k}" if depth else f"{where} [{k}]", depth + 1)
    elif isinstance(node, list):
        for v in node:
            _check_values(v, where, depth + 1)


def load_recipe(raw: dict[str, Any], registry: Registry, source: str = "<recipe>") -> Recipe:
    """Validate a raw recipe dict into a :class:`Recipe`; every problem is a RecipeError.

    ``[method] name`` is read first: its MethodSpec says which component sections the recipe
    has, and each of those is validated against the kind the method declares for it.
    """
    _check_values(raw, source)
    method_raw = raw.get("method", {})
    if not isinstance(method_raw, dict):
        raise RecipeError(f"{source}: [method] must be a table, got {method_raw!r}.")
    method_name = _component_name(registry, "method", "method", method_raw, source)
    spec = registry.method(method_name)
    valid = (*CORE_SECTIONS, "method", *spec.sections)
    for section, body in raw.items():
        if section not in valid:
            problem = _unknown_section(section, valid)
            raise RecipeError(f'{source}: {problem} (the sections of method "{method_name}")')
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
    built["method"] = _component(registry, "method", method_name, _without_name(method_raw), source, "method")
    sections = {}
    for section, kind in spec.sections.items():
        body = dict(raw.get(section, {}))
        name = _component_name(registry, kind, section, body, source)
        sections[section] = _component(registry, kind, name, _without_name(body), source, section)
    return Recipe(**built, sections=sections, source=source)


def _without_name(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "name"}


def _component_name(registry: Registry, kind: str, section: str, body: Mapping[str, Any], source: str) -> str:
    if "name" not in body:
        names = ", ".join(registry.names(kind)) or "(none)"
        plural = registry.kinds[kind].plural
        what = kind.replace("_", " ")
        raise RecipeError(
            f'{source} [{section}]: missing key "name": which {what} to use. '
            f"Available: {names} (ganzoo list {plural})"
        )
    name = body["name"]
    if not isinstance(name, str):
        raise RecipeError(f"{source} [{section}] name: expected a string, got {name!r}.")
    if registry.entry(kind, name) is None:
        raise RecipeError(f'{source} [{section}] name="{name}": {registry.unknown_message(kind, name)}')
    return name


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
    return Component(name, cfg, kind)


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    """The fully resolved recipe (every default filled in) as a TOML-ready dict."""
    out: dict[str, Any] = {section: to_plain(getattr(recipe, section)) for section in CORE_SECTIONS}
    out["data"].update(to_plain(recipe.pairing.config))
    for section, comp in {"method": recipe.method, **recipe.sections}.items():
        out[section] = {"name": comp.name, **to_plain(comp.config)}
    return out


def dump_toml(data: dict[str, Any]) -> str:
    """Write a two-level dict of scalars and lists as TOML."""
    import tomli_w

    return tomli_w.dumps(data)
