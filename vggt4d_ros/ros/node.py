# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The vggt4d lifecycle node: images in; masks, static map, TF, path, odometry out.

Lifecycle:
- configure: read parameters, create publishers.
- activate: load the model (weights, or random weights when allowed), warm it up, start the
  worker thread, subscribe. A failure (missing weights, no CUDA, ...) is logged as an error and
  the node stays inactive and alive.
- deactivate: unsubscribe, stop the worker (replay mode first finishes queued frames), drop
  the model and free GPU memory. cleanup: destroy publishers. shutdown: all of it.
With ``autostart`` (default) the node configures and activates itself.

Threading: subscription callbacks only convert the message and enqueue the frame (bounded
queue; live mode drops the oldest, replay mode waits). ONE worker thread owns the
PerceptionEngine (window manager -> VGGT4D -> mapper) and publishes the masks (then the
overlays) as soon as VGGT4D returns, before the mapper. What follows the mapper (planner
outputs, then TF, odometry, path, clouds and planner messages) runs on the engine's output
thread (``output_stage.run_async``, default) while the worker starts the next window, or on
the worker itself with it off. Deactivate/shutdown drain that thread before the publishers go.
"""

from __future__ import annotations

import collections
from concurrent.futures import Future
import functools
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticStatus
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock
from rclpy.clock_type import ClockType
from rclpy import executors
from rclpy.exceptions import ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.lifecycle import LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.qos import HistoryPolicy
from rclpy.qos import qos_profile_sensor_data
from rclpy.qos import QoSProfile
from rclpy.qos import ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from rclpy.subscription import Subscription
from sensor_msgs.msg import CameraInfo
from sensor_msgs.msg import CompressedImage
from sensor_msgs.msg import Image

from vggt4d_ros.ros.compat import DiagnosticsPublisher
from vggt4d_ros.ros.conversions import compressed_msg_to_rgb
from vggt4d_ros.ros.conversions import image_msg_to_rgb
from vggt4d_ros.ros.conversions import ImageDecodeError
from vggt4d_ros.ros.conversions import ImageLimitError
from vggt4d_ros.ros.conversions import ImageLimits
from vggt4d_ros.ros.conversions import stamp_to_ns
from vggt4d_ros.ros.conversions import SUPPORTED_ENCODINGS
from vggt4d_ros.ros.conversions import UnsupportedEncodingError
from vggt4d_ros.ros.engine_sink import ConventionResolver
from vggt4d_ros.ros.engine_sink import NodeSink
from vggt4d_ros.ros.frame_queue import FrameQueue
from vggt4d_ros.ros.frame_queue import QueuedFrame
from vggt4d_ros.ros.outputs import OutputPublisher
from vggt4d_ros.ros.params import declare_parameters
from vggt4d_ros.ros.params import NodeParams
from vggt4d_ros.ros.params import read_engine_config
from vggt4d_ros.ros.params import read_node_parameters
from vggt4d_ros.ros.params import reread_backend_config
from vggt4d_ros.ros.scale_inputs import check_scale_parameters
from vggt4d_ros.ros.scale_inputs import scale_diagnostics
from vggt4d_ros.ros.scale_inputs import ScaleInputs
from vggt4d_ros.ros.perception_params import read_perception_topic_params
from vggt4d_ros.ros.perception_publishers import PerceptionPublisher
from vggt4d_ros.ros.rig_inputs import offer_step
from vggt4d_ros.ros.rig_inputs import QueuedStep
from vggt4d_ros.ros.rig_inputs import RigInputs
from vggt4d_ros.ros.tf_buffer import NodeTf
from vggt4d_ros.ros.stats import LatencyMeter
from vggt4d_ros.ros.stats import RateMeter
from vggt4d_ros.runtime import backend as backend_lib
from vggt4d_ros.runtime.config import EngineConfig
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.rig import RigConfig
from vggt4d_ros.runtime.rig import RigSetup
from vggt4d_ros.runtime.sink import TeeSink
from vggt4d_ros.viz.foxglove_view import FoxgloveView
from vggt4d_ros.viz.foxglove_view import start_view

NODE_NAME = 'vggt4d'
#: Raised out of spin_once() when another owner shuts the context down.
ExternalShutdownException = getattr(executors, 'ExternalShutdownException', KeyboardInterrupt)
SUCCESS = TransitionCallbackReturn.SUCCESS
FAILURE = TransitionCallbackReturn.FAILURE
#: rclpy >= Iron passes rmw's MessageInfo (DDS source/receive timestamps) to two-argument
#: subscription callbacks; Humble's rclpy does not.
HAS_MESSAGE_INFO = hasattr(Subscription, 'CallbackType')
#: The interpreter's GIL switch interval before the node changed it (restored by 0).
PYTHON_SWITCH_INTERVAL_S = sys.getswitchinterval()


def _guarded(transition: str) -> Callable:
    """Wrap a transition callback: any exception fails the transition with a logged reason.

    rclpy turns an exception in a transition callback into the error state without a log
    line; here the reason goes to the log (traceback at debug level) and to ``last_error`` in
    /diagnostics, and the transition returns FAILURE, so the node stays in its previous state
    and the transition can be retried.
    """
    def wrap(callback: Callable) -> Callable:
        @functools.wraps(callback)
        def guarded(self: 'Vggt4dNode', state) -> TransitionCallbackReturn:
            try:
                return callback(self, state)
            except Exception as error:  # noqa: B902 - every failure must be reported
                self._release_after_failure(transition)
                return self._fail(transition, f'{type(error).__name__}: {error}')
        return guarded
    return wrap


class Counters:
    """Counters read by diagnostics; each is written by one thread only (callback or worker)."""

    def __init__(self) -> None:
        self.received = 0
        self.rejected_encoding = 0
        self.rejected_size = 0  # above max_image_pixels or the aspect-ratio limit
        self.rejected_stamp = 0  # header stamp 0 (unset)
        self.decode_errors = 0
        self.executor_errors = 0  # exceptions that reached the spin loop (main)
        self.processed = 0
        self.worker_errors = 0
        self.input_rate = RateMeter()
        self.output_rate = RateMeter()
        self.latency = LatencyMeter()  # image callback -> its mask published (worker)
        self.input_delay = LatencyMeter()  # image stamp -> image callback, ROS clock (callback)
        self.input_wait = LatencyMeter()  # DDS receive -> image callback (callback; Iron+)
        self.window_time = LatencyMeter(100)  # worker seconds per window, publishing and waits out
        self.publish_time = LatencyMeter(100)  # publishing seconds per window (all threads)
        self.perception_time = LatencyMeter(100)  # planner outputs per window (their thread)
        self.stage_wait = LatencyMeter(100)  # worker blocked on a full output stage, per call
        #: Publishing seconds per window and message kind (masks on the worker, the others
        #: where window_mapped runs).
        self.publish_kinds: collections.defaultdict[str, LatencyMeter] = \
            collections.defaultdict(lambda: LatencyMeter(100))


class Vggt4dNode(LifecycleNode):
    """Lifecycle node running VGGT4D on a sliding window of camera images."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(NODE_NAME, **kwargs)
        self.state_label = 'unconfigured'
        declare_parameters(self, lambda: self.state_label == 'active')
        self._rig: RigInputs | None = None  # multi-camera input (image_topics)
        self.counters = Counters()
        self.params: NodeParams | None = None
        self.engine_config: EngineConfig | None = None
        self.last_error = ''
        self._outputs: OutputPublisher | None = None
        self._conventions: ConventionResolver | None = None
        self._queue: FrameQueue | None = None
        self._loaded: backend_lib.LoadedBackend | None = None
        self._engine: PerceptionEngine | None = None
        self._sink: NodeSink | None = None
        self._view: FoxgloveView | None = None  # foxglove.enabled: the live view, while active
        self._scale_inputs: ScaleInputs | None = None  # feeds engine.metric (scale.source)
        # One TF buffer for every reader (extrinsic, obstacle_frame, rig, scale): made on the
        # first acquire, released at cleanup / shutdown / error.
        self.tf = NodeTf(self)
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        # Not ``_subscriptions``: that is rclpy.Node's own list (it holds /clock, parameters).
        self._input_subscriptions: list = []
        self._dropped_before = 0  # queue drops of earlier activations
        self._flush_on_stop = False
        self._input_group = MutuallyExclusiveCallbackGroup()
        self._warned_encodings: set[str] = set()
        self.camera_info: CameraInfo | None = None
        self._steady_clock = Clock(clock_type=ClockType.STEADY_TIME)
        period = self.get_parameter('diagnostics_period_s').value
        self._diagnostics = DiagnosticsPublisher(self, 'vggt4d', 'vggt4d', period,
                                                 self._diagnostic_status)
        self._answer_every_change_state()

    def _answer_every_change_state(self) -> None:
        """Make the change_state service answer every request, invalid ones with failure.

        rclpy raises out of the service callback for a transition the current state does not
        have (activate while unconfigured: "Transition is not registered"), which ended the
        process from ``spin_once``.
        """
        service = getattr(self, '_service_change_state', None)
        if service is None:
            return
        answer = service.callback

        def answer_or_refuse(request, response):
            try:
                return answer(request, response)
            except Exception as error:  # noqa: B902 - rclpy raises RCLError, RuntimeError
                label = request.transition.label or f'id {request.transition.id}'
                self.get_logger().warning(
                    f'refused lifecycle transition {label} in state {self.state_label}: '
                    f'{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}')
                response.success = False
                return response

        service.callback = answer_or_refuse

    def create_timer(self, timer_period_sec: float, callback, callback_group=None,
                     clock: Clock | None = None, **kwargs: Any):
        """Create a timer on the steady clock unless ``clock`` says otherwise.

        The node's timers (diagnostics, including the one diagnostic_updater creates through
        this method) report on the process, not on the data, so they tick in wall time. On the
        ROS clock they would stop under ``use_sim_time`` whenever /clock stops advancing, e.g.
        while a bag player waits for frames_received on /diagnostics before sending more.
        """
        return super().create_timer(timer_period_sec, callback, callback_group,
                                    clock=self._steady_clock if clock is None else clock,
                                    **kwargs)

    # ------------------------------------------------------------------ lifecycle
    @_guarded('configure')
    def on_configure(self, state) -> TransitionCallbackReturn:
        try:
            self.params = read_node_parameters(self)
            self.engine_config = read_engine_config(self)
            check_scale_parameters(self.params, self.engine_config.scale)
            rig = self.rig_setup
            self._conventions = ConventionResolver(
                self, self.params, None if rig is None or rig.base_from_camera is None
                else rig.base_from_camera[0], self.tf)
        except (ValueError, TypeError) as error:
            self._engine = None
            self.tf.release()
            return self._fail('configure', str(error))
        set_switch_interval(self.params.gil_switch_interval_ms)
        self._outputs = OutputPublisher(
            self, self.params, rig.camera_names if rig is not None else (),
            PerceptionPublisher(self, read_perception_topic_params(self),
                                self.engine_config.perception, tf=self.tf))
        self.state_label = 'inactive'
        self.last_error = ''
        qos = 'reliable, keep all' if self.mode == 'replay' else self.params.input_qos
        self.get_logger().info(
            f'configured: {self.mode} mode, input '
            f'{", ".join(self.rig_config.image_topics) or self.params.image_topic} '
            f'({"compressed" if self.params.compressed else "raw"}, {qos})')
        return SUCCESS

    @property
    def rig_config(self) -> RigConfig:
        """The rig parameters read at configure (``image_topics`` empty: one camera)."""
        return self.engine_config.rig if self.engine_config is not None else RigConfig()

    @property
    def rig_setup(self) -> RigSetup | None:
        """The engine's rig (cameras, parameter extrinsics), None for one camera."""
        return self.rig_config.setup() if self.rig_config.enabled else None

    @property
    def mode(self) -> str:
        """'live' or 'replay' (the ``mode`` parameter read at configure)."""
        return self.engine_config.window.mode if self.engine_config is not None else ''

    @_guarded('activate')
    def on_activate(self, state) -> TransitionCallbackReturn:
        try:
            # A failed activate is fixed by setting the model parameters and activating
            # again (docs/ros.md): read the backend's anew; the rest stays as configured.
            self.engine_config = reread_backend_config(self, self.engine_config)
        except (ValueError, TypeError) as error:
            return self._fail('activate', str(error))
        config = self.engine_config
        try:
            self._loaded = backend_lib.build_backend(config.backend, config.pipeline)
            self.get_logger().info(f'loaded {self._loaded.description}')
            if self._loaded.random_weights:
                self.get_logger().warning(backend_lib.RANDOM_WEIGHTS_WARNING)
            if config.pipeline.precision == 'fast':
                self.get_logger().warning(backend_lib.FAST_MODE_WARNING)
            self._start_engine()
            self._start_worker()
        except Exception as error:  # noqa: B902 - any load error must leave the node alive
            self._stop_worker(finish_queue=False)
            self._drop_backend()
            return self._fail('activate', f'{type(error).__name__}: {error}')
        self._subscribe()
        self.state_label = 'active'
        self.last_error = ''
        self.get_logger().info('active')
        return SUCCESS

    def _start_engine(self) -> None:
        """Create a fresh engine around the loaded backend, publishing through a NodeSink."""
        self._engine = PerceptionEngine.from_config(
            self._loaded.backend, self.engine_config, rig=self.rig_setup)
        self._sink = NodeSink(self, self.params, self._outputs, self._conventions,
                              self.counters, self._engine.perception)
        self._engine.static_map_due = self._sink.static_map_due
        self._view = start_view(self.params.foxglove, self._conventions.convention,
                                self._engine.static_map, self.get_logger())
        self._engine.sink = TeeSink(self._sink, self._view) if self._view else self._sink

    def _start_worker(self) -> None:
        """Start the worker thread and wait for its warm-up (re-raising what that raised).

        The warm-up runs on the worker thread itself: torch keeps cuBLAS and cuDNN handles and
        cuDNN's attention plans per thread, and with the warm-up on the executor thread the
        first live window built them again on the worker: 428 ms instead of about 150 (pass 1
        213 ms, its heads 93, pass 2 92; H200).
        """
        self._stop.clear()
        self._queue = FrameQueue(self.params.queue_size, drop_oldest=self.mode == 'live',
                                 max_bytes=self.params.queue_max_mb << 20)
        warmed: Future = Future()
        self._worker = threading.Thread(target=self._work, args=(warmed,), name='vggt4d_worker',
                                        daemon=True)
        self._worker.start()
        warm_up = warmed.result()
        if warm_up is not None:
            seconds, frozen, collect_s = warm_up
            self.get_logger().info(
                f'warm-up took {seconds:.2f} s; then a full garbage collection took '
                f'{collect_s * 1e3:.0f} ms and {frozen} objects were exempted from later ones')

    def _warm_up(self) -> tuple[float, int, float] | None:
        """Warm the backend up and freeze the heap (worker thread); None when ``warmup`` is off."""
        config = self.engine_config
        if not config.backend.warmup:
            return None
        seconds = backend_lib.warm_up(self._loaded.backend, config.window, config.mapper,
                                      config.backend.warmup_height,
                                      config.backend.warmup_width, config.perception,
                                      self.rig_setup)
        return (seconds, *backend_lib.freeze_heap())

    @_guarded('deactivate')
    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._unsubscribe()
        self._stop_worker(finish_queue=self.mode == 'replay')
        self._drop_backend()
        self.state_label = 'inactive'
        self.get_logger().info('deactivated, model released')
        return SUCCESS

    @_guarded('cleanup')
    def on_cleanup(self, state) -> TransitionCallbackReturn:
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None
        self.tf.release()
        self.state_label = 'unconfigured'
        return SUCCESS

    @_guarded('shutdown')
    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self.stop_everything()
        self.state_label = 'finalized'
        return SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        self.get_logger().error('error transition: releasing everything')
        self.stop_everything()
        return SUCCESS

    def stop_everything(self) -> None:
        """Unsubscribe, stop the worker, free the model and publishers (idempotent)."""
        self._unsubscribe()
        self._stop_worker(finish_queue=False)
        self._drop_backend()
        if self._outputs is not None:
            self._outputs.destroy()
            self._outputs = None
        self.tf.release()

    def _release_after_failure(self, transition: str) -> None:
        """Undo what a transition that raised had started (never raises)."""
        try:
            if transition == 'activate':
                self._unsubscribe()
                self._stop_worker(finish_queue=False)
                self._drop_backend()
            elif transition == 'configure':
                if self._outputs is not None:
                    self._outputs.destroy()
                    self._outputs = None
                self._engine = None
                self.tf.release()
        except Exception:  # noqa: B902 - the original failure is what gets reported
            self.get_logger().debug(f'cleanup after the failed {transition}:\n'
                                    f'{traceback.format_exc()}')

    def _fail(self, transition: str, reason: str) -> TransitionCallbackReturn:
        """Log and report a failed transition (called inside its ``except`` when one raised)."""
        self.last_error = f'{transition} failed: {reason}'
        if sys.exc_info()[0] is not None:
            self.get_logger().debug(f'{transition} failed:\n{traceback.format_exc()}')
        self.get_logger().error(f'{self.last_error} (node stays alive; fix the parameter and '
                                'retry the transition)')
        return FAILURE

    # ------------------------------------------------------------------ input
    def _subscribe(self) -> None:
        params = self.params
        if self.mode == 'replay':
            qos = QoSProfile(depth=params.input_depth, history=HistoryPolicy.KEEP_ALL,
                             reliability=ReliabilityPolicy.RELIABLE)
        elif params.input_qos == 'reliable':
            qos = QoSProfile(depth=params.input_depth, reliability=ReliabilityPolicy.RELIABLE)
        else:
            qos = QoSProfile(depth=params.input_depth,
                             reliability=qos_profile_sensor_data.reliability,
                             durability=qos_profile_sensor_data.durability)
        if params.compressed:
            msg_type = CompressedImage
            callback = self._on_compressed_info if HAS_MESSAGE_INFO else self._on_compressed
        else:
            msg_type = Image
            callback = self._on_image_info if HAS_MESSAGE_INFO else self._on_image
        if self.rig_config.enabled:
            convert = compressed_msg_to_rgb if params.compressed else image_msg_to_rgb
            self._rig = RigInputs(self, self.rig_config, msg_type,
                                  lambda msg: convert(msg, self._limits()), self._decode,
                                  self._enqueue, qos, self._input_group, tf=self.tf)
            return
        self._input_subscriptions.append(self.create_subscription(
            msg_type, params.image_topic, callback, qos, callback_group=self._input_group))
        metric = self._engine.metric if self._engine is not None else None
        self._scale_inputs = None if metric is None else ScaleInputs(
            self, params, metric, self._limits(), qos, tf=self.tf)
        if self._scale_inputs is not None:
            self._input_subscriptions += self._scale_inputs.subscribe(self._input_group)
        if params.camera_info_topic:
            self._input_subscriptions.append(self.create_subscription(
                CameraInfo, params.camera_info_topic, self._on_camera_info,
                qos_profile_sensor_data))

    def _unsubscribe(self) -> None:
        if self._rig is not None:
            self._rig.destroy()
            self._rig = None
        for subscription in self._input_subscriptions:
            self.destroy_subscription(subscription)
        self._input_subscriptions.clear()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self.camera_info = msg

    def _limits(self) -> ImageLimits:
        params = self.params
        return ImageLimits(max_pixels=params.max_image_pixels) if params else ImageLimits()

    def _on_image(self, msg: Image) -> None:
        self._accept(msg.header, lambda: image_msg_to_rgb(msg, self._limits()))

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._accept(msg.header, lambda: compressed_msg_to_rgb(msg, self._limits()))

    # Two-argument twins: rclpy then hands over the MessageInfo (see HAS_MESSAGE_INFO).
    def _on_image_info(self, msg: Image, info: dict) -> None:
        self._accept(msg.header, lambda: image_msg_to_rgb(msg, self._limits()), info)

    def _on_compressed_info(self, msg: CompressedImage, info: dict) -> None:
        self._accept(msg.header, lambda: compressed_msg_to_rgb(msg, self._limits()), info)

    def _accept(self, header, convert, info: dict | None = None) -> None:
        """Convert and enqueue; never raises (a bad message is counted and dropped)."""
        arrived = time.monotonic()
        decoded = self._decode(header, convert, info)
        if decoded is not None:
            if self._scale_inputs is not None:
                self._scale_inputs.image(header)
            self._enqueue(QueuedFrame(decoded[0], decoded[1], header, arrived))

    def _enqueue(self, item: QueuedFrame | QueuedStep) -> None:
        queue = self._queue
        if queue is not None:
            queue.put(item)

    def _decode(self, header, convert, info: dict | None = None) -> tuple | None:
        """(rgb, stamp ns) of a message, or None when rejected (counted and logged)."""
        arrived = time.monotonic()
        self._measure_arrival(header, info)
        self.counters.received += 1
        self.counters.input_rate.tick(arrived)
        stamp_ns = stamp_to_ns(header.stamp)
        if stamp_ns <= 0:
            # An unset stamp: it cannot be ordered against the stream (it read as "stamps
            # went backwards" and reset the map).
            self.counters.rejected_stamp += 1
            self.get_logger().warning('dropping image with header stamp 0 (unset); counted '
                                      'as rejected_stamp', throttle_duration_sec=5.0)
            return None
        try:
            rgb = convert()
        except UnsupportedEncodingError as error:
            self.counters.rejected_encoding += 1
            if str(error) not in self._warned_encodings:
                self._warned_encodings.add(str(error))
                self.get_logger().warning(
                    f'dropping images with unsupported encoding {str(error)!r} (supported: '
                    f'{", ".join(SUPPORTED_ENCODINGS)}); counted in /diagnostics, not '
                    'repeated')
            return None
        except ImageLimitError as error:
            self.counters.rejected_size += 1
            self.get_logger().warning(f'dropping image: {error}; counted as rejected_size',
                                      throttle_duration_sec=5.0)
            return None
        except ImageDecodeError as error:
            self.counters.decode_errors += 1
            self.get_logger().warning(f'dropping undecodable image: {error}',
                                      throttle_duration_sec=5.0)
            return None
        return rgb, stamp_ns

    def _measure_arrival(self, header, info: dict | None) -> None:
        """Record how long the image took to reach this callback (diagnostics).

        ``input_delay``: callback minus the image stamp on the node's clock (camera driver,
        transport and executor together; meaningful when the camera stamps with this host's
        clock, or with /clock in simulation). ``input_wait``: callback minus the DDS receive
        time (system clock, as rmw stamps it): how long the message waited for the executor
        thread, which shares the GIL with the worker.
        """
        now_ns = self.get_clock().now().nanoseconds
        self.counters.input_delay.add((now_ns - stamp_to_ns(header.stamp)) * 1e-9)
        received_ns = info.get('received_timestamp', 0) if info else 0
        if received_ns > 0:
            self.counters.input_wait.add((time.time_ns() - received_ns) * 1e-9)

    # ------------------------------------------------------------------ worker
    def _work(self, warmed: Future) -> None:
        """Worker thread: warm up, then feed the engine, publish results, survive any error."""
        try:
            warmed.set_result(self._warm_up())
        except Exception as error:  # noqa: B902 - on_activate reports it
            warmed.set_exception(error)
            return
        queue = self._queue
        while True:
            item = queue.get(timeout_s=0.1)
            if item is None:
                if self._stop.is_set():
                    break
                continue
            # Live mode: everything that queued up while the last window ran goes to the engine
            # at once, whose window manager takes the freshest frames (a backlog would
            # otherwise be worked off frame by frame, at the window time's small margin over
            # the frame period: seconds of extra latency after one slow window). Replay mode
            # keeps one frame at a time.
            batch = [item] + (queue.take_all() if self.mode == 'live' else [])
            try:
                self._process(batch)
            except Exception:  # noqa: B902 - one bad window must not kill the node
                if not self.context.ok():
                    # SIGINT/SIGTERM shut the context down while a window was in flight: its
                    # publishers are gone. Nothing went wrong with the data; stop quietly.
                    break
                self._count_failed_window()
                self.get_logger().error(f'window failed: {traceback.format_exc()}',
                                        throttle_duration_sec=5.0)
        if (self._flush_on_stop and self._engine is not None and self._outputs is not None
                and self.context.ok()):
            try:
                self._sink.force_map = True
                self._engine.flush()
            except Exception:  # noqa: B902
                self.get_logger().error(f'final flush failed: {traceback.format_exc()}')
        self._close_engine()

    def _close_engine(self) -> None:
        """Deliver what the engine's output stage holds and end its thread (never raises)."""
        engine = self._engine
        if engine is None:
            return
        try:
            engine.close()
        except Exception:  # noqa: B902 - a window's late failure: logged, then stop
            if not self.context.ok():
                # SIGINT/SIGTERM shut the context down under a window's publishing (as in
                # _work): nothing went wrong with the data.
                return
            self._count_failed_window()
            self.get_logger().error(f'window failed: {traceback.format_exc()}')

    def _count_failed_window(self) -> None:
        """Count the exception being handled as a failed window and keep its last line.

        The callers log it themselves: rclpy binds a log call's throttle to its call site.
        """
        self.counters.worker_errors += 1
        self.last_error = traceback.format_exc(limit=3).strip().splitlines()[-1]

    def _process(self, batch: list[QueuedFrame]) -> None:
        """Offer the frames (oldest first) and run the windows that are ready.

        The engine publishes through the sink as it goes. In live mode the window manager
        keeps only the freshest ``stride`` of what is pending, so a node that fell behind
        skips to the newest frames (counted as window drops) instead of working through a
        backlog frame by frame.
        """
        engine, sink = self._engine, self._sink
        stage = engine.stage
        waited = stage.stats.wait_s if stage is not None else 0.0
        start = time.perf_counter()  # window time includes the gate (optical flow in offer)
        for item in batch:
            if isinstance(item, QueuedStep):  # a rig step: one frame per camera
                offer_step(item, engine, sink, self._rig)
                continue
            sink.arrived(item.stamp_ns, item.received_s, item.header.frame_id)
            engine.offer(item.rgb, item.stamp_ns, item.header.frame_id)
        if engine.process():
            # Publishing done on this thread (the masks; with the stage off, all of it) and
            # the wait for the output stage are not the window's own time.
            publish_s = sink.take_publish_seconds()
            waited = stage.stats.wait_s - waited if stage is not None else 0.0
            self.counters.window_time.add(time.perf_counter() - start - publish_s - waited)
            self.counters.stage_wait.add(waited)

    def _stop_worker(self, finish_queue: bool) -> None:
        # finish_queue: process what is queued and flush the last partial window (replay
        # deactivate); on shutdown the context may already be gone, so nothing is flushed.
        self._flush_on_stop = finish_queue
        self._stop.set()
        queue = self._queue
        if queue is not None:
            if not finish_queue:
                queue.clear()
            queue.close()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if queue is not None:
            self._dropped_before += queue.dropped
        self._queue = None

    def _drop_backend(self) -> None:
        device = self._loaded.device if self._loaded is not None else None
        self._close_engine()  # normally done by the worker; not when its warm-up failed
        self._engine = None
        self._sink = None
        if self._view is not None:
            self._view.close()
            self._view = None
        self._loaded = None
        backend_lib.release(device)

    # ------------------------------------------------------------------ diagnostics
    def _diagnostic_status(self):
        counters = self.counters
        engine_stats = _engine_stats(self._engine)
        queue = self._queue
        dropped_queue = self._dropped_before + (queue.dropped if queue is not None else 0)
        allocated, reserved = backend_lib.gpu_memory_mb(
            self._loaded.device if self._loaded is not None else None)
        values = {
            'state': self.state_label,
            'mode': self.mode,
            'input_rate_hz': f'{counters.input_rate.rate_hz():.2f}',
            'output_rate_hz': f'{counters.output_rate.rate_hz():.2f}',
            **{key: value for name in ('latency', 'input_delay', 'input_wait', 'window_time',
                                       'publish_time', 'perception_time', 'stage_wait')
               for key, value in _p50_p95(name, getattr(counters, name)).items()},
            # A copy first: the output thread may add a kind meanwhile.
            **{key: value for kind, meter in sorted(dict(counters.publish_kinds).items())
               for key, value in _p50_p95(f'publish_{kind}', meter).items()},
            'frames_received': str(counters.received),
            'frames_published': str(counters.processed),
            'dropped_queue': str(dropped_queue),
            'rejected_encoding': str(counters.rejected_encoding),
            'rejected_size': str(counters.rejected_size),
            'rejected_stamp': str(counters.rejected_stamp),
            'decode_errors': str(counters.decode_errors),
            'executor_errors': str(counters.executor_errors),
            'worker_errors': str(counters.worker_errors),
            'gpu_allocated_mb': f'{allocated:.0f}',
            'gpu_reserved_mb': f'{reserved:.0f}',
            'backend': self._loaded.description if self._loaded else '',
            'camera_info_received': str(self.camera_info is not None).lower(),
            'last_error': self.last_error,
        }
        values.update({key: str(value) for key, value in engine_stats.items()})
        values.update(scale_diagnostics(self._scale_inputs, self.engine_config.scale
                                        if self.engine_config is not None else None))
        if self._rig is not None:
            values.update(self._rig.diagnostics())
        values.update(self.tf.diagnostics())
        dropped = dropped_queue + int(engine_stats.get('dropped_window', 0))
        values['dropped_total'] = str(dropped)
        if self.last_error:
            return DiagnosticStatus.ERROR, self.last_error, values
        if self.state_label != 'active':
            return DiagnosticStatus.WARN, f'not active ({self.state_label})', values
        if dropped:
            return DiagnosticStatus.WARN, f'active, {dropped} frames dropped', values
        return DiagnosticStatus.OK, 'active', values


