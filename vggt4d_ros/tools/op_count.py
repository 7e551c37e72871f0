# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Count what a piece of torch code dispatches: aten ops, device kernels, host syncs.

Device-free: on the CPU it counts what the same code would launch and where it would wait on
a GPU, since small-tensor work there costs launches and Python dispatch, not arithmetic.

* ``ops``: every aten op that reaches the dispatcher (each costs Python + C++ dispatch).
* ``kernels``: the ops that run a kernel on a device (views, detach, allocation excluded).
* ``syncs``: calls after which the host waits for the device stream on CUDA: reads of device
  data on the host (``.cpu()``, ``.numpy()``, ``.tolist()``, ``.item()``, ``bool()``,
  ``int()``, ``float()`` of a tensor), ops whose output size depends on the data
  (``nonzero``, boolean-mask indexing, ``masked_select``, ``unique``) and blocking
  host -> device copies (``tensor.to(device)`` of host data: PyTorch waits for the stream
  after the copy unless ``non_blocking``).

Host data is recognised by its origin: tensors made from Python or numpy data
(``torch.tensor``, ``torch.from_numpy``, ``torch.as_tensor`` without a device) are host
tensors; reading them is no sync, moving them to a device is an upload (one sync). Every
other tensor is taken to live on the device (on a CPU run the code's device is the CPU).

Use ``with OpCounter() as counter: ...; counter.lap('stage')`` (``lap`` books what ran since
the previous lap under a stage), then ``counter.stages`` / ``counter.total()``. The command
counts the planner outputs per window and stage on bench_perception's windows (on CUDA it
also reports CUDA's own sync warnings, ``torch.cuda.set_sync_debug_mode``):

    python -m vggt4d_ros.tools.op_count [--windows 4] [--device cuda] [--top 30] [--sites]
        [--graphs]
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
import os
import sys
import warnings
import weakref

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

# Ops that launch nothing on a device: views and metadata, allocation without a fill.
_NO_KERNEL = {'detach', 'lift_fresh', 'lift_fresh_copy', 'empty', 'empty_like',
              'empty_strided', 'alias', '_local_scalar_dense', 'set_', 'resize_'}
# Ops whose output size depends on the data: the host must wait for the count.
_DATA_SIZED = {'nonzero', 'nonzero_static_not', 'masked_select', '_unique', '_unique2',
               'unique_dim', 'unique_consecutive', 'unique', 'argwhere', 'nonzero_numpy'}
# Reads of device data as a Python value (``equal`` answers a bool: on CUDA the host waits).
_SCALAR_READS = {'item', '__bool__', '__int__', '__float__', '__index__', 'tolist', 'equal'}
_HOST_ORIGIN = {'tensor', 'from_numpy', 'lift_fresh', 'asarray', 'as_tensor'}


@dataclass
class Counts:
    """What ran in one stage: op, kernel and sync totals and their breakdown by name."""

    ops: int = 0
    kernels: int = 0
    syncs: int = 0
    by_op: Counter = field(default_factory=Counter)
    sync_sites: Counter = field(default_factory=Counter)

    def add(self, other: Counts) -> None:
        """Add another stage's counts to these."""
        self.ops += other.ops
        self.kernels += other.kernels
        self.syncs += other.syncs
        self.by_op.update(other.by_op)
        self.sync_sites.update(other.sync_sites)

    def scaled(self, divisor: float) -> dict[str, float]:
        """Return the three totals divided by ``divisor`` (e.g. per window)."""
        return {'ops': self.ops / divisor, 'kernels': self.kernels / divisor,
                'syncs': self.syncs / divisor}


class _Dispatch(TorchDispatchMode):
    def __init__(self, counter: OpCounter) -> None:
        super().__init__()
        self._counter = counter

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self._counter._dispatched(func, args)
        return func(*args, **kwargs)


class _Function(TorchFunctionMode):
    def __init__(self, counter: OpCounter) -> None:
        super().__init__()
        self._counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', '')
        name = name.split('.')[0]
        counter = self._counter
        counter._before_call(name, args, kwargs)
        if name in _SCALAR_READS:
            counter._scalar_depth += 1
        try:
            result = func(*args, **kwargs)
        finally:
            if name in _SCALAR_READS:
                counter._scalar_depth -= 1
        counter._after_call(name, args, kwargs, result)
        return result


class OpCounter:
    """Context manager counting ops, kernels and syncs, booked per stage by ``lap``."""

    def __init__(self) -> None:
        self.stages: dict[str, Counts] = {}
        self._pending = Counts()
        self._host: dict[int, weakref.ref] = {}
        self._downloaded: dict[int, weakref.ref] = {}
        self._scalar_depth = 0
        self._modes: list = []
        self.cuda_sync_warnings = 0  # set by count_windows on CUDA

    def __enter__(self) -> OpCounter:
        self._modes = [_Function(self), _Dispatch(self)]
        for mode in self._modes:
            mode.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(*exc)
        self._modes = []

    def lap(self, stage: str) -> None:
        """Book everything since the previous lap under ``stage``."""
        self.stages.setdefault(stage, Counts()).add(self._pending)
        self._pending = Counts()

    def total(self, stages: tuple[str, ...] | None = None) -> Counts:
        """Sum of the named stages (all booked stages when None)."""
        out = Counts()
        for name, counts in self.stages.items():
            if stages is None or name in stages:
                out.add(counts)
        return out

    # -- hooks ------------------------------------------------------------------------------

    def _dispatched(self, func, args) -> None:
        name = func.overloadpacket.__name__
        pending = self._pending
        pending.ops += 1
        pending.by_op[name] += 1
        if not func.is_view and name not in _NO_KERNEL:
            pending.kernels += 1
        data_sized = name in _DATA_SIZED or (name == 'index' and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool
            for i in (args[1] if len(args) > 1 else ())))
        # ATen reading a scalar on its own (not under a Python-level read counted already).
        internal_read = name == '_local_scalar_dense' and self._scalar_depth == 0
        if data_sized or internal_read:
            self._sync(name)

    def _before_call(self, name: str, args, kwargs) -> None:
        tensor = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if tensor is None:
            if name in ('tensor', 'as_tensor', 'asarray') and kwargs.get('device') is not None:
                self._sync('upload')  # host data straight to a device
            return
        host = self._is_host(tensor)
        if name in ('to', 'cuda'):
            target = _target_device(args[1:], kwargs) if name == 'to' else 'cuda'
            if target is not None and host and not kwargs.get('non_blocking', False):
                self._sync('upload')  # on a CPU run the code's device is the CPU
            elif target is not None and torch.device(target).type == 'cpu' and (
                    tensor.device.type != 'cpu'):
                self._sync('to(cpu)')
        elif host:
            return
        elif name == 'cpu' or (name == 'numpy' and not self._is_in(self._downloaded, tensor)):
            self._sync(name)
        elif name in _SCALAR_READS:
            self._sync(name)
        elif name == '__getitem__' and _host_index(args[1] if len(args) > 1 else None,
                                                   self._is_host):
            self._sync('index upload')  # a list (or host tensor) index goes to the device

    def _after_call(self, name: str, args, kwargs, result) -> None:
        if not isinstance(result, torch.Tensor):
            return
        inputs = [a for a in args if isinstance(a, torch.Tensor)] + [
            t for a in args if isinstance(a, (list, tuple)) for t in a
            if isinstance(t, torch.Tensor)]
        made_on_host = name in _HOST_ORIGIN and kwargs.get('device') is None and (
            not inputs or name == 'lift_fresh')
        # Host data stays host data through ops on host data alone (not through a move).
        stays = name not in ('to', 'cuda') or (
            name == 'to' and _target_device(args[1:], kwargs) is None)
        derived = inputs and stays and all(map(self._is_host, inputs))
        if made_on_host or derived:
            self._remember(self._host, result)
        elif name in ('cpu', 'to') and result.device.type == 'cpu':
            self._remember(self._downloaded, result)

    def _is_host(self, tensor: torch.Tensor) -> bool:
        return self._is_in(self._host, tensor)

    @staticmethod
    def _is_in(table: dict[int, weakref.ref], tensor: torch.Tensor) -> bool:
        ref = table.get(id(tensor))
        return ref is not None and ref() is tensor

    @staticmethod
    def _remember(table: dict[int, weakref.ref], tensor: torch.Tensor) -> None:
        key = id(tensor)
        table[key] = weakref.ref(tensor, lambda _, key=key: table.pop(key, None))

    def _sync(self, kind: str) -> None:
        self._pending.syncs += 1
        self._pending.sync_sites[f'{kind} @ {_caller()}'] += 1


