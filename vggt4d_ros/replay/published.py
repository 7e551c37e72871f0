# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""Published numbers of VGGT4D and its peers, shown beside ours in the evaluation report.

Only numbers whose source could be read are listed. The stored copies of the paper (arXiv
2511.19971v1) end before its experiments section, so no table number could be checked; the
numbers below are the ones the VGGT4D team quotes from the paper in its own article
(QbitAI, "VGGT4D团队", in shared/seeds/000_*) and the issue that asked for this tool. Add the
paper's table values with their table number when you have the PDF.
"""

from __future__ import annotations

from dataclasses import dataclass

ARTICLE = ('VGGT4D team article (QbitAI) quoting arXiv 2511.19971 experiments; '
           'table number not retrieved')


@dataclass(frozen=True)
class Published:
    """One published number: dataset, metric key (as in metrics.json), method, value, source."""

    dataset: str
    metric: str
    method: str
    value: float
    source: str


PUBLISHED: tuple[Published, ...] = (
    Published('vkitti', 'ate_rmse', 'VGGT4D', 0.164, ARTICLE),
    Published('vkitti', 'ate_rmse', 'MonST3R', 2.272, ARTICLE),
    Published('dycheck', 'accuracy_median', 'VGGT4D', 0.004, ARTICLE),
    Published('dycheck', 'accuracy_median', 'VGGT', 0.009, ARTICLE),
    Published('dycheck', 'distance', 'VGGT4D', 0.123, ARTICLE),
    Published('dycheck', 'distance', 'VGGT', 0.150, ARTICLE),
)


def published_for(dataset: str) -> list[Published]:
    """Return the published numbers of one dataset (empty when none could be sourced)."""
    return [p for p in PUBLISHED if p.dataset == dataset]
