# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""End to end with the real VGGT4D pipeline: tiny VGGT from a checkpoint, on CPU, over DDS.

Random weights (saved by the test, loaded strictly by the node) say nothing about quality; the
test checks the ROS contract: every frame's mask with its own stamp and camera size, poses on
TF/odometry/path, a decodable latched map, clean shutdown.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest

pytest.importorskip('rclpy')
torch = pytest.importorskip('torch')

from nav_msgs.msg import Odometry  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402
from sensor_msgs.msg import PointCloud2  # noqa: E402
from test_ros_node import FAST_WINDOWS  # noqa: E402
from test_ros_node import HEIGHT  # noqa: E402
from test_ros_node import image_msg  # noqa: E402
from test_ros_node import LATCHED  # noqa: E402
from test_ros_node import RELIABLE  # noqa: E402
from test_ros_node import stamps_of  # noqa: E402
from test_ros_node import stop_cleanly  # noqa: E402
from test_ros_node import WIDTH  # noqa: E402

from vggt4d_ros.ros.conversions import cloud_to_numpy  # noqa: E402


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory):
    from vggt4d_ros.model.config import VGGTConfig
    from vggt4d_ros.model.vggt import VGGT

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('weights') / 'tiny_vggt.pt'
    torch.save(VGGT(VGGTConfig.tiny()).state_dict(), path)
    return path


def test_tiny_vggt4d_end_to_end(peer, start_node, tiny_checkpoint):
    from tf2_msgs.msg import TFMessage

    # A 126 px wide network input (98 x 126 for the 64 x 80 camera) instead of VGGT's 518:
    # the same contract at a fraction of the CPU time (the node at the default width runs in
    # test_ros_colcon_install.py, with the launch file's parameters).
    params = {'weights': str(tiny_checkpoint), 'model_config': 'tiny', 'device': 'cpu',
              'mode': 'replay', 'pipeline.refine_enabled': False, 'network_width': 126,
              **FAST_WINDOWS}
    node = start_node(params)
    masks = peer.collect(Image, '/vggt4d/dynamic_mask', RELIABLE)
    odometry = peer.collect(Odometry, '/vggt4d/odometry', RELIABLE)
    tf = peer.collect(TFMessage, '/tf', RELIABLE)
    publisher = peer.node.create_publisher(Image, '/camera/image_raw', RELIABLE)
    assert peer.wait_for_subscriber(publisher, 120), node.log()
    assert f'loaded VGGT tiny with {tiny_checkpoint}' in node.log()
    assert 'network width 126' in node.log()
    sent = [image_msg(index) for index in range(6)]
    for msg in sent:
        publisher.publish(msg)
    assert peer.spin_until(lambda: len(masks) >= 6 and len(odometry) >= 6 and len(tf) >= 6,
                           120), node.log()
    assert stamps_of(masks) == stamps_of(sent)
    for mask in masks:
        assert (mask.height, mask.width, mask.encoding) == (HEIGHT, WIDTH, 'mono8')
        assert set(np.unique(np.frombuffer(bytes(mask.data), np.uint8))) <= {0, 255}
    assert stamps_of(odometry) == stamps_of(sent)
    position = odometry[-1].pose.pose.position
    assert np.isfinite([position.x, position.y, position.z]).all()

    static_map = peer.collect(PointCloud2, '/vggt4d/static_map', LATCHED)
    assert peer.spin_until(lambda: static_map, 20), node.log()
    points, colors = cloud_to_numpy(static_map[-1])
    assert static_map[-1].header.frame_id == 'map' and np.isfinite(points).all()
    assert len(points) == len(colors) == static_map[-1].width
    stop_cleanly(node, signal.SIGINT)


def test_frozen_heap_is_released_with_the_backend():
    import gc
    import weakref

    from vggt4d_ros.runtime.backend import freeze_heap
    from vggt4d_ros.runtime.backend import release

    class Model:
        pass

    model = Model()
    model.cycle = model  # freed only by the cyclic collector
    alive = weakref.ref(model)
    try:
        frozen, seconds = freeze_heap()
        assert frozen == gc.get_freeze_count() > 0 and seconds >= 0
        del model
        gc.collect()
        assert alive() is not None  # frozen: later collections skip it
    finally:
        release(None)
    assert gc.get_freeze_count() == 0 and alive() is None


def test_warm_up_runs_the_sliding_window_a_stream_will_run():
    from fake_backends import PlaneBackend

    from vggt4d_ros.mapping.mapper import MapperConfig
    from vggt4d_ros.runtime.backend import warm_up
    from vggt4d_ros.runtime.window import WindowConfig

    class Recorder(PlaneBackend):
        def __init__(self):
            super().__init__()
            self.calls = []

        def run(self, frames, stamps_ns):
            self.calls.append((list(frames), list(stamps_ns)))
            return super().run(frames, stamps_ns)

    # A live window config with a keyframe gate: the warm-up still runs both windows.
    live = WindowConfig(window_size=8, stride=4, mode='live', min_parallax_px=50.0)
    recorder = Recorder()
    assert warm_up(recorder, live, MapperConfig(), 48, 64) >= 0
    (first, first_stamps), (second, second_stamps) = recorder.calls
    assert len(first) == len(second) == 8 and first[0].shape == (48, 64, 3)
    # The second window shares 4 frames with the first (same arrays, same stamps), so a
    # pipeline's frame reuse path runs (and compiles) during the warm-up.
    assert all(a is b for a, b in zip(first[4:], second[:4]))
    assert first_stamps[4:] == second_stamps[:4]

    class Pipeline(Recorder):
        def record_refinement_graphs(self, frames, camera_hw):
            # After the windows: the refinement's graphs for every reachable bucket.
            self.graphs = (len(self.calls), frames, camera_hw)
            return 9

    pipeline = Pipeline()
    warm_up(pipeline, live, MapperConfig(), 48, 64)
    assert pipeline.graphs == (2, 8, (48, 64))
