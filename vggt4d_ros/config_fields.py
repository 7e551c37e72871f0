# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Field metadata of the config dataclasses: the one home of its format.

``runtime/parameters.py`` reads it to turn config fields into parameters (name, default,
description, range). It sits at the package root, below every layer and importing nothing of
the package, so configs of any layer (perception, runtime, viz, ros) can use it.
"""

from __future__ import annotations


def field_meta(description: str, limits: tuple[float, float] | None = None, *,
               any_length: bool = False) -> dict:
    """Field metadata: the parameter's description and, for numbers, its inclusive range.

    Use as ``dataclasses.field(default=..., metadata=field_meta('what it does', (lo, hi)))``.
    A list field is an array parameter of the default's length; ``any_length`` lets it take
    any number of items (its config's ``__post_init__`` checks the count).
    """
    meta: dict = {'description': description}
    if limits is not None:
        meta['range'] = limits
    if any_length:
        meta['any_length'] = True
    return meta