def _target_device(args, kwargs) -> torch.device | None:
    """Return the device a ``Tensor.to`` call moves to (None: a dtype-only call)."""
    for value in list(args) + [kwargs.get('device')]:
        if isinstance(value, torch.Tensor):
            return value.device
        if isinstance(value, (str, torch.device)):
            return torch.device(value)
    return None


def _host_index(index, is_host) -> bool:
    """Whether an indexing key holds host data that must go to the device (a list)."""
    keys = index if isinstance(index, tuple) else (index,)
    return any(isinstance(k, list) or (isinstance(k, torch.Tensor) and is_host(k))
               for k in keys)


_HERE = os.path.abspath(__file__)


def _caller() -> str:
    """``file:line`` of the innermost project frame outside this module."""
    frame = sys._getframe(2)
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if path != _HERE and 'vggt4d_ros' in path and 'torch' not in path.split(os.sep)[-2:]:
            return f'{os.path.basename(path)}:{frame.f_lineno}'
        frame = frame.f_back
    return '?'


# -- the planner outputs' count per window (bench_perception's windows and settings) --------

STAGE_ORDER = ('copy', 'points', 'instances', 'grid', 'host', 'tracker')


def count_windows(outputs, config, graphs: bool = False) -> OpCounter:
    """Count ``observations_from_window`` ('copy') + ``PerceptionTracker.update`` per stage.

    The CPU and CUDA take the same code paths (``instances.CPU_PATH_DEVICE_TYPES``; the
    footprint fits of every label, as CUDA: ``instances.COMPACT_FIT_DEVICE_TYPES`` is
    emptied while counting), so a count on the CPU is CUDA's without CUDA graphs
    (``config.cuda_graphs`` off).

    Args:
        outputs: engine outputs (``EngineOutput``: ``result``, ``update``) of the windows;
            the first warms up (not counted).
        config: the ``PerceptionConfig``.
        graphs: on the CPU, count the path CUDA takes with graphs: the pixel stages and the
            instances (bucketed labelling and measurements) booked as CUDA launches them from
            graphs (``_GraphReplay``; on CUDA ``config.cuda_graphs`` decides and the count is
            real).

    """
    from vggt4d_ros.perception import instances
    from vggt4d_ros.perception.perception_tracker import PerceptionTracker
    compact, instances.COMPACT_FIT_DEVICE_TYPES = instances.COMPACT_FIT_DEVICE_TYPES, ()
    try:
        return _count(PerceptionTracker(config), outputs, graphs)
    finally:
        instances.COMPACT_FIT_DEVICE_TYPES = compact


