"""``ganzoo run RECIPE --init-from DIR``: train on from the reference's ``{epoch}_net_{NAME}.pth`` files.

The reference's ``--continue_train --epoch E --epoch_count K`` loads ``E_net_G_A.pth`` and the
other networks' files, then trains with fresh optimisers and a schedule that starts at epoch
K. Here each network of the recipe's method is loaded, strictly, from the file of its own
name; which files a method's reference saves is the method plugin's to say
(``MethodSpec.reference_files``: G_A, G_B, D_A, D_B for CycleGAN, G and D for pix2pix);
optimisers and schedule start fresh and ``[run] epoch_count`` plays ``--epoch_count``. Files are read with :mod:`ganzoo.reference_checkpoints`'s safe
loader and its fixes for old saves. :func:`locate` checks the folder before anything is
built; :func:`find_files` and :func:`apply` run after the method is built and before the
run directory is created, so a bad file leaves nothing behind.
"""
from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any, Mapping

from torch import Tensor

from ganzoo.config import Recipe, dump_toml
from ganzoo.errors import CheckpointError, GanzooError
from ganzoo.reference_checkpoints import fit_reference_state, read_reference_state_dict
from ganzoo.inference import state_differences
from ganzoo.reference import read_reference_layout

RECORD_FILE = "init_from.toml"
_EPOCH = r"latest|\d+|iter_\d+"  # the reference's --epoch values, and --load_iter's iter_N
# A prefix or one file of a set: checkpoints/h2z/latest, .../200_net_, .../200_net_G_A.pth
_PREFIX = re.compile(rf"(?P<epoch>{_EPOCH})(?:_net(?:_\w+?)?(?:\.pth)?)?")
_FILE = re.compile(rf"(?P<epoch>{_EPOCH})_net_(?P<name>\w+)\.pth")


@dataclasses.dataclass(frozen=True)
class InitFiles:
    """The reference files a run starts from: one per network of the method.

    Args:
        origin: ``--init-from`` as given (for messages and the record).
        epoch: the reference's epoch label, ``latest`` or a number.
        paths: network name -> file.
        sha256: network name -> digest of the file.
    """

    origin: str
    epoch: str
    paths: dict[str, Path]
    sha256: dict[str, str]


def locate(init_from: str | Path, epoch: str | None) -> tuple[Path, str]:
    """The checkpoint folder and epoch of ``--init-from`` (and ``--init-epoch``).

    ``init_from`` is the reference's checkpoint folder (``checkpoints/<name>``), or a prefix
    in it that names the epoch (``checkpoints/<name>/200``), or one file of the set
    (``checkpoints/<name>/200_net_G_A.pth``). ``epoch`` defaults to ``latest``.
    """
    path = Path(init_from)
    if epoch is not None and not re.fullmatch(_EPOCH, epoch):
        raise GanzooError(
            f"--init-epoch {epoch}: not an epoch of the reference. Use latest (the default, "
            "latest_net_*.pth) or a number N (N_net_*.pth), as the reference's --epoch."
        )
    if path.is_dir():
        return path, epoch or "latest"
    named = _PREFIX.fullmatch(path.name)
    if named is None or not path.parent.is_dir():
        if path.exists():
            problem = "not a folder"
        elif named is not None:  # a prefix in a folder that does not exist
            problem = f"{path.parent}: no such folder"
        else:
            problem = "no such folder"
        raise CheckpointError(
            f"--init-from {init_from}: {problem}. Give the reference's checkpoint folder (its "
            "--checkpoints_dir/--name, e.g. checkpoints/horse2zebra), optionally with the epoch as a prefix "
            "(checkpoints/horse2zebra/200 for 200_net_*.pth)."
        )
    if epoch is not None and epoch != named["epoch"]:
        raise GanzooError(
            f"--init-from {init_from} --init-epoch {epoch}: two different epochs ({named['epoch']} and "
            f"{epoch}). Give the folder {path.parent} with --init-epoch, or the prefix alone."
        )
    return path.parent, named["epoch"]


def find_files(init_from: str | Path, folder: Path, epoch: str, files: Mapping[str, str], method: str) -> InitFiles:
    """The file of every network the method's reference saves (``files``: network name ->
    name template with ``{epoch}``), with their digests.

    Raises:
        CheckpointError: the method has no reference files, or a file is missing (the
            message lists what the folder holds).
    """
    if not files:
        raise CheckpointError(f"--init-from {init_from}: method {method!r} declares no reference checkpoint files, "
                              "so it cannot start from them. Start from its own runs with --resume instead.")
    names = list(files)
    paths = {name: folder / template.format(epoch=epoch) for name, template in files.items()}
    absent = [n for n, p in paths.items() if not p.is_file()]
    if absent:
        raise CheckpointError(_missing_message(init_from, folder, epoch, names, absent, method))
    digests = {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in paths.items()}
    return InitFiles(str(init_from), epoch, paths, digests)


def _missing_message(init_from, folder: Path, epoch: str, names: list[str], absent: list[str], method: str) -> str:
    found: dict[str, set[str]] = {}  # epoch -> network names present
    for p in folder.iterdir():
        m = _FILE.fullmatch(p.name)
        if m:
            found.setdefault(m["epoch"], set()).add(m["name"])
    wanted = ", ".join(f"{epoch}_net_{n}.pth" for n in absent)
    need = ", ".join(names)
    if not found:
        listing = "it holds no *_net_*.pth files"
    else:
        files = sorted(f"{e}_net_{n}.pth" for e, ns in found.items() for n in ns)
        more = f" and {len(files) - 12} more" if len(files) > 12 else ""
        listing = f"found: {', '.join(files[:12])}{more}"
    complete = sorted((e for e, ns in found.items() if set(names) <= ns), key=lambda e: (e != "latest", e))
    if complete:
        fix = f"Choose a complete epoch with --init-epoch ({', '.join(complete)})."
    elif found:
        fix = (f"Method {method!r} needs the networks {need}; check [method] name (the reference's --model) "
               "or copy the missing files there.")
    else:
        fix = "Give the folder the reference saved into (--checkpoints_dir/--name, e.g. checkpoints/horse2zebra)."
    return f"--init-from {init_from}: no {wanted} in {folder} ({listing}). {fix}"


