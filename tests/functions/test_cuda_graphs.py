"""GraphedCall's bookkeeping, on the CPU: which calls run eagerly, are captured or replayed,
how inputs reach a graph and outputs leave it, and when a graph is refused or dropped.

A CUDA graph cannot be captured without a GPU, so `_record` (the only CUDA-specific step) is
replaced by a recording that replays by calling the function again on the graph's own input
buffers and writing into its own output buffers, which is what a CUDA graph's replay does.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils import _pytree as pytree

from functions.speed import cuda_graphs
from functions.speed.cuda_graphs import CAPTURES_PER_GRAPH_SLOT, GraphedCall, describe_call


class Replay:
    def __init__(self, call, outputs, corrupt: float) -> None:
        self.call, self.outputs, self.corrupt = call, outputs, corrupt

    def replay(self) -> None:
        fresh = self.call()
        for static, new in zip(
            pytree.tree_leaves(self.outputs), pytree.tree_leaves(fresh), strict=True
        ):
            static.copy_(new + self.corrupt)


class CpuGraphedCall(GraphedCall):
    corrupt = 0.0
    fail = False

    def _record(self, call):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing")
        eager = [pytree.tree_map_only(torch.Tensor, torch.clone, call()) for _ in range(2)]
        outputs = pytree.tree_map_only(torch.Tensor, torch.clone, call())
        graph = Replay(call, outputs, self.corrupt)
        graph.replay()
        return graph, outputs, eager


@pytest.fixture(autouse=True)
def cpu_calls_can_be_graphed(monkeypatch):
    def signature(args, kwargs):
        described = describe_call(args, kwargs)
        return None if described is None else described[:2]

    monkeypatch.setattr(cuda_graphs, "signature", signature)


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(4, 3)


def test_second_call_captures_and_later_calls_replay_with_their_own_inputs(linear):
    graphed = CpuGraphedCall(linear, "linear")
    inputs = [torch.randn(2, 4) for _ in range(4)]
    outputs = [graphed(x) for x in inputs]
    assert (graphed.stats.eager, graphed.stats.captured, graphed.stats.replayed) == (1, 1, 2)
    for x, y in zip(inputs, outputs, strict=True):
        torch.testing.assert_close(y, linear(x), rtol=0, atol=0)
    # What a caller gets is its own: changing it leaves the next replay alone.
    outputs[-1].fill_(1e6)
    torch.testing.assert_close(graphed(inputs[0]), linear(inputs[0]), rtol=0, atol=0)


def test_keyword_trees_and_values_reach_the_graph():
    def combine(x, *, extra, scale):
        return {"sum": x + extra["y"] * scale, "x": x}

    graphed = CpuGraphedCall(combine, "combine")
    for value in range(4):
        x, y = torch.full((3,), float(value)), torch.arange(3.0)
        result = graphed(x, extra={"y": y}, scale=2)
        torch.testing.assert_close(result["sum"], x + 2 * y)
        torch.testing.assert_close(result["x"], x)
    assert graphed.stats.captured == 1
    graphed(torch.zeros(3), extra={"y": torch.ones(3)}, scale=3)  # another value: another key
    graphed(torch.zeros(3), extra={"y": torch.ones(3)}, scale=3)
    assert graphed.stats.captured == 2


def test_least_recently_used_shape_is_dropped(linear):
    graphed = CpuGraphedCall(linear, "linear", max_graphs=2, eager_calls_first=0)
    for rows in (1, 2, 3):  # the third capture drops the graph of 1 row
        graphed(torch.randn(rows, 4))
    assert graphed.stats.captured == 3
    graphed(torch.randn(3, 4))
    assert graphed.stats.replayed == 1
    graphed(torch.randn(1, 4))  # captured again
    assert graphed.stats.captured == 4


def test_failed_capture_leaves_that_shape_eager(linear):
    graphed = CpuGraphedCall(linear, "linear", eager_calls_first=0)
    graphed.fail = True
    x = torch.randn(2, 4)
    for _ in range(3):
        torch.testing.assert_close(graphed(x), linear(x), rtol=0, atol=0)
    assert graphed.stats.captured == 0 and len(graphed.stats.refused) == 1
    graphed.fail = False
    graphed(torch.randn(5, 4))  # another shape is still captured
    assert graphed.stats.captured == 1


def test_graph_that_differs_from_eager_is_refused(linear):
    graphed = CpuGraphedCall(linear, "linear", eager_calls_first=0)
    graphed.corrupt = 0.5
    x = torch.randn(2, 4)
    torch.testing.assert_close(graphed(x), linear(x), rtol=0, atol=0)  # the eager result
    assert graphed.stats.refused and graphed.stats.captured == 0
    graphed(x)
    assert graphed.stats.replayed == 0 and graphed.stats.eager == 1


def test_rounding_sized_differences_are_accepted(linear):
    graphed = CpuGraphedCall(linear, "linear", eager_calls_first=0)
    graphed.corrupt = 1e-6  # far under fp16 rounding of outputs near 1
    graphed(torch.randn(2, 4))
    assert graphed.stats.captured == 1 and not graphed.stats.refused


def test_endless_new_signatures_switch_graphs_off(linear):
    graphed = CpuGraphedCall(linear, "linear", max_graphs=1, eager_calls_first=0)
    for rows in range(1, CAPTURES_PER_GRAPH_SLOT + 3):
        x = torch.randn(rows, 4)
        torch.testing.assert_close(graphed(x), linear(x), rtol=0, atol=0)
    assert graphed.disabled
    assert graphed.stats.captured == CAPTURES_PER_GRAPH_SLOT


def test_drop_frees_graphs_and_they_come_back(linear):
    graphed = CpuGraphedCall(linear, "linear", eager_calls_first=0)
    x = torch.randn(2, 4)
    graphed(x)
    graphed.drop()
    assert graphed.stats.invalidated == 1
    graphed(x)
    assert graphed.stats.captured == 2
