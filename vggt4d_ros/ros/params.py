# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Node parameters: declaration with descriptors, defaults and validation.

Node-level parameters are listed in ``NODE_PARAMETERS``. The method's own settings are
exposed as grouped parameters ``window.*``, ``mapper.*`` and ``pipeline.*``, declared from the
scalar fields of the core layers' dataclass configs so the two never drift apart. Everything
is read at configure; to change a value: deactivate, cleanup, set it, configure, activate.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
import inspect
import re
from typing import Any

from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter: name, default, description and optional limits."""

    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    int_range: tuple[int, int] | None = None
    float_range: tuple[float, float] | None = None


#: base_link -> camera optical rotation of a forward-looking camera: rpy (-pi/2, 0, -pi/2).
DEFAULT_BASE_TO_CAMERA = [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5]

NODE_PARAMETERS = (
    # Lifecycle and input.
    ParamSpec('autostart', True, 'Configure and activate at startup (false: wait for a '
              'lifecycle manager or `ros2 lifecycle set`).'),
    ParamSpec('image_topic', '/camera/image_raw', 'Input image topic.'),
    ParamSpec('compressed', False, 'Subscribe to sensor_msgs/CompressedImage instead of Image '
              '(give the .../compressed topic in image_topic).'),
    ParamSpec('camera_info_topic', '', 'Optional CameraInfo topic; the latest message is '
              'cached (VGGT estimates intrinsics itself). Empty: not subscribed.'),
    ParamSpec('input_qos', 'sensor_data', 'Image subscription QoS: sensor_data (best effort, '
              'REP-2003) or reliable.', choices=('sensor_data', 'reliable')),
    ParamSpec('input_depth', 5, 'History depth of the image subscription (replay mode keeps '
              'all).', int_range=(1, 1000)),
    ParamSpec('mode', 'live', 'live: drop the oldest queued frame under overload (counted); '
              'replay: never drop, back-pressure the publisher (reliable, keep all).',
              choices=('live', 'replay')),
    ParamSpec('queue_size', 8, 'Frames buffered between the callback and the worker (live '
              'mode: a full queue adds queue_size / fps of latency before frames drop).',
              int_range=(1, 10000)),
    ParamSpec('queue_max_mb', 1024, 'Bound on the decoded pixels buffered between the '
              'callback and the worker, in MiB (live: the oldest frames drop; replay: the '
              'callback waits).', int_range=(1, 1048576)),
    ParamSpec('max_image_pixels', 7680 * 4320, 'Largest accepted width x height of an input '
              'image, raw or compressed (compressed: read from the header before decoding); '
              'larger images are dropped and counted as rejected_size. Default: 8K UHD.',
              int_range=(1, 1 << 31)),
    # Model.
    ParamSpec('weights', '', 'VGGT checkpoint (.pt/.pth/.safetensors), loaded strictly at '
              'activate.'),
    ParamSpec('allow_random_weights', False, 'With an empty weights path, run randomly '
              'initialised weights (tests and demos only: outputs are meaningless).'),
    ParamSpec('model_config', 'full', 'VGGT size: full (checkpoint-exact, 1.26 B parameters) or '
              'tiny (same architecture, few blocks; CPU tests).', choices=('full', 'tiny')),
    ParamSpec('device', 'auto', 'Torch device: auto (cuda if available, else cpu), cpu, cuda, '
              'cuda:N.'),
    ParamSpec('dtype', 'auto', 'Compute dtype: auto (bfloat16 on CUDA with compute capability '
              '>= 8, float16 on older CUDA, float32 on CPU), bfloat16, float16, float32.',
              choices=('auto', 'bfloat16', 'float16', 'float32')),
    ParamSpec('weights_dtype', 'float32', 'float32: keep fp32 weights and run under autocast '
              '(the release mode); compute: cast the weights to the compute dtype (half the '
              'memory, ~35 % faster on an H200, pose error ~1e-2 relative).',
              choices=('float32', 'compute')),
    ParamSpec('warmup', True, 'Run two dummy windows (the second one stride later) through '
              'a throwaway engine at activate, so the first real windows are not slowed by '
              'lazy CUDA initialisation, compilation or first use of the mapper.'),
    ParamSpec('warmup_height', 480, 'Height of the warm-up frames (use the camera size).',
              int_range=(14, 8192)),
    ParamSpec('warmup_width', 640, 'Width of the warm-up frames (use the camera size).',
              int_range=(14, 8192)),
    ParamSpec('backend_factory', '', 'Advanced: "module:function" returning a window backend '
              '(object with run(frames, stamps_ns) -> WindowResult) instead of VGGT4D.'),
    # Frames and TF.
    ParamSpec('map_frame', 'map', 'World frame of the map cloud, path and odometry in '
              'map_to_camera mode.'),
    ParamSpec('odom_frame', 'odom', 'World frame in odom_to_base mode.'),
    ParamSpec('base_frame', 'base_link', 'Robot body frame (odom_to_base mode).'),
    ParamSpec('camera_frame', '', 'Camera optical frame; empty: the frame_id of the images.'),
    ParamSpec('tf_mode', 'map_to_camera', 'map_to_camera: TF map -> camera optical frame; '
              'odom_to_base: TF odom -> base_link through the camera extrinsic (REP-105); '
              'none: no TF.', choices=('map_to_camera', 'odom_to_base', 'none')),
    ParamSpec('extrinsic_source', 'parameter', 'Where odom_to_base gets base_link -> camera: '
              'parameter (base_to_camera) or tf (looked up once, needs tf2_ros).',
              choices=('parameter', 'tf')),
    ParamSpec('base_to_camera', DEFAULT_BASE_TO_CAMERA, 'Pose of the camera optical frame in '
              'base_link [x, y, z, qx, qy, qz, qw]; default: at the origin, looking forward.'),
    # Outputs.
    ParamSpec('publish_tf', True, 'Publish TF (see tf_mode).'),
    ParamSpec('publish_masks', True, 'Publish ~/dynamic_mask (mono8 0/255) per frame.'),
    ParamSpec('publish_overlay', False, 'Publish ~/mask_overlay (rgb8 debug view).'),
    ParamSpec('publish_static_map', True, 'Publish ~/static_map (latched PointCloud2).'),
    ParamSpec('publish_window_cloud', True, "Publish ~/window_cloud (the window's static "
              'points).'),
    ParamSpec('publish_path', True, 'Publish ~/path (nav_msgs/Path).'),
    ParamSpec('publish_odometry', True, 'Publish ~/odometry (nav_msgs/Odometry).'),
    ParamSpec('path_max_size', 1024, 'Poses kept in ~/path.', int_range=(1, 1000000)),
    ParamSpec('map_period_s', 1.0, 'Minimum seconds between two ~/static_map messages '
              '(0: after every window).', float_range=(0.0, 3600.0)),
    ParamSpec('diagnostics_period_s', 1.0, 'Period of /diagnostics.',
              float_range=(0.05, 60.0)),
    # Process.
    ParamSpec('gil_switch_interval_ms', 1.0, "Python's GIL switch interval for the whole "
              'process (sys.setswitchinterval), set at configure: how long the image callback '
              'may wait for the GIL while the worker runs Python/torch code (1 ms: input wait '
              "p50 5.8 -> 1.9 ms on a CPU test, worker throughput unchanged). 0: Python's "
              'default (5 ms).', float_range=(0.0, 100.0)),
)

#: Limits for grouped config fields, keyed by field name; applied only when the field exists
#: and its default lies inside (a core-layer default change must never break the node).
_GROUP_INT_RANGES = {
    'window_size': (2, 512), 'stride': (1, 511), 'max_queued_frames': (1, 100000),
    'pixel_stride': (1, 256), 'flow_width': (16, 8192), 'reset_confirm_frames': (1, 1000),
}
_GROUP_FLOAT_RANGES = {
    'min_parallax_px': (0.0, 10000.0), 'min_keyframe_interval_s': (0.0, 3600.0),
    'max_keyframe_interval_s': (0.0, 3600.0), 'min_tracked_fraction': (0.0, 1.0),
    'token_mask_threshold': (0.0, 1.0), 'conf_percentile': (0.0, 100.0),
    'min_inlier_ratio': (0.0, 1.0), 'evict_to_fraction': (0.0, 1.0),
}


def _descriptor(description: str, choices: tuple[str, ...] = (),
                int_range: tuple[int, int] | None = None,
                float_range: tuple[float, float] | None = None) -> ParameterDescriptor:
    descriptor = ParameterDescriptor(description=description)
    if choices:
        descriptor.additional_constraints = 'one of: ' + ', '.join(choices)
    if int_range is not None:
        descriptor.integer_range = [IntegerRange(
            from_value=int_range[0], to_value=int_range[1], step=1)]
    if float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(float_range[0]), to_value=float(float_range[1]), step=0.0)]
    return descriptor


def declare_node_parameters(node) -> None:
    """Declare every parameter of ``NODE_PARAMETERS`` on ``node``."""
    for spec in NODE_PARAMETERS:
        node.declare_parameter(spec.name, spec.default, _descriptor(
            spec.description, spec.choices, spec.int_range, spec.float_range))


def attribute_docs(cls: type) -> dict[str, str]:
    """Map ``name -> text`` from the ``Attributes:`` section of a Google-style docstring."""
    text = inspect.cleandoc(cls.__doc__ or '')
    if 'Attributes:' not in text:
        return {}
    docs: dict[str, str] = {}
    current = None
    base_indent = None
    for line in text.split('Attributes:', 1)[1].splitlines():
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        base_indent = indent if base_indent is None else base_indent
        if indent < base_indent:
            break
        match = re.match(r'(\w+)(?: \([^)]*\))?: (.*)', line.strip())
        if indent == base_indent and match:
            current = match.group(1)
            docs[current] = match.group(2)
        elif current is not None:
            docs[current] += ' ' + line.strip()
    return docs


def scalar_fields(config_cls: type, prefix: str = '') -> dict[str, tuple[Any, str]]:
    """Flat ``{dotted name: (default, description)}`` of a dataclass config's scalar fields.

    Nested dataclass fields recurse (``coarse.num_clusters``); tuples, lists and other
    non-scalar fields are not exposed.
    """
    docs = attribute_docs(config_cls)
    flat: dict[str, tuple[Any, str]] = {}
    for item in dataclasses.fields(config_cls):
        if item.default is not dataclasses.MISSING:
            value = item.default
        elif item.default_factory is not dataclasses.MISSING:
            value = item.default_factory()
        else:
            continue
        name = prefix + item.name
        if dataclasses.is_dataclass(value):
            flat.update(scalar_fields(type(value), name + '.'))
        elif isinstance(value, (bool, int, float, str)):
            flat[name] = (value, docs.get(item.name, f'{config_cls.__name__}.{item.name}'))
    return flat


def _within(limits: tuple | None, value: float) -> tuple | None:
    return limits if limits is not None and limits[0] <= value <= limits[1] else None


def declare_group(node, group: str, config_cls: type, exclude: tuple[str, ...] = ()) -> None:
    """Declare ``<group>.<field>`` for each scalar field of ``config_cls`` (recursively)."""
    for name, (default, text) in scalar_fields(config_cls).items():
        if name in exclude:
            continue
        leaf = name.rsplit('.', 1)[-1]
        int_range = float_range = None
        if isinstance(default, int) and not isinstance(default, bool):
            int_range = _within(_GROUP_INT_RANGES.get(leaf), default)
        elif isinstance(default, float):
            float_range = _within(_GROUP_FLOAT_RANGES.get(leaf), default)
        node.declare_parameter(f'{group}.{name}', default,
                               _descriptor(text, int_range=int_range, float_range=float_range))


def build_config(config_cls: type, values: dict[str, Any]):
    """Instantiate ``config_cls`` from flat dotted ``values`` (missing ones keep defaults)."""
    kwargs: dict[str, Any] = {}
    for item in dataclasses.fields(config_cls):
        if item.name in values:
            kwargs[item.name] = values[item.name]
            continue
        nested = {key.split('.', 1)[1]: value for key, value in values.items()
                  if key.startswith(item.name + '.')}
        if nested:
            if item.default is not dataclasses.MISSING:
                nested_cls = type(item.default)
            else:
                nested_cls = type(item.default_factory())
            kwargs[item.name] = build_config(nested_cls, nested)
    return config_cls(**kwargs)


def read_group(node, group: str, config_cls: type, exclude: tuple[str, ...] = (),
               **overrides: Any):
    """Build ``config_cls`` from the ``<group>.*`` parameters (plus fixed ``overrides``).

    Raises:
        ValueError: the config rejects the values (its message names the field).

    """
    values = {name: node.get_parameter(f'{group}.{name}').value
              for name in scalar_fields(config_cls) if name not in exclude}
    values.update(overrides)
    return build_config(config_cls, values)


@dataclass(frozen=True)
class NodeParams:
    """Validated snapshot of the node-level parameters (field names = parameter names)."""

    autostart: bool
    image_topic: str
    compressed: bool
    camera_info_topic: str
    input_qos: str
    input_depth: int
    mode: str
    queue_size: int
    queue_max_mb: int
    max_image_pixels: int
    weights: str
    allow_random_weights: bool
    model_config: str
    device: str
    dtype: str
    weights_dtype: str
    warmup: bool
    warmup_height: int
    warmup_width: int
    backend_factory: str
    map_frame: str
    odom_frame: str
    base_frame: str
    camera_frame: str
    tf_mode: str
    extrinsic_source: str
    base_to_camera: list[float]
    publish_tf: bool
    publish_masks: bool
    publish_overlay: bool
    publish_static_map: bool
    publish_window_cloud: bool
    publish_path: bool
    publish_odometry: bool
    path_max_size: int
    map_period_s: float
    diagnostics_period_s: float
    gil_switch_interval_ms: float


#: Read again at every activate (model loading), so a failed activate can be fixed by setting
#: them and activating again; every other parameter is read at configure.
ACTIVATE_PARAMETERS = ('weights', 'allow_random_weights', 'model_config', 'device', 'dtype',
                       'weights_dtype', 'warmup', 'warmup_height', 'warmup_width',
                       'backend_factory')


def reread_activate_parameters(node, params: NodeParams) -> NodeParams:
    """``params`` with ``ACTIVATE_PARAMETERS`` read again from ``node`` (validated).

    Raises:
        ValueError: one of them is out of its allowed set (message names it).

    """
    values = {name: node.get_parameter(name).value for name in ACTIVATE_PARAMETERS}
    for spec in NODE_PARAMETERS:
        if spec.name in values and spec.choices and values[spec.name] not in spec.choices:
            raise ValueError(f'parameter {spec.name}={values[spec.name]!r} must be one of '
                             f'{", ".join(spec.choices)}')
    return dataclasses.replace(params, **values)


def read_node_parameters(node) -> NodeParams:
    """Read and validate the node-level parameters.

    Raises:
        ValueError: a parameter is out of its allowed set (message names it).

    """
    values = {spec.name: node.get_parameter(spec.name).value for spec in NODE_PARAMETERS}
    for spec in NODE_PARAMETERS:
        if spec.choices and values[spec.name] not in spec.choices:
            raise ValueError(f'parameter {spec.name}={values[spec.name]!r} must be one of '
                             f'{", ".join(spec.choices)}')
    values['base_to_camera'] = [float(v) for v in values['base_to_camera']]
    if len(values['base_to_camera']) != 7:
        raise ValueError('parameter base_to_camera must be [x, y, z, qx, qy, qz, qw]')
    if not values['image_topic']:
        raise ValueError('parameter image_topic is empty')
    return NodeParams(**values)
