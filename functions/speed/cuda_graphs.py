"""Replay a module's calls as CUDA graphs, one graph per input signature, with no compiler.

An eager SDXL UNet on an H100 is bound by the CPU issuing its kernels: 68-91 ms per call at
512x512 against 13.8 ms when the same kernels are replayed from a CUDA graph
(measured 2026-11-22). A graph records the kernels of one call once and replays them with
one launch; capturing costs about as much as three eager calls, and no compiler is involved, so a
new process pays nothing like torch.compile's minutes.

A graph replays the exact kernels on fixed memory, so `GraphedCall`:
- keys graphs by signature: the argument tree, each tensor's shape, dtype and device, every
  non-tensor argument's value, and the autograd mode; inputs are copied into the graph's own
  buffers, and outputs are cloned out of them, so callers never share memory with a graph;
- captures a signature on its second call (the first runs eagerly, so a new process's first
  request costs no capture), and only calls whose tensors are all on one CUDA device with
  autograd off; any other call, and any signature whose capture fails (an operation that
  waits on the CPU), runs eagerly, so the worst case is the eager speed;
- checks each new graph once: its replay must match the eager output of the same inputs as
  closely as two eager runs match each other (or within fp16 rounding), else the signature
  runs eagerly;
- keeps at most `max_graphs` signatures (least recently used dropped), all in one memory pool:
  calls are serialised and every output is cloned as soon as its graph has replayed, so one
  graph's intermediates may reuse another's memory (as vLLM's graphs of several batch sizes
  do), and the pool holds about one call's activations, not one per shape;
- drops every graph when the module's weights are moved or cast (`.to()`, `.half()`...), since a
  graph reads the old weight memory. Anything else that replaces weight tensors or changes the
  module's structure (loading a LoRA, fusing projections) must call `drop_graphs` first.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils import _pytree as pytree

logger = logging.getLogger(__name__)

WARMUP_CALLS = 2  # lazy cuBLAS/cuDNN set-up happens here, outside the capture
_GRAPHED = "_fast_path_graphed_calls"
_ON_MOVE = "_fast_path_on_move"
# A callable whose signatures keep changing (a float argument that differs on every call) would
# capture on every call, three eager calls' cost each: past this many captures, stay eager.
CAPTURES_PER_GRAPH_SLOT = 4
SIGNATURES_REMEMBERED = 64  # signatures whose eager calls are counted before capture
# Largest difference from eager accepted in a new graph, relative to the output's magnitude.
GRAPH_TOLERANCE = 1e-3


def describe_call(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Hashable, list[Any], set[torch.device]] | None:
    """(key, leaves, devices) of a call, or None when it cannot be graphed: a tensor that needs
    a gradient, or an argument that is not hashable (non-tensor values are baked into a graph).

    Calls with equal keys can share a graph: same argument tree, tensor shapes, dtypes and
    devices, same other values, same autograd mode.
    """
    leaves, spec = pytree.tree_flatten((args, kwargs))
    described: list[Hashable] = []
    devices: set[torch.device] = set()
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor):
            if leaf.requires_grad:
                return None
            devices.add(leaf.device)
            described.append(("tensor", tuple(leaf.shape), leaf.dtype, leaf.device))
        else:
            try:
                hash(leaf)
            except TypeError:
                return None
            described.append(("value", type(leaf), leaf))
    modes = (torch.is_grad_enabled(), torch.is_inference_mode_enabled())
    return (spec, tuple(described), modes), leaves, devices


def signature(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Hashable, list[Any]] | None:
    """(key, leaves) of a call that can be graphed now: its tensors all on one CUDA device."""
    described = describe_call(args, kwargs)
    if described is None:
        return None
    key, leaves, devices = described
    if len(devices) != 1 or next(iter(devices)).type != "cuda":
        return None
    return key, leaves


@dataclass
class _Graph:
    graph: Any  # torch.cuda.CUDAGraph
    inputs: list[torch.Tensor | None]  # a static buffer for each tensor leaf, None elsewhere
    outputs: Any  # the static output tree


@dataclass
class GraphStats:
    captured: int = 0
    replayed: int = 0
    eager: int = 0
    refused: set[Hashable] = field(default_factory=set)
    invalidated: int = 0


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [leaf for leaf in pytree.tree_leaves(tree) if isinstance(leaf, torch.Tensor)]


def _largest_difference(first: Any, second: Any) -> float:
    differences = [
        (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
        for a, b in zip(_tensors(first), _tensors(second), strict=True)
    ]
    return max(differences, default=0.0)


def _largest_magnitude(tree: Any) -> float:
    return max((t.float().abs().max().item() for t in _tensors(tree) if t.numel()), default=0.0)


class GraphedCall:
    """A callable that replays `function` from CUDA graphs where it can (see the module doc)."""

    def __init__(
        self,
        function: Callable[..., Any],
        name: str,
        max_graphs: int = 4,
        eager_calls_first: int = 1,
    ) -> None:
        if max_graphs < 1 or eager_calls_first < 0:
            raise ValueError(
                f"need max_graphs >= 1 and eager_calls_first >= 0, got "
                f"{max_graphs} and {eager_calls_first}"
            )
        self.function = function
        self.name = name
        self.max_graphs = max_graphs
        # A signature is captured on its next call after this many eager ones: a process's
        # first request then costs what stock's does (no capture in the cold start), and a
        # shape seen once only is never captured at all.
        self.eager_calls_first = eager_calls_first
        self._calls_seen: OrderedDict[Hashable, int] = OrderedDict()
        self.stats = GraphStats()
        self._graphs: OrderedDict[Hashable, _Graph] = OrderedDict()
        self._pool: Any = None  # the graphs' shared memory pool, made at the first capture
        self._lock = threading.Lock()
        self.disabled = False

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        described = signature(args, kwargs)
        if described is None:
            self.stats.eager += 1
            return self.function(*args, **kwargs)
        key, leaves = described
        with self._lock:
            if self.disabled or key in self.stats.refused:
                self.stats.eager += 1
                return self.function(*args, **kwargs)
            entry = self._graphs.get(key)
            if entry is None:
                seen = self._calls_seen.pop(key, 0)
                if seen < self.eager_calls_first:
                    self._calls_seen[key] = seen + 1
                    while len(self._calls_seen) > SIGNATURES_REMEMBERED:
                        self._calls_seen.popitem(last=False)
                    self.stats.eager += 1
                    return self.function(*args, **kwargs)
                return self._capture(key, leaves, args, kwargs)
            self._graphs.move_to_end(key)
            for buffer, leaf in zip(entry.inputs, leaves, strict=True):
                if buffer is not None:
                    buffer.copy_(leaf)
            entry.graph.replay()
            self.stats.replayed += 1
            return pytree.tree_map_only(torch.Tensor, torch.clone, entry.outputs)

    def drop(self) -> None:
        """Free every graph (they are captured again on their next call)."""
        with self._lock:
            self._graphs.clear()
            self._pool = None
            self.stats.invalidated += 1

    def _record(self, call: Callable[[], Any]) -> tuple[Any, Any, list[Any]]:
        """(graph, its static outputs after one replay, eager outputs) of `call`."""
        # 1. Eager calls on a side stream, as torch's documentation asks before capture.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            eager = [
                pytree.tree_map_only(torch.Tensor, torch.clone, call()) for _ in range(WARMUP_CALLS)
            ]
        torch.cuda.current_stream().wait_stream(side)
        # 2. Capture; "thread_local" leaves other threads' CUDA work (other models) alone.
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            outputs = call()
        graph.replay()
        return graph, outputs, eager

    def _capture(self, key: Hashable, leaves: list[Any], args: Any, kwargs: Any) -> Any:
        spec = pytree.tree_flatten((args, kwargs))[1]
        inputs = [leaf.clone() if isinstance(leaf, torch.Tensor) else None for leaf in leaves]
        static_leaves = [
            buf if buf is not None else leaf for buf, leaf in zip(inputs, leaves, strict=True)
        ]
        static_args, static_kwargs = pytree.tree_unflatten(static_leaves, spec)

        def call() -> Any:
            return self.function(*static_args, **static_kwargs)

        try:
            graph, outputs, eager = self._record(call)
        except Exception as exc:  # any failure means: this signature stays eager
            logger.warning(
                "%s: cannot capture a CUDA graph (%s); running it eagerly", self.name, exc
            )
            self.stats.refused.add(key)
            return self.function(*args, **kwargs)

        # 3. The graph must reproduce eager results: as closely as eager reproduces itself, or
        # within half-precision rounding (a library may pick another algorithm under capture).
        # A graph reading stale memory misses by far more.
        noise = max(
            _largest_difference(eager[0], eager[-1]),
            GRAPH_TOLERANCE * _largest_magnitude(eager[-1]),
        )
        error = _largest_difference(outputs, eager[-1])
        if error > noise:
            logger.warning(
                "%s: a CUDA graph differs from eager by %g (eager noise %g); running it eagerly",
                self.name,
                error,
                noise,
            )
            self.stats.refused.add(key)
            return eager[-1]
        self._graphs[key] = _Graph(graph, inputs, outputs)
        self.stats.captured += 1
        if self.stats.captured >= CAPTURES_PER_GRAPH_SLOT * self.max_graphs:
            logger.warning(
                "%s: %d different call signatures captured; running eagerly from now",
                self.name,
                self.stats.captured,
            )
            self.disabled = True
            self._graphs.clear()
            self._pool = None
        if len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        return pytree.tree_map_only(torch.Tensor, torch.clone, outputs)


def graph_method(
    module: torch.nn.Module,
    method: str = "forward",
    max_graphs: int = 4,
    eager_calls_first: int = 1,
) -> GraphedCall:
    """Replace `module.<method>` (on this instance only) by a GraphedCall of it.

    The module keeps its class, attributes and config, so pipelines use it unchanged.
    """
    calls: dict[str, GraphedCall] = module.__dict__.setdefault(_GRAPHED, {})
    if method in calls:
        return calls[method]
    graphed = GraphedCall(
        getattr(module, method), f"{type(module).__name__}.{method}", max_graphs, eager_calls_first
    )
    # An instance attribute shadows the class's method; nn.Module.__call__ finds it too.
    object.__setattr__(module, method, graphed)
    calls[method] = graphed
    when_moved(module, lambda: drop_graphs(module))
    return graphed


def graphed_calls(module: torch.nn.Module) -> dict[str, GraphedCall]:
    return dict(module.__dict__.get(_GRAPHED, {}))


def drop_graphs(module: torch.nn.Module) -> None:
    """Free the module's graphs; call before replacing or restructuring its weights."""
    for graphed in graphed_calls(module).values():
        graphed.drop()


def when_moved(module: torch.nn.Module, callback: Callable[[], object]) -> None:
    """Call `callback` after the module's weights get new memory: `.to()`, `.half()`,
    `.cuda()`... all go through `Module._apply`."""
    callbacks: list[Callable[[], object]] | None = module.__dict__.get(_ON_MOVE)
    if callbacks is not None:
        callbacks.append(callback)
        return
    callbacks = [callback]
    module.__dict__[_ON_MOVE] = callbacks
    original_apply = module._apply

    def apply_then_notify(*args: Any, **kwargs: Any) -> Any:
        result = original_apply(*args, **kwargs)
        for notify in callbacks:
            notify()
        return result

    object.__setattr__(module, "_apply", apply_then_notify)