def _p50_p95(name: str, meter: LatencyMeter) -> dict[str, str]:
    """Diagnostics entries ``<name>_p50_ms`` and ``<name>_p95_ms`` of a meter."""
    return {f'{name}_p{q}_ms': f'{meter.percentile(q) * 1e3:.1f}' for q in (50, 95)}


def _engine_stats(engine: PerceptionEngine | None) -> dict[str, int]:
    """Engine counters for diagnostics (empty before activate)."""
    if engine is None:
        return {}
    stats = engine.stats
    return {
        'keyframes': stats.keyframes,
        'skipped_not_keyframe': stats.skipped,
        'duplicates': stats.duplicates,
        'dropped_window': stats.dropped,
        'windows': stats.windows,
        'resets_input': stats.window_resets,
        'resets_map': stats.map_resets,
        'outliers_ignored': engine.windows.stats.outliers,
        **_perception_stats(engine),
    }


def _perception_stats(engine: PerceptionEngine) -> dict[str, int]:
    """Planner-output counters for diagnostics (none when perception is off)."""
    if engine.perception is None:
        return {}
    stats, tracks = engine.perception.stats, engine.perception.tracker.stats
    return {'perception_frames': stats.frames, 'perception_empty_frames': stats.empty_frames,
            'perception_resets': stats.resets, 'perception_rescales': stats.rescales,
            'perception_small_parts': stats.small_parts,
            'perception_excess_parts': stats.excess_parts,
            'perception_detections': stats.detections, 'tracks_confirmed': tracks.confirmed,
            'tracks_full': tracks.full, 'tracks_box_skipped': tracks.box_skipped}


