"""Export a generator to ONNX, TorchScript, a torch.export program or safetensors, checked.

Each artifact is written to a temporary file beside its target, loaded back with the runtime
that will serve it (onnxruntime, ``torch.jit.load``, ``torch.export.load``, safetensors into a
copy of the network), and run next to the eager network (eval mode) on the same random
inputs at two sizes. Only when the largest difference is within tolerance is the file renamed
into place, so a file at the target path has always passed its check. Batch, height and width
stay dynamic; height and width must be multiples of the network's stride (``multiple``).
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import difflib
import importlib
import math
import os
import tempfile
import time
import unicodedata
import warnings
from pathlib import Path
from typing import Callable, Iterable, Mapping

import torch
from torch import Tensor, nn

from ganzoo.errors import GanzooError

# format -> file suffix
FORMATS: dict[str, str] = {
    "onnx": ".onnx",
    "torchscript": ".pt",
    "exported-program": ".pt2",
    "safetensors": ".safetensors",
}
# format -> the optional packages it needs (all in the "export" extra)
_EXTRAS: dict[str, tuple[str, ...]] = {"onnx": ("onnx", "onnxscript", "onnxruntime")}
INPUT_NAME = "image"  # the ONNX graph's input and output names
OUTPUT_NAME = "translated"


class ExportError(GanzooError):
    """An export was refused, could not be traced, or its check found a difference."""


@dataclasses.dataclass(frozen=True)
class SizeCheck:
    """One check of an export: the input shape and the largest absolute difference to eager."""

    shape: tuple[int, int, int, int]
    max_abs_diff: float


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What :func:`export_generator` wrote and how closely it matches the eager network.

    Args:
        format: one of :data:`FORMATS`.
        path: the written file.
        checks: one :class:`SizeCheck` per checked input shape.
        atol: the tolerance the checks passed.
        opset: the ONNX opset of the file (None for other formats).
        seconds: wall time of export and check together.
        nbytes: size of the file.
    """

    format: str
    path: Path
    checks: tuple[SizeCheck, ...]
    atol: float
    opset: int | None
    seconds: float
    nbytes: int

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)

    def summary(self) -> str:
        """One line: format, file, size, opset, the difference at each checked shape, tolerance, time."""
        opset = f", opset {self.opset}" if self.opset is not None else ""
        diffs = ", ".join(f"{c.max_abs_diff:.1e} at {c.shape}" for c in self.checks)
        return (f"{self.format} {self.path} ({self.nbytes / 1e6:.1f} MB{opset}): max |diff| vs eager "
                f"{diffs} (tolerance {self.atol:.0e}), {self.seconds:.1f} s")


def check_file_name(name: str) -> str:
    """Return ``name`` if it is a plain file name that stays in its folder; else raise ExportError.

    Names may come from untrusted checkpoints (network names), so path separators, ``..``,
    control and format characters, a leading dot (hidden, and our temporary files' prefix)
    and names over 255 bytes are refused.
    """
    problem = None
    if not name:
        problem = "it is empty"
    elif "/" in name or "\\" in name:
        problem = "it contains a path separator"
    elif ".." in name:
        problem = "it contains '..'"
    elif any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name):
        problem = "it contains a control character"
    elif name.startswith("."):
        problem = "it starts with '.'"
    elif len(name.encode("utf-8", "surrogatepass")) > 255:
        problem = "it is longer than 255 bytes"
    if problem:
        raise ExportError(
            f"output file name {name!r}: refused, {problem}. Use a plain name inside the output folder, "
            "such as 'G_A.onnx'."
        )
    return name


def output_path(folder: str | Path, stem: str, fmt: str) -> Path:
    """``folder / (stem + suffix of fmt)``, the name checked with :func:`check_file_name`."""
    _check_format(fmt)
    return Path(folder) / check_file_name(stem + FORMATS[fmt])


