# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Split a batch's dynamic pixels into object instances and measure each one (torch).

Connectivity: 4-connected dynamic pixels, cut where the depth jumps (two objects overlapping
in the image): at a jump larger than ``depth_break`` times the nearer depth, the FAR pixel is
removed from the labelling, so the near object and the one behind it fall apart. Removed
pixels, parts below ``min_pixels`` and parts beyond the ``max_instances`` largest get label 0
(they stay in the dynamic cloud, with object id 0); the counts say how many.

Connected components run on the device as label propagation with hooking and pointer
jumping (every pixel points at a pixel of its component with a smaller index; neighbours
hook their roots together; pointers are shortcut twice per iteration), so a blob converges
in a few iterations (within 8 on the benchmark's scenes), not its diameter. Replayed from a
CUDA graph, the labelling runs on whole rows of a bucket count around the dynamic pixels
with a fixed step count and a convergence flag on the device (``label_bucket``), resumed
eagerly in the rare case it did not converge (``resume_bucket``): the same labels. Labels are
ordered by size, ties by the first pixel in raster order (as ``scipy.ndimage.label``
numbers parts). Measurements are segment reductions (scatter, sort) over the frame's points,
one row per (frame, label); with the 'box_fit' centre model each row also holds the
footprint fit of the label's points (``append_footprints``, ``box_fit``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import replace
import functools

import numpy as np
import torch

from vggt4d_ros.motion.graphs import bucket_size
from vggt4d_ros.perception import box_fit
from vggt4d_ros.perception.box_fit import Footprints
from vggt4d_ros.perception.config import InstanceConfig
from vggt4d_ros.perception.dynamic_points import BatchPoints
from vggt4d_ros.perception.dynamic_points import rigid_apply

#: Label-propagation steps before the first convergence check (a host sync): the benchmark's
#: windows reach the fixpoint in fewer, and past it a step changes nothing.
_FIXED_STEPS = 8
#: After a failed check, the next comes this many steps later (one host sync each).
_CHECK_EVERY = 4
#: Row of a pixel itself in its 5 neighbours (up, left, self, right, down).
_SELF = 2
#: Device types that take the CPU's path: labelling on the box around the dynamic pixels (one
#: host sync to cut it: the CPU pays per pixel, not per launch) with the gathers and minima
#: its kernels vectorise. Elsewhere whole frames, no sync but the convergence check, fewest
#: ops. CUDA takes the CPU's path too: on an H100 (docs/performance.md section 10) the whole
#: frames cost the instances stage 8.3 ms per window and the box 3.4-4.1 ms (all outputs
#: 16.0 against 9.2-9.9 ms): a whole frame moves ~150 MB per propagation step, more than
#: the sync and the extra launches the box costs.
CPU_PATH_DEVICE_TYPES: tuple[str, ...] = ('cpu', 'cuda')
#: Device types whose footprint fits (``append_footprints``) skip the labels without points
#: (one host read of which): the CPU pays per element, not per launch. A window's 4 new frames
#: have 8 labels each to fit (``box_fit_max_per_frame``), 2 of them with points on the
#: benchmark's scene: all 32 cost the CPU's instances stage 14 ms more per window, the 8
#: 4.5-6 ms (one core of the 2-core machine). Elsewhere (CUDA: replayed from the graph)
#: every label, fixed shapes.
COMPACT_FIT_DEVICE_TYPES: tuple[str, ...] = ('cpu',)
#: The graph-ready labelling's rows (``Bucket``) are a count of ``bucket_size``'s ladder of
#: this step and ratio (32, 64, ..., 256, 320, 384, ...; at most 25 % padding), cut to the
#: frame: a few graphs cover every window while the objects move.
_BUCKET_STEP = 32
_BUCKET_RATIO = 1.25


@dataclass
class Instance:
    """One object seen in one frame (host side, numpy).

    Attributes:
        label: 1-based label in the frame's label image.
        pixels: dynamic pixels of the object (before point thinning).
        box: image box (row0, col0, row1, col1), inclusive, network pixels.
        centre: [3] estimated object centre, output frame.
        size: [3] estimated full extent along the output axes.
        range: camera distance of the centre (global units); for a detection merged from
            several cameras of a rig, the range whose measurement noise is the merged one.
        view: the camera (rig view) whose image ``box`` is in.
        push: how far ``centre`` was pushed back from the visible surface along its viewing
            ray (map units, see ``measure_instances``); 0 for none.
        push_direction: [3] the viewing ray (unit, output frame), or None (a detection
            merged from several cameras).
        top: height (output z) of the top of the visible points (their 98th percentile).
            With ``push`` it lets the tracker replace what depends on the visible faces by
            the track's averages (``Tracker``: a rigid object's shape does not change, the
            faces a turning one shows do).

    """

    label: int
    pixels: int
    box: tuple[int, int, int, int]
    centre: np.ndarray
    size: np.ndarray
    range: float
    view: int = 0
    push: float = 0.0
    push_direction: np.ndarray | None = None
    top: float = float('nan')


@dataclass
class FrameInstances:
    """Instances of one frame, the label of each point and what was left out (host side).

    Attributes:
        instances: at most ``max_instances`` objects, largest first (a list, or
            ``unpack``'s ``RowInstances``: made when first read).
        point_labels: [N] int32 label of each point of the frame (0 = no instance).
        small_parts: connected parts dropped for being below ``min_pixels``.
        excess_parts: parts dropped beyond ``max_instances``.
        footprints: the instances' footprint fits (rows in instance order; an instance
            whose label is beyond the fitted ones: not ok), or None (not fitted on the
            device: ``append_footprints``).
        detections: the instances' fields as arrays (``unpack``'s: column slices of its
            rows, for the tracker), or None (the tracker gathers them from ``instances``).

    """

    instances: Sequence[Instance]
    point_labels: np.ndarray
    small_parts: int = 0
    excess_parts: int = 0
    footprints: Footprints | None = None
    detections: Detections | None = None


#: The viewing ray of a detection without one (``Detections.direction``), made once.
_NO_RAY = np.full(3, np.nan)
_NO_RAY.flags.writeable = False


@dataclass
class Detections:
    """One frame's instances (M >= 1 of them) as arrays: what the tracker reads.

    Gathered once per frame (``of``; the tracker's steps gathered each field again from the
    Instance objects: about 20 Python-level gathers per frame), or column slices of
    ``unpack``'s rows (``from_rows``: no gathering at all). Attributes: the ``Instance``
    fields of those names: ``label`` [M] int64, ``centre`` [M,3], ``size`` [M,3], ``box``
    [M,4] float64, ``view`` [M] int64, ``range`` [M], ``push`` [M] float64, ``top`` [M]
    float64; ``direction`` [M,3] the viewing rays (NaN rows: none), ``shaped`` [M] bool: a
    viewing ray and a finite top (the tracker's shape averages apply). Read only: the
    arrays may be views of the rows that the Instance objects view too.
    """

    label: np.ndarray
    centre: np.ndarray
    size: np.ndarray
    box: np.ndarray
    view: np.ndarray
    range: np.ndarray
    push: np.ndarray
    top: np.ndarray
    direction: np.ndarray
    shaped: np.ndarray

    def __len__(self) -> int:
        return len(self.label)

    @staticmethod
    def of(instances: list[Instance]) -> Detections:
        """Gather the fields of ``instances`` (at least one)."""
        no_ray = _NO_RAY
        top = np.array([inst.top for inst in instances], dtype=np.float64)
        has_ray = np.array([inst.push_direction is not None for inst in instances], bool)
        return Detections(
            label=np.array([inst.label for inst in instances], dtype=np.int64),
            centre=np.array([inst.centre for inst in instances]),
            size=np.array([inst.size for inst in instances]),
            box=np.array([inst.box for inst in instances], dtype=np.float64),
            view=np.array([inst.view for inst in instances], dtype=np.int64),
            range=np.array([inst.range for inst in instances]),
            push=np.array([inst.push for inst in instances], dtype=np.float64),
            top=top,
            direction=np.array([no_ray if inst.push_direction is None else inst.push_direction
                                for inst in instances]),
            shaped=has_ray & np.isfinite(top))

    @staticmethod
    def from_rows(label: np.ndarray, rows: np.ndarray) -> Detections:
        """Return column slices of ``pack``'s rows [M, W] of labels [M] int64.

        Camera view 0, as ``unpack``'s instances; every row has a viewing ray. The values
        are those ``of`` gathers from the rows' instances, to the bit (the box columns hold
        whole numbers).
        """
        top = rows[:, _TOP]
        return Detections(
            label=label, centre=rows[:, _CENTRE], size=rows[:, _SIZE], box=rows[:, _BOX],
            view=np.zeros(len(label), np.int64), range=rows[:, _RANGE], push=rows[:, _PUSH],
            top=top, direction=rows[:, _RAY], shaped=np.isfinite(top))

    def take(self, index: np.ndarray | slice) -> Detections:
        """Return the detections ``index`` (an index array or a slice)."""
        return Detections(**{name: getattr(self, name)[index]
                             for name in self.__dataclass_fields__})


@dataclass
class Labels:
    """Label images of F frames (device tensors).

    Attributes:
        labels: [F,h,w] int64 (0 = none, 1..K largest first).
        pixels: [F,K] int64 pixel count of each label (0 = label unused).
        dropped: [F,2] int64 parts dropped as smaller than ``min_pixels`` and parts
            dropped beyond ``max_instances`` (``small``, ``excess``: its columns).
        converged: the labelling converged within the iteration bound (if not, a part may
            be split in two: counted by the caller).

    """

    labels: torch.Tensor
    pixels: torch.Tensor
    dropped: torch.Tensor
    converged: bool

    @property
    def small(self) -> torch.Tensor:
        """[F] int64 parts dropped as smaller than ``min_pixels``."""
        return self.dropped[:, 0]

    @property
    def excess(self) -> torch.Tensor:
        """[F] int64 parts dropped beyond ``max_instances``."""
        return self.dropped[:, 1]


@dataclass
class InstanceStats:
    """Measurements per (frame, label) (device tensors, K labels per frame).

    Attributes:
        table: [F,K,17] float64 the measurements in ``pack``'s order (but the pixel count):
            measurable (1.0: >= 3 points), box (row0, col0, row1, col1) of its points,
            inclusive, centre [3] (output frame), size [3], range (camera distance of the
            centre), push (``Instance.push``), push direction [3] (the unit viewing ray,
            ``Instance.push_direction``), top (98th percentile of the points' output z,
            ``Instance.top``); [F,K,26] with the footprint fit's 9 columns appended
            (``append_footprints``). The properties read its columns.
        pixels: [F,K] int64 pixel count.
        point_labels: [F,L] int64 label of each point slot (0 = none or not measurable).

    """

    table: torch.Tensor
    pixels: torch.Tensor
    point_labels: torch.Tensor

    @property
    def valid(self) -> torch.Tensor:
        """[F,K] bool label measured (>= 3 points)."""
        return self.table[:, :, 0] > 0.5

    @property
    def box(self) -> torch.Tensor:
        """[F,K,4] int64 (row0, col0, row1, col1) of its points, inclusive."""
        return self.table[:, :, 1:5].long()

    @property
    def centre(self) -> torch.Tensor:
        """[F,K,3] float64 output frame."""
        return self.table[:, :, 5:8]

    @property
    def size(self) -> torch.Tensor:
        """[F,K,3] float64 full extent along the output axes."""
        return self.table[:, :, 8:11]

    @property
    def range(self) -> torch.Tensor:
        """[F,K] float64 camera distance of the centre."""
        return self.table[:, :, 11]

    @property
    def push(self) -> torch.Tensor:
        """[F,K] float64 push back from the visible surface (``Instance.push``)."""
        return self.table[:, :, 12]

    @property
    def push_direction(self) -> torch.Tensor:
        """[F,K,3] float64 unit viewing ray (``Instance.push_direction``)."""
        return self.table[:, :, 13:16]

    @property
    def top(self) -> torch.Tensor:
        """[F,K] float64 98th percentile of the points' output z (``Instance.top``)."""
        return self.table[:, :, 16]

    @property
    def fitted(self) -> bool:
        """Whether the table holds the footprint fits (``append_footprints``)."""
        return self.table.shape[2] > _MEASURED


class _LabelConstants:
    """What labelling F frames of h x w fixes, made once per shape and device.

    Pixels have their flat index p over [F,h,w] (raster order, frame after frame); index
    P = F h w is a sink that the background and the frame borders point at.

    Attributes:
        size: P.
        own: [P+1] int64 every index itself (a pixel's first label); pixel_index: its
            first P (a view).
        neighbours: [5,P+1] int64 a pixel's 4 neighbours and itself (up, left, self
            (row ``_SELF``), right, down), the sink past a frame's border; the sink's are
            all sink (rows: a [P+1] mask broadcasts over them).
        ones: [P+1] int64 ones (pixel counts).
        reverse: [h w] int64 h w - 1 - position in the frame (ties: first pixel first).
        frame_base: [F,1] int64 the first index of each frame.
        no: [1] bool False (the sink is no mask pixel).
        self_row: [5,1] bool True in row ``_SELF`` (a pixel itself among its neighbours).

    """

    def __init__(self, frames: int, height: int, width: int, device: torch.device) -> None:
        pixels = height * width
        self.size = size = frames * pixels
        self.own = torch.arange(size + 1, device=device)
        self.pixel_index = self.own[:size]
        index = self.own[:size].view(frames, height, width)
        self.neighbours = torch.full((5, size + 1), size, dtype=torch.int64, device=device)
        around = self.neighbours[:, :size].view(5, frames, height, width)
        around[0, :, 1:] = index[:, :-1]
        around[1, :, :, 1:] = index[:, :, :-1]
        around[_SELF] = index
        around[3, :, :, :-1] = index[:, :, 1:]
        around[4, :, :-1] = index[:, 1:]
        self.ones = torch.ones_like(self.own)
        self.reverse = torch.arange(pixels - 1, -1, -1, device=device)
        self.frame_base = pixels * torch.arange(frames, device=device)[:, None]
        self.no = torch.zeros(1, dtype=torch.bool, device=device)
        self.self_row = torch.zeros((5, 1), dtype=torch.bool, device=device)
        self.self_row[_SELF] = True


@functools.lru_cache(maxsize=4)
def _label_constants(frames: int, height: int, width: int, device: torch.device
                     ) -> _LabelConstants:
    return _LabelConstants(frames, height, width, device)


def _far_side_of_jumps(inside: torch.Tensor, depth: torch.Tensor, consts: _LabelConstants,
                       ratio: float) -> torch.Tensor:
    """[P+1] bool: mask pixels whose 4-neighbour is in the mask and much nearer.

    Args:
        inside: [P+1] bool mask pixels (flat, ``_LabelConstants``; the sink is not one).
        depth: [F,h,w] depth (read at mask pixels only).
        consts: the frames' constants.
        ratio: a jump is larger than ``ratio`` times the nearer depth.

    """
    near = torch.nn.functional.pad(depth.reshape(-1), (0, 1))  # [P+1]
    around = torch.take(near, consts.neighbours)  # [5,P+1]; the pixel itself is no jump
    jump = (torch.abs(near - around) > ratio * torch.minimum(near, around)) & (near > around)
    return (jump & torch.take(inside, consts.neighbours)).any(dim=0)


def _propagate(inside: torch.Tensor, consts: _LabelConstants, max_steps: int
               ) -> tuple[torch.Tensor, bool]:
    """Label propagation over a mask ``inside`` [P+1] bool (flat): ([P+1] roots, converged).

    A step: every mask pixel takes the smallest label among itself and its 4 neighbours
    (``low``); the pixel's current root adopts the smallest ``low`` of the pixels pointing
    at it (hooking); then pointers are shortcut twice. Labels only decrease and stay in the
    part, so the fixpoint (nothing changes in a step) is unique: every pixel at its part's
    first pixel, however often it is checked. ``_FIXED_STEPS`` run before the first check
    (one host sync), then one check every ``_CHECK_EVERY`` steps and at ``max_steps``
    (``_resume``).
    """
    return _resume(_first_labels(inside, consts), _masked_neighbours(inside, consts), 0,
                   max_steps)


def _first_labels(inside: torch.Tensor, consts: _LabelConstants) -> torch.Tensor:
    """[P+1] every mask pixel its own label, the sink elsewhere (``_propagate``'s start)."""
    return torch.where(inside, consts.own, consts.size)


def _masked_neighbours(inside: torch.Tensor, consts: _LabelConstants) -> torch.Tensor:
    """[5,P+1] ``consts.neighbours`` of mask pixels; pixels off the mask read only the sink.

    Every pixel keeps itself (row ``_SELF``): off the mask that is a sink label too, so a
    label off the mask stays the sink, and ``_step`` has each pixel's own index there.
    """
    return torch.where(inside | consts.self_row, consts.neighbours, consts.size)


def _resume(state: torch.Tensor, neighbours: torch.Tensor, done: int, max_steps: int
            ) -> tuple[torch.Tensor, bool]:
    """``_propagate`` from ``state`` after ``done`` steps (0, or a failed check there).

    The checks come where they come from the start: after ``_FIXED_STEPS``, then every
    ``_CHECK_EVERY`` and at ``max_steps`` (one host sync each), so a labelling resumed after
    the fixed steps (``resume_bucket``) is the one run in one go, converged or cut off.
    """
    check = min(_FIXED_STEPS if done == 0 else done + _CHECK_EVERY, max_steps)
    while True:
        state, previous = _advance(state, neighbours, check - done)
        done = check
        if torch.equal(state, previous):
            return state, True
        if done >= max_steps:
            return state, False
        check = min(done + _CHECK_EVERY, max_steps)


def _advance(state: torch.Tensor, neighbours: torch.Tensor, steps: int
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``steps`` >= 1 propagation steps: (the last state, the one before it)."""
    for _ in range(steps - 1):
        state = _step(state, neighbours)
    return _step(state, neighbours), state


def _step(state: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """One propagation step on the [P+1] labels (``_propagate``): seven ops.

    Only a pixel with a smaller label around it (``low`` below its own) offers ``low`` to
    its root; every other pixel offers its ``low`` to itself, which changes nothing (a
    label never exceeds its index, so ``low[p] <= p``). The result is the hooking over all
    pixels, but the atomic minima no longer pile up on one address: every background pixel
    pointed at the sink, and a settled part's pixels at its root (an H100 spent 143 us a
    step there, 31 % of the window's device time: docs/performance.md section 14).
    """
    low = _neighbour_min(state, neighbours)
    target = torch.where(low < state, state, neighbours[_SELF])
    hooked = low.scatter_reduce(0, target, low, 'amin')
    half = hooked.index_select(0, hooked)
    return half.index_select(0, half)


def _neighbour_min(state: torch.Tensor, neighbours: torch.Tensor) -> torch.Tensor:
    """[P+1] smallest label of each pixel's ``neighbours`` [5,P+1]: two ops off the CPU.

    The CPU gathers with ``index_select`` and reduces with a chain of ``minimum``: its
    ``take`` and int64 min-reductions are not vectorised (several times slower on x86).
    """
    if state.device.type not in CPU_PATH_DEVICE_TYPES:
        return torch.take(state, neighbours).amin(dim=0)
    rows = state.index_select(0, neighbours.view(-1)).view(neighbours.shape)
    low = rows[0]
    for row in rows[1:]:
        low = torch.minimum(low, row)
    return low


def connected_components(mask: torch.Tensor, max_iterations: int
                         ) -> tuple[torch.Tensor, bool]:
    """4-connected components of a [F,h,w] bool mask.

    Returns:
        root [F,h,w] int64: the flat index (over F*h*w) of the component's first pixel in
        raster order for mask pixels, F*h*w elsewhere; and whether it converged within
        ``max_iterations`` (checked after ``_FIXED_STEPS``, then every few: one host sync
        each).

    """
    consts = _label_constants(*mask.shape, mask.device)
    inside = torch.cat([mask.reshape(-1), consts.no])
    state, converged = _propagate(inside, consts, max_iterations)
    return state[:-1].view(mask.shape), converged


def label_image(selected: torch.Tensor, depth: torch.Tensor, config: InstanceConfig,
                crop: bool | None = None) -> Labels:
    """Label the dynamic pixels ``selected`` [F,h,w] bool (valid depth) with depth [F,h,w].

    With ``crop`` (default: on ``CPU_PATH_DEVICE_TYPES``) the work is on the box around every
    frame's dynamic pixels (objects cover a small part of a frame; one host sync to cut
    it); without, on the whole frames (a fixed op count, no sync but the convergence
    check). Both give the same labels. (``label_bucket`` is the graph-ready form.)
    """
    if crop is None:
        crop = selected.device.type in CPU_PATH_DEVICE_TYPES
    frames, height, width = selected.shape
    count = _label_count(config, height, width)
    if not crop:
        return _labels(selected, depth, config, count)
    box = _dynamic_box(selected)
    if box is None:
        return _no_labels(selected.shape, count, selected.device)
    labels = torch.zeros(selected.shape, dtype=torch.int64, device=selected.device)
    cropped = _labels(selected[box], depth[box], config, count)
    labels[box] = cropped.labels
    return replace(cropped, labels=labels)


def _label_count(config: InstanceConfig, height: int, width: int) -> int:
    """Labels per frame of h x w pixels: ``max_instances``, at most one a pixel."""
    return min(config.max_instances, height * width)


def _dynamic_box(selected: torch.Tensor) -> tuple[slice, slice, slice] | None:
    """Index of the box around every frame's dynamic pixels ``selected`` [F,h,w] (None: none).

    One host sync (the rows and columns that hold one).
    """
    height = selected.shape[1]
    spans = torch.cat([selected.any(dim=2).any(dim=0), selected.any(dim=1).any(dim=0)])
    spans = np.nonzero(spans.cpu().numpy())[0]
    if not len(spans):
        return None
    rows, cols = spans[spans < height], spans[spans >= height] - height
    return (slice(None), slice(int(rows[0]), int(rows[-1]) + 1),
            slice(int(cols[0]), int(cols[-1]) + 1))


def _no_labels(shape: torch.Size, count: int, device: torch.device) -> Labels:
    """Return the labels of frames [F,h,w] with no dynamic pixel (``count`` per frame)."""
    return Labels(torch.zeros(shape, dtype=torch.int64, device=device),
                  torch.zeros((shape[0], count), dtype=torch.int64, device=device),
                  torch.zeros((shape[0], 2), dtype=torch.int64, device=device), True)


def _labels(selected: torch.Tensor, depth: torch.Tensor, config: InstanceConfig,
            count: int) -> Labels:
    """``label_image`` on the given frames [F,h,w] (``count`` labels per frame)."""
    consts = _label_constants(*selected.shape, selected.device)
    keep = _kept_pixels(selected, depth, consts, config.depth_break)
    state, converged = _propagate(keep, consts, config.max_label_iterations)
    labels, pixels, dropped = _rank_parts(state, consts, selected.shape, config.min_pixels,
                                          count)
    return Labels(labels, pixels, dropped, converged)


def _kept_pixels(selected: torch.Tensor, depth: torch.Tensor, consts: _LabelConstants,
                 ratio: float) -> torch.Tensor:
    """[P+1] bool the pixels labelled: ``selected`` [F,h,w] but the far side of depth jumps.

    At a depth jump the far pixel leaves the mask: the objects fall apart.
    """
    inside = torch.cat([selected.reshape(-1), consts.no])
    return inside & ~_far_side_of_jumps(inside, depth, consts, ratio)


@dataclass(frozen=True)
class Bucket:
    """Where ``label_bucket`` labels a batch's frames: rows of a bucket count (host side).

    ``height`` rows (``_BUCKET_STEP``, ``_BUCKET_RATIO``; at most the frame's) from ``top``,
    every column (``width``: the frame's): the rows of every frame's dynamic pixels, more
    below, moved up where they would leave the frame. The pixels this adds to their box are
    no dynamic pixels, so the labels are the box's. Whole rows, not a box of two bucketed
    sides: the benchmark's boxes change width from window to window (96 to 384 columns
    over 11 windows), which would record a graph for most windows; their rows take 3
    buckets. Without a dynamic pixel: the smallest bucket at row 0.
    """

    top: int
    height: int
    width: int

    @property
    def index(self) -> tuple[slice, slice]:
        """The rows in [F,h,w] frames."""
        return (slice(None), slice(self.top, self.top + self.height))


def find_bucket(selected: torch.Tensor) -> Bucket:
    """Return the ``Bucket`` of the dynamic pixels ``selected`` [F,h,w] (one host sync)."""
    height, width = selected.shape[1:]
    box = _dynamic_box(selected)
    rows = slice(0, 1) if box is None else box[1]
    size = min(bucket_size(rows.stop - rows.start, _BUCKET_STEP, _BUCKET_RATIO), height)
    return Bucket(min(rows.start, height - size), size, width)


def bucket_constants(frames: int, bucket: Bucket, device: torch.device) -> _LabelConstants:
    """Return the labelling constants of F frames of a bucket (``label_bucket``'s)."""
    return _label_constants(frames, bucket.height, bucket.width, device)


def label_bucket(selected: torch.Tensor, depth: torch.Tensor, config: InstanceConfig,
                 consts: _LabelConstants) -> tuple[torch.Tensor, ...]:
    """``label_image`` on the bucket ``consts`` is made for: graph-ready (no sync).

    The bucket's first row (``find_bucket``) is found again on the device, the fixed steps
    run (``_FIXED_STEPS``, at most ``max_label_iterations``) and whether the last changed
    nothing is kept on the device, for the host to read with the results.

    Args:
        selected: [F,h,w] bool dynamic pixels.
        depth: [F,h,w] depth.
        config: the labelling's settings.
        consts: ``bucket_constants`` of F frames and the bucket ([F,bh,w] frames).

    Returns:
        labels [F,h,w] int64, pixels [F,K] int64, dropped [F,2] int64 (``Labels``), converged
        [] bool (the last step changed nothing: the labels are ``label_image``'s converged
        ones) and the bucket's labels after the fixed steps [F bh w + 1] int64 (for
        ``resume_bucket`` when not converged).

    """
    frames, height, width = selected.shape
    rows = consts.size // (frames * width)
    # argmax: the first row with a dynamic pixel (0 with none).
    top = torch.clamp(selected.any(dim=2).any(dim=0).int().argmax(), max=height - rows)
    window = consts.pixel_index[: rows * width] + top * width  # [bh w] in each frame
    shape = (frames, rows, width)
    inside = selected.flatten(1).index_select(1, window).view(shape)
    keep = _kept_pixels(inside, depth.flatten(1).index_select(1, window).view(shape), consts,
                        config.depth_break)
    state, previous = _advance(_first_labels(keep, consts), _masked_neighbours(keep, consts),
                               min(_FIXED_STEPS, config.max_label_iterations))
    count = _label_count(config, height, width)
    labels, pixels, dropped = _rank_parts(state, consts, shape, config.min_pixels, count)
    full = torch.zeros((frames, height * width), dtype=torch.int64, device=selected.device)
    full.index_copy_(1, window, labels.view(frames, -1))
    return full.view(selected.shape), pixels, dropped, (state == previous).all(), state


def resume_bucket(selected: torch.Tensor, depth: torch.Tensor, config: InstanceConfig,
                  bucket: Bucket, state: torch.Tensor) -> Labels | None:
    """``label_image``'s labels from ``label_bucket``'s ``state`` when it did not converge.

    The propagation goes on from the fixed steps with the checks where ``label_image`` has
    them (the fixpoint is unique; cut off by ``max_label_iterations``, the same steps ran);
    None when the fixed steps were all ``max_label_iterations`` allows (then ``label_bucket``'s
    labels are the cut-off ones). Eager, with its host syncs: for the rare slow labelling.
    """
    steps = min(_FIXED_STEPS, config.max_label_iterations)
    if steps >= config.max_label_iterations:
        return None
    box = bucket.index
    consts = bucket_constants(len(selected), bucket, selected.device)
    keep = _kept_pixels(selected[box], depth[box], consts, config.depth_break)
    state, converged = _resume(state, _masked_neighbours(keep, consts), steps,
                               config.max_label_iterations)
    frames, height, width = selected.shape
    count = _label_count(config, height, width)
    cropped, pixels, dropped = _rank_parts(state, consts, selected[box].shape,
                                           config.min_pixels, count)
    labels = torch.zeros(selected.shape, dtype=torch.int64, device=selected.device)
    labels[box] = cropped
    return Labels(labels, pixels, dropped, converged)


def _rank_parts(state: torch.Tensor, consts: _LabelConstants, shape: torch.Size,
                min_pixels: int, count: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Labels [F,h,w] of the ``count`` largest parts of at least ``min_pixels`` of each frame.

    Args:
        state: [F h w + 1] component roots (``_propagate``).
        consts: the frames' constants.
        shape: (F, h, w).
        min_pixels: smallest part.
        count: labels per frame.

    Returns:
        labels (0 = none, 1..count largest first, ties by first pixel), pixel counts
        [F,count] (0 = unused), parts dropped [F,2] as small and as excess.

    """
    frames, total = shape[0], consts.size
    pixels = total // frames
    # Background pixels count into their own slot, not all into the sink's (one contended
    # address on a GPU, like ``_step``'s hooking); a background slot is never a part root.
    counted = torch.where(state == total, consts.own, state)
    sizes = torch.zeros_like(state).index_add_(0, counted, consts.ones)
    roots = state[:total]
    sizes = torch.where(roots == consts.pixel_index, sizes[:total], 0).view(frames, pixels)
    # Largest first, ties by first pixel: one unique integer key per part root (-1: none).
    key = torch.where(sizes >= min_pixels, sizes * pixels + consts.reverse, -1)
    top_key, top_pixel = torch.topk(key, min(count, pixels), dim=1)
    kept = top_key >= 0
    big = (key >= 0).sum(dim=1)
    dropped = torch.stack([(sizes > 0).sum(dim=1) - big,
                           (big - top_key.shape[1]).clamp(min=0)], dim=1)
    # Root pixel -> label 1..K (kept parts only); everything else (the sink too) -> 0.
    lookup = torch.zeros_like(state)
    target = torch.where(kept, top_pixel + consts.frame_base, total)
    lookup.scatter_(0, target.flatten(), (kept * consts.own[1: top_key.shape[1] + 1]).flatten())
    labels = torch.take(lookup, roots).view(shape)
    counts = top_key.clamp(min=0) // pixels
    if counts.shape[1] < count:  # a crop smaller than the label count
        counts = torch.cat([counts, counts.new_zeros((frames, count - counts.shape[1]))], 1)
    return labels, counts, dropped


class _MeasureConstants:
    """What measuring K labels in F frames of L point slots fixes (per shape and device).

    Rows: one per (frame, label 0..K) plus a dump row (``dump`` = F (K+1)) for unused slots.

    Attributes:
        frame_rows: [F,1] int64 the first row of each frame.
        labelled: [F (K+1) + 1] bool rows of labels 1..K (not label 0, not the dump).
        ones: [F L] int64 ones (member counts).
        percents: [2,1] float64 the size's percentiles (2 and 98) as fractions.
        box_sign: [4] int64 (1, 1, -1, -1): the box's ends are reduced negated.

    """

    def __init__(self, frames: int, slots: int, count: int, device: torch.device) -> None:
        rows = count + 1
        self.dump = frames * rows
        self.frame_rows = rows * torch.arange(frames, device=device)[:, None]
        labelled = torch.ones(self.dump + 1, dtype=torch.bool, device=device)
        labelled[:-1].view(frames, rows)[:, 0] = False
        labelled[-1] = False
        self.labelled = labelled
        self.ones = torch.ones(frames * slots, dtype=torch.int64, device=device)
        self.percents = torch.tensor([[2.0 / 100.0], [98.0 / 100.0]], dtype=torch.float64,
                                     device=device)
        self.box_sign = torch.tensor([1, 1, -1, -1], device=device)


@functools.cache  # never evicted: a recorded CUDA graph of the measurements reads them
def _measure_constants(frames: int, slots: int, count: int, device: torch.device
                       ) -> _MeasureConstants:
    return _MeasureConstants(frames, slots, count, device)


@functools.cache  # never evicted: a recorded CUDA graph of the measurements reads them
def _pixel_extremes(height: int, width: int, device: torch.device) -> torch.Tensor:
    """[h w, 4] int64 (row, col, -row, -col) of every flat pixel index (a box's amin terms)."""
    index = torch.arange(height * width, device=device)
    pix = torch.stack([index // width, index % width], dim=1)
    return torch.cat([pix, -pix], dim=1)


def measure_instances(points: BatchPoints, labels: Labels, output_from_camera: torch.Tensor,
                      depth_completion: str) -> InstanceStats:
    """Measure every label of every frame from its points (segment reductions).

    The camera sees only the front of an object. Moments, not extremes, keep the estimate
    steady from frame to frame (a few pixels more or less at the silhouette move a
    percentile, hardly a mean). With 'half_width' the visible points' mean is pushed back
    along its viewing ray by 4/3 of the standard deviation of their horizontal image-plane
    coordinate: exact for a sphere (mean visible depth = centre - 2r/3, std = r/2) and within
    2 % of the radius for an upright cylinder (a person); 'none' keeps the visible mean.
    Size: the 2-98 % extent of the points, mirrored about the centre (the hidden back is as
    deep as the front). The push, the ray and the top of the points are kept for the
    tracker, which replaces the per-frame push and height by track averages (``Tracker``).
    """
    frames, slots = points.index.shape
    count = labels.pixels.shape[1]
    height, width = labels.labels.shape[1:]
    consts = _measure_constants(frames, slots, count, points.index.device)
    dump = consts.dump
    # One row per (frame, label); the unused slots go to the dump row.
    point_labels = labels.labels.flatten(1).gather(1, points.index)
    segment = torch.where(points.used, point_labels + consts.frame_rows, dump).flatten()
    members = torch.zeros(dump + 1, dtype=torch.int64, device=segment.device)
    members.index_add_(0, segment, consts.ones)
    measurable = (members >= 3) & consts.labelled
    point_labels = torch.where(torch.take(measurable, segment).view(frames, slots),
                               point_labels, 0)
    # Boxes: one amin over (row, col, -row, -col).
    extremes = _pixel_extremes(height, width, segment.device)[points.index.flatten()]
    box = torch.full((dump + 1, 4), np.iinfo(np.int64).max, dtype=torch.int64,
                     device=segment.device)
    box.scatter_reduce_(0, segment[:, None].expand(-1, 4), extremes, 'amin')
    # Centre: mean and (two-pass) standard deviation of the camera points.
    camera = points.camera.reshape(-1, 3)
    safe_members = members.clamp(min=1).double()[:, None]
    mean = torch.zeros(dump + 1, 3, dtype=torch.float64, device=segment.device)
    mean.index_add_(0, segment, camera)
    mean /= safe_members
    spread = torch.zeros(dump + 1, 1, dtype=torch.float64, device=segment.device)
    spread.index_add_(0, segment, (camera[:, :1] - mean[:, :1][segment]) ** 2)
    centre_cam, push = mean, torch.zeros_like(spread)
    if depth_completion == 'half_width':
        depth = mean[:, 2:]
        ratio = torch.where(depth > 0, 4.0 / 3.0 * torch.sqrt(spread / safe_members) / depth,
                            0.0)
        centre_cam = mean * (1.0 + ratio)
        push = ratio * torch.linalg.vector_norm(mean, dim=1, keepdim=True)
    # Per frame from here: [F, K+1, ...] (the dump row is dropped).
    centre = rigid_apply(output_from_camera, _per_frame(centre_cam, frames))
    rotation = output_from_camera[:, None, :3, :3]  # [F,1,3,3]
    ray = (_per_frame(mean, frames)[:, :, None, :] * rotation).sum(dim=3)
    direction = ray / torch.linalg.vector_norm(ray, dim=2, keepdim=True).clamp(min=1e-300)
    low, high = _segment_percentiles(points.output.reshape(-1, 3), segment, members,
                                     consts.percents)
    low, high = _per_frame(low, frames), _per_frame(high, frames)
    size = 2.0 * torch.maximum(torch.abs(high - centre), torch.abs(centre - low))
    # One float64 table in ``pack``'s column order (but the pixel count, from the labels).
    table = torch.cat([
        _per_frame(measurable[:, None], frames), _per_frame(box, frames) * consts.box_sign,
        centre, size, _per_frame(torch.linalg.vector_norm(centre_cam, dim=1, keepdim=True),
                                 frames),
        _per_frame(push, frames), direction, high[:, :, 2:]], dim=2)[:, 1:]
    return InstanceStats(table, labels.pixels, point_labels)


def _per_frame(value: torch.Tensor, frames: int) -> torch.Tensor:
    """[F, K+1, C] rows of each frame (``_MeasureConstants``) from [F (K+1) + 1, C] rows."""
    return value[:-1].view(frames, -1, value.shape[1])


def _segment_percentiles(values: torch.Tensor, segment: torch.Tensor, members: torch.Tensor,
                         fractions: torch.Tensor) -> torch.Tensor:
    """Linear-interpolated percentiles (numpy's default) of values [N,3] per segment [N].

    Args:
        values: [N,3].
        segment: [N] segment of each value.
        members: [S] values per segment.
        fractions: [Q,1] float64 the percentiles / 100.

    Returns:
        [Q,S,3] percentiles (empty segments give junk).

    """
    columns = values.T  # [3,N]
    order = torch.argsort(columns, dim=1, stable=True)
    order = order.gather(1, torch.argsort(torch.take(segment, order), dim=1, stable=True))
    ordered = columns.gather(1, order)  # grouped by segment, ascending within
    start = torch.cumsum(members, 0) - members
    last = (members - 1).clamp(min=0)
    position = fractions * last.double()  # [Q,S]
    below = torch.floor(position).long()
    frac = position - below.double()
    ends = torch.stack([below, torch.minimum(below + 1, last)]) + start
    first, second = ordered[:, ends.clamp(max=ordered.shape[1] - 1)].unbind(1)  # [3,Q,S]
    return (first + (second - first) * frac).permute(1, 2, 0)


def append_footprints(stats: InstanceStats, used: torch.Tensor, output: torch.Tensor,
                      count: int) -> torch.Tensor:
    """``measure_instances``' table [F,K,17] with each label's footprint fit: [F,K,26].

    The first ``count`` labels of every frame (at most K; labels rank parts by size, 1 = the
    largest) are fitted (``box_fit.fit_padded``) on their points' subsample
    (``box_fit.label_subsample``) with the measured viewing rays (the push direction
    columns); the other rows are not ok (zeros, away +1: ``Footprints.scattered``). Fixed
    shapes, no host sync: part of the instances' CUDA graph. On ``COMPACT_FIT_DEVICE_TYPES``
    only the labels with points are fitted (the rest are never instances).

    Args:
        stats: ``measure_instances``' measurements: its table [F,K,17] float64 (the rays:
            ``push_direction``) and point labels [F,N] int64 (0 for labels not measured).
        used: [F,N] bool slots holding a point.
        output: [F,N,3] float64 the points (output frame).
        count: labels fitted per frame.

    """
    table = stats.table
    frames, labels = table.shape[:2]
    count = min(count, labels)
    xyz, lengths = box_fit.label_subsample(stats.point_labels, used, output, count)
    xyz, lengths = xyz.flatten(0, 1), lengths.flatten()
    rays = stats.push_direction[:, :count].reshape(-1, 3)
    if table.device.type in COMPACT_FIT_DEVICE_TYPES:
        # Only the labels with points (an index read on the host); the others as not fitted.
        rows = torch.nonzero(lengths).flatten()
        fitted = box_fit.unfitted_columns(frames * count, table)
        fitted.index_copy_(0, rows, box_fit.fit_columns(
            box_fit.fit_padded(xyz[rows], lengths[rows], rays[rows])))
    else:
        fitted = box_fit.fit_columns(box_fit.fit_padded(xyz, lengths, rays))
    rest = box_fit.unfitted_columns(frames * (labels - count), table)
    columns = torch.cat([fitted.view(frames, count, box_fit.COLUMNS),
                         rest.view(frames, labels - count, box_fit.COLUMNS)], dim=1)
    return torch.cat([table, columns], dim=2)


#: Columns of ``measure_instances``' table.
_MEASURED = 17
#: Values per instance in ``pack``'s rows (and the footprint fit's when fitted).
_PACKED = _MEASURED + 1
#: Columns of ``pack``'s rows (``InstanceStats.table``'s, the pixel count second).
_PIXELS, _BOX, _CENTRE, _SIZE = 1, slice(2, 6), slice(6, 9), slice(9, 12)
_RANGE, _PUSH, _RAY, _TOP = 12, 13, slice(14, 17), 17


def pack(stats: InstanceStats, labels: Labels) -> torch.Tensor:
    """[F, W K + 2] float64: the measurements and the dropped-part counts (for one copy).

    W = 18 values per label: the table's with the pixel count second; 27 with the footprint
    fits (``InstanceStats.fitted``: their 9 columns last).
    """
    packed = torch.cat([stats.table[:, :, :1], stats.pixels[:, :, None].double(),
                        stats.table[:, :, 1:]], dim=2)
    return torch.cat([packed.flatten(1), labels.dropped.double()], dim=1)


def unpack(packed: np.ndarray, point_labels: np.ndarray, counts: np.ndarray,
           fitted: bool = False) -> list[FrameInstances]:
    """Per-frame instances from ``pack``'s rows [F, W K + 2] on the host.

    ``point_labels`` [F, >= max count]: each point slot's label; ``counts`` [F]: used slots;
    ``fitted``: the rows hold the footprint fits (W = 27; ``FrameInstances.footprints``).
    """
    frames = len(packed)
    width = _PACKED + box_fit.COLUMNS if fitted else _PACKED
    fields = packed[:, :-2].reshape(frames, -1, width)
    measured_slots = fields[:, :, 0] > 0.5  # the measured rows only
    dropped = packed[:, -2:].tolist()
    out = []
    for f in range(frames):
        measured = measured_slots[f].nonzero()[0]
        # One gather per frame (a copy): the detections' columns and the instances' arrays
        # are views of it.
        rows = fields[f, measured]
        labels = measured + 1
        footprints = Footprints.from_columns(rows[:, _PACKED:]) if fitted else None
        # The tracker reads these column slices: ~2.5 us here saves it ~7 us per frame of
        # gathering from the instances (benchmark scene, 2-core machine).
        detections = Detections.from_rows(labels, rows) if len(rows) else None
        out.append(FrameInstances(RowInstances(labels, rows),
                                  point_labels[f, : counts[f]].astype(np.int32),
                                  int(dropped[f][0]), int(dropped[f][1]), footprints,
                                  detections))
    return out


class RowInstances(Sequence):
    """A frame's ``Instance`` objects, made from ``pack``'s rows when first read (``unpack``).

    The one-camera tracker reads the rows' columns (``FrameInstances.detections``) and the
    count only, so on its path no object is made; a rig merge, the motion registration or a
    caller that reads the instances gets them, made once (their arrays views of the rows).
    A frame of ~27 parts (a random-weight network's masks) made 27 objects per frame.
    """

    def __init__(self, labels: np.ndarray, rows: np.ndarray) -> None:
        """``labels`` [M] int64 of ``rows`` [M, W] (``pack``'s, one frame's gather)."""
        self._labels = labels
        self._rows = rows
        self._made: list[Instance] | None = None

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index):
        return self._instances()[index]

    def __iter__(self):
        return iter(self._instances())

    def __repr__(self) -> str:
        return repr(self._instances())

    def _instances(self) -> list[Instance]:
        if self._made is None:
            # Each instance's numbers Python floats from one tolist of the rows (~10 us less
            # per window than a tolist per row).
            rows = self._rows
            self._made = [Instance(k, int(value[_PIXELS]), tuple(map(int, value[_BOX])),
                                   row[_CENTRE], row[_SIZE], value[_RANGE], push=value[_PUSH],
                                   push_direction=row[_RAY], top=value[_TOP])
                          for k, row, value in zip(self._labels.tolist(), rows, rows.tolist())]
        return self._made


def to_host(stats: InstanceStats, labels: Labels, counts: np.ndarray
            ) -> list[FrameInstances]:
    """Copy the measurements to the host as per-frame instances (``counts`` [F] used slots)."""
    used = int(counts.max()) if len(counts) else 0
    return unpack(pack(stats, labels).cpu().numpy(),
                  stats.point_labels[:, :used].cpu().numpy(), counts, stats.fitted)