def set_switch_interval(milliseconds: float) -> None:
    """Set the process's GIL switch interval (0: the interpreter's original value).

    The executor thread (image callbacks, diagnostics) and the worker thread (thousands of
    short torch calls per window, mask publishing) share the GIL. A thread that wants it asks
    the holder to drop it and waits up to one switch interval, and the callback path takes it
    several times per image (wait set, take, decode, enqueue), so Python's default of 5 ms can
    add tens of milliseconds to the image-to-mask latency while the worker is busy.
    """
    sys.setswitchinterval(milliseconds * 1e-3 if milliseconds > 0
                          else PYTHON_SWITCH_INTERVAL_S)


def _autostart(node: Vggt4dNode) -> None:
    if not node.get_parameter('autostart').value:
        node.get_logger().info('autostart=false: waiting for lifecycle transitions')
        return
    if node.trigger_configure() != SUCCESS:
        return
    node.trigger_activate()


def _spin(node: Vggt4dNode, executor: SingleThreadedExecutor, stop: threading.Event) -> None:
    """Spin until a signal or shutdown; an exception from a callback is logged, not fatal."""
    while rclpy.ok() and not stop.is_set():
        try:
            executor.spin_once(timeout_sec=0.1)
        except ExternalShutdownException:
            return  # another owner of the context shut it down
        except Exception as error:  # noqa: B902 - one bad callback must not end the node
            if not rclpy.ok():
                return
            node.counters.executor_errors += 1
            node.get_logger().error(f'callback failed: {type(error).__name__}: {error}',
                                    throttle_duration_sec=5.0)
            node.get_logger().debug(traceback.format_exc())