def require_extra(fmt: str) -> None:
    """Raise one ExportError naming the extra when a package that ``fmt`` needs is missing."""
    missing = []
    for module in _EXTRAS.get(fmt, ()):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ExportError(
            f"format '{fmt}' needs the optional packages {', '.join(_EXTRAS[fmt])} "
            f"(missing: {', '.join(missing)}). Install them with: pip install \"ganzoo[export]\""
        )


def default_check_sizes(multiple: int) -> tuple[tuple[int, int, int], ...]:
    """Two (batch, height, width) sizes, different in every dimension, valid for ``multiple``."""
    h1 = _round_up(64, multiple)
    h2 = max(_round_up(96, multiple), h1 + multiple)
    w2 = max(_round_up(128, multiple), h2 + multiple)
    return ((1, h1, h1), (2, h2, w2))


def export_generator(
    net: nn.Module,
    fmt: str,
    path: str | Path,
    *,
    channels: int,
    multiple: int,
    opset: int | None = None,
    check_sizes: Iterable[tuple[int, int, int]] | None = None,
    atol: float = 1e-4,
    seed: int = 0,
    metadata: Mapping[str, str] | None = None,
) -> ExportReport:
    """Export ``net`` (image in, image out) to ``path`` in format ``fmt`` and check it.

    Args:
        net: the generator; exported from the CPU in eval mode (its own mode and device are
            left as they were).
        fmt: ``onnx``, ``torchscript``, ``exported-program`` or ``safetensors`` (weights only).
        path: the file to write; its folder must exist and its name pass :func:`check_file_name`.
            An existing file is replaced only by a checked one.
        channels: input channels.
        multiple: heights and widths must be multiples of this (the network's stride).
        opset: ONNX opset (default: the torch exporter's); only for ``onnx``.
        check_sizes: (batch, height, width) inputs to check, default :func:`default_check_sizes`.
        atol: the largest absolute difference to the eager output that passes (fp32).
        seed: seed of the random check inputs (uniform in [-1, 1]).
        metadata: string pairs stored in the file (``safetensors`` and ``onnx``).

    Returns:
        An :class:`ExportReport`.

    Raises:
        ExportError: unknown format, refused name, missing optional packages, a network that
            cannot be traced, or a check above ``atol``; no file is left behind in any case.

    Example:
        >>> export_generator(net, "onnx", out / "G_A.onnx", channels=3, multiple=4).summary()
        'onnx out/G_A.onnx (45.6 MB, opset 20): max |diff| vs eager 2.1e-06 at (1, 3, 64, 64), ...'
    """
    t0 = time.perf_counter()
    _check_format(fmt)
    path = Path(path)
    check_file_name(path.name)
    if not path.parent.is_dir():
        raise ExportError(f"{path.parent}: the output folder does not exist; create it first.")
    if opset is not None and fmt != "onnx":
        raise ExportError(f"opset {opset}: only the onnx format has an opset (got format '{fmt}').")
    if multiple < 1 or channels < 1:
        raise ExportError(f"Expected channels >= 1 and multiple >= 1. Got channels={channels}, multiple={multiple}.")
    require_extra(fmt)
    shapes = _check_shapes(check_sizes, channels, multiple)

    modes = {m: m.training for m in net.modules()}
    cpu_net = net if _device(net).type == "cpu" else copy.deepcopy(net).cpu()
    cpu_net.eval()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".partial" + FORMATS[fmt], dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        opset_used = _WRITERS[fmt](cpu_net, tmp, channels=channels, multiple=multiple, opset=opset,
                                   metadata=dict(metadata or {}))
        checks = _verify(fmt, cpu_net, tmp, shapes, seed=seed, atol=atol, target=path)
        _commit(tmp, path)
    except BaseException:  # also KeyboardInterrupt: never leave a half-written file
        tmp.unlink(missing_ok=True)
        raise
    finally:
        for module, training in modes.items():
            module.training = training
    return ExportReport(fmt, path, checks, atol, opset_used, time.perf_counter() - t0, path.stat().st_size)


