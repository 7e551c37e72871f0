# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""A two-camera rig node's planner outputs over real Fast DDS (issues 15 and 16).

The node runs in a subprocess with the oracle backend over the synthetic scene seen by the
stereo rig (test/ros/oracle_backends.py ``make_rig_moving``: exact ground truth at scale 1,
``left`` on the camera path, ``right`` 0.30 m to its right); this process is the peer and
publishes both cameras, the right one 3 ms after the left. Per rig step the node publishes one
dynamic cloud holding both cameras' points, at the step's stamp (the reference camera's, never
the right camera's); grids, detections and obstacles once per window at a step's stamp, all in
the world frame; and an object both cameras see is one detection and one track (the cameras'
detections merged in 3D, ``perception/rig_merge.py``), not one per camera.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

pytest.importorskip('rclpy')
pytest.importorskip('vision_msgs.msg')
pytest.importorskip('nav2_dynamic_msgs.msg')

from nav2_dynamic_msgs.msg import ObstacleArray  # noqa: E402
from nav_msgs.msg import OccupancyGrid  # noqa: E402
from oracle_backends import distance_to_objects  # noqa: E402
from oracle_backends import HEIGHT  # noqa: E402
from oracle_backends import objects_at  # noqa: E402
from oracle_backends import oracle  # noqa: E402
from oracle_backends import SCENE  # noqa: E402
from oracle_backends import STEREO  # noqa: E402
from oracle_backends import WIDTH  # noqa: E402
from rclpy.qos import DurabilityPolicy  # noqa: E402
from rclpy.qos import QoSProfile  # noqa: E402
from rclpy.qos import ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from vision_msgs.msg import Detection3DArray  # noqa: E402

from vggt4d_ros.ros.conversions import stamp_to_ns  # noqa: E402
from vggt4d_ros.ros.outputs import header_at  # noqa: E402
from vggt4d_ros.ros.perception_msgs import dynamic_cloud_to_numpy  # noqa: E402

RELIABLE = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
STEPS = 24
#: The right camera's stamps trail the left's by this much (within the grouping slop).
JITTER_NS = 3_000_000
CAMERAS = ('left', 'right')
PARAMS = {
    'backend_factory': 'oracle_backends:make_rig_moving', 'mode': 'replay', 'warmup': False,
    'image_topics': [f'/{name}/image_raw' for name in CAMERAS],
    'rig_sync': 'builtin', 'rig_slop_s': 0.01,
    # Every step a keyframe; windows of 2 steps x 2 cameras advancing by 1 step.
    'window.window_size': 4, 'window.stride': 2, 'window.max_queued_frames': 4,
    'window.min_parallax_px': 0.0, 'window.max_keyframe_interval_s': 0.0,
    'mapper.min_align_points': 20, 'grid_period_s': 0.0,
    # The scene's floor is 1.45 m below the first camera (test_ros_perception_node.py).
    'perception.grid.ground_z': -1.45, 'perception.grid.min_height': 0.1,
    'perception.grid.max_height': 1.2,
}
#: Planner topics and their message types.
TOPICS = {'/vggt4d/dynamic_cloud': PointCloud2, '/vggt4d/dynamic_grid': OccupancyGrid,
          '/vggt4d/combined_grid': OccupancyGrid, '/vggt4d/detections': Detection3DArray,
          '/vggt4d/obstacles': ObstacleArray}


def _image(stamp_ns: int, frame_id: str) -> Image:
    """A grey frame of the oracle's size (the oracle ignores pixels)."""
    return Image(header=header_at(stamp_ns, frame_id), height=HEIGHT, width=WIDTH,
                 encoding='rgb8', step=WIDTH * 3, data=bytes(HEIGHT * WIDTH * 3))


def _stamps(messages) -> list[int]:
    return [stamp_to_ns(msg.header.stamp) for msg in messages]


def test_rig_planner_outputs_merge_both_cameras(peer, start_node):
    node = start_node(PARAMS)
    out = {topic: peer.collect(kind, topic, RELIABLE) for topic, kind in TOPICS.items()}
    static = peer.collect(OccupancyGrid, '/vggt4d/static_grid', LATCHED)
    publishers = [peer.node.create_publisher(Image, f'/{name}/image_raw', RELIABLE)
                  for name in CAMERAS]
    for publisher in publishers:
        assert peer.wait_for_subscriber(publisher), node.log()
    steps = [SCENE.stamp_ns(i) for i in range(STEPS)]
    for stamp in steps:
        publishers[0].publish(_image(stamp, 'left_optical'))
        publishers[1].publish(_image(stamp + JITTER_NS, 'right_optical'))
        peer.spin_for(0.02)  # keeps the two topics' deliveries roughly in step order
    # Replay mode: every step but the last window's pending one is processed; one window per
    # step after the first.
    clouds, detections = out['/vggt4d/dynamic_cloud'], out['/vggt4d/detections']
    assert peer.spin_until(lambda: len(clouds) >= STEPS - 1
                           and min(len(m) for m in out.values()) >= STEPS - 2, 300), node.log()
    peer.spin_for(0.5)

    # Types on the wire, one publisher each (no per-camera planner topics).
    for topic, kind in TOPICS.items():
        info = peer.node.get_publishers_info_by_topic(topic)
        assert len(info) == 1 and info[0].topic_type.replace('/msg/', '/') == (
            f'{kind.__module__.split(".")[0]}/{kind.__name__}'), (topic, info)

    # One dynamic cloud per step, at the step's (the left camera's) stamp, in the world frame.
    assert _stamps(clouds) == steps[:len(clouds)]
    truth = oracle(rig=STEREO)
    both, near, total = 0, 0, 0
    for msg in clouds:
        assert msg.header.frame_id == 'map'
        points, _, ids = dynamic_cloud_to_numpy(msg)
        stamp = stamp_to_ns(msg.header.stamp)
        distance = distance_to_objects(points, stamp)
        near, total = near + int((distance < 0.06).sum()), total + len(points)
        pixels = [int(truth.true_mask(stamp + view * JITTER_NS, view).sum()) for view in (0, 1)]
        if min(pixels) >= 100:
            # Both cameras' dynamic pixels (minus the confidence percentile): more points
            # than either camera alone has dynamic pixels.
            assert 0.75 * sum(pixels) <= len(points) <= sum(pixels), (stamp, pixels)
            assert len(points) > max(pixels) + 0.5 * min(pixels), (stamp, pixels)
            both += 1
    assert both >= STEPS // 2, both  # the scene does what the test needs
    assert near >= 0.95 * total, near / total

    # Grids, detections and obstacles: once per window, at a processed step's stamp, in the
    # world frame; detections and obstacles at the same stamps.
    for topic in TOPICS:
        assert set(_stamps(out[topic])) <= set(steps), topic
        assert {m.header.frame_id for m in out[topic]} == {'map'}, topic
    # Each window (2 steps, sliding by 1) is stamped with its newest step.
    assert _stamps(detections) == steps[1:1 + len(detections)]
    assert _stamps(out['/vggt4d/obstacles']) == _stamps(detections)
    assert _stamps(out['/vggt4d/combined_grid']) == steps[1:1 + len(
        out['/vggt4d/combined_grid'])]
    assert set(_stamps(static)) <= set(steps) and static

    # An object both cameras see is one detection and one track: two objects, two (at most
    # three) ids over the run, each detection near a distinct object.
    ids = Counter(d.id for m in detections for d in m.detections)
    assert 2 <= len(ids) <= 3, ids
    assert sum(count >= len(detections) // 2 for count in ids.values()) >= 2, ids
    checked = 0
    for msg in out['/vggt4d/obstacles'][len(detections) // 3:]:
        objects = objects_at(stamp_to_ns(msg.header.stamp))
        nearest = []
        for obstacle in msg.obstacles:
            position = np.array([obstacle.position.x, obstacle.position.y, obstacle.position.z])
            gaps = [np.linalg.norm(o.centre - position) for o in objects]
            assert min(gaps) < 0.5, (gaps, msg.header.stamp)
            nearest.append(int(np.argmin(gaps)))
        assert len(nearest) == len(set(nearest)), (nearest, msg.header.stamp)
        checked += len(nearest) == 2
    assert checked >= len(detections) // 3, checked
    code = node.stop()
    assert code == 0, node.log()
    assert 'Traceback' not in node.log()
