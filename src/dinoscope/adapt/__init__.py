"""``dinoscope adapt``: continued DINO self-distillation of a backbone on a team's own unlabelled images.

Modules: :mod:`~dinoscope.adapt.config` (option groups), :mod:`~dinoscope.adapt.augment` (multi-crop views),
:mod:`~dinoscope.adapt.model` (backbones, heads, lr groups, export), :mod:`~dinoscope.adapt.objective` (losses
and schedules), :mod:`~dinoscope.adapt.nets`, :mod:`~dinoscope.adapt.train` (the loop),
:mod:`~dinoscope.adapt.monitor` (kNN probe and collapse guard), :mod:`~dinoscope.adapt.checkpoint`,
:mod:`~dinoscope.adapt.sharding` (DDP or FSDP, the whole state of sharded networks),
:mod:`dinoscope.distributed` (DDP and FSDP, shared with `seg train`),
:mod:`~dinoscope.adapt.session` (a run from start to export).
Importing this package loads nothing heavy.
"""
