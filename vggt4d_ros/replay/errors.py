# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Exception types of the replay tool: every user-facing failure is a ReplayError."""

from __future__ import annotations


class ReplayError(Exception):
    """A replay or evaluation run cannot go on; the message says what and where."""


class BagError(ReplayError):
    """A bag cannot be opened or read (missing, corrupt, truncated, empty)."""


class TopicError(ReplayError):
    """A requested topic is missing from a bag or has an unusable type."""