def apply(files: InitFiles, method, recipe: Recipe) -> None:
    """Load each network's file into ``method.networks`` strictly, one file in memory at a time.

    Raises:
        CheckpointError: a file is not a plain state_dict (see
            :func:`ganzoo.reference_checkpoints.read_reference_state_dict`; nothing in it runs), or does not
            fit its network: the message names the keys and shapes and the recipe key to set.
    """
    lazy: dict[str, Any] | None = None
    for name, path in files.paths.items():
        raw = read_reference_state_dict(path)
        net = method.networks.get(name)
        if net is None:  # built from the first batch: checked now against a meta build, loaded when created
            lazy = _lazy_networks(method, recipe) if lazy is None else lazy
            if name in lazy:
                _fitted(raw, lazy[name], name, path, method, recipe)
            method.ctx.restore({name: raw}, source=str(path))
            continue
        net.load_state_dict(_fitted(raw, net, name, path, method, recipe), strict=True)


def _fitted(raw: Mapping[str, Tensor], net, name: str, path: Path, method, recipe: Recipe) -> dict[str, Tensor]:
    """``raw`` made loadable into ``net``, or a CheckpointError naming every difference."""
    state = fit_reference_state(raw, net)
    problems = state_differences(net.state_dict(), state, network="the recipe's network")
    if problems:
        section = method.ctx.sections.get(name)
        raise CheckpointError(
            f"{path}: does not fit network {name} as {recipe.source} builds it "
            f"({_built_as(name, section, recipe)}): {problems}. {_hint(method, section, raw, recipe, str(path))}"
        )
    return state


def _lazy_networks(method, recipe: Recipe) -> dict[str, Any]:
    """The networks a method creates from its first batch, built on the meta device (shapes
    only) with a batch of the recipe's size; empty if the method cannot run on meta (those are
    then checked when they are created)."""
    from ganzoo.dryrun import meta_method

    try:
        meta, _ = meta_method(recipe, method.ctx.registry)
    except Exception:  # noqa: BLE001 - a method that cannot run on meta is checked at its first step
        return {}
    return {k: v for k, v in meta.networks.items() if k not in method.networks}


def _built_as(name: str, section: str | None, recipe: Recipe) -> str:
    if section is None:
        return f"network {name}"
    comp = recipe.sections[section]
    keys = {k: v for k, v in dataclasses.asdict(comp.config).items() if k in ("ngf", "ndf", "norm", "n_layers",
                                                                                "n_blocks", "num_downs", "dropout")}
    return f"[{section}] name = {_shown(comp.name)}" + "".join(f", {k} = {_shown(v)}" for k, v in keys.items())


def _hint(method, section: str | None, state: Mapping[str, Tensor], recipe: Recipe, source: str) -> str:
    """What the file holds (as its plugin reads it), and the ``--set`` overrides that would build that."""
    generic = ("Train on with the architecture the reference run used: set the [generator] and [discriminator] "
               "name, widths, depth and norm and [data] channels_a/channels_b as it had them.")
    if section is None:
        return generic
    comp = recipe.sections[section]
    try:
        held = read_reference_layout(method.ctx.registry.pm, state, comp.kind, source)
    except CheckpointError:
        held = None
    if held is None:
        return generic
    current = dataclasses.asdict(comp.config)
    batch = {"batch", "syncbatch"}  # the same weights
    changes = {"name": held.name} if held.name != comp.name else {}
    changes.update({k: v for k, v in held.settings.items()
                    if current.get(k) != v and not {current.get(k), v} <= batch})
    described = ", ".join(f"{k} = {_shown(v)}" for k, v in held.settings.items())
    if not changes:
        return (f"The file holds {held.name} ({described}) as the recipe does, so the channels probably differ: "
                "set [data] channels_a/channels_b as the reference's --input_nc/--output_nc.")
    sets = " ".join(f"--set {section}.{k}={_toml(v)}" for k, v in changes.items())
    return f"The file holds {held.name} ({described}): set that in [{section}] of the recipe, or add {sets}."


def _shown(value: Any) -> str:
    """A value as a recipe line writes it."""
    return f'"{value}"' if isinstance(value, str) else _toml(value)


def _toml(value: Any) -> str:
    """A --set value (strings need no quotes there)."""
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def record(files: InitFiles, recipe: Recipe) -> bytes:
    """The ``init_from.toml`` a run started from reference files keeps (resume leaves it alone)."""
    header = (
        "# Written by `ganzoo run --init-from`: the networks of this run started from these files of\n"
        "# the reference implementation, with fresh optimisers and schedule (its --continue_train).\n\n"
    )
    body = {
        "init_from": {"origin": files.origin, "epoch": files.epoch, "epoch_count": recipe.run.epoch_count},
        "files": {name: {"path": str(path.resolve()), "sha256": files.sha256[name]}
                  for name, path in files.paths.items()},
    }
    return (header + dump_toml(body)).encode()


def summary(files: InitFiles, recipe: Recipe) -> str:
    """One console line: which files, and what starts fresh."""
    folder = next(iter(files.paths.values())).parent
    return (f"initialised {', '.join(files.paths)} from {folder}/{files.epoch}_net_*.pth; fresh optimisers, "
            f"schedule from epoch {recipe.run.epoch_count}")
