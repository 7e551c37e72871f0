# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Added time of the Foxglove live view per window, on the engine's worker thread.

The oracle backend's scene runs through the engine (not timed) at a 640x480 camera, windows
of 8 frames, 4 new, perception on; the view is the second sink of a tee, and a WebSocket
client (``websockets``, a dev requirement) subscribes to every channel and drains what
arrives on its own thread, so every message is built, encoded and queued. Timed per window:
the view's ``masks_ready`` (masks and camera images of the new frames) and its
``window_mapped`` (TF, window cloud, static map when due, dynamic clouds, tracks, grids).
Prints a markdown table (ms per window p50 / p95 / max).

    python -m vggt4d_ros.tools.bench_foxglove --windows 20
"""

from __future__ import annotations

import argparse
import json
import platform
import threading
import time

import numpy as np
import torch

from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.testing import OracleBackend
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.window import replay_window
from vggt4d_ros.runtime.window import WindowConfig
from vggt4d_ros.viz.foxglove_view import FoxgloveView
from vggt4d_ros.viz.foxglove_view import FoxgloveViewConfig
from vggt4d_ros.viz.foxglove_view import TOPICS

STEP_NS = 100_000_000


class TimedView:
    """Forwards to the view and records the seconds of each call."""

    def __init__(self, view: FoxgloveView) -> None:
        self.view = view
        self.masks_s: list[float] = []
        self.mapped_s: list[float] = []

    def masks_ready(self, window, masks) -> None:
        start = time.perf_counter()
        self.view.masks_ready(window, masks)
        self.masks_s.append(time.perf_counter() - start)

    def window_mapped(self, output) -> None:
        start = time.perf_counter()
        self.view.window_mapped(output)
        self.mapped_s.append(time.perf_counter() - start)

    def warning(self, warning) -> None:
        self.view.warning(warning)


def _drain(port: int, ready: threading.Event, stop: threading.Event) -> None:
    """Subscribe to every channel and read until ``stop`` (a Foxglove app would render)."""
    from websockets.sync.client import connect

    with connect(f'ws://127.0.0.1:{port}', subprotocols=['foxglove.sdk.v1'],
                 max_size=None) as ws:
        channels = {}
        while set(channels) != set(TOPICS):
            message = ws.recv()
            if isinstance(message, str) and json.loads(message)['op'] == 'advertise':
                channels.update({c['topic']: c['id'] for c in json.loads(message)['channels']})
        ws.send(json.dumps({'op': 'subscribe', 'subscriptions': [
            {'id': i, 'channelId': cid} for i, cid in enumerate(channels.values())]}))
        ready.set()
        while not stop.is_set():
            try:
                ws.recv(timeout=0.2)
            except TimeoutError:
                pass


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--windows', type=int, default=20)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--map-period', type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    backend = OracleBackend(network_hw=(args.height, args.width), seed=3)
    engine = PerceptionEngine(backend, replay_window(WindowConfig(window_size=8, stride=4)),
                              MapperConfig(pixel_stride=4), perception=PerceptionConfig())
    view = FoxgloveView(FoxgloveViewConfig(port=0, map_period_s=args.map_period),
                        map_points=engine.mapper.map.points)
    timed = TimedView(view)
    engine.sink = timed
    ready, stop = threading.Event(), threading.Event()
    client = threading.Thread(target=_drain, args=(view.port, ready, stop), daemon=True)
    client.start()
    if not ready.wait(60.0):
        raise SystemExit('the client did not subscribe')
    while not all(view.subscribed(topic) for topic in TOPICS):
        time.sleep(0.05)
    frames = 8 + 4 * (args.windows - 1)
    for i in range(frames):
        engine.push(backend.camera_image(i * STEP_NS), i * STEP_NS, 'cam')
    stop.set()
    client.join()
    view.close()
    print(f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} thread, '
          f'{args.width}x{args.height}, {len(timed.mapped_s)} windows, '
          f'static map {len(engine.mapper.map.points()[0])} points at the end')
    print('| view call | p50 ms | p95 ms | max ms |\n|---|---|---|---|')
    for name, seconds in (('masks_ready (4 masks + images)', timed.masks_s),
                          ('window_mapped (clouds, map, grids, tracks, TF)', timed.mapped_s),
                          ('both', np.add(timed.masks_s, timed.mapped_s))):
        ms = np.asarray(seconds) * 1e3
        print(f'| {name} | {np.percentile(ms, 50):.2f} | {np.percentile(ms, 95):.2f} | '
              f'{ms.max():.2f} |')
    print(f'messages: {view.stats.messages}, errors {view.stats.errors}')


if __name__ == '__main__':
    main()
