# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Attention kernels and the one place that picks a kernel per call.

Backends (``PipelineConfig.attention``):

- ``sdpa``: ``F.scaled_dot_product_attention`` exactly as the model has always called it
  (PyTorch picks cuDNN / flash / memory-efficient / math); the default.
- ``flash4``: FlashAttention-4 (``flash_attn.cute`` from the optional ``flash-attn-4`` wheel,
  CuTe-DSL kernels JIT-compiled on first use; Hopper and Blackwell, bf16/fp16, head dim a
  multiple of 8 up to 128). Boolean key masks run through its variable-length kernel: keys
  reordered kept-first per batch element and ``seqused_k`` = the kept count (no host read).
- ``flex``: ``torch.nn.attention.flex_attention``, compiled; a boolean key mask becomes a
  score modification (``-inf`` on dropped keys).
- ``auto``: ``flash4`` where it can run, else ``sdpa``.
- ``flash4-global``: ``flash4`` for the calls over one sequence (batch 1: the global blocks,
  pass 2's kept-key and key-masked global blocks) where it can run, ``sdpa`` for the batched
  per-frame calls (frame blocks), where cuDNN was the faster kernel per call (H200, 8 frames:
  0.152 against 0.217 ms; 0.724 against 0.694 ms the other way for a global block,
  ``bench_attention``, docs/performance.md section 9).

:func:`select_kernel` resolves a backend for one call (device, dtype, head dim, mask shape,
whether the package imports); whatever cannot run falls back to SDPA and says so once in the
log. Shapes: q ``[B,H,Tq,D]``, k / v ``[B,H,Tk,D]`` (the layout SDPA takes); masks ``Bool``,
True = may be attended to.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable, Literal, Optional

import torch
from torch.nn.attention import sdpa_kernel, SDPBackend
import torch.nn.functional as F

LOG = logging.getLogger(__name__)

AttentionBackend = Literal['auto', 'sdpa', 'flash4', 'flex', 'flash4-global']
BACKENDS: tuple[str, ...] = ('auto', 'sdpa', 'flash4', 'flex', 'flash4-global')
#: The backends that run FlashAttention-4 wherever it can run (on some or all calls).
_FLASH4_BACKENDS = ('auto', 'flash4', 'flash4-global')
#: The kernels a call can end on.
KERNELS: tuple[str, ...] = ('sdpa', 'flash4', 'flex')

# Kernels for attention over a data-dependent number of keys. cuDNN's fused attention builds
# and caches an execution plan per sequence length: with a new key count every window (the
# dynamic mask changes) pass 2 on an H200 took 74 ms instead of 42. Flash attention has no
# per-shape plan.
VARIABLE_LENGTH_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION,
                            SDPBackend.MATH]
_HALF = (torch.bfloat16, torch.float16)
_logged: set[tuple[str, str]] = set()


def _log_once(requested: str, reason: str) -> None:
    """Say once per (backend, reason) that a call fell back to SDPA (never while tracing)."""
    if torch.compiler.is_compiling() or (requested, reason) in _logged:
        return
    _logged.add((requested, reason))
    LOG.warning('attention backend %r falls back to sdpa: %s', requested, reason)


# Import results and device capabilities, filled on first use (eagerly: :func:`prime`), so
# that a compiled model's trace only reads them (no import, no driver query while tracing).
_flash4: list[Optional[tuple[Callable[..., Any], Callable[..., Any]]]] = []
_flex: list[Optional[Callable[..., torch.Tensor]]] = []
_capabilities: dict[int, tuple[int, int]] = {}


def flash4_functions() -> Optional[tuple[Callable[..., Any], Callable[..., Any]]]:
    """``(flash_attn_func, flash_attn_varlen_func)`` of ``flash_attn.cute``, or None."""
    if not _flash4:
        try:
            from flash_attn.cute import flash_attn_func, flash_attn_varlen_func
            _flash4.append((flash_attn_func, flash_attn_varlen_func))
        except Exception as error:  # noqa: BLE001 - any import failure means "not available"
            LOG.info('flash_attn.cute is not importable (%s: %s)', type(error).__name__, error)
            _flash4.append(None)
    return _flash4[0]


def _flex_function() -> Optional[Callable[..., torch.Tensor]]:
    if not _flex:
        try:
            from torch.nn.attention.flex_attention import flex_attention
            _flex.append(flex_attention)
        except ImportError:
            _flex.append(None)
    return _flex[0]


def _capability(device: torch.device) -> tuple[int, int]:
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _capabilities:
        _capabilities[index] = torch.cuda.get_device_capability(index)
    return _capabilities[index]


def prime(backend: str, device: torch.device) -> None:
    """Do the imports and device queries ``backend`` needs on ``device`` now (eagerly).

    Called when a model gets its backend (:func:`vggt4d_ros.model.layers.use_attention_backend`),
    before any ``torch.compile`` traces it.
    """
    if backend in _FLASH4_BACKENDS:
        flash4_functions()
    if backend == 'flex':
        _flex_function()
    if device.type == 'cuda':
        _capability(device)


