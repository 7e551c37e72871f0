# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Build, warm up and release the window backend: ONE builder for the node and the replay tool.

A backend is any object with ``run(frames, stamps_ns) -> WindowResult`` (:class:`Backend`); the
default is ``VGGT4DPipeline`` around a VGGT model. One policy (:class:`BackendConfig`): a
weights path is loaded strictly into the ``model_config`` architecture, and a missing or
mismatched checkpoint raises :class:`BackendError` naming the file; an empty path is an error
unless random weights are explicitly allowed, and random weights are always initialised from
``random_seed`` (the same model in every front end and every run).
"""

from __future__ import annotations

from dataclasses import dataclass
import gc
import importlib
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch

from vggt4d_ros.geometry.image_transform import plan_resize
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.model import runtime
from vggt4d_ros.motion.pipeline import PipelineConfig
from vggt4d_ros.motion.result import WindowResult
from vggt4d_ros.perception.config import PerceptionConfig
from vggt4d_ros.motion.rig import RigLayout
from vggt4d_ros.runtime.config import BackendConfig
from vggt4d_ros.runtime.config import VGGT_WIDTH
from vggt4d_ros.runtime.engine import Backend
from vggt4d_ros.runtime.engine import PerceptionEngine
from vggt4d_ros.runtime.rig import RigSetup
from vggt4d_ros.runtime.window import replay_window
from vggt4d_ros.runtime.window import WindowConfig

RANDOM_WEIGHTS_WARNING = (
    'RANDOM weights (allow_random_weights): every mask, pose and map is a plumbing check and '
    'means NOTHING about VGGT4D quality. Give a VGGT checkpoint (weights) for real results.')


FAST_MODE_WARNING = (
    "pipeline.precision is 'fast': the aggregator runs FP8 (e4m3) GEMMs; depth, poses and masks "
    'deviate from the exact mode (tools/bench_fast_mode.py measures how much on random '
    'weights). Check the mask quality on your checkpoint before relying on it.')


class BackendError(RuntimeError):
    """The backend cannot be created (message says why and what to change)."""


@dataclass
class LoadedBackend:
    """A ready backend and what was loaded.

    Attributes:
        backend: the window backend.
        device: torch device it runs on.
        dtype: compute dtype.
        description: one line for the log (model size, weights, device, dtype, width).
        random_weights: True when no checkpoint was loaded (outputs are meaningless).

    """

    backend: Backend
    device: torch.device
    dtype: torch.dtype
    description: str
    random_weights: bool = False


class FixedWidthBackend:
    """Run a pipeline at a network width other than VGGT's 518 (small models, fast tests).

    Args:
        pipeline: the VGGT4D pipeline.
        width: network width in pixels (multiple of the patch size, 14).

    """

    def __init__(self, pipeline: Any, width: int) -> None:
        self.pipeline = pipeline
        self.width = int(width)

    def run(self, frames: Sequence[np.ndarray], stamps_ns: Sequence[int],
            layout: RigLayout | None = None) -> WindowResult:
        """Run a window, as ``VGGT4DPipeline.run`` (frames [S] HxWx3 uint8 RGB; a rig layout)."""
        plan = plan_resize(tuple(frames[0].shape[:2]), mode=self.pipeline.config.resize_mode,
                           target=self.width, patch=self.pipeline.patch)
        return self.pipeline.run(frames, stamps_ns, plan=plan, layout=layout)

    def __getattr__(self, name: str) -> Any:
        # record_refinement_graphs and other pipeline extras (warm_up looks them up).
        return getattr(self.pipeline, name)


def resolve_device(name: str) -> torch.device:
    """Torch device from the ``device`` parameter (``auto``: cuda when available)."""
    try:
        return runtime.resolve_device(name)
    except ValueError as error:
        raise BackendError(f'device parameter: {error}') from error


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Compute dtype from the ``dtype`` parameter (``auto``: bf16 on Ampere+, fp16 before)."""
    try:
        return runtime.resolve_dtype(name, device)
    except ValueError as error:
        raise BackendError(f'dtype parameter: {error}') from error


def _load_factory(spec: str) -> Callable[..., Any]:
    module_name, _, attribute = spec.partition(':')
    if not module_name or not attribute:
        raise BackendError(f'backend_factory={spec!r} must be "module:function"')
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as error:
        raise BackendError(f'backend_factory={spec!r}: {error}') from error


def _model(config: BackendConfig, device: torch.device) -> tuple[Any, str]:
    """VGGT with its weights (strictly loaded, or seeded random); returns (model, source)."""
    from vggt4d_ros.model.config import VGGTConfig
    from vggt4d_ros.model.vggt import VGGT
    from vggt4d_ros.model.weights import check_checkpoint_path
    from vggt4d_ros.model.weights import CheckpointError
    from vggt4d_ros.model.weights import load_model

    architecture = VGGTConfig.tiny() if config.model_config == 'tiny' else VGGTConfig.full()
    if not config.weights and not config.allow_random_weights:
        raise BackendError('no weights: set the weights parameter to a VGGT checkpoint '
                           '(.pt/.safetensors), or allow_random_weights:=true for a demo')
    if config.weights:
        try:
            check_checkpoint_path(config.weights)
            # Built on the meta device and filled strictly from the file: no random
            # initialisation of 1.26 B parameters first (~11 s -> ~4.6 s on a CPU).
            return load_model(config.weights, architecture, device=device), config.weights
        except CheckpointError as error:
            raise BackendError(str(error)) from error
    # Seeded, so every front end and every run gets the same model; the global RNG state is
    # restored so callers' own random streams are not disturbed. Built on the CPU (the
    # generator the seed drives), then moved.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.random_seed)
        model = VGGT(architecture)
    return model, f'RANDOM weights (seed {config.random_seed}; outputs are meaningless)'


