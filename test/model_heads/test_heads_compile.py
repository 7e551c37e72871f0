# Copyright 2026 vggt4d_ros developers
# SPDX-License-Identifier: Apache-2.0
"""The heads trace as one graph (no graph breaks, hence no host syncs in forward)."""

from typing import List, Optional

import pytest
import torch

from vggt4d_ros.model.heads import CameraHead, DPTHead, TrackHead

DIM_IN = 32


def _tokens() -> List[Optional[torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    out: List[Optional[torch.Tensor]] = [None] * 24
    for idx in (4, 11, 17, 23):
        out[idx] = torch.randn(1, 3, 5 + 4 * 6, DIM_IN, generator=generator)
    return out


def _first(output) -> torch.Tensor:
    first = output[0] if isinstance(output, (tuple, list)) else output
    return first[-1] if isinstance(first, list) else first


@pytest.mark.parametrize('name', ['camera', 'dpt_chunked', 'track'])
def test_fullgraph_trace_matches_eager(name: str) -> None:
    torch.manual_seed(0)
    tokens, images = _tokens(), torch.rand(1, 3, 3, 56, 84)
    if name == 'camera':
        head, args, kwargs = CameraHead(DIM_IN, trunk_depth=1, num_heads=4), (tokens,), {}
    elif name == 'dpt_chunked':
        head = DPTHead(DIM_IN, output_dim=2, activation='exp', features=16,
                       out_channels=(8, 8, 16, 16))
        args, kwargs = (tokens, images, 5), {'frames_chunk_size': 2}
    else:
        head = TrackHead(DIM_IN, features=16, hidden_size=32, corr_levels=3, tracker_depth=1,
                         num_heads=4, num_virtual_tracks=4, out_channels=(8, 8, 16, 16))
        args, kwargs = (tokens, images, 5), {'query_points': torch.rand(1, 4, 2) * 40}
    head.eval()
    torch._dynamo.reset()
    compiled = torch.compile(head, backend='eager', fullgraph=True)
    with torch.no_grad():
        traced = _first(compiled(*args, **kwargs))
        torch.testing.assert_close(traced, _first(head(*args, **kwargs)))


def test_prepared_pos_embeddings_compile_once_and_are_not_rebuilt_in_the_graph() -> None:
    torch.manual_seed(0)
    head = DPTHead(DIM_IN, output_dim=2, activation='exp', features=16,
                   out_channels=(8, 8, 16, 16)).eval()
    tokens, images = _tokens(), torch.rand(1, 3, 3, 56, 84)
    head.prepare_pos_embed(images.shape[-2:], images.device, torch.float32)
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch._dynamo.reset()
    compiled = torch.compile(head, backend=backend, fullgraph=True)
    with torch.no_grad():
        first = compiled(tokens, images, 5)[0]
        head.prepare_pos_embed(images.shape[-2:], images.device, torch.float32)  # kept
        second = compiled(tokens, images, 5)[0]
        unprepared = DPTHead(DIM_IN, output_dim=2, activation='exp', features=16,
                             out_channels=(8, 8, 16, 16)).eval()
        unprepared.load_state_dict(head.state_dict())
        reference = unprepared(tokens, images, 5)[0]
    assert len(graphs) == 1  # one compilation
    # The graph reads the five embeddings as inputs instead of computing sines.
    code = graphs[0].code
    assert 'conv2d' in code and 'sin' not in code
    assert torch.equal(first, second) and torch.equal(first, reference)