def _flex_plain(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return _flex_function()(q, k, v)


def _flex_masked(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 keep: torch.Tensor) -> torch.Tensor:
    # The score modification is made inside the traced function: a closure made outside and
    # passed in would be a new object every call, and a new compilation.
    def drop_keys(score: torch.Tensor, batch: torch.Tensor, head: torch.Tensor,
                  query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return torch.where(keep[batch, key], score, -float('inf'))

    return _flex_function()(q, k, v, score_mod=drop_keys)


@functools.lru_cache(maxsize=None)
def _compiled_flex(masked: bool) -> Callable[..., torch.Tensor]:
    # One compilation per shape (dynamic=False): the model's shapes are fixed per window size,
    # and masks enter as a tensor of fixed shape, never as a new key count.
    return torch.compile(_flex_masked if masked else _flex_plain, dynamic=False)


def _autocast_inputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cast fp32 q/k/v to the autocast dtype, as autocast does for SDPA (fp32 weights mode)."""
    if q.is_cuda and q.dtype == torch.float32 and torch.is_autocast_enabled('cuda'):
        dtype = torch.get_autocast_dtype('cuda')
        return q.to(dtype), k.to(dtype), v.to(dtype)
    return q, k, v


def unavailable_reason(kernel: str, q: torch.Tensor) -> Optional[str]:
    """Why ``kernel`` cannot run attention on queries like ``q``; None when it can.

    Depends on the device, dtype and head dimension only (not on the sequence lengths).
    """
    if kernel == 'sdpa':
        return None
    if not q.is_cuda:
        return f'{q.device.type} device'
    if kernel == 'flex':
        return None if _flex_function() is not None else 'flex_attention not in this torch'
    if kernel != 'flash4':
        raise ValueError(f'unknown attention kernel {kernel!r}; one of {", ".join(KERNELS)}')
    if q.dtype not in _HALF:
        return f'{q.dtype} (FlashAttention-4 takes bf16/fp16)'
    head_dim = q.shape[-1]
    if head_dim % 8 or not 8 <= head_dim <= 128:
        return f'head dim {head_dim} (FlashAttention-4: multiple of 8 in [8, 128])'
    if _capability(q.device)[0] < 9:
        return 'GPU older than Hopper (sm_90)'
    if flash4_functions() is None:
        return 'flash_attn.cute not importable (pip install flash-attn-4)'
    return None


def key_mask(attn_mask: Optional[torch.Tensor], batch: int, keys: int
             ) -> Optional[torch.Tensor]:
    """``attn_mask`` as a per-batch key mask ``Bool[B,Tk]`` when it is one, else None.

    A key mask is boolean and broadcastable to ``[B,1,1,Tk]`` (the same keys for every head
    and query: what pass 2's frame and global masks are).
    """
    if attn_mask is None or attn_mask.dtype != torch.bool or attn_mask.dim() != 4:
        return None
    if attn_mask.shape[1] != 1 or attn_mask.shape[2] != 1 or attn_mask.shape[3] != keys:
        return None
    if attn_mask.shape[0] not in (1, batch):
        return None
    return attn_mask[:, 0, 0].expand(batch, keys)


def select_kernel(backend: str, q: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                  keys: Optional[int] = None) -> str:
    """Pick the kernel one attention call runs on: 'sdpa', 'flash4' or 'flex'.

    Args:
        backend: one of :data:`BACKENDS`.
        q: the call's queries ``[B,H,Tq,D]`` (device, dtype, head dim).
        attn_mask: the call's mask; only key masks (:func:`key_mask`) leave SDPA.
            ``flash4-global`` leaves SDPA for batch-1 calls only (``q.shape[0] == 1``).
        keys: ``Tk`` (default ``Tq``), to recognise a key mask.

    Returns:
        The kernel; a fallback to 'sdpa' is logged once per backend and reason.
    """
    if backend not in BACKENDS:
        raise ValueError(f'unknown attention backend {backend!r}; one of {", ".join(BACKENDS)}')
    if backend == 'sdpa' or (backend == 'flash4-global' and q.shape[0] != 1):
        return 'sdpa'
    wanted = 'flash4' if backend in _FLASH4_BACKENDS else backend
    reason = unavailable_reason(wanted, q)
    if reason is None and attn_mask is not None:
        if key_mask(attn_mask, q.shape[0], q.shape[-2] if keys is None else keys) is None:
            reason = f'mask of shape {tuple(attn_mask.shape)} is not a boolean key mask'
    if reason is None:
        return wanted
    if backend != 'auto':
        _log_once(backend, reason)
    return 'sdpa'


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str = 'sdpa',
           attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Attention ``[B,H,Tq,D]`` on the kernel :func:`select_kernel` picks.

    With ``backend='sdpa'`` this is ``F.scaled_dot_product_attention(q, k, v, attn_mask)``,
    bit for bit.
    """
    if backend != 'sdpa':
        q, k, v = _autocast_inputs(q, k, v)
    kernel = select_kernel(backend, q, attn_mask, k.shape[-2])
    if kernel == 'sdpa':
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    keep = key_mask(attn_mask, q.shape[0], k.shape[-2])
    if kernel == 'flash4':
        if keep is None:
            return flash4_attention(q, k, v)
        return flash4_key_masked_attention(q, k, v, keep)
    return flex_attention(q, k, v, keep)


def attend_kept_keys(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor,
                     backend: str = 'sdpa') -> torch.Tensor:
    """Attention of ``q[B,H,T,D]`` over the keys/values ``index`` (``Long[K]``) only.

    SDPA on the gathered keys with the variable-length kernels (no per-length plan);
    FlashAttention-4 on the gathered keys (its compiled kernel does not depend on the key
    count); FlexAttention over all keys with the others masked (a new key count would mean a
    new compilation).
    """
    if backend != 'sdpa':
        q, k, v = _autocast_inputs(q, k, v)
    kernel = select_kernel(backend, q)
    if kernel == 'flex':
        keep = torch.zeros(k.shape[-2], dtype=torch.bool, device=k.device)
        keep[index] = True
        return flex_attention(q, k, v, keep.expand(q.shape[0], -1))
    k, v = k.index_select(2, index), v.index_select(2, index)
    if kernel == 'flash4':
        return flash4_attention(q, k, v)
    with sdpa_kernel(VARIABLE_LENGTH_BACKENDS):
        return F.scaled_dot_product_attention(q, k, v)


def flex_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                   keep: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Attend with FlexAttention (``[B,H,Tq,D]``); ``keep`` (``Bool[B,Tk]``) drops keys.

    Compiled when called eagerly; inside a compiled model the enclosing graph compiles it.
    Every query must keep at least one key (VGGT's special tokens are never dropped).
    """
    eager = not torch.compiler.is_compiling()
    if keep is None:
        return _compiled_flex(False)(q, k, v) if eager else _flex_plain(q, k, v)
    keep = keep.contiguous()
    return _compiled_flex(True)(q, k, v, keep) if eager else _flex_masked(q, k, v, keep)


def _flash4_out(result: Any) -> torch.Tensor:
    # flash_attn.cute returns (out, lse).
    return result[0] if isinstance(result, tuple) else result


def _flash4_like(q: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Return an empty ``[B,H,Tq,Dv]`` with FlashAttention's ``[B,Tq,H,Dv]`` memory layout."""
    batch, heads, queries = q.shape[:3]
    return q.new_empty(batch, queries, heads, v.shape[-1]).transpose(1, 2)


@torch.library.custom_op('vggt4d::flash4_attention', mutates_args=())
def flash4_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """FlashAttention-4 of ``[B,H,T,D]`` inputs; ``[B,H,Tq,D]`` (contiguous ``[B,Tq,H,D]``).

    An opaque operator so that ``torch.compile`` keeps the CuTe-DSL call out of its graph.
    """
    func, _ = flash4_functions()
    out = _flash4_out(func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)))
    # The layout the fake promises ([B,Tq,H,D] memory), whatever the kernel allocated.
    return out.contiguous().transpose(1, 2)


@flash4_attention.register_fake
def _flash4_attention_shape(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return _flash4_like(q, v)


def kept_first(keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row order that puts the kept keys first, and the kept counts.

    Args:
        keep: ``Bool[B,Tk]``.

    Returns:
        ``(order Long[B,Tk], counts Int32[B])``: ``order[b, :counts[b]]`` are the kept keys of
        row ``b`` in their original order (a stable sort, no host read).
    """
    order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices
    return order, keep.sum(dim=1, dtype=torch.int32)


@torch.library.custom_op('vggt4d::flash4_key_masked_attention', mutates_args=())
def flash4_key_masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                                keep: torch.Tensor) -> torch.Tensor:
    """FlashAttention-4 over the keys ``keep`` (``Bool[B,Tk]``) marks; ``[B,H,Tq,D]``.

    Keys and values are gathered kept-first per batch element and the variable-length kernel
    reads ``seqused_k`` (the kept counts), so no host read and no new shape per mask.
    """
    _, varlen = flash4_functions()
    order, counts = kept_first(keep)
    gather = order[:, None, :, None].expand(-1, k.shape[1], -1, k.shape[-1])
    k_kept = k.gather(2, gather).transpose(1, 2)
    v_kept = v.gather(2, gather[..., :1].expand(-1, -1, -1, v.shape[-1])).transpose(1, 2)
    out = _flash4_out(varlen(q.transpose(1, 2), k_kept, v_kept, seqused_k=counts))
    return out.contiguous().transpose(1, 2)


@flash4_key_masked_attention.register_fake
def _flash4_key_masked_shape(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                             keep: torch.Tensor) -> torch.Tensor:
    return _flash4_like(q, v)
