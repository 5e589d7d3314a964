"""The patch sampler F of CUT: picks feature vectors at random positions, projects, normalises.

As the reference's ``PatchSampleF``: per feature layer ``l`` a two-layer MLP ``mlp_l``
(Linear(C_l, nc), ReLU, Linear(nc, nc)) with the same state_dict keys (``mlp_0.0.weight``,
...), then L2 normalisation. The reference creates the MLPs at its first forward, from the
features' channel counts; :class:`PatchSampler` does that too, or takes the channel counts
up front. Positions come from a ``torch.Generator`` the caller owns (seeded, saved in
checkpoints) or are passed in, so a step can be replayed with the reference's indices.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ganzoo import ComponentSpec
from ganzoo.layers import InitType, check_init, init_weights

def l2_normalize(x: Tensor) -> Tensor:
    """``x / (||x||_2 + 1e-7)`` along dim 1, the reference's ``Normalize(2)``.

    The norm's gradient at a zero row is taken as 0 (``torch.linalg.vector_norm``), where the
    reference's ``pow(2).sum().pow(0.5)`` gives NaN: a narrow MLP whose ReLUs are all off
    for one patch would otherwise poison F's update.
    """
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + 1e-7)


class PatchSampler(nn.Module):
    """Sample ``num_patches`` positions per feature map, the same for every image of the batch.

    For each feature map ``(B, C, H, W)``: positions are numbered row-major (``h * W + w``);
    ``num_patches`` of them (all, if fewer) are drawn without replacement; the vectors there
    become ``(B * P, C)`` rows (image-major), go through ``mlp_l`` when ``use_mlp`` and are
    L2-normalised. The query call passes the key call's ids back in.

    Args:
        channels: channel count of each feature map, to create the MLPs now; ``None``
            creates them at the first forward from the features it sees (as the reference).
        num_patches: positions per map when :meth:`forward` is not told (``--num_patches``).
        use_mlp: ``True`` is the reference's ``mlp_sample``, ``False`` its ``sample``
            (no parameters).
        nc: width of the MLPs (the reference's ``netF_nc``).
        init_type: weight initialisation of the MLPs, see :func:`ganzoo.layers.init_weights`.
        init_gain: its standard deviation or gain.

    Shape:
        - Input: a list of :math:`(B, C_l, H_l, W_l)` feature maps.
        - Output: a list of :math:`(B \\cdot P_l, nc)` (or :math:`(B \\cdot P_l, C_l)` without
          MLP) unit rows, :math:`P_l = \\min(num\\_patches, H_l W_l)`, and the list of
          position ids, each a LongTensor of length :math:`P_l`.

    Example:
        >>> f = PatchSampler([3, 16], nc=32)
        >>> g = torch.Generator().manual_seed(0)
        >>> feats = [torch.rand(2, 3, 8, 8), torch.rand(2, 16, 4, 4)]
        >>> out, ids = f(feats, num_patches=10, generator=g)
        >>> [tuple(o.shape) for o in out], [len(i) for i in ids]
        ([(20, 32), (20, 32)], [10, 10])
    """

    def __init__(
        self,
        channels: Sequence[int] | None = None,
        *,
        num_patches: int = 256,
        use_mlp: bool = True,
        nc: int = 256,
        init_type: InitType = "xavier",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if nc < 1:
            raise ValueError(f"nc must be >= 1, got {nc}")
        if num_patches < 1:
            raise ValueError(f"num_patches must be >= 1, got {num_patches}")
        check_init(init_type, init_gain)
        self.num_patches = num_patches
        self.use_mlp = use_mlp
        self.nc = nc
        self.init_type: InitType = init_type
        self.init_gain = init_gain
        self.channels: tuple[int, ...] | None = None
        if channels is not None and use_mlp:
            self.create_mlps(channels)

    @property
    def ready(self) -> bool:
        """Whether the sampler has all its parameters (always, without MLP)."""
        return not self.use_mlp or self.channels is not None

    def create_mlps(
        self, channels: Sequence[int], device: torch.device | str | None = None, *, initialise: bool = True
    ) -> None:
        """Create and initialise ``mlp_0`` ... ``mlp_{L-1}`` for feature maps of these channels.

        The MLPs are built on the CPU, moved to ``device``, then initialised, the order in
        which the reference draws its random numbers. ``initialise=False`` skips the last
        step, for weights that are about to be loaded.
        """
        if not self.use_mlp:
            raise ValueError("create_mlps: this PatchSampler has use_mlp=False (the reference's 'sample' mode).")
        if self.channels is not None:
            raise ValueError(f"create_mlps: the MLPs exist already, for channels {list(self.channels)}.")
        channels = tuple(int(c) for c in channels)
        if not channels or min(channels) < 1:
            raise ValueError(f"Expected a non-empty list of channel counts >= 1. Got {list(channels)}.")
        for i, c in enumerate(channels):
            mlp = nn.Sequential(nn.Linear(c, self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc))
            self.add_module(f"mlp_{i}", mlp.to(device) if device is not None else mlp)
        if initialise:
            init_weights(self, self.init_type, self.init_gain)
        self.channels = channels

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # A sampler still waiting for its first batch takes its MLPs' shapes from the saved
        # weights, so a reference ``*_net_F.pth`` loads into a fresh PatchSampler.
        if self.use_mlp and self.channels is None:
            channels, i = [], 0
            while (w := state_dict.get(f"{prefix}mlp_{i}.0.weight")) is not None and w.dim() == 2:
                channels.append(int(w.shape[1]))
                i += 1
            if channels:
                self.create_mlps(channels, initialise=False)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _check(self, feats: Sequence[Tensor], num_patches: int, patch_ids: Sequence[Tensor] | None) -> None:
        if not feats or any(f.dim() != 4 for f in feats):
            shapes = [tuple(f.shape) for f in feats]
            raise ValueError(f"Expected a non-empty list of (B, C, H, W) feature maps. Got shapes {shapes}.")
        if num_patches < 1:
            raise ValueError(f"num_patches must be >= 1, got {num_patches}")
        if self.use_mlp and self.channels is not None:
            got = tuple(f.shape[1] for f in feats)
            if got != self.channels:
                raise ValueError(
                    f"Expected feature maps with channels {list(self.channels)} (the MLPs were made for them). "
                    f"Got channels {list(got)}."
                )
        if patch_ids is not None and len(patch_ids) != len(feats):
            raise ValueError(f"Expected one patch id tensor per feature map ({len(feats)}). Got {len(patch_ids)}.")

    def forward(
        self,
        feats: Sequence[Tensor],
        num_patches: int | None = None,
        patch_ids: Sequence[Tensor] | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[list[Tensor], list[Tensor]]:
        """Sample, project and normalise each feature map; return the rows and the ids used.

        Args:
            feats: feature maps, e.g. :meth:`CUTResnetGenerator.encode` output.
            num_patches: positions per map (all of them if the map has fewer); default:
                the ``num_patches`` it was built with.
            patch_ids: ids to use instead of drawing (one 1-D integer tensor per map).
            generator: where new ids come from (``torch.randperm``); ``None`` uses torch's
                global generator. Each map draws one permutation, in order.
        """
        num_patches = self.num_patches if num_patches is None else num_patches
        self._check(feats, num_patches, patch_ids)
        if self.use_mlp and self.channels is None:
            self.create_mlps([f.shape[1] for f in feats], device=feats[0].device)
        out, used = [], []
        for i, feat in enumerate(feats):
            n_pos = feat.shape[2] * feat.shape[3]
            rows = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (B, H*W, C), positions row-major
            if patch_ids is None:
                device = generator.device if generator is not None else "cpu"
                ids = torch.randperm(n_pos, generator=generator, device=device)[: min(num_patches, n_pos)]
            else:
                ids = torch.as_tensor(patch_ids[i])
                bad = ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.numel() == 0
                if bad or ids.min() < 0 or ids.max() >= n_pos:
                    raise ValueError(
                        f"patch_ids[{i}]: expected a non-empty 1-D integer tensor of positions in [0, {n_pos}) "
                        f"for a {feat.shape[2]}x{feat.shape[3]} map. Got {ids!r}."
                    )
            ids = ids.to(device=feat.device, dtype=torch.long)
            x = rows[:, ids, :].flatten(0, 1)  # (B * P, C), image-major
            if self.use_mlp:
                x = getattr(self, f"mlp_{i}")(x)
            out.append(l2_normalize(x))
            used.append(ids)
        return out, used


@dataclasses.dataclass(frozen=True)
class PatchSamplerConfig:
    """Options of the ``sample`` patch sampler (the reference's ``--netF sample``: no MLP).

    Args:
        num_patches: positions sampled per layer and image (``--num_patches``).
    """

    num_patches: int = 256

    def __post_init__(self) -> None:
        if self.num_patches < 1:
            raise ValueError(f"num_patches must be >= 1, got {self.num_patches}")


@dataclasses.dataclass(frozen=True)
class MLPPatchSamplerConfig(PatchSamplerConfig):
    """Options of the ``mlp`` patch sampler (``--netF mlp_sample``, CUT's F), at its defaults.

    Args:
        num_patches: positions sampled per layer and image (``--num_patches``).
        nc: width of the MLPs (``--netF_nc``).
        init_type: weight initialisation of the MLPs (``--init_type``).
        init_gain: its standard deviation or gain (``--init_gain``).
    """

    nc: int = 256
    init_type: InitType = "xavier"
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.nc < 1:
            raise ValueError(f"nc must be >= 1, got {self.nc}")
        check_init(self.init_type, self.init_gain)


def build_patch_sampler(cfg: PatchSamplerConfig, *, channels: Sequence[int] | None = None) -> PatchSampler:
    """F for feature maps of ``channels`` (``None``: created at its first forward); with MLPs
    for an :class:`MLPPatchSamplerConfig`, without for a plain :class:`PatchSamplerConfig`."""
    if isinstance(cfg, MLPPatchSamplerConfig):
        return PatchSampler(channels, num_patches=cfg.num_patches, nc=cfg.nc, init_type=cfg.init_type,
                            init_gain=cfg.init_gain)
    return PatchSampler(channels, num_patches=cfg.num_patches, use_mlp=False)


PATCH_SAMPLER_KIND = "patch_sampler"

SAMPLERS: list[ComponentSpec] = [
    ComponentSpec("mlp", MLPPatchSamplerConfig, build_patch_sampler,
                  "random patches, a 2-layer MLP per layer, L2-normalised (CUT's F, mlp_sample)",
                  kind=PATCH_SAMPLER_KIND),
    ComponentSpec("sample", PatchSamplerConfig, build_patch_sampler,
                  "random patches, L2-normalised, no parameters (the reference's --netF sample)",
                  kind=PATCH_SAMPLER_KIND),
]
