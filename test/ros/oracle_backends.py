# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Oracle window backends over the synthetic scene, for node tests of the planner outputs.

Loaded in the node process through ``backend_factory`` (``oracle_backends:make_moving``).
The synthetic scene (replay/synthetic.py: a room, a rolling ball and a sliding crate, seed 17)
goes through the mapping oracle backend without noise and at scale 1: the node's map units are
the scene's metres and its ``map_to_camera`` world is the first camera's pose with ROS axes,
so the test peer can compute where the moving objects are (:func:`objects_in_output_frame`).
Images sent to the node must be ``WIDTH`` x ``HEIGHT``; their content is ignored (every frame
is a keyframe in these tests). ``make_rig_moving`` is the same scene seen by the synthetic
stereo rig (``replay/synthetic_rig.py``: ``left`` on the path, ``right`` 0.30 m to its right).
"""

from __future__ import annotations

import numpy as np

from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.mapping.testing import OracleNoise
from vggt4d_ros.replay.synthetic import object_truth
from vggt4d_ros.replay.synthetic import ObjectTruth
from vggt4d_ros.replay.synthetic import SceneConfig
from vggt4d_ros.replay.synthetic import SyntheticOracleView
from vggt4d_ros.replay.synthetic import SyntheticScene
from vggt4d_ros.replay.synthetic_rig import rig_cameras
from vggt4d_ros.ros.frames import R_BODY_FROM_OPTICAL

FPS = 15.0
HEIGHT, WIDTH = 120, 160
SCENE = SceneConfig(num_frames=60, width=WIDTH, height=HEIGHT, fps=FPS, seed=17, supersample=1)
#: Ground truth as it is: scale 1, no pose or depth noise, no outliers.
EXACT = OracleNoise(normalise=False, scale_range=(1.0, 1.0), depth_noise=0.0,
                    rotation_noise_rad=0.0, translation_noise=0.0, outlier_fraction=0.0)


class _StaticView(SyntheticOracleView):
    """The same scene with no pixel marked dynamic (a scene with nothing moving)."""

    def render(self, t, intrinsics, hw, pose=None):
        depth, dynamic, rgb = super().render(t, intrinsics, hw, pose)
        return depth, np.zeros_like(dynamic), rgb


#: The stereo rig's cameras [2,4,4] in the reference (path) camera's optical frame.
STEREO = np.stack(list(rig_cameras('stereo').values()))


def oracle(static: bool = False, rig: np.ndarray | None = None) -> OracleBackend:
    """Build the oracle backend over the synthetic scene (scene time 0 at ``SCENE.start_ns``).

    ``rig``: [N,4,4] cameras in the path camera's frame (None: the path camera alone).
    """
    scene = SyntheticScene(SCENE)
    view = _StaticView(scene) if static else SyntheticOracleView(scene)
    return OracleBackend(scene=view, network_hw=(HEIGHT, WIDTH), noise=EXACT, seed=17,
                         start_ns=SCENE.start_ns, focal_factor=SCENE.intrinsics()[0, 0] / WIDTH,
                         rig=rig)


def make_moving(params, device, dtype) -> OracleBackend:
    """backend_factory: the synthetic scene with its two moving objects."""
    return oracle()


def make_rig_moving(params, device, dtype) -> OracleBackend:
    """backend_factory: the moving scene seen by the stereo rig (windows of steps x 2 views)."""
    return oracle(rig=STEREO)


def make_static(params, device, dtype) -> OracleBackend:
    """backend_factory: the synthetic scene with no dynamic pixel."""
    return oracle(static=True)


def output_from_scene(world_from_first: np.ndarray | None = None) -> np.ndarray:
    """[4,4] the node's world frame from the scene's world.

    ``world_from_first``: the node's world from the first camera's optical frame; default the
    map_to_camera world (the first camera with ROS axes); in odom_to_base the base_link ->
    camera extrinsic.
    """
    if world_from_first is None:
        world_from_first = np.eye(4)
        world_from_first[:3, :3] = R_BODY_FROM_OPTICAL
    return world_from_first @ np.linalg.inv(SyntheticScene(SCENE).world_from_camera(0))


def objects_at(stamp_ns: int) -> list[ObjectTruth]:
    """Return the moving objects at a stamp, centres and velocities in the node's world frame."""
    scene = SyntheticScene(SCENE)
    transform = output_from_scene()
    index = (stamp_ns - SCENE.start_ns) * 1e-9 * FPS
    truth = object_truth(scene, index)
    for obj in truth:
        obj.centre = transform[:3, :3] @ obj.centre + transform[:3, 3]
        obj.velocity = transform[:3, :3] @ obj.velocity
    return truth


def distance_to_objects(points: np.ndarray, stamp_ns: int,
                        world_from_first: np.ndarray | None = None) -> np.ndarray:
    """Distance [N] of world-frame points [N,3] to the nearest moving object's surface.

    The ball: distance to its sphere; the crate: distance to its turned box (0 inside).
    """
    scene = SyntheticScene(SCENE)
    index = (stamp_ns - SCENE.start_ns) * 1e-9 * FPS
    in_scene = np.linalg.inv(output_from_scene(world_from_first))
    local = points.astype(np.float64) @ in_scene[:3, :3].T + in_scene[:3, 3]
    ball_centre, _ = scene.ball_state(index)
    ball = np.abs(np.linalg.norm(local - ball_centre, axis=1) - 0.35)
    crate_centre, crate_rotation = scene.crate_state(index)
    in_crate = (local - crate_centre) @ crate_rotation
    outside = np.maximum(np.abs(in_crate) - np.array([0.35, 0.22, 0.3]), 0.0)
    crate = np.linalg.norm(outside, axis=1)
    return np.minimum(ball, crate)
