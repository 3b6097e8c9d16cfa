"""FSDP for large ViTs in ``adapt``: which strategy a job uses, how its networks are sharded, and their whole
state for the checks and the checkpoints.

``--parallel auto`` (the default) shards with FSDP (torch's ``fully_shard``, FSDP2) when several processes
adapt a ViT of at least :data:`FSDP_MIN_PARAMS` parameters (DINOv2 ViT-L/14 and ViT-g/14), and replicates it with
DDP otherwise; ``ddp`` or ``fsdp`` force one (one process uses neither). Under FSDP:

- the student and the EMA teacher are sharded the same way (each transformer block, the backbone and the head
  are units), so the EMA update runs on each process's own shards; the frozen original (the anchor) is
  sharded by blocks too;
- at every check, every process takes part in gathering the whole state (student, teacher, optimiser keyed by
  parameter name) on rank 0, in CPU memory (:func:`dinoscope.distributed.full_state`); rank 0 runs the
  checks on a plain full copy of the teacher (one extra teacher in rank 0's memory), keeps the best one and
  writes ``checkpoints/last.pt`` as a full state dict: a checkpoint is one file, exact, and independent of how
  the parameters were sharded;
- ``--resume`` loads that file in every process and scatters it into the shards
  (:func:`dinoscope.distributed.load_full_state`); a run resumes with the strategy it started with (recorded
  in its settings).

Example:
    >>> choose_strategy("auto", n_params=22_000_000, is_vit=True, world=2)
    'ddp'
    >>> choose_strategy("auto", n_params=304_000_000, is_vit=True, world=4)
    'fsdp'
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from torch import nn

if TYPE_CHECKING:
    from dinoscope.adapt.model import AdaptBackbone
    from dinoscope.adapt.nets import Nets
    from dinoscope.adapt.session import Session
    from dinoscope.distributed import Distributed

__all__ = ["FSDP_MIN_PARAMS", "blocks_of", "choose_strategy", "ema_sharded", "gather", "restore_sharded", "shard_nets"]

#: ViTs from this size on are sharded by ``--parallel auto`` (ViT-L/14 has 304 M parameters, ViT-B/14 86 M).
FSDP_MIN_PARAMS = 250_000_000


def choose_strategy(option: str, *, n_params: int, is_vit: bool, world: int) -> str:
    """``single`` (one process), ``ddp`` or ``fsdp`` for ``--parallel option``."""
    if world <= 1:
        return "single"
    if option == "auto":
        return "fsdp" if is_vit and n_params >= FSDP_MIN_PARAMS else "ddp"
    return option


def blocks_of(backbone: AdaptBackbone) -> list[nn.Module]:
    """The transformer blocks of a ViT backbone (timm ``blocks``, HF DINOv2 ``encoder.layer``; [] for CNNs)."""
    module = backbone.module
    blocks = getattr(module, "blocks", None)
    if blocks is None:
        blocks = getattr(getattr(module, "encoder", None), "layer", None)
    return list(blocks) if blocks is not None else []


def shard_nets(nets: Nets, dist: Distributed) -> nn.Module:
    """Shard the student, teacher and original in place (see the module); returns the student to train.

    Units follow the calls of a step: blocks inside the backbone, the backbone and the head (each called on
    its own), then the whole network.
    """
    # the backbones return views (the class token, the patch tokens) that no step modifies in place
    warnings.filterwarnings("ignore", message=r"FSDP2-wrapped module .* returned a view tensor")
    for net in (nets.student, nets.teacher):
        dist.shard(net, [*blocks_of(net.backbone), net.backbone, net.head])
    if nets.original is not None:
        dist.shard(nets.original, blocks_of(nets.original))
    return nets.student


def ema_sharded(student: nn.Module, teacher: nn.Module, momentum: float) -> None:
    """teacher = m teacher + (1 - m) student, on each process's own shards (after resharding both: a network
    that ran forward only may keep its whole parameters until told)."""
    import torch
    from torch.distributed.fsdp import FSDPModule

    for net in (student, teacher):
        for module in net.modules():
            if isinstance(module, FSDPModule):
                module.reshard()
    with torch.no_grad():
        for t, s in zip(teacher.parameters(), student.parameters(), strict=True):
            local_t = t.to_local() if hasattr(t, "to_local") else t
            local_t.mul_(momentum).add_(s.to_local() if hasattr(s, "to_local") else s, alpha=1.0 - momentum)


def gather(s: Session) -> dict[str, Any]:
    """The whole state of the sharded networks on rank 0 ({} elsewhere; every process must call it), and the
    check copy of the teacher brought up to date."""
    from dinoscope.distributed import full_state

    student, optimiser = full_state(s.nets.student, s.optimiser)
    teacher, _ = full_state(s.nets.teacher)
    if s.check_net is not None and teacher:
        s.check_net.load_state_dict(teacher)
    return {"student": student, "teacher": teacher, "optimizer": optimiser} if student else {}


def restore_sharded(s: Session, state: dict[str, Any]) -> None:
    """Scatter a checkpoint's whole state into the shards (and the check copy of the teacher)."""
    from dinoscope.distributed import load_full_state

    if s.check_net is not None:  # first: scattering turns the dict's tensors into shards in place
        s.check_net.load_state_dict(state["teacher"])
    load_full_state(s.nets.student, state["student"], s.optimiser, state["optimizer"])
    load_full_state(s.nets.teacher, state["teacher"])