class _GraphReplay:
    """Book a tracker's graphed function as a CUDA-graph replay: its input copies, one launch.

    ``GraphedFunction`` (clone_outputs off) copies every argument into the graph's inputs
    but the ones that already are them: a state the function updated in place and returned.
    The function runs uncounted but for its syncs (a graph has none: they are kept to show).
    """

    def __init__(self, counter: OpCounter, fn) -> None:
        self._counter = counter
        self._fn = fn
        self._static: list[torch.Tensor] = []

    def __call__(self, *tensors: torch.Tensor, **static: object) -> tuple:
        copies = sum(not any(t is s for s in self._static) for t in tensors)
        counter = self._counter
        outer, counter._pending = counter._pending, Counts()
        outputs = self._fn(*tensors, **static)
        inner, counter._pending = counter._pending, outer
        outer.ops += copies + 1
        outer.kernels += copies + 1
        outer.by_op.update({'copy_': copies, 'graph replay': 1})
        outer.syncs += inner.syncs
        outer.sync_sites.update(inner.sync_sites)
        self._static = [o for o in outputs if any(o is t for t in tensors)]
        return outputs


def _count(tracker, outputs, graphs: bool = False) -> OpCounter:
    from vggt4d_ros.perception.observation import observations_from_window
    cuda = outputs[0].result.depth.device.type == 'cuda'
    if graphs and not cuda:  # the graphs' path (each replay booked as CUDA launches it below)
        tracker._graph_device_types += ('cpu',)
    # Warm-up: what is made once per configuration (grid constants, caches) is not counted.
    tracker.update(observations_from_window(outputs[0].result, outputs[0].update))
    with OpCounter() as counter, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        if cuda:  # CUDA's own account of the syncs, to check the counter's
            torch.cuda.set_sync_debug_mode('warn')
        tracker.stage_listener = counter.lap
        if graphs and not cuda:
            tracker._graphed = _GraphReplay(counter, tracker._graphed.fn)
            tracker._graphed_instances = _GraphReplay(counter, tracker._graphed_instances.fn)
        try:
            for out in outputs[1:]:
                frames = observations_from_window(out.result, out.update)
                counter.lap('copy')
                tracker.update(frames)
                counter.lap('tracker')  # the rest of update: the tracks' read-out
        finally:
            if cuda:
                torch.cuda.set_sync_debug_mode(0)
    counter.cuda_sync_warnings = sum('synchroniz' in str(w.message) for w in caught)
    return counter