#: Handlers that end or interrupt the process on a stop signal; main() ignores the signal
#: instead of putting them back once the node is torn down.
_DEFAULT_STOP_HANDLERS = (signal.SIG_DFL, signal.default_int_handler)


def main(args: list[str] | None = None) -> int:
    """Entry point of ``ros2 run vggt4d_ros vggt4d_node``; exits 0 on SIGINT/SIGTERM.

    The node handles SIGINT/SIGTERM itself instead of rclpy: rclpy's handler shuts the context
    down from under the executor and the worker, which then fail mid-take or mid-publish
    (seen as rare tracebacks at shutdown). Here a signal only asks the spin loop to stop, and
    the teardown runs in order on this thread: unsubscribe, join the worker, destroy the node,
    shut rclpy down. Afterwards SIGINT/SIGTERM stay ignored (the process is exiting).
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        node = Vggt4dNode()
    except (ParameterException, ValueError) as error:
        # An override that is not allowed (type, allowed values, range): say which and exit.
        print(f'vggt4d_node: invalid parameter: {error}', file=sys.stderr)
        rclpy.shutdown()
        return 2
    # One executor thread: the callbacks only convert and enqueue, and rclpy's
    # MultiThreadedExecutor keeps the GIL so busy that the GPU worker thread starved (measured on
    # an H200: 2.1-3.2 s per window with it, 0.33 s with this; docs/performance.md).
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        _autostart(node)
        _spin(node, executor, stop)
    finally:
        node.stop_everything()
        executor.shutdown()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        for sig, handler in previous.items():
            # Only the interpreter's exit is left. ros2 launch escalates SIGINT to SIGTERM after
            # 5 s, and that exit (freeing torch, the DDS participant) took 7 s on a loaded
            # 2-core machine: SIGTERM's default action then turned a clean stop into exit -15.
            signal.signal(sig, signal.SIG_IGN if handler in _DEFAULT_STOP_HANDLERS else handler)
    return 0


if __name__ == '__main__':
    sys.exit(main())
