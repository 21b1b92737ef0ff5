"""The pictures are drawn from the classes: the graph follows __bases__,
every public class appears once, the layout is deterministic, and importing
sockserve (or sockserve.plots.diagrams) does not import matplotlib."""

from __future__ import annotations

import gc
import socketserver
import subprocess
import sys

import pytest

import sockserve
from sockserve.plots.style import PALETTE
from sockserve.plots import diagrams
from sockserve.core.lifecycle import TRANSITIONS


def test_graph_edges_are_the_direct_bases_and_every_stdlib_class_is_there() -> None:
    graph = diagrams.class_graph("stdlib")
    stdlib_servers = {
        name for name in socketserver.__all__
        if name.endswith(("Server", "MixIn")) and hasattr(sockserve, name)
    }
    assert stdlib_servers <= set(graph.nodes)
    for name, node in graph.nodes.items():
        cls = getattr(sockserve, name)
        assert set(node.bases) == {b.__name__ for b in cls.__bases__ if b.__name__ in graph.nodes}
    assert ("ThreadingTCPServer", "ThreadingMixIn") in graph.edges
    assert ("ThreadingTCPServer", "TCPServer") in graph.edges
    assert "ThreadPoolMixIn" not in graph.nodes  # not a stdlib piece
    assert "ThreadPoolMixIn" in diagrams.class_graph("all").nodes


def test_a_subclass_sits_below_its_bases_and_boxes_do_not_overlap() -> None:
    for which in ("stdlib", "all"):
        graph = diagrams.class_graph(which)
        for child, base in graph.edges:
            assert graph.nodes[child].level > graph.nodes[base].level, (child, base)
        for level in range(graph.depth):
            xs = [n.x for n in graph.level(level)]
            assert all(b - a >= 1.0 - 1e-9 for a, b in zip(xs, xs[1:])), (level, xs)
        roles = {n.name: n.role for n in graph.nodes.values()}
        assert roles["BaseServer"] == "server" and roles["ForkingMixIn"] == "mixin"
        assert roles["ForkingUDPServer"] == "combined"


def test_layout_is_deterministic_and_ignores_classes_defined_elsewhere() -> None:
    before = diagrams.class_graph()

    class MyServer(sockserve.ThreadingTCPServer):  # a learner's subclass in the kernel
        pass

    assert diagrams.class_graph() == before
    assert "MyServer" not in diagrams.text_tree()


def test_text_tree_and_hook_owners_read_the_classes() -> None:
    text = diagrams.text_tree(sockserve.BaseServer)
    assert text.splitlines()[0] == "BaseServer"
    assert "        ThreadingTCPServer   (+ ThreadingMixIn)" in text.splitlines()
    handlers = diagrams.text_tree(sockserve.BaseRequestHandler).splitlines()
    assert handlers == ["BaseRequestHandler", "    DatagramRequestHandler", "    StreamRequestHandler"]
    owners = diagrams.hook_owners(sockserve.ThreadingUDPServer)
    assert owners["process_request"] == "ThreadingMixIn"
    assert owners["get_request"] == "UDPServer"
    defining = next(k for k in sockserve.ThreadingUDPServer.__mro__ if "finish_request" in vars(k))
    assert owners["finish_request"] == defining.__name__
    assert diagrams.hook_owners(sockserve.BaseServer, ["no_such_hook"]) == {"no_such_hook": "(missing)"}


def test_the_grid_puts_every_server_class_in_one_place_read_from_its_bases() -> None:
    grid = diagrams.class_grid("all")
    servers = {name for name in sockserve.__all__
               if isinstance(getattr(sockserve, name), type)
               and issubclass(getattr(sockserve, name), sockserve.BaseServer)}
    placed = [*grid.tree, *grid.cells.values()]
    assert sorted(placed) == sorted(servers)  # each once, pools and prefork included
    assert {"ThreadPoolTCPServer", "PreForkUnixStreamServer"} <= set(placed)
    for (mixin, server), name in grid.cells.items():
        assert {b.__name__ for b in getattr(sockserve, name).__bases__} == {mixin, server}
        assert mixin in grid.mixins and server in grid.columns
    for name, node in grid.tree.items():
        for base in node.bases:
            assert grid.tree[base].level < node.level
    assert grid.cells[("ThreadingMixIn", "TCPServer")] == "ThreadingTCPServer"
    assert diagrams.class_grid("stdlib").mixins == ("ThreadingMixIn", "ForkingMixIn")


def test_the_lifecycle_chain_is_read_from_the_transitions() -> None:
    chain, back = diagrams.lifecycle_chain()
    assert [a.name for a, _, _ in chain] == ["CREATED", "BOUND", "LISTENING", "SERVING"]
    for old, hook, new in [*chain, back]:
        assert TRANSITIONS[old][new] == hook
    assert (back[0].name, back[2].name) == ("STOPPING", "LISTENING")


def _close(fig: object) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)  # type: ignore[arg-type]
    # matplotlib keeps the font files it rendered with open in a cache;
    # forget them so the suite's descriptor check sees what we opened.
    from matplotlib import font_manager

    font_manager._get_font.cache_clear()
    gc.collect()


def test_drawings_have_one_readable_box_per_class_and_one_label_per_step() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")

    fig = diagrams.draw_class_tree(highlight=sockserve.ThreadingTCPServer)
    try:
        ax = fig.axes[0]
        texts = [t for t in ax.texts if t.get_text()]
        grid = diagrams.class_grid()
        assert len(texts) == len(grid.tree) + len(grid.mixins) + len(grid.cells)
        assert min(t.get_fontsize() for t in texts) >= 10
        labels = [t.get_text() for t in texts]
        assert "1. Threading\nTCPServer" in labels and "2. ThreadingMixIn" in labels
        assert "3. TCPServer" in labels and "4. BaseServer" in labels
        assert "ThreadPool\nUnixDatagramServer" in labels and "PreFork\nTCPServer" in labels
        path = [a for a in ax.texts if getattr(a, "arrow_patch", None) is not None
                and a.arrow_patch.get_edgecolor()[:3] == matplotlib.colors.to_rgb(PALETTE[5])]  # vermillion
        assert len(path) == 3  # one path: 1 -> 2 -> 3 -> 4
        # Roles read apart without colour: each kind of box has its own hatch.
        hatches = {p.get_hatch() or "" for p in ax.patches}
        assert len(hatches) == 3
    finally:
        _close(fig)
    fig = diagrams.draw_lifecycle()
    try:
        texts = [t.get_text() for t in fig.axes[0].texts]
        chain, back = diagrams.lifecycle_chain()
        for _, hook, _ in chain:
            assert texts.count(f"{hook}()") == 1, hook
        assert sum(back[1] in t for t in texts) == 1
        assert texts.count("CLOSED") == 1
    finally:
        _close(fig)


def test_the_text_alternatives_are_read_from_the_classes_and_the_transitions() -> None:
    tree = diagrams.describe_class_tree(highlight=sockserve.ThreadingTCPServer)
    grid = diagrams.class_grid()
    assert f"{len(grid.cells)} combined classes" in tree
    assert "ThreadingTCPServer -> ThreadingMixIn -> TCPServer -> BaseServer" in tree
    life = diagrams.describe_lifecycle()
    chain, back = diagrams.lifecycle_chain()
    for old, hook, new in chain:
        assert f"{old.name} --{hook}()--> {new.name}" in life
    assert back[1] in life and "CLOSED" in life


def test_importing_sockserve_and_diagrams_does_not_import_matplotlib() -> None:
    code = "import sys, sockserve, sockserve.plots.diagrams, sockserve.exercises, sockserve.workbook; " \
           "print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
