# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The Foxglove live view over a real WebSocket connection, fed by the engine.

The oracle backend (ground-truth masks, depth and poses of its scene) runs through the
PerceptionEngine with perception on; the view is tee'd beside a recording sink, so what a
Foxglove client decodes can be compared with what the engine delivered.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
import sys

import numpy as np
import pytest
import torch

from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.perception.tracker import Track
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.sink import EngineWarning
from vggt4d_ros.runtime.sink import TeeSink
from vggt4d_ros.runtime.window import replay_window
from vggt4d_ros.runtime.window import WindowConfig
from vggt4d_ros.viz import foxglove_view
from vggt4d_ros.viz.foxglove_view import FoxgloveView
from vggt4d_ros.viz.foxglove_view import FoxgloveViewConfig
from vggt4d_ros.viz.foxglove_view import start_view
from vggt4d_ros.viz.foxglove_view import TOPICS
from vggt4d_ros.viz.foxglove_view import ZUpFrames

pytest.importorskip('foxglove', reason='foxglove-sdk not installed (requirements/foxglove.txt)')
pytest.importorskip('websockets', reason='websockets not installed (requirements/dev.txt)')

from foxglove_client import FoxgloveClient  # noqa: E402 - needs websockets

STEP = 200_000_000
HW = (28, 42)
LAYOUT = Path(__file__).resolve().parents[2] / 'config' / 'foxglove_layout.json'


class Recorder:
    """Keeps what the engine delivered (and the static map after each window, if given)."""

    def __init__(self, map_points=None) -> None:
        self.map_points = map_points
        self.maps = []
        self.masks = []
        self.outputs = []
        self.warnings = []

    def masks_ready(self, window, masks) -> None:
        self.masks += [(window, mask) for mask in masks]

    def window_mapped(self, output) -> None:
        self.outputs.append(output)
        if self.map_points is not None:
            self.maps.append(self.map_points()[0].copy())

    def warning(self, warning) -> None:
        self.warnings.append(warning)


@pytest.fixture
def serve():
    """Start a view on a free port and connect a client that has read the advertisements."""
    started = []

    def start(map_period_s: float = 3600.0, **kwargs) -> tuple[FoxgloveView, FoxgloveClient]:
        # A long map period: one static map (the first is due at once), whatever the load.
        config = FoxgloveViewConfig(enabled=True, port=0, map_period_s=map_period_s)
        view = FoxgloveView(config, **kwargs)
        started.append(view)
        client = FoxgloveClient(view.port)
        started.append(client)
        client.read_advertisements(set(TOPICS))
        return view, client

    yield start
    for item in reversed(started):
        item.close()


def _subscribe_all(view: FoxgloveView, client: FoxgloveClient) -> None:
    client.subscribe(list(TOPICS))
    # The server registers subscriptions on its own thread: wait until the view sees them.
    client.receive_until(lambda _: all(view.subscribed(topic) for topic in TOPICS), 10.0)


def _engine() -> tuple[PerceptionEngine, OracleBackend]:
    torch.set_num_threads(1)
    backend = OracleBackend(network_hw=HW, seed=7)
    engine = PerceptionEngine(backend, replay_window(WindowConfig(window_size=8, stride=4)),
                              MapperConfig(pixel_stride=2), perception=PerceptionConfig())
    return engine, backend


def _feed(engine: PerceptionEngine, backend: OracleBackend, frames: int) -> None:
    for i in range(frames):
        engine.push(backend.camera_image(i * STEP), i * STEP, 'cam')
    engine.flush()


def _run_engine(sink, frames: int = 20) -> None:
    engine, backend = _engine()
    engine.sink = sink
    _feed(engine, backend, frames)


def _cloud_xyz(message, stride: int) -> np.ndarray:
    data = np.frombuffer(message.get('data'), np.uint8).reshape(-1, stride)
    return data[:, :12].copy().view(np.float32)


def test_channels_are_advertised_with_foxglove_schemas(serve):
    view, client = serve()
    assert client.server_info['name'] == 'vggt4d'
    assert client.ws.subprotocol in ('foxglove.sdk.v1', 'foxglove.websocket.v1')
    advertised = {topic: channel['schemaName'] for topic, channel in client.channels.items()}
    assert advertised == TOPICS
    assert {channel['encoding'] for channel in client.channels.values()} == {'protobuf'}


