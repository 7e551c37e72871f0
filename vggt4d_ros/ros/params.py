# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Node parameters: declared from dataclasses, validated at declaration and on every set.

Two sources, no name typed twice: :class:`NodeParams` (what only the node uses: topics, frames,
outputs) and the engine parameters of :func:`vggt4d_ros.runtime.parameters.engine_parameter_specs`
(``mode``, the backend's ``weights``/``device``/..., the ``window.*``, ``mapper.*``,
``pipeline.*``, ``scale.*`` and ``perception.*`` groups and the rig's ``image_topics``/... from
the core layers' config dataclasses). Each field's
description, allowed values (``Literal`` types) and range (``field(metadata={'range': ...})``)
become its ``ParameterDescriptor``.

Validation: an override that is not allowed (wrong type, not one of the allowed values, out of
range) makes the declaration fail, so the node does not start and says which parameter and why.
``set_parameters`` of an invalid value is rejected with the same reason. Every parameter is read
at configure, so while the node is active a set is refused with a reason ("deactivate and
cleanup first"); in the other states it is accepted and applies at the next configure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Literal

from rcl_interfaces.msg import FloatingPointRange
from rcl_interfaces.msg import IntegerRange
from rcl_interfaces.msg import ParameterDescriptor
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

from vggt4d_ros.config_fields import field_meta as _meta
from vggt4d_ros.ros.perception_params import perception_topic_specs
from vggt4d_ros.runtime.config import EngineConfig
from vggt4d_ros.runtime.parameters import build_config
from vggt4d_ros.runtime.parameters import engine_config_from_parameters
from vggt4d_ros.runtime.parameters import engine_parameter_specs
from vggt4d_ros.runtime.parameters import field_specs
from vggt4d_ros.runtime.parameters import ParameterSpec
from vggt4d_ros.viz.foxglove_view import FoxgloveViewConfig

#: base_link -> camera optical rotation of a forward-looking camera: rpy (-pi/2, 0, -pi/2).
DEFAULT_BASE_TO_CAMERA = [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5]


@dataclass(frozen=True)
class NodeParams:
    """Node-level parameters (field names = parameter names; see the module docstring)."""

    # Lifecycle and input.
    autostart: bool = field(default=True, metadata=_meta(
        'Configure and activate at startup (false: wait for a lifecycle manager or `ros2 '
        'lifecycle set`).'))
    image_topic: str = field(default='/camera/image_raw', metadata=_meta('Input image topic.'))
    compressed: bool = field(default=False, metadata=_meta(
        'Subscribe to sensor_msgs/CompressedImage instead of Image (give the .../compressed '
        'topic in image_topic).'))
    camera_info_topic: str = field(default='', metadata=_meta(
        'Optional CameraInfo topic; the latest message is cached (VGGT estimates intrinsics '
        'itself). Empty: not subscribed.'))
    input_qos: Literal['sensor_data', 'reliable'] = field(default='sensor_data', metadata=_meta(
        'Image subscription QoS: sensor_data (best effort, REP-2003) or reliable.'))
    input_depth: int = field(default=5, metadata=_meta(
        'History depth of the image subscription (replay mode keeps all).', (1, 1000)))
    queue_size: int = field(default=8, metadata=_meta(
        'Frames buffered between the callback and the worker (live mode: a full queue adds '
        'queue_size / fps of latency before frames drop).', (1, 10000)))
    queue_max_mb: int = field(default=1024, metadata=_meta(
        'Bound on the decoded pixels buffered between the callback and the worker, in MiB '
        '(live: the oldest frames drop; replay: the callback waits).', (1, 1048576)))
    max_image_pixels: int = field(default=7680 * 4320, metadata=_meta(
        'Largest accepted width x height of an input image, raw or compressed (compressed: '
        'read from the header before decoding); larger images are dropped and counted as '
        'rejected_size. Default: 8K UHD.', (1, 1 << 31)))
    # Frames and TF.
    map_frame: str = field(default='map', metadata=_meta(
        'World frame of the map cloud, path and odometry in map_to_camera mode.'))
    odom_frame: str = field(default='odom', metadata=_meta('World frame in odom_to_base mode.'))
    base_frame: str = field(default='base_link', metadata=_meta(
        'Robot body frame (odom_to_base mode).'))
    camera_frame: str = field(default='', metadata=_meta(
        'Camera optical frame; empty: the frame_id of the images.'))
    tf_mode: Literal['map_to_camera', 'odom_to_base', 'none'] = field(
        default='map_to_camera', metadata=_meta(
            'map_to_camera: TF map -> camera optical frame; odom_to_base: TF odom -> base_link '
            'through the camera extrinsic (REP-105); none: no TF.'))
    extrinsic_source: Literal['parameter', 'tf'] = field(default='parameter', metadata=_meta(
        'Where odom_to_base and the odometry / camera_height scale sources get base_link -> '
        'camera: parameter (base_to_camera) or tf (looked up once in TF, chains resolved: '
        'tf2_ros, or the built-in fallback).'))
    base_to_camera: list[float] = field(
        default_factory=lambda: list(DEFAULT_BASE_TO_CAMERA), metadata=_meta(
            'Pose of the camera optical frame in base_link [x, y, z, qx, qy, qz, qw]; default: '
            'at the origin, looking forward.'))
    # Metric scale inputs (the engine's scale.* parameters pick the source; docs/scale.md).
    depth_topic: str = field(default='/camera/aligned_depth_to_color/image_raw', metadata=_meta(
        'scale.source=depth: aligned depth image topic (16UC1/mono16 mm or 32FC1 m, registered '
        'to the colour camera), paired with the images by stamp (scale.sync_*).'))
    odometry_source: Literal['tf', 'topic'] = field(default='tf', metadata=_meta(
        'scale.source=odometry: tf (odom_frame -> base_frame looked up in TF at each image '
        'stamp, chains resolved) or topic (nav_msgs/Odometry on odometry_topic).'))
    odometry_topic: str = field(default='/odom', metadata=_meta(
        'scale.source=odometry with odometry_source=topic: the nav_msgs/Odometry topic.'))
    # Outputs.
    publish_tf: bool = field(default=True, metadata=_meta('Publish TF (see tf_mode).'))
    publish_masks: bool = field(default=True, metadata=_meta(
        'Publish ~/dynamic_mask (mono8 0/255) per frame.'))
    publish_overlay: bool = field(default=False, metadata=_meta(
        'Publish ~/mask_overlay (rgb8 debug view).'))
    publish_static_map: bool = field(default=True, metadata=_meta(
        'Publish ~/static_map (latched PointCloud2).'))
    publish_window_cloud: bool = field(default=True, metadata=_meta(
        "Publish ~/window_cloud (the window's static points)."))
    publish_path: bool = field(default=True, metadata=_meta('Publish ~/path (nav_msgs/Path).'))
    publish_odometry: bool = field(default=True, metadata=_meta(
        'Publish ~/odometry (nav_msgs/Odometry).'))
    path_max_size: int = field(default=1024, metadata=_meta(
        'Poses kept in ~/path.', (1, 1000000)))
    map_period_s: float = field(default=1.0, metadata=_meta(
        'Minimum seconds between two ~/static_map messages (0: after every window).',
        (0.0, 3600.0)))
    diagnostics_period_s: float = field(default=1.0, metadata=_meta(
        'Period of /diagnostics (read once, when the node starts).', (0.05, 60.0)))
    # Process.
    gil_switch_interval_ms: float = field(default=1.0, metadata=_meta(
        "Python's GIL switch interval for the whole process (sys.setswitchinterval), set at "
        'configure: how long the image callback may wait for the GIL while the worker runs '
        'Python/torch code (1 ms: input wait p50 5.8 -> 1.9 ms on a CPU test, worker '
        "throughput unchanged). 0: Python's default (5 ms).", (0.0, 100.0)))
    # Live view (foxglove.*; optional package, off by default).
    foxglove: FoxgloveViewConfig = field(default_factory=FoxgloveViewConfig)

    def __post_init__(self) -> None:
        if len(self.base_to_camera) != 7:
            raise ValueError('parameter base_to_camera must be [x, y, z, qx, qy, qz, qw]')
        if not self.image_topic:
            raise ValueError('parameter image_topic is empty')


def node_parameter_specs() -> list[ParameterSpec]:
    """List the node's own parameters (:class:`NodeParams`)."""
    return list(field_specs(NodeParams))


def all_parameter_specs() -> list[ParameterSpec]:
    """Every parameter the node declares, in declaration (and config file) order."""
    return node_parameter_specs() + perception_topic_specs() + engine_parameter_specs()


def descriptor(spec: ParameterSpec) -> ParameterDescriptor:
    """ROS descriptor of a parameter: description, allowed values, range."""
    result = ParameterDescriptor(description=spec.description)
    if spec.choices:
        result.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    if spec.limits is not None and isinstance(spec.default, float):
        result.floating_point_range = [FloatingPointRange(
            from_value=float(spec.limits[0]), to_value=float(spec.limits[1]), step=0.0)]
    elif spec.limits is not None and not isinstance(spec.default, bool):
        result.integer_range = [IntegerRange(
            from_value=int(spec.limits[0]), to_value=int(spec.limits[1]), step=1)]
    return result


def parameter_check(is_active: Callable[[], bool]) -> Callable[[list], SetParametersResult]:
    """``add_on_set_parameters_callback`` callback: reject invalid values, refuse while active.

    Args:
        is_active: whether the node is active now (values read at configure cannot apply).

    """
    specs = {spec.name: spec for spec in all_parameter_specs()}

    def check(parameters: list) -> SetParametersResult:
        for parameter in parameters:
            spec = specs.get(parameter.name)
            if spec is None or parameter.value is None:
                continue  # rclpy's own (use_sim_time, ...), or an array declared by type
            reason = spec.check(_plain(parameter.value))
            if reason is None and is_active():
                reason = (f'{parameter.name} is read at configure and the node is active: '
                          'deactivate and cleanup first, then set it and configure again')
            if reason is not None:
                return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    return check


def declare_parameters(node, is_active: Callable[[], bool]) -> None:
    """Register the set check, then declare every parameter (invalid overrides raise).

    Raises:
        rclpy.exceptions.InvalidParameterValueException: an override is not allowed (the
            message names the parameter and the reason).

    """
    node.add_on_set_parameters_callback(parameter_check(is_active))
    for spec in all_parameter_specs():
        if spec.item_type is not None and not spec.default:
            _declare_empty_array(node, spec)
        else:
            node.declare_parameter(spec.name, spec.default, descriptor(spec))


#: ROS array type of each array parameter's element type.
ARRAY_TYPES = {bool: Parameter.Type.BOOL_ARRAY, int: Parameter.Type.INTEGER_ARRAY,
               float: Parameter.Type.DOUBLE_ARRAY, str: Parameter.Type.STRING_ARRAY}


def _declare_empty_array(node, spec: ParameterSpec) -> None:
    """Declare an array parameter whose default is empty, with its element type.

    rclpy types an empty list as a byte array (and a YAML ``[]`` reaches the node untyped), so
    the parameter is declared by type; without an override it is then set to an empty array
    of that type, so that it reads as ``[]`` rather than as an unset parameter.

    Raises:
        rclpy.exceptions.InvalidParameterValueException: the override is not allowed.

    """
    kind = ARRAY_TYPES[spec.item_type]
    node.declare_parameter(spec.name, kind, descriptor(spec))
    try:
        node.get_parameter(spec.name)
    except ParameterUninitializedException:
        node.set_parameters([Parameter(spec.name, kind, [])])


def _plain(value: Any) -> Any:
    """Parameter value as a plain Python value (arrays -> lists)."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    return list(value)


def _values(node, specs: list[ParameterSpec]) -> dict[str, Any]:
    return {spec.name: _plain(node.get_parameter(spec.name).value) for spec in specs}


def read_node_parameters(node) -> NodeParams:
    """Read and validate the node-level parameters.

    Raises:
        ValueError: a parameter is not allowed (message names it).

    """
    values = _values(node, node_parameter_specs())
    for spec in node_parameter_specs():
        reason = spec.check(values[spec.name])
        if reason is not None:
            raise ValueError(f'parameter {reason}')
        values[spec.name] = spec.plain(values[spec.name])
    return build_config(NodeParams, values)


def read_engine_config(node) -> EngineConfig:
    """Build the EngineConfig of the node's parameters (as the replay tool does).

    Raises:
        ValueError: a parameter is not allowed or the combination is invalid.

    """
    return engine_config_from_parameters(_values(node, engine_parameter_specs()))


def reread_backend_config(node, config: EngineConfig) -> EngineConfig:
    """``config`` with its backend part (weights, model, device, ...) read again from ``node``.

    Activate loads the model: reading these anew there makes a failed activate fixable by
    setting them and activating again (the node is inactive then, so the set is accepted).

    Raises:
        ValueError: a parameter is not allowed or the combination is invalid.

    """
    return replace(config, backend=read_engine_config(node).backend)