# ---- checks -----------------------------------------------------------------------------------
def _verify(fmt: str, net: nn.Module, file: Path, shapes: list[tuple[int, int, int, int]], *,
            seed: int, atol: float, target: Path) -> tuple[SizeCheck, ...]:
    run = _load_runner(fmt, file, net)
    gen = torch.Generator().manual_seed(seed)
    checks = []
    for shape in shapes:
        x = torch.rand(shape, generator=gen) * 2 - 1
        with torch.inference_mode():
            expected = net(x).float()
            got = torch.as_tensor(run(x)).float()
        if got.shape != expected.shape:
            raise ExportError(
                f"{target}: the exported {fmt} model returned shape {tuple(got.shape)} for input {shape}, the eager "
                f"network {tuple(expected.shape)}; nothing was written. Its sizes may have been fixed at export: "
                "try another format."
            )
        diff = (got - expected).abs().max().item()
        if not diff <= atol:  # also catches NaN
            raise ExportError(
                f"{target}: the exported {fmt} model differs from the eager network by {diff:.3g} (max absolute "
                f"difference) at input shape {shape}, above the tolerance {atol:g}; nothing was written. "
                + ("Try another --opset or format. " if fmt == "onnx" else "Try another format. ")
                + "If the network is meant to be exactly reproducible, please report this with the generator name."
            )
        checks.append(SizeCheck(shape, diff))
    return tuple(checks)


def _load_runner(fmt: str, file: Path, net: nn.Module) -> Callable[[Tensor], Tensor]:
    """Load the written artifact the way its users will and return a function image -> image."""
    if fmt == "onnx":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(file), options, providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0])
    if fmt == "torchscript":
        with _quiet_jit():
            return torch.jit.load(str(file), map_location="cpu")
    if fmt == "exported-program":
        return torch.export.load(str(file)).module()
    from safetensors.torch import load_file

    twin = copy.deepcopy(net)
    twin.load_state_dict(load_file(str(file)), strict=True)
    return twin.eval()


def _check_shapes(sizes, channels: int, multiple: int) -> list[tuple[int, int, int, int]]:
    sizes = default_check_sizes(multiple) if sizes is None else tuple(tuple(s) for s in sizes)
    if not sizes:
        raise ExportError("check_sizes is empty: at least one (batch, height, width) is needed.")
    for b, h, w in sizes:
        if b < 1 or h < multiple or w < multiple or h % multiple or w % multiple:
            raise ExportError(
                f"check size (batch, height, width) = {(b, h, w)}: height and width must be positive multiples of "
                f"{multiple} (the network's stride) and batch >= 1."
            )
    return [(b, channels, h, w) for b, h, w in sizes]


# ---- writers ------------------------------------------------------------------------------------
def _example(channels: int, multiple: int) -> Tensor:
    # Batch 2 and at least 2 strides per side: torch.export specialises sizes 0 and 1, and
    # different heights and widths keep it from assuming they are equal.
    h = multiple * max(2, math.ceil(48 / multiple))
    w = multiple * max(3, math.ceil(80 / multiple))
    return torch.rand(2, channels, h, w, generator=torch.Generator().manual_seed(1)) * 2 - 1


def _dynamic_shapes(multiple: int) -> tuple[dict[int, object]]:
    from torch.export import Dim

    batch = Dim("batch", min=1)
    if multiple == 1:
        return ({0: batch, 2: Dim("height", min=1), 3: Dim("width", min=1)},)
    # height = multiple * k expresses the stride constraint, so shape checks such as
    # `x.shape[2] % 4` in forward() are proven rather than specialised on
    return ({0: batch, 2: multiple * Dim("height_strides", min=1), 3: multiple * Dim("width_strides", min=1)},)