def test_engine_outputs_arrive_decoded_as_the_engine_delivered_them(serve):
    engine, backend = _engine()
    view, client = serve(map_points=engine.mapper.map.points)
    recorder = Recorder(engine.mapper.map.points)
    engine.sink = TeeSink(recorder, view)
    _subscribe_all(view, client)
    _feed(engine, backend, 20)
    outputs = recorder.outputs
    assert len(outputs) == 4 and all(out.perception is not None for out in outputs)
    frames = sum(len(out.frames) for out in outputs)
    clouds = sum(len(out.perception.clouds) for out in outputs)
    expected = {'/vggt4d/dynamic_mask': frames, '/vggt4d/image': frames,
                '/vggt4d/dynamic_cloud': clouds, '/tf': len(outputs),
                '/vggt4d/window_cloud': len(outputs), '/vggt4d/tracks': len(outputs),
                '/vggt4d/static_grid': len(outputs), '/vggt4d/dynamic_grid': len(outputs),
                '/vggt4d/combined_grid': len(outputs), '/vggt4d/static_map': 1}
    assert {topic: view.stats.messages[topic] for topic in expected} == expected
    assert view.stats.errors == 0
    client.receive_until(lambda c: all(len(c.messages[t]) >= n for t, n in expected.items()),
                         30.0)

    # Masks: every frame's mask, in order, with its stamp, frame and pixels.
    for message, (window, mask) in zip(client.messages['/vggt4d/dynamic_mask'],
                                       recorder.masks):
        assert (message.get('width'), message.get('height')) == (HW[1], HW[0])
        assert message.text('encoding') == 'mono8' and message.text('frame_id') == 'cam'
        stamp = message.nested('timestamp')[0]
        assert stamp.get('seconds', 0) * 10**9 + stamp.get('nanos', 0) == mask.stamp_ns
        np.testing.assert_array_equal(
            np.frombuffer(message.get('data'), np.uint8).reshape(HW), mask.mask)
    assert any(mask.mask.any() for _, mask in recorder.masks)  # the oracle's object is seen
    image = client.messages['/vggt4d/image'][0]
    window, mask = recorder.masks[0]
    assert image.text('encoding') == 'rgb8'
    np.testing.assert_array_equal(np.frombuffer(image.get('data'), np.uint8).reshape(*HW, 3),
                                  window.frames[mask.index])

    # Window clouds: the window's static points, moved into the z-up map frame.
    frames_z_up = ZUpFrames()
    for message, output in zip(client.messages['/vggt4d/window_cloud'], outputs):
        assert message.get('point_stride') == 16 and message.text('frame_id') == 'map'
        np.testing.assert_array_equal(_cloud_xyz(message, 16),
                                      frames_z_up.points_to_world(output.update.points_xyz))
    # The static map: the map after the first window (the only one due in the period).
    static = client.messages['/vggt4d/static_map'][0]
    np.testing.assert_array_equal(_cloud_xyz(static, 16),
                                  frames_z_up.points_to_world(recorder.maps[0]))

    # Dynamic clouds carry the object id field (stride 20) and the perception points.
    dynamic = [cloud for out in outputs for cloud in out.perception.clouds]
    assert sum(len(cloud.points) for cloud in dynamic) > 0
    for message, cloud in zip(client.messages['/vggt4d/dynamic_cloud'], dynamic):
        names = [f.text('name') for f in message.nested('fields')]
        assert names == ['x', 'y', 'z', 'red', 'green', 'blue', 'alpha', 'object_id']
        assert message.get('point_stride') == 20
        if len(cloud.points):
            np.testing.assert_array_equal(_cloud_xyz(message, 20), cloud.points)

    # TF: one transform per new frame, map -> camera frame.
    for message, output in zip(client.messages['/tf'], outputs):
        transforms = message.nested('transforms')
        assert len(transforms) == len(output.frames)
        assert {(t.text('parent_frame_id'), t.text('child_frame_id')) for t in transforms} == {
            ('map', 'cam')}

    # Grids: the perception grids' cells, one int8 field.
    grids = outputs[-1].perception.grids
    last = client.messages['/vggt4d/dynamic_grid'][-1]
    assert last.get('column_count') == grids.dynamic.shape[1]
    np.testing.assert_array_equal(
        np.frombuffer(last.get('data'), np.int8).reshape(grids.dynamic.shape), grids.dynamic)
    assert {int(v) for v in np.unique(grids.static)} <= {-1, 0, 100}

    # Tracks: every window deletes the scene first, then one entity per confirmed track.
    update = client.messages['/vggt4d/tracks'][-1]
    assert len(update.all('deletions')) == 1
    assert len(update.all('entities')) == len(outputs[-1].perception.tracks)


