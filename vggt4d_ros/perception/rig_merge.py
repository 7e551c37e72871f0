# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Merge the detections of a rig step's cameras into one detection per object (host, numpy).

Each camera's image is split into instances on its own (image connectivity needs one image);
where the cameras' views overlap, one object is then detected once per camera that sees it.
The tracker must get it once per step, or it starts a second track (a second id) beside the
first. Views are merged in view order: the instances of each camera are assigned to the
objects found so far by a globally optimal assignment (``linear_sum_assignment``) on the 3D
centroid distance, one instance per camera and object; a pair may merge when its centroids are
within ``gate_distance`` or one centroid lies inside the other's 3D box (an object seen from
two sides: each camera estimates the centre from its own visible faces). Two instances of one
camera are never merged (the camera already told them apart).

A merged detection: centre = inverse-variance mean of the cameras' centres (measurement noise
``measurement_noise`` x range, floor ``min_measurement_noise``, as the tracker weighs them),
range = the range whose noise is the merged one, size = the extent of the union of the
cameras' boxes, pixels = the sum, image box and view = those of its lowest view (the tracker
compares image boxes within one camera only).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from scipy.optimize import linear_sum_assignment

from vggt4d_ros.perception.config import TrackerConfig
from vggt4d_ros.perception.instances import FrameInstances
from vggt4d_ros.perception.instances import Instance

_NO_MATCH = 1e6


@dataclass
class _Object:
    """Instances of one object over the cameras merged so far: (frame, instance) pairs."""

    members: list[tuple[int, Instance]] = field(default_factory=list)
    centre: np.ndarray = field(default_factory=lambda: np.zeros(3))
    low: np.ndarray = field(default_factory=lambda: np.zeros(3))
    high: np.ndarray = field(default_factory=lambda: np.zeros(3))


def merge_views(frames: list[FrameInstances], config: TrackerConfig
                ) -> tuple[list[Instance], list[np.ndarray]]:
    """Merge the instances of one step's frames (one per camera, view order).

    Args:
        frames: the instances of each camera's frame (``Instance.view`` set).
        config: the tracker's gate and measurement noise.

    Returns:
        the merged instances (largest first, labels 1..M), and per frame a lookup [K_f + 1]
        int64 from the frame's labels to the merged labels (0 = none).

    """
    objects: list[_Object] = []
    for index, frame in enumerate(frames):
        matched = _assign(objects, frame.instances, config.gate_distance)
        for instance, target in zip(frame.instances, matched):
            if target < 0:
                objects.append(_Object())
                target = len(objects) - 1
            objects[target].members.append((index, instance))
            _fuse(objects[target], config)
    order = sorted(range(len(objects)),
                   key=lambda k: -sum(inst.pixels for _, inst in objects[k].members))
    merged = []
    lookups = [np.zeros(max((inst.label for inst in f.instances), default=0) + 1, np.int64)
               for f in frames]
    for label, k in enumerate(order, start=1):
        merged.append(_merged_instance(objects[k], label, config))
        for index, instance in objects[k].members:
            lookups[index][instance.label] = label
    return merged, lookups


def _assign(objects: list[_Object], instances: list[Instance], gate: float) -> list[int]:
    """Object index of each instance (-1: a new object), optimal over distances."""
    matched = [-1] * len(instances)
    if not objects or not instances:
        return matched
    centres = np.stack([obj.centre for obj in objects])
    low = np.stack([obj.low for obj in objects])
    high = np.stack([obj.high for obj in objects])
    inst_centres = np.stack([inst.centre for inst in instances])
    inst_low = inst_centres - np.stack([inst.size for inst in instances]) / 2
    inst_high = inst_centres + np.stack([inst.size for inst in instances]) / 2
    distance = np.linalg.norm(centres[:, None, :] - inst_centres[None, :, :], axis=2)
    inst_in_object = np.all((inst_centres[None] >= low[:, None])
                            & (inst_centres[None] <= high[:, None]), axis=2)
    object_in_inst = np.all((centres[:, None] >= inst_low[None])
                            & (centres[:, None] <= inst_high[None]), axis=2)
    allowed = (distance <= gate) | inst_in_object | object_in_inst
    rows, cols = linear_sum_assignment(np.where(allowed, distance, _NO_MATCH))
    for row, col in zip(rows, cols):
        if allowed[row, col]:
            matched[col] = int(row)
    return matched


def _sigma(instances: list[Instance], config: TrackerConfig) -> np.ndarray:
    """Measurement noise of each instance (as the tracker's)."""
    ranges = np.array([inst.range for inst in instances])
    return np.maximum(config.measurement_noise * ranges, config.min_measurement_noise)


def _fuse(obj: _Object, config: TrackerConfig) -> None:
    """Update an object's centre (inverse-variance mean) and box (union) from its members."""
    instances = [inst for _, inst in obj.members]
    weights = 1.0 / _sigma(instances, config) ** 2
    centres = np.stack([inst.centre for inst in instances])
    sizes = np.stack([inst.size for inst in instances])
    obj.centre = (weights[:, None] * centres).sum(axis=0) / weights.sum()
    obj.low = (centres - sizes / 2).min(axis=0)
    obj.high = (centres + sizes / 2).max(axis=0)


def _merged_instance(obj: _Object, label: int, config: TrackerConfig) -> Instance:
    """One detection from an object's members (see the module docstring)."""
    instances = [inst for _, inst in obj.members]
    first = instances[0]
    if len(instances) == 1:
        return replace(first, label=label)
    sigma = float(np.sum(1.0 / _sigma(instances, config) ** 2) ** -0.5)
    # The tracker's noise is measurement_noise x range: the range with the merged noise.
    merged_range = (sigma / config.measurement_noise if config.measurement_noise > 0
                    else min(inst.range for inst in instances))
    return Instance(label, sum(inst.pixels for inst in instances), first.box,
                    obj.centre.copy(), obj.high - obj.low, merged_range, first.view)
