"""The student, the EMA teacher, the frozen original and the objective of one adaptation, built or resumed."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from dinoscope.adapt.model import AdaptBackbone, build_head, copy_frozen, freeze_norm_statistics
from dinoscope.adapt.objective import Objective

__all__ = ["Nets", "Student", "build_nets", "head_dim", "teacher_copy"]


def head_dim(device_type: str) -> int:
    """Prototypes K of the DINO head: 65,536 on GPUs (DINOv2's), 4,096 on CPUs (the head must stay cheap)."""
    return 65_536 if device_type == "cuda" else 4_096


class Student(nn.Module):
    """Backbone + DINO head (shared by the class token and the masked patches, as DINOv2's default)."""

    def __init__(self, backbone: AdaptBackbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(
        self, globals_: torch.Tensor, locals_: torch.Tensor | None, mask: torch.Tensor | None, frozen: bool
    ) -> dict[str, Any]:
        """Student outputs of one step (``frozen``: the backbone runs without gradients, head warm-up)."""
        with torch.no_grad() if frozen else nullcontext():
            cls, patches = self.backbone(globals_, mask)
            local_cls = self.backbone(locals_)[0] if locals_ is not None else None
        out = {"s_cls": cls, "s_global": self.head(cls), "s_local": None, "s_patch": None}
        if local_cls is not None:
            out["s_local"] = self.head(local_cls)
        if mask is not None and patches is not None and mask.any():
            out["s_patch"] = self.head(patches[mask.flatten(1)])
        return out


@dataclass
class Nets:
    """Everything with weights: the student (trained), teacher (EMA of the student), original (frozen, for the
    anchor; None without it) and the objective (teacher centres)."""

    student: Student
    teacher: Student
    original: AdaptBackbone | None
    objective: Objective

    def to(self, device: str) -> Nets:
        for net in (self.student, self.teacher, self.original, self.objective):
            if net is not None:
                net.to(device)
        return self

    def train_mode(self) -> None:
        self.student.train()
        freeze_norm_statistics(self.student)
        self.teacher.eval()
        if self.original is not None:
            self.original.eval()


def build_nets(backbone: AdaptBackbone, out_dim: int, anchor: float, seed: int) -> Nets:
    """Fresh heads (seeded) on ``backbone``; the teacher starts as a copy of the student."""
    torch.manual_seed(seed)
    head = build_head(backbone.embed_dim, out_dim)
    teacher_head = build_head(backbone.embed_dim, out_dim)  # weight-normed heads cannot be deep-copied
    teacher_head.load_state_dict(head.state_dict())
    for p in teacher_head.parameters():
        p.requires_grad_(False)
    original = copy_frozen(backbone) if anchor > 0 else None
    teacher = Student(copy_frozen(backbone), teacher_head)
    return Nets(Student(backbone, head), teacher, original, Objective(out_dim, anchor))


def teacher_copy(nets: Nets) -> Student:
    """A plain frozen copy of the teacher (backbone and head), e.g. for checks on one process under FSDP."""
    head = build_head(nets.teacher.backbone.embed_dim, nets.objective.dino.center.shape[-1])
    head.load_state_dict(nets.teacher.head.state_dict())
    for p in head.parameters():
        p.requires_grad_(False)
    return Student(copy_frozen(nets.teacher.backbone), head).to(next(nets.teacher.parameters()).device)