def _markdown(label: str, counter: OpCounter, windows: int) -> list[str]:
    rows = []
    for stage in STAGE_ORDER + ('all',):
        counts = counter.total() if stage == 'all' else counter.stages.get(stage, Counts())
        per = counts.scaled(windows)
        rows.append(f'| {label} | {stage} | {per["ops"]:.0f} | {per["kernels"]:.0f} '
                    f'| {per["syncs"]:.1f} |')
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print ops / kernels / syncs per window and stage for bench_perception's settings."""
    import argparse
    from vggt4d_ros.tools import bench_perception
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument('--windows', type=int, default=4, help='counted windows')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--top', type=int, default=0, help='list the N most frequent ops')
    parser.add_argument('--sites', action='store_true', help='list where the syncs are')
    parser.add_argument('--graphs', action='store_true',
                        help='on the CPU, count the points and grid stages and the instances '
                        '(bucketed labelling, measurements) as CUDA replays them from graphs '
                        '(on CUDA the configuration decides: default on)')
    args = parser.parse_args(argv)
    bench_args = bench_perception._parse(['--windows', str(args.windows + 2),
                                          '--device', args.device])
    torch.set_num_threads(1)
    outputs, scale = bench_perception._windows(bench_args)
    outputs = outputs[1:]  # the first window has 8 new frames; count the steady state
    graphs = ', points + grid and instances as CUDA-graph replays' if args.graphs else ''
    print(f'# op_count: {len(outputs) - 1} windows of {bench_args.window_size} frames '
          f'({bench_args.stride} new), device {args.device}, torch {torch.__version__}; '
          f'per window{graphs}')
    print()
    print('| setting | stage | ops | kernels | syncs |')
    print('|---|---|---|---|---|')
    details = []
    for label, config in bench_perception._settings(scale).items():
        counter = count_windows(outputs, config, args.graphs)
        print('\n'.join(_markdown(label, counter, len(outputs) - 1)))
        if args.device.startswith('cuda'):
            print(f'| {label} | CUDA sync warnings (all stages) | | | '
                  f'{counter.cuda_sync_warnings / (len(outputs) - 1):.1f} |')
        details.append((label, counter))
    for label, counter in details:
        for stage in STAGE_ORDER:
            counts = counter.stages.get(stage)
            if counts is None:
                continue
            if args.top:
                top = ', '.join(f'{name} {n / (len(outputs) - 1):.0f}'
                                for name, n in counts.by_op.most_common(args.top))
                print(f'\n{label} / {stage}: {top}')
            if args.sites and counts.sync_sites:
                sites = ', '.join(f'{site} x{n / (len(outputs) - 1):.1f}'
                                  for site, n in counts.sync_sites.most_common())
                print(f'\n{label} / {stage} syncs: {sites}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
