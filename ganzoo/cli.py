"""The ``ganzoo`` command line: run, translate, eval, list, plugins, data.

User errors (GanzooError) and the usage errors click catches (bad option values, unknown
options) are printed as one ``error: ...`` message without a traceback and exit with code 2;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

from pathlib import Path

import click

from ganzoo.commands.evaluate import eval_command
from ganzoo.commands.export import export_command
from ganzoo.commands.translate import translate_command
from ganzoo.errors import GanzooError, RecipeError


def _registry(keep_going: bool = False):
    """The plugin manager and the registry. A broken plugin is a PluginError naming it and the
    fix, unless ``keep_going``: then the others load and ``pm.failures`` lists the broken ones."""
    from ganzoo.plugins import get_plugin_manager
    from ganzoo.registry import Registry

    pm = get_plugin_manager(keep_going=keep_going)
    return pm, Registry(pm)


class UserError(click.ClickException):
    """A GanzooError on its way out: click prints ``error: <message>`` and exits with 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {printable(self.format_message())}", err=True, file=file)


def printable(text: str) -> str:
    """``text`` with control characters (but newlines and tabs) escaped: a file name holding
    ESC sequences must not rewrite the user's terminal."""
    return "".join(c if c in "\n\t" or (c.isprintable() and c not in "\x7f") else repr(c)[1:-1] for c in text)


class _UsageError(click.UsageError):
    """A usage error caught by click (bad option value, unknown option...) in the same one-line
    ``error: ...`` form as a UserError, with click's "Try '... --help'" hint on that line."""

    def __init__(self, message: str, ctx: click.Context | None, command_path: str) -> None:
        super().__init__(message, ctx)
        self.command_path = command_path

    def show(self, file=None) -> None:
        helps = ["--help"]  # what this CLI's context_settings give every command
        if self.ctx is not None:
            command = self.ctx.command
            helps = command.get_help_option_names(self.ctx) if command.get_help_option(self.ctx) else []
        hint = f" Try '{self.command_path} {max(helps, key=len)}' for help." if helps else ""
        click.echo(f"error: {self.command_path}: {self.format_message()}{hint}", err=True, file=file)


def _one_line(exc: click.UsageError, ctx: click.Context) -> click.UsageError:
    """``exc`` as a _UsageError; ``ctx`` is the group's context, for errors click raises without one."""
    if isinstance(exc, (_UsageError, click.exceptions.NoArgsIsHelpError)):
        return exc  # already converted by a nested group; bare `ganzoo` shows the help
    if exc.ctx is not None:
        path = exc.ctx.command_path
    else:  # e.g. "Option '--set' requires an argument": raised while parsing the subcommand
        path = " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))
    return _UsageError(exc.format_message(), exc.ctx, path)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except GanzooError as exc:
            raise UserError(str(exc)) from None
        except click.UsageError as exc:
            raise _one_line(exc, ctx) from None
        except SystemExit as exc:  # sys.exit in plugin code: never a silent status (main() covers the script)
            from ganzoo.plugins import foreign_exit_message

            message = foreign_exit_message(exc)
            if message is None:
                raise
            raise UserError(message) from None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:  # the group's own options, e.g. `ganzoo --bogus`
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            raise _one_line(exc, ctx) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ganzoo")
def cli() -> None:
    """ganzoo: image-to-image translation GANs as plugins (CycleGAN, pix2pix, yours)."""


@cli.command()
@click.argument("recipe", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a recipe key, e.g. --set generator.ngf=32 (repeatable).")
@click.option("--steps", type=click.IntRange(min=1), help="Stop after N training steps (sets run.max_steps).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Run directory (default: runs/<run.name>).")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path),
              help="Continue the run in this directory from its latest checkpoint.")
@click.option("--init-from", type=click.Path(path_type=Path), metavar="DIR",
              help="Start the networks from the reference's checkpoint folder DIR (e.g. checkpoints/horse2zebra: "
                   "latest_net_G_A.pth ...), with fresh optimisers and schedule, as its --continue_train. "
                   "Set [run] epoch_count for its --epoch_count.")
@click.option("--init-epoch", metavar="latest|N",
              help="Which files of --init-from: latest (default), N for N_net_*.pth (the reference's --epoch) "
                   "or iter_N.")
@click.option("--dry-run", is_flag=True,
              help="Validate and build everything, print parameter counts, FLOPs per step and a peak-memory "
                   "estimate, and exit without training.")
def run(recipe: Path | None, overrides: tuple[str, ...], steps: int | None, out: Path | None,
        resume: Path | None, init_from: Path | None, init_epoch: str | None, dry_run: bool) -> None:
    """Train from a RECIPE (a TOML file in recipes/), or --resume a run."""
    from ganzoo.runner import check_init_options, run_training

    if recipe is None and resume is None:
        raise RecipeError("ganzoo run: give a RECIPE file (e.g. recipes/quickstart.toml) or --resume RUN_DIR.")
    check_init_options(init_from, init_epoch, resume)
    pm, registry = _registry()
    if dry_run:
        from ganzoo.config import apply_overrides, load_recipe, read_toml
        from ganzoo.dryrun import dry_run_report

        if recipe is None:
            raise RecipeError("ganzoo run --dry-run: give a RECIPE file.")
        raw = apply_overrides(read_toml(recipe), list(overrides), registry)
        cfg = load_recipe(raw, registry, source=str(recipe))
        if init_from is not None:
            click.echo(_check_init_files(cfg, registry, init_from, init_epoch))
        click.echo(dry_run_report(cfg, registry))
        return
    run_training(pm, registry, recipe=recipe, overrides=list(overrides), steps=steps, out=out, resume=resume,
                 init_from=init_from, init_epoch=init_epoch)


