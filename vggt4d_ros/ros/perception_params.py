# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Node parameters of the planner-output topics (``ros/perception_publishers.py``).

What is computed is set by the engine's ``perception.*`` parameters (the same for the node and
the replay tool); these say what the node publishes, how often and in which frame. Declared by
``ros/params.py`` with the node's other parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vggt4d_ros.config_fields import field_meta as _meta
from vggt4d_ros.runtime.parameters import field_specs
from vggt4d_ros.runtime.parameters import ParameterSpec


@dataclass(frozen=True)
class PerceptionTopicParams:
    """Node parameters of the planner-output topics (the computation: ``perception.*``)."""

    publish_dynamic_cloud: bool = field(default=True, metadata=_meta(
        'Publish ~/dynamic_cloud (PointCloud2 of the dynamic points of every processed frame, '
        'with object ids; needs perception.enabled and perception.points.enabled).'))
    publish_grids: bool = field(default=True, metadata=_meta(
        'Publish ~/static_grid (latched), ~/dynamic_grid and ~/combined_grid '
        '(nav_msgs/OccupancyGrid; needs perception.grid.enabled).'))
    publish_detections: bool = field(default=True, metadata=_meta(
        'Publish ~/detections (vision_msgs/Detection3DArray) and ~/obstacles '
        '(nav2_dynamic_msgs/ObstacleArray) per window (needs perception.tracker.enabled).'))
    publish_track_markers: bool = field(default=True, metadata=_meta(
        'Publish ~/track_markers (visualization_msgs/MarkerArray: box, velocity arrow, id).'))
    grid_period_s: float = field(default=0.5, metadata=_meta(
        'Minimum seconds (wall time) between two grid messages (0: after every window); a map '
        'reset publishes at once.', (0.0, 3600.0)))
    obstacle_frame: str = field(default='', metadata=_meta(
        'Frame of ~/dynamic_cloud, ~/detections, ~/obstacles and ~/track_markers (looked up '
        'in TF at each stamp: tf2_ros, or the built-in fallback). Empty: the world frame (map '
        'or odom).'))


def perception_topic_specs() -> list[ParameterSpec]:
    """List the parameters of :class:`PerceptionTopicParams` (declared by the node)."""
    return list(field_specs(PerceptionTopicParams))


def read_perception_topic_params(node) -> PerceptionTopicParams:
    """Read and validate the planner-output topic parameters.

    Raises:
        ValueError: a parameter is not allowed (the message names it).

    """
    values = {spec.name: node.get_parameter(spec.name).value
              for spec in perception_topic_specs()}
    for spec in perception_topic_specs():
        reason = spec.check(values[spec.name])
        if reason is not None:
            raise ValueError(f'parameter {reason}')
    return PerceptionTopicParams(**values)


__all__ = ['perception_topic_specs', 'PerceptionTopicParams', 'read_perception_topic_params']