def build_vggt4d(config: BackendConfig, device: torch.device, dtype: torch.dtype,
                 pipeline_config: PipelineConfig) -> tuple[Backend, str]:
    """VGGT wrapped in VGGT4DPipeline (at ``network_width``); returns (backend, description)."""
    from vggt4d_ros.motion.pipeline import VGGT4DPipeline
    from vggt4d_ros.motion.prepare import prepare_model

    model, source = _model(config, device)
    cast = config.weights_dtype == 'compute' and dtype != torch.float32
    # Cast weights: the pipeline then runs without autocast.
    model = prepare_model(model, pipeline_config, device, weights_dtype=dtype if cast else None)
    weights = f'{dtype} weights' if cast else 'fp32 weights'
    if pipeline_config.precision == 'fast':
        weights += ', FP8 fast mode (results deviate)'
    pipeline = VGGT4DPipeline(model, pipeline_config, device, dtype)
    backend: Backend = pipeline
    if config.network_width != VGGT_WIDTH:
        backend = FixedWidthBackend(pipeline, config.network_width)
    return backend, (f'VGGT {config.model_config} with {source} on {device} ({dtype}, '
                     f'{weights}, network width {config.network_width})')


def build_backend(config: BackendConfig,
                  pipeline_config: PipelineConfig | None = None) -> LoadedBackend:
    """Create the backend ``config`` describes (the node at activate, the replay tool).

    Raises:
        BackendError: bad device, missing/mismatched weights, bad factory.

    """
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    if config.backend_factory:
        backend = _load_factory(config.backend_factory)(config, device, dtype)
        return LoadedBackend(backend, device, dtype,
                             f'backend {config.backend_factory} on {device} ({dtype})')
    backend, description = build_vggt4d(config, device, dtype,
                                        pipeline_config or PipelineConfig())
    random_weights = not config.weights
    return LoadedBackend(backend, device, dtype, description, random_weights)


def warm_up(backend: Any, window: WindowConfig, mapper: MapperConfig, height: int,
            width: int, perception: PerceptionConfig | None = None,
            rig: RigSetup | None = None) -> float:
    """Run a throwaway engine over mid-grey frames with a little noise; returns seconds taken.

    A first window of ``window_size`` new frames, then the next window of the stream (sharing
    ``window_size - stride`` frames): the pipeline reuses the shared frames' features, so a
    compiled model sees the ``stride``-frame embedding too and compiles it here rather than on
    the first live window. With a ``rig`` of N cameras the frames come as the live stream's
    steps (one frame per camera, ``push_step``), so the windows have the live windows' rig
    layout: ``window_size // N`` steps x N views, sliding by ``max(1, stride // N)`` steps
    (the rig's cue weights and the per-view feature reuse run here, not on the first live
    window). The frames go through an engine (window manager, backend,
    camera-resolution masks, mapper) rather than the backend alone: on an H200 the first use of
    the masks and the mapper in a process took 55 ms more, on the first live windows otherwise.
    A backend with ``record_refinement_graphs`` (the VGGT4D pipeline) then records the
    refinement's graphs for every candidate bucket, which live windows would otherwise record
    one by one. Call it from the thread that will run the live windows (torch caches cuDNN
    plans per thread). With ``perception`` the planner outputs run too (their kernels' first
    use would otherwise land on the first live window).
    """
    window = replay_window(window)
    engine = PerceptionEngine(backend, window, mapper, perception=perception, rig=rig)
    manager = engine.windows
    views = manager.num_views
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for step in range(manager.window_steps + manager.stride_steps):
        frames = [np.clip(128 + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
                  for _ in range(views)]
        engine.push_step(frames, [step * 100_000_000] * views)  # one camera: push()
    record_graphs = getattr(backend, 'record_refinement_graphs', None)
    if record_graphs is not None:
        record_graphs(manager.window_steps * views, (height, width))
    return time.perf_counter() - start


def freeze_heap() -> tuple[int, float]:
    """Collect garbage once, then exempt every live object from later collections.

    Loading and compiling the model leaves a large heap of long-lived objects that each full
    collection of the cyclic garbage collector walks again, pausing the worker thread at
    arbitrary windows. ``gc.freeze`` moves them to a permanent generation that collections
    skip; :func:`release` undoes it once the backend is dropped, so the model's reference
    cycles can be freed.

    Returns:
        (objects frozen, seconds the collection took).

    """
    start = time.perf_counter()
    gc.collect()
    seconds = time.perf_counter() - start
    gc.freeze()
    return gc.get_freeze_count(), seconds


def release(device: torch.device | None) -> None:
    """Return cached GPU memory after the backend was dropped (and unfreeze the heap)."""
    gc.unfreeze()
    gc.collect()
    if device is not None and device.type == 'cuda':
        torch.cuda.empty_cache()


def gpu_memory_mb(device: torch.device | None) -> tuple[float, float]:
    """(allocated, reserved) MiB on a CUDA device; (0, 0) otherwise."""
    if device is None or device.type != 'cuda':
        return 0.0, 0.0
    return (torch.cuda.memory_allocated(device) / 2**20,
            torch.cuda.memory_reserved(device) / 2**20)