def _check_init_files(cfg, registry, init_from: Path, init_epoch: str | None) -> str:
    """--dry-run --init-from: load the files into the recipe's networks built on the CPU."""
    import torch

    from ganzoo import init_from as init_files
    from ganzoo.build import build_method

    folder, epoch = init_files.locate(init_from, init_epoch)
    method = build_method(cfg, registry, torch.device("cpu"), place_networks=False)
    files = init_files.find_files(init_from, folder, epoch, registry.method(cfg.method.name).reference_files,
                                 cfg.method.name)
    init_files.apply(files, method, cfg)
    return f"--init-from: {', '.join(f.name for f in files.paths.values())} fit the recipe's networks"


@cli.group(cls=_Group)
def models() -> None:
    """The reference's published pretrained models."""


@models.command(name="list")
def models_list() -> None:
    """Names accepted by `ganzoo models download`."""
    from ganzoo.pretrained import catalogue

    _, registry = _registry()
    for name, info in sorted(catalogue(registry).items()):
        click.echo(f"{name:<28} {info.summary}")


@models.command(name="download")
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("checkpoints"),
              show_default=True, help="Folder that receives ROOT/NAME_pretrained/latest_net_G.pth (the reference's layout).")
def models_download(name: str, root: Path) -> None:
    """Download a pretrained model of the reference (resumable, verified)."""
    from ganzoo.pretrained import download_model

    _, registry = _registry()
    click.echo(f"model ready: {download_model(name, root, registry)}")


@cli.command(name="list")
@click.argument("kind")
def list_(kind: str) -> None:
    """List registered components of KIND (generators, discriminators, losses, pairings, methods,
    or a kind a plugin defines) with a one-line summary."""
    from ganzoo._names import unknown_name

    _, registry = _registry()
    found = registry.kind_of(kind)
    if found is None:
        plurals = [k.plural for k in registry.kinds.values()]
        raise click.BadParameter(f"{unknown_name('kind', kind, plurals)}.", param_hint="'KIND'")
    entries = registry.list(found)
    width = max((len(e.spec.name) for e in entries), default=0)
    for e in entries:
        click.echo(f"{e.spec.name:<{width}}  {e.spec.summary}  [{e.plugin}]")


@cli.command()
def plugins() -> None:
    """List plugins: name, distribution, version and what each registers, and the plugins that
    failed, each with the cause and the fix (then the exit status is 2)."""
    from ganzoo.errors import PluginError

    pm, registry = _registry(keep_going=True)
    provided: dict[str, list[str]] = {}
    for kind in registry.kinds:
        for e in registry.list(kind):
            provided.setdefault(e.plugin, []).append(f"{kind} {e.spec.name}")
    failed: dict[str, list] = {}
    for failure in pm.failures:
        failed.setdefault(failure.plugin, []).append(failure)
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        click.echo(f"{name} ({pm.origin(name)})")
        click.echo(f"    hooks: {', '.join(hooks) or '(none)'}")
        if provided.get(name):
            click.echo(f"    registers: {', '.join(provided[name])}")
        for failure in failed.pop(name, []):
            click.echo(f"    FAILED ({failure.stage}): {failure.message}")
    for name, failures in failed.items():  # not loaded at all
        click.echo(f"{name} ({failures[0].origin}): not loaded")
        for failure in failures:
            click.echo(f"    FAILED ({failure.stage}): {failure.message}")
    if pm.failures:
        names = list(dict.fromkeys(f.plugin for f in pm.failures))
        raise PluginError(f"{len(names)} plugin(s) failed: {', '.join(names)}. The others work; the cause "
                          "and the fix of each failure are listed above.")


@cli.group(cls=_Group)
def data() -> None:
    """Datasets: list the known ones and download (or render) them."""


@data.command(name="list")
def data_list() -> None:
    """Names accepted by `ganzoo data download`."""
    from ganzoo.data.download import DATASETS

    for name, info in sorted(DATASETS.items()):
        click.echo(f"{name:<28} {getattr(info, 'summary', '')}")


@data.command()
@click.argument("name")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("data"), show_default=True,
              help="Folder that receives data/NAME.")
def download(name: str, root: Path) -> None:
    """Download a dataset of the reference (or render the built-in 'glyphs') into ROOT/NAME."""
    from ganzoo.data.download import download_dataset

    path = download_dataset(name, root)
    click.echo(f"dataset ready: {path}")


for _command in (translate_command, export_command, eval_command):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point.

    A SystemExit raised by code outside ganzoo and click (a plugin's network, method or build
    calling ``sys.exit``) does not end ganzoo with the plugin's status, 0 after a failure
    included: it is one ``error:`` line naming the plugin's module, and status 2.
    """
    from ganzoo.plugins import foreign_exit_message

    try:
        cli(prog_name="ganzoo")
    except SystemExit as exc:
        message = foreign_exit_message(exc)
        if message is None:
            raise
        click.echo(f"error: {message}", err=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