def _traced(fmt: str, fn: Callable[[], object]) -> object:
    """Run an exporter; a network it cannot trace is the user's problem to read about, in one line."""
    try:
        with _size_oblivious():
            return fn()
    except Exception as exc:  # the exporters raise many types; keep the chain for debugging
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"the {fmt} exporter could not trace this network ({type(exc).__name__}: {first}). "
            "Try another format (torchscript or exported-program or safetensors)."
        ) from exc


def _write_onnx(net, file: Path, *, channels, multiple, opset, metadata) -> int:
    x = _example(channels, multiple)
    program = _traced("onnx", lambda: torch.onnx.export(
        net, (x,), dynamo=True, dynamic_shapes=_dynamic_shapes(multiple), opset_version=opset,
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], verbose=False, optimize=True,
    ))
    program.model.metadata_props.update(metadata)
    # one self-contained file: generators are far below the 2 GB protobuf limit
    program.save(str(file), external_data=False)
    return int(program.model.opset_imports[""])


def _write_torchscript(net, file: Path, *, channels, multiple, opset, metadata) -> None:
    x = _example(channels, multiple)
    with _quiet_jit():
        # tracing records the operations of one run; the check at two other sizes proves that
        # nothing size-dependent was frozen into the graph
        traced = _traced("torchscript", lambda: torch.jit.trace(net, (x,), check_trace=False))
        torch.jit.save(traced, str(file))


def _write_exported_program(net, file: Path, *, channels, multiple, opset, metadata) -> None:
    x = _example(channels, multiple)
    program = _traced("exported-program",
                      lambda: torch.export.export(net, (x,), dynamic_shapes=_dynamic_shapes(multiple)))
    torch.export.save(program, str(file))


def _write_safetensors(net, file: Path, *, channels, multiple, opset, metadata) -> None:
    from safetensors.torch import save_file

    # clone: safetensors refuses tensors that share storage
    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    save_file(state, str(file), metadata={"format": "pt", **metadata})


_WRITERS = {
    "onnx": _write_onnx,
    "torchscript": _write_torchscript,
    "exported-program": _write_exported_program,
    "safetensors": _write_safetensors,
}


# ---- helpers ------------------------------------------------------------------------------------
class _quiet_jit(warnings.catch_warnings):
    """TorchScript is deprecated in favour of torch.export, but C++ runtimes still load it; the
    tracer's warnings about Python-side shape checks are what the two-size check verifies."""

    def __enter__(self):
        super().__enter__()
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=r".*torch\.jit\..* is deprecated", category=FutureWarning)
        return self


def _size_oblivious():
    """Keep torch.export from assuming feature maps larger than 1x1.

    A U-Net's innermost level is 1x1 when the input is exactly one stride (128 px for
    unet_128); by default the tracer adds a guard "size != 1" there (a contiguity check),
    and the exported program then refuses the network's native size. Size-oblivious
    reasoning treats 1 like any other size; the checks at two sizes confirm the result.
    """
    try:
        from torch.fx.experimental import _config
    except ImportError:  # private module: without it the guard stays and the check reports it
        return contextlib.nullcontext()
    if not hasattr(_config, "backed_size_oblivious"):
        return contextlib.nullcontext()
    return _config.patch(backed_size_oblivious=True)


def _commit(tmp: Path, path: Path) -> None:
    """fsync the checked file, rename it over ``path`` and make the rename durable."""
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # some filesystems cannot fsync a folder; the rename still happened
        pass
    finally:
        os.close(dir_fd)


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        close = difflib.get_close_matches(fmt, list(FORMATS), n=1)
        hint = f' Did you mean "{close[0]}"?' if close else ""
        raise ExportError(f"format {fmt!r}: unknown export format.{hint} Available: {', '.join(FORMATS)}.")


def _device(net: nn.Module) -> torch.device:
    for tensor in (*net.parameters(), *net.buffers()):
        return tensor.device
    return torch.device("cpu")


def _round_up(n: int, multiple: int) -> int:
    return math.ceil(n / multiple) * multiple
