# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The Foxglove layout shipped as ``config/foxglove_layout.json`` (panel configs by foxglove-sdk).

A 3D panel (fixed frame ``map``) with the static map, the dynamic cloud, the combined
occupancy grid, the tracks and the camera poses (TF), the window cloud and the static and
dynamic grids listed but hidden; an image panel with the camera image and the dynamic mask
added on top; an image panel with the mask alone. Only channels of
:data:`foxglove_view.TOPICS` (tested).

Regenerate after changing it::

    python -m vggt4d_ros.viz.foxglove_layout > config/foxglove_layout.json
"""

from __future__ import annotations

import json

from vggt4d_ros.viz.foxglove_view import import_foxglove

#: Occupancy colours over [0, 100]: occupied (100) red, free (0) fully transparent; unknown
#: (-1) is below the range and takes the lower colour too.
GRID_GRADIENT = ('#00000000', '#ff2020d0')


def _three_dee(layouts) -> object:
    points = layouts.BaseRendererPointCloudTopicSettings
    grid = layouts.BaseRendererGridTopicSettings
    topics = {
        '/vggt4d/static_map': points(visible=True, color_mode='rgba-fields', point_size=2.0),
        '/vggt4d/window_cloud': points(visible=False, color_mode='rgba-fields',
                                       point_size=2.0),
        '/vggt4d/dynamic_cloud': points(visible=True, color_mode='colormap',
                                        color_field='object_id', color_map='turbo',
                                        point_size=4.0),
        '/vggt4d/tracks': layouts.BaseRendererSceneUpdateTopicSettings(visible=True),
    }
    for name in ('static', 'dynamic', 'combined'):
        topics[f'/vggt4d/{name}_grid'] = grid(
            visible=name == 'combined', color_mode='gradient', color_field='occupancy',
            gradient=GRID_GRADIENT, min_value=0.0, max_value=100.0)
    config = layouts.ThreeDeeConfig(fixed_frame='map', follow_mode='follow-none',
                                    topics=topics)
    return layouts.ThreeDeePanel(title='vggt4d: map, obstacles, tracks', config=config)


def _image(layouts, title: str, topic: str, overlay: str | None) -> object:
    overlays = None
    if overlay is not None:
        overlays = [layouts.ImageOverlayTopicConfig(id='mask', topic=overlay, visible=True,
                                                    opacity=0.6, blend_mode='add')]
    mode = layouts.ImageModeConfig(image_topic=topic, overlay_topics=overlays)
    return layouts.ImagePanel(title=title, config=layouts.ImageConfig(image_mode=mode))


def _config(panel) -> dict:
    """Return the app's stored config of an SDK panel (its title as ``foxglovePanelTitle``)."""
    data = json.loads(panel.to_json())
    config = data.get('config', {})
    if data.get('title'):
        config['foxglovePanelTitle'] = data['title']
    return config


def build_layout() -> dict:
    """Build the layout in the Foxglove app's export format.

    ``configById`` maps panel ids (``<panel type>!<name>``) to their configs, written by the
    SDK's panel classes (the keys the app reads); ``layout`` is the split tree (``first`` /
    ``second`` / ``direction`` / ``splitPercentage``), the format of the app's "Export..." and
    "Import from file...".
    """
    import_foxglove()
    import foxglove.layouts as layouts

    panels = {
        '3D!vggt4d': _three_dee(layouts),
        'Image!camera': _image(layouts, 'camera + dynamic mask', '/vggt4d/image',
                               '/vggt4d/dynamic_mask'),
        'Image!mask': _image(layouts, 'dynamic mask', '/vggt4d/dynamic_mask', None),
    }
    tree = {'direction': 'row', 'first': '3D!vggt4d', 'splitPercentage': 65,
            'second': {'direction': 'column', 'first': 'Image!camera', 'second': 'Image!mask',
                       'splitPercentage': 50}}
    return {'configById': {name: _config(panel) for name, panel in panels.items()},
            'globalVariables': {}, 'userNodes': {}, 'playbackConfig': {'speed': 1.0},
            'layout': tree}


def layout_json() -> str:
    """Return the layout file's text (indented, sorted keys, newline at the end)."""
    return json.dumps(build_layout(), indent=2, sort_keys=True) + '\n'


def main() -> None:
    """Print the layout file."""
    print(layout_json(), end='')


if __name__ == '__main__':
    main()
