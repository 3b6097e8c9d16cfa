"""The adaptation objective and its schedules: DINO + iBOT + KoLeo (+ the anchor to the original backbone).

Losses come from ``lightly`` (MIT): ``DINOLoss`` (Caron et al. 2021: cross-entropy between the centred,
sharpened teacher distribution of each global crop and the student distribution of every other crop; the
centre is a moving average of the teacher outputs), ``IBOTPatchLoss`` (Zhou et al. 2022, as in DINOv2: the
same cross-entropy on the patch tokens the student saw masked) and ``KoLeoLoss`` (Sablayrolles et al. 2019:
spreads the student's class tokens within a batch). Weights as DINOv2: DINO 1, iBOT 1, KoLeo 0.1.

The anchor (``--anchor w``): ``w * (1 - cos(student, original))`` between the student's pooled vector and the
frozen original backbone's on the same unmasked global crops, so the features can move towards the new images
but not forget what they knew (the reported collapse of naive continuation: kNN 80 % -> 10 %).

Schedules are pure functions of the step (so a resumed run continues them exactly): teacher temperature
0.04 -> 0.07 linearly over the first 30 % of the steps; teacher momentum on a cosine from 0.996 to 1; backbone
lr 0 during the head warm-up, then a linear warm-up (10 % of the remaining steps) and a cosine decay to 1 %;
head lr on a cosine from its peak to 1 % over the whole run.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = [
    "KOLEO_WEIGHT",
    "MOMENTUM_START",
    "Objective",
    "lr_factor",
    "momentum_at",
    "teacher_temp_at",
]

TEACHER_TEMP = (0.04, 0.07)
TEACHER_TEMP_WARMUP_FRAC = 0.3
MOMENTUM_START = 0.996
KOLEO_WEIGHT = 0.1
IBOT_WEIGHT = 1.0
_LR_WARMUP_FRAC = 0.1
_LR_END = 0.01


def teacher_temp_at(step: int, total: int) -> float:
    """Teacher temperature at ``step``: 0.04 -> 0.07 over the first 30 % of the steps.

    Example:
        >>> teacher_temp_at(0, 100), round(teacher_temp_at(100, 100), 2)
        (0.04, 0.07)
    """
    warm = max(1, round(total * TEACHER_TEMP_WARMUP_FRAC))
    a, b = TEACHER_TEMP
    return a + (b - a) * min(1.0, step / warm)


def momentum_at(step: int, total: int) -> float:
    """Teacher EMA momentum: cosine from 0.996 at step 0 to 1 at the last step.

    Example:
        >>> momentum_at(0, 10), momentum_at(10, 10)
        (0.996, 1.0)
    """
    return 1.0 - (1.0 - MOMENTUM_START) * (math.cos(math.pi * min(step, total) / max(1, total)) + 1) / 2


def lr_factor(step: int, total: int, head_warmup: int, backbone: bool) -> float:
    """Factor of a group's peak lr at ``step`` (see the module docstring).

    Example:
        >>> lr_factor(5, 100, 10, True), lr_factor(0, 100, 10, False)
        (0.0, 1.0)
    """
    if not backbone:
        return _cosine(step, total)
    if step < head_warmup:
        return 0.0
    rest = max(1, total - head_warmup)
    warm = max(1, round(rest * _LR_WARMUP_FRAC))
    k = step - head_warmup
    return (k + 1) / warm if k < warm else _cosine(k - warm, rest - warm)


def _cosine(k: int, n: int) -> float:
    return _LR_END + (1 - _LR_END) * (math.cos(math.pi * min(k, n) / max(1, n)) + 1) / 2


class Objective(nn.Module):
    """The losses with their state (the teacher centres travel in the checkpoints).

    Args:
        out_dim: Prototypes K of the DINO head.
        anchor: Weight of the anchor term (0: off).
    """

    def __init__(self, out_dim: int, anchor: float) -> None:
        super().__init__()
        from lightly.loss import DINOLoss, IBOTPatchLoss, KoLeoLoss

        self.dino = DINOLoss(out_dim, warmup_teacher_temp=TEACHER_TEMP[0], teacher_temp=TEACHER_TEMP[1])
        self.ibot = IBOTPatchLoss(out_dim, teacher_temp=TEACHER_TEMP[1])
        self.koleo = KoLeoLoss()
        self.anchor = anchor

    def forward(self, out: dict[str, Any], temp: float, warming_up: bool) -> dict[str, torch.Tensor]:
        """Every term and their sum ``loss`` from the student/teacher outputs of one step.

        ``out`` holds: ``t_global`` [2 x (B, K)], ``s_views`` [(2 + N) x (B, K)], ``s_cls`` (2B, D) student
        pooled vectors of the global crops, and optionally ``t_patch`` / ``s_patch`` (M, K) head outputs of the
        masked patches with ``mask`` (2B, h, w), and ``o_cls`` (m, D) original vectors of the unmasked crops with
        ``s_cls_unmasked`` (m, D).
        """
        terms = {"dino": self.dino(out["t_global"], out["s_views"], teacher_temp=temp)}
        if out.get("t_patch") is not None:
            terms["ibot"] = IBOT_WEIGHT * self.ibot(out["t_patch"], out["s_patch"], out["mask"], teacher_temp=temp)
        if not warming_up:  # these terms only move the backbone, which is frozen during the head warm-up
            terms["koleo"] = KOLEO_WEIGHT * sum(self.koleo(c) for c in out["s_cls"].chunk(2))
            if self.anchor > 0 and out.get("o_cls") is not None and len(out["o_cls"]):
                cos = nn.functional.cosine_similarity(out["s_cls_unmasked"].float(), out["o_cls"].float(), dim=-1)
                terms["anchor"] = self.anchor * (1 - cos).mean()
        terms["loss"] = sum(terms.values())  # type: ignore[assignment]
        return terms