def test_track_entities_box_arrow_and_label(serve):
    view, client = serve()
    recorder = Recorder()
    _subscribe_all(view, client)
    _run_engine(recorder, frames=8)
    output = recorder.outputs[0]
    tracks = [Track(track_id=3, position=np.array([2.0, 1.0, 0.5]),
                    velocity=np.array([0.0, 0.5, 0.0]), size=np.array([0.4, 0.4, 1.0]),
                    stamp_ns=output.frames[-1].stamp_ns, age_s=1.0, hits=10, missed_s=0.0,
                    confidence=0.9, position_var=0.01, velocity_var=0.01),
              Track(track_id=4, position=np.array([3.0, -1.0, 0.5]), velocity=np.zeros(3),
                    size=np.array([0.3, 0.3, 0.3]), stamp_ns=output.frames[-1].stamp_ns,
                    age_s=0.5, hits=5, missed_s=0.0, confidence=0.6, position_var=0.01,
                    velocity_var=0.01)]
    perception = dataclasses.replace(output.perception, tracks=tracks)
    view.window_mapped(dataclasses.replace(output, perception=perception))
    client.receive_until(lambda c: c.messages['/vggt4d/tracks'], 20.0)
    entities = client.messages['/vggt4d/tracks'][-1].nested('entities')
    assert [e.text('id') for e in entities] == ['track/3', 'track/4']
    moving, still = entities
    assert len(moving.all('arrows')) == 1 and len(still.all('arrows')) == 0  # no velocity
    cube = moving.nested('cubes')[0]
    position = cube.nested('pose')[0].nested('position')[0]
    assert [position.get(axis) for axis in 'xyz'] == [2.0, 1.0, 0.5]
    # The arrow turns +x onto the velocity (+y: a quarter turn about z), one second long.
    arrow = moving.nested('arrows')[0]
    turn = arrow.nested('pose')[0].nested('orientation')[0]
    np.testing.assert_allclose([turn.get(axis, 0.0) for axis in 'xyzw'],
                               [0.0, 0.0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-12)
    assert arrow.get('shaft_length') + arrow.get('head_length') == pytest.approx(0.5)
    label = moving.nested('texts')[0]
    assert label.text('text').startswith('3 ')


def test_arrow_orientation_turns_x_onto_the_velocity():
    from vggt4d_ros.geometry.rotation import rotation_from_quaternion_xyzw

    for direction in ([0.0, 2.0, 0.0], [1.0, 1.0, 1.0], [-3.0, 0.0, 0.0], [5.0, 0.0, 0.0],
                      [0.0, 0.0, -1.0]):
        rotation = rotation_from_quaternion_xyzw(foxglove_view.arrow_orientation(direction))
        unit = np.asarray(direction) / np.linalg.norm(direction)
        np.testing.assert_allclose(rotation @ [1.0, 0.0, 0.0], unit, atol=1e-12)


def test_nothing_is_built_without_subscribers_and_a_reset_clears_the_tracks(serve):
    view, client = serve()
    recorder = Recorder()
    _run_engine(TeeSink(recorder, view), frames=8)
    assert recorder.outputs and sum(view.stats.messages.values()) == 0
    _subscribe_all(view, client)
    view.warning(EngineWarning('time_backwards', 'stamps went backwards'))
    client.receive_until(lambda c: c.messages['/vggt4d/tracks'], 20.0)
    update = client.messages['/vggt4d/tracks'][0]
    assert len(update.all('deletions')) == 1 and not update.all('entities')


class ListLogger:
    """Keeps the lines logged (the logger interface the view uses)."""

    def __init__(self) -> None:
        self.infos, self.warnings = [], []

    def info(self, text: str) -> None:
        self.infos.append(text)

    def warning(self, text: str) -> None:
        self.warnings.append(text)


def test_frames_not_known_yet_skip_the_window_but_not_the_masks(serve):
    # odom_to_base with extrinsic_source=tf: no convention until TF has the extrinsic.
    view, client = serve(frames=lambda frame_id: None)
    _subscribe_all(view, client)
    _run_engine(view, frames=8)
    sent = {topic: count for topic, count in view.stats.messages.items() if count}
    assert sent == {'/vggt4d/dynamic_mask': 8, '/vggt4d/image': 8}
    assert view.stats.errors == 0


def test_a_failing_view_counts_and_warns_but_never_raises():
    logger = ListLogger()

    def broken_frames(frame_id):
        raise RuntimeError('no frames')

    view = FoxgloveView(FoxgloveViewConfig(port=0), frames=broken_frames, logger=logger)
    try:
        recorder = Recorder()
        _run_engine(TeeSink(recorder, view), frames=16)
        assert len(recorder.outputs) == 3
        assert view.stats.errors == 3 and 'RuntimeError: no frames' in view.stats.last_error
        assert len(logger.warnings) == 3 and 'engine goes on' in logger.warnings[0]
    finally:
        view.close()


def test_a_closed_view_frees_its_port_for_the_next_one(serve):
    # The node's deactivate -> activate closes the view and starts one on the same port.
    view, client = serve()
    port = view.port
    client.subscribe(['/tf'])
    client.receive_until(lambda _: view.subscribed('/tf'), 10.0)
    view.close()
    again = FoxgloveView(FoxgloveViewConfig(port=port))
    try:
        assert again.port == port
        second = FoxgloveClient(port)
        second.read_advertisements(set(TOPICS))
        second.close()
    finally:
        again.close()


def test_start_view_is_off_by_default_and_optional(monkeypatch):
    assert FoxgloveViewConfig().enabled is False and FoxgloveViewConfig().port == 8765
    assert start_view(FoxgloveViewConfig()) is None
    logger = ListLogger()
    first = start_view(FoxgloveViewConfig(enabled=True, port=0), logger=logger)
    try:
        assert logger.infos == [f'foxglove view: ws://127.0.0.1:{first.port} (open it in '
                                'Foxglove; layout: config/foxglove_layout.json)']
        # A taken port: the view is reported and left out.
        assert start_view(FoxgloveViewConfig(enabled=True, port=first.port),
                          logger=logger) is None
    finally:
        first.close()
    assert 'foxglove view not started' in logger.warnings[-1]
    # No foxglove-sdk: the same.
    monkeypatch.setitem(sys.modules, 'foxglove', None)
    assert start_view(FoxgloveViewConfig(enabled=True, port=0), logger=logger) is None
    assert 'foxglove-sdk' in logger.warnings[-1] and len(logger.warnings) == 2


def _layout_topics(node) -> set[str]:
    """Every topic a layout names: keys of ``topics`` maps, ``topic`` and ``*Topic`` strings."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == 'topics' and isinstance(value, dict):
                found |= set(value)
            elif (key == 'topic' or key.endswith('Topic')) and isinstance(value, str):
                found.add(value)
            found |= _layout_topics(value)
    elif isinstance(node, list):
        for item in node:
            found |= _layout_topics(item)
    return found


def _tree_panels(tree) -> set[str]:
    if isinstance(tree, str):
        return {tree}
    return _tree_panels(tree['first']) | _tree_panels(tree['second'])


def test_layout_file_uses_only_advertised_channels_and_is_current(serve):
    _, client = serve()
    layout = json.loads(LAYOUT.read_text())
    assert _layout_topics(layout) <= set(client.channels)
    panels = layout['configById']
    assert _tree_panels(layout['layout']) == set(panels)  # every panel placed, none missing
    # The 3D panel shows the clouds, grids and tracks (TF resolves their frames).
    three_dee = panels['3D!vggt4d']
    assert three_dee['fixedFrame'] == 'map'
    assert set(three_dee['topics']) == set(TOPICS) - {'/tf', '/vggt4d/image',
                                                      '/vggt4d/dynamic_mask'}
    # An image panel with the mask (over the camera image, and alone).
    assert panels['Image!mask']['imageMode']['imageTopic'] == '/vggt4d/dynamic_mask'
    camera = panels['Image!camera']['imageMode']
    assert camera['imageTopic'] == '/vggt4d/image'
    assert [o['topic'] for o in camera['overlayTopics']] == ['/vggt4d/dynamic_mask']
    assert LAYOUT.read_text() == foxglove_view_layout_json()


def foxglove_view_layout_json() -> str:
    from vggt4d_ros.viz.foxglove_layout import layout_json

    return layout_json()


def test_a_new_static_map_subscriber_gets_the_map_with_the_next_window(serve):
    engine, backend = _engine()
    view, first = serve(map_points=engine.mapper.map.points)
    engine.sink = view
    first.subscribe(['/vggt4d/static_map'])
    first.receive_until(lambda _: view.subscribed('/vggt4d/static_map'), 10.0)
    for i in range(12):  # two windows: the map is due at the first only (period 3600 s)
        engine.push(backend.camera_image(i * STEP), i * STEP, 'cam')
    assert view.stats.messages['/vggt4d/static_map'] == 1
    second = FoxgloveClient(view.port)
    try:
        second.read_advertisements({'/vggt4d/static_map'})
        second.subscribe(['/vggt4d/static_map'])
        # Latched-topic behaviour: the subscription asks for the map at the next window.
        second.receive_until(lambda _: view.static_map_requested, 10.0)
        for i in range(12, 16):
            engine.push(backend.camera_image(i * STEP), i * STEP, 'cam')
        assert view.stats.messages['/vggt4d/static_map'] == 2
        second.receive_until(lambda c: c.messages['/vggt4d/static_map'], 20.0)
        points = _cloud_xyz(second.messages['/vggt4d/static_map'][0], 16)
        np.testing.assert_array_equal(
            points, ZUpFrames().points_to_world(engine.mapper.map.points()[0]))
    finally:
        second.close()
