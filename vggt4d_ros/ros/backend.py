# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Create, warm up and release the window backend (VGGT4D on a torch device).

A backend is any object with ``run(frames, stamps_ns) -> WindowResult``; the default is
``VGGT4DPipeline`` around a VGGT model. Loading follows the non-negotiables: a weights path is
loaded strictly, a missing or mismatched checkpoint raises ``BackendError`` naming the file, and
random weights are used only when explicitly allowed and the weights path is empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace
import gc
import importlib
import os
import time
from typing import Any, Callable

import numpy as np
import torch

from vggt4d_ros.mapping.engine import PerceptionEngine
from vggt4d_ros.mapping.mapper import MapperConfig
from vggt4d_ros.mapping.window import WindowConfig
from vggt4d_ros.model import runtime
from vggt4d_ros.ros.params import NodeParams


class BackendError(RuntimeError):
    """The backend cannot be created (message says why and what to change)."""


@dataclass
class LoadedBackend:
    """A ready backend and what was loaded.

    Attributes:
        backend: object with ``run(frames, stamps_ns) -> WindowResult``.
        device: torch device it runs on.
        dtype: compute dtype.
        description: one line for the log (model size, weights, device, dtype).

    """

    backend: Any
    device: torch.device
    dtype: torch.dtype
    description: str


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


def build_vggt4d(params: NodeParams, device: torch.device, dtype: torch.dtype,
                 pipeline_config: Any) -> tuple[Any, str]:
    """VGGT (weights loaded) wrapped in VGGT4DPipeline; returns (pipeline, description)."""
    from vggt4d_ros.model.config import VGGTConfig
    from vggt4d_ros.model.vggt import VGGT
    from vggt4d_ros.model.weights import CheckpointError
    from vggt4d_ros.model.weights import load_model
    from vggt4d_ros.motion.pipeline import VGGT4DPipeline
    from vggt4d_ros.motion.prepare import prepare_model

    config = VGGTConfig.tiny() if params.model_config == 'tiny' else VGGTConfig.full()
    if not params.weights and not params.allow_random_weights:
        raise BackendError('no weights: set the weights parameter to a VGGT checkpoint '
                           '(.pt/.safetensors), or allow_random_weights:=true for a demo')
    if params.weights and not os.path.isfile(params.weights):
        raise BackendError(f'weights file {params.weights!r} does not exist')
    if params.weights:
        try:
            # Built on the meta device and filled strictly from the file: no random
            # initialisation of 1.26 B parameters first (~11 s -> ~4.6 s on a CPU).
            model = load_model(params.weights, config, device=device)
        except CheckpointError as error:
            raise BackendError(str(error)) from error
        source = params.weights
    else:
        with device:  # build the parameters on the target device
            model = VGGT(config)
        source = 'RANDOM weights (allow_random_weights=true: outputs are meaningless)'
    model = model.to(device).eval()
    weights = 'fp32 weights'
    if params.weights_dtype == 'compute' and dtype != torch.float32:
        model = model.to(dtype)  # the pipeline then runs without autocast
        weights = f'{dtype} weights'
    model = prepare_model(model, pipeline_config, device)
    pipeline = VGGT4DPipeline(model, pipeline_config, device, dtype)
    return pipeline, (f'VGGT {params.model_config} with {source} on {device} ({dtype}, '
                      f'{weights})')


def load_backend(params: NodeParams, pipeline_config: Any = None) -> LoadedBackend:
    """Create the backend described by the parameters.

    Raises:
        BackendError: bad device, missing/mismatched weights, bad factory.

    """
    device = resolve_device(params.device)
    dtype = resolve_dtype(params.dtype, device)
    if params.backend_factory:
        backend = _load_factory(params.backend_factory)(params, device, dtype)
        return LoadedBackend(backend, device, dtype,
                             f'backend {params.backend_factory} on {device} ({dtype})')
    backend, description = build_vggt4d(params, device, dtype, pipeline_config)
    return LoadedBackend(backend, device, dtype, description)


def warm_up(backend: Any, window: WindowConfig, mapper: MapperConfig, height: int,
            width: int) -> float:
    """Run a throwaway engine over mid-grey frames with a little noise; returns seconds taken.

    A first window of ``window_size`` new frames, then the next window of the stream (sharing
    ``window_size - stride`` frames): the pipeline reuses the shared frames' features, so a
    compiled model sees the ``stride``-frame embedding too and compiles it here rather than on
    the first live window. The frames go through an engine (window manager, backend,
    camera-resolution masks, mapper) rather than the backend alone: on an H200 the first use of
    the masks and the mapper in a process took 55 ms more, on the first live windows otherwise.
    A backend with ``record_refinement_graphs`` (the VGGT4D pipeline) then records the
    refinement's graphs for every candidate bucket, which live windows would otherwise record
    one by one. Call it from the thread that will run the live windows (torch caches cuDNN
    plans per thread).
    """
    window = replace(window, mode='replay', min_parallax_px=0.0, max_keyframe_interval_s=0.0)
    engine = PerceptionEngine(backend, window, mapper)
    count = window.window_size + window.stride
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for index in range(count):
        frame = np.clip(128 + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
        engine.push(frame, index * 100_000_000)
    record_graphs = getattr(backend, 'record_refinement_graphs', None)
    if record_graphs is not None:
        record_graphs(window.window_size, (height, width))
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
