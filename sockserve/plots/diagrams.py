"""Pictures of the package drawn from the package itself.

The class tree is read from the classes (``__subclasses__`` from each root,
``__bases__`` for the edges, ``__mro__`` for the lookup order), and the server
lifecycle from :data:`sockserve.core.lifecycle.TRANSITIONS`; nothing is typed in,
so the pictures change when the code does.

Plain data first (:func:`class_graph`, :func:`class_grid`, :func:`text_tree`,
:func:`hook_owners`, :func:`lifecycle_chain`: no matplotlib, testable anywhere), then the drawings (:func:`draw_class_tree`,
:func:`draw_lifecycle`), which import matplotlib only when called, and their
text alternatives (:func:`describe_class_tree`, :func:`describe_lifecycle`),
read from the same data. Layout is deterministic: the same package gives
the same picture. A box's role shows by its hatch as well as its colour,
and the MRO path by its numbers as well as its colour.
"""

from __future__ import annotations

import socketserver
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sockserve

from ..core.lifecycle import TRANSITIONS, ServerState
from .style import PALETTE

__all__ = [
    "ClassNode",
    "ClassGraph",
    "class_graph",
    "text_tree",
    "hook_owners",
    "REQUEST_HOOKS",
    "ClassGrid",
    "class_grid",
    "lifecycle_chain",
    "draw_class_tree",
    "draw_lifecycle",
    "describe_class_tree",
    "describe_lifecycle",
]

#: The hooks one request passes through, in the order the server calls them.
REQUEST_HOOKS: tuple[str, ...] = (
    "serve_forever",
    "_handle_request_noblock",
    "get_request",
    "verify_request",
    "process_request",
    "finish_request",
    "shutdown_request",
    "close_request",
)

_ROLE_COLOURS = {
    "server": "#cfe2f3",
    "mixin": "#fce5cd",
    "combined": "#d9ead3",
    "handler": "#eeeeee",
}
#: A role's hatch, so the three kinds of box read apart in grey print too.
_ROLE_HATCHES = {"server": "", "mixin": "////", "combined": "....", "handler": ""}
#: The MRO path: vermillion and numbered (the numbers carry it without colour).
_PATH = PALETTE[5]


@dataclass(frozen=True)
class ClassNode:
    """One class in the picture: where it sits and what it is."""

    name: str
    role: str  # "server" | "mixin" | "combined" | "handler"
    level: int  # 0 for a root; a subclass sits below all of its bases
    x: float
    bases: tuple[str, ...]  # direct bases that are in the picture


@dataclass(frozen=True)
class ClassGraph:
    """Nodes (by name) and edges ``(subclass, base)`` of a class tree."""

    nodes: dict[str, ClassNode]
    edges: tuple[tuple[str, str], ...] = field(default=())

    @property
    def depth(self) -> int:
        return 1 + max((n.level for n in self.nodes.values()), default=-1)

    def level(self, level: int) -> list[ClassNode]:
        """The nodes of one level, left to right."""
        return sorted((n for n in self.nodes.values() if n.level == level), key=lambda n: n.x)


_STDLIB_MIXINS = ("ThreadingMixIn", "ForkingMixIn")


def _public_classes(which: str) -> list[type]:
    """sockserve's public classes; with ``"stdlib"`` only those built from the
    standard library's pieces (no pool mixins)."""
    if which not in ("stdlib", "all"):
        raise ValueError(f"which must be 'stdlib' or 'all', got {which!r}")
    classes = [c for c in (getattr(sockserve, n) for n in sockserve.__all__) if isinstance(c, type)]
    if which == "stdlib":
        classes = [
            c for c in classes
            if all(k.__name__ in _STDLIB_MIXINS for k in c.__mro__ if k.__name__.endswith("MixIn"))
        ]
    return classes


def _walk(root: type, allowed: set[type]) -> list[type]:
    """*root* and its subclasses (via ``__subclasses__``) that are in *allowed*."""
    found: list[type] = []
    stack = [root]
    while stack:
        cls = stack.pop()
        if cls in allowed and cls not in found:
            found.append(cls)
        stack.extend(reversed(cls.__subclasses__()))
    return found


def _role(cls: type) -> str:
    if issubclass(cls, sockserve.BaseRequestHandler):
        return "handler"
    if not issubclass(cls, sockserve.BaseServer):
        return "mixin"
    if any(not issubclass(base, sockserve.BaseServer) for base in cls.__mro__[1:-1]):
        return "combined"
    return "server"


def _main_base(cls: type, chosen: set[type]) -> type | None:
    """The base a class hangs under in the tree: its server (or handler) base."""
    inside = [b for b in cls.__bases__ if b in chosen and _role(b) != "mixin"]
    return inside[-1] if inside else None


def class_graph(which: str = "stdlib", handlers: bool = False) -> ClassGraph:
    """The class tree of sockserve's public classes, laid out in rows.

    *which* is ``"stdlib"`` (the classes the standard library also has) or
    ``"all"`` (adds the pool mixins and their servers). With *handlers*, the
    request handlers are drawn instead of the servers.

    Layout: the plain servers (or handlers) form a tree from the root down,
    by inheritance depth; below it a row of mixins; at the bottom the combined
    classes, each under its server base. A parent sits above the middle of
    its children, and leaves are spaced one unit apart in tree order.
    """
    public = set(_public_classes(which))
    root: type = sockserve.BaseRequestHandler if handlers else sockserve.BaseServer
    classes = _walk(root, public)
    mixins: list[type] = []
    if not handlers:
        for cls in classes:
            for base in cls.__mro__:
                if base in public and _role(base) == "mixin" and base not in mixins:
                    mixins.append(base)
        mixins.sort(key=lambda c: sockserve.__all__.index(c.__name__))
    chosen = set(classes) | set(mixins)
    level: dict[type, int] = {}
    for cls in sorted(classes, key=lambda c: len(c.__mro__)):
        if _role(cls) == "combined":
            continue
        parent = _main_base(cls, chosen)
        level[cls] = 0 if parent is None else level[parent] + 1
    tree_depth = 1 + max(level.values(), default=-1)
    for cls in mixins:
        level[cls] = tree_depth
    for cls in classes:
        if _role(cls) == "combined":
            level[cls] = tree_depth + 1

    def children(cls: type) -> list[type]:
        kids = [c for c in classes if _main_base(c, chosen) is cls]
        mixin_rank = {m: i for i, m in enumerate(mixins)}
        # combined classes first (by mixin), then subclasses
        return sorted(
            kids,
            key=lambda c: (
                _role(c) != "combined",
                min((mixin_rank[b] for b in c.__bases__ if b in mixin_rank), default=0),
                c.__name__,
            ),
        )

    xs: dict[type, float] = {}
    next_leaf = [0.0]

    def place(cls: type) -> float:
        kids = children(cls)
        if not kids:
            xs[cls] = next_leaf[0]
            next_leaf[0] += 1.0
        else:
            spots = [place(k) for k in kids]
            xs[cls] = (min(spots) + max(spots)) / 2
        return xs[cls]

    place(root)
    if mixins:
        span = next_leaf[0] - 1.0
        for i, cls in enumerate(mixins):
            xs[cls] = round(span * (2 * i + 1) / (2 * len(mixins)), 3)
    nodes = {
        cls.__name__: ClassNode(
            name=cls.__name__,
            role=_role(cls),
            level=level[cls],
            x=round(xs[cls], 3),
            bases=tuple(b.__name__ for b in cls.__bases__ if b in chosen),
        )
        for cls in [*classes[:1], *mixins, *classes[1:]]
    }
    edges = tuple((n.name, base) for n in nodes.values() for base in n.bases)
    return ClassGraph(nodes, edges)


def _sort_key(cls: type) -> tuple[bool, str]:
    """Combined classes before plain subclasses, then by name."""
    return _role(cls) != "combined", cls.__name__


def text_tree(root: type = sockserve.BaseServer, which: str = "stdlib") -> str:
    """An indented tree of *root*'s public subclasses (a class with two bases
    in the tree appears under each, marked with the other base)."""
    public = set(_public_classes(which))
    lines: list[str] = []

    def visit(cls: type, depth: int, parent: type | None) -> None:
        others = [b.__name__ for b in cls.__bases__ if b is not parent and b is not object]
        extra = f"   (+ {', '.join(others)})" if others and parent is not None else ""
        lines.append(f"{'    ' * depth}{cls.__name__}{extra}")
        everything: list[type] = type.__subclasses__(cls)
        subs = [k for k in everything if k in public]
        for sub in sorted(subs, key=_sort_key):
            # A combined class is listed under its server base only, once.
            if cls.__name__.endswith("MixIn"):
                continue
            visit(sub, depth + 1, cls)

    visit(root, 0, None)
    return "\n".join(lines)


def hook_owners(cls: type, hooks: Sequence[str] = REQUEST_HOOKS) -> dict[str, str]:
    """For each hook, the class in ``cls.__mro__`` whose definition runs."""
    owners: dict[str, str] = {}
    for hook in hooks:
        for klass in cls.__mro__:
            if hook in vars(klass):
                owners[hook] = klass.__name__
                break
        else:
            owners[hook] = "(missing)"
    return owners


# -- drawings (matplotlib, imported here only) ---------------------------------


@dataclass(frozen=True)
class ClassGrid:
    """The server classes as a table a reader can take in at a glance.

    ``tree``: the plain servers (BaseServer and its subclasses), each placed
    at a column (``x``) and an inheritance depth (``level``); ``columns``: the
    servers that combined classes build on, one column each, left to right;
    ``mixins``: one row each; ``cells``: ``(mixin, server) -> combined class``
    (``class ThreadingTCPServer(ThreadingMixIn, TCPServer)`` sits in row
    ThreadingMixIn, column TCPServer). Read from the classes, like
    :func:`class_graph`.
    """

    tree: dict[str, ClassNode]
    columns: tuple[str, ...]
    mixins: tuple[str, ...]
    cells: dict[tuple[str, str], str]


def class_grid(which: str = "all") -> ClassGrid:
    """The public server classes of sockserve laid out as a :class:`ClassGrid`
    (*which*: ``"all"``, or ``"stdlib"`` for the standard library's pieces)."""
    public = set(_public_classes(which))
    classes = _walk(sockserve.BaseServer, public)
    order = {name: i for i, name in enumerate(sockserve.__all__)}
    plain = [c for c in classes if _role(c) == "server"]
    combined = [c for c in classes if _role(c) == "combined"]
    cells: dict[tuple[str, str], str] = {}
    mixins: list[type] = []
    bases: list[type] = []
    for cls in combined:
        mixin = next(b for b in cls.__bases__ if _role(b) == "mixin")
        server = next(b for b in cls.__bases__ if _role(b) == "server")
        cells[(mixin.__name__, server.__name__)] = cls.__name__
        mixins += [mixin] if mixin not in mixins else []
        bases += [server] if server not in bases else []
    mixins.sort(key=lambda c: order[c.__name__])
    bases.sort(key=lambda c: order[c.__name__])
    column = {cls: float(i) for i, cls in enumerate(bases)}
    level: dict[type, int] = {}
    for cls in sorted(plain, key=lambda c: len(c.__mro__)):
        parent = _main_base(cls, set(plain))
        level[cls] = 0 if parent is None else level[parent] + 1
    tree: dict[str, ClassNode] = {}
    for cls in sorted(plain, key=lambda c: len(c.__mro__)):
        parent = _main_base(cls, set(plain))
        x = column.get(cls, column.get(parent, 0.0) if parent is not None else 0.0)
        if cls not in column and parent is None:
            x = min(column.values(), default=0.0)
        tree[cls.__name__] = ClassNode(cls.__name__, "server", level[cls], x,
                                       tuple(b.__name__ for b in cls.__bases__ if b in level))
    return ClassGrid(tree, tuple(c.__name__ for c in bases), tuple(c.__name__ for c in mixins), cells)


def draw_class_tree(
    which: str = "all",
    highlight: type | None = None,
    ax: Any = None,
) -> Any:
    """Draw the server classes: the plain servers as a tree (arrows from a
    subclass to its base), and below it every combined class in a table,
    in the row of its mixin and the column of its server.

    With *highlight*, ``highlight.__mro__`` is drawn as one red path through
    the classes, numbered in the order Python looks a method up. Returns the
    Figure (made under ``plt.ioff()``: nothing is shown until displayed).
    """
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    grid = class_grid(which)
    step_x, step_y, tree_y, box_w, box_h = 2.45, 1.0, 1.3, 2.2, 0.62
    depth = max((n.level for n in grid.tree.values()), default=0)
    first_row = depth * tree_y / step_y + 1.3

    def place(name: str) -> tuple[float, float]:
        if name in grid.tree:
            node = grid.tree[name]
            return step_x * (node.x + 1), -node.level * tree_y
        if name in grid.mixins:
            return 0.0, -(first_row + grid.mixins.index(name)) * step_y
        mixin, server = next(key for key, value in grid.cells.items() if value == name)
        return step_x * (grid.columns.index(server) + 1), -(first_row + grid.mixins.index(mixin)) * step_y

    names = [*grid.tree, *grid.mixins, *grid.cells.values()]
    spots = {name: place(name) for name in names}
    order: dict[str, int] = {}
    if highlight is not None:
        order = {c.__name__: i for i, c in enumerate(highlight.__mro__[:-1], start=1)
                 if c.__name__ in spots}
    width = step_x * (len(grid.columns) + 0.5) + box_w / 2 + 0.2
    bottom = -(first_row + len(grid.mixins) - 1) * step_y - box_h
    if ax is None:
        with plt.ioff():
            fig, ax = plt.subplots(figsize=(10.0, 0.72 * (1.4 - bottom)))
    else:
        fig = ax.figure
    # The table's guides: a row per mixin, a column per server (behind the boxes).
    right = step_x * len(grid.columns)
    for mixin in grid.mixins:
        _, y = spots[mixin]
        ax.plot([0.0, right], [y, y], color="#dddddd", lw=6, zorder=0, solid_capstyle="round")
    for server in grid.columns:
        x, top = spots[server]
        ax.plot([x, x], [top, bottom + box_h / 2], color="#e8e8e8", lw=6, zorder=0, solid_capstyle="round")
    # Inheritance among the plain servers: from the top of a subclass to the
    # bottom of its base, on the side facing the subclass (steep, uncrossed).
    for node in grid.tree.values():
        for base in node.bases:
            (x0, y0), (x1, y1) = spots[node.name], spots[base]
            toward = max(-box_w / 2 + 0.25, min(box_w / 2 - 0.25, x0 - x1))
            ax.annotate("", xy=(x1 + toward, y1 - box_h / 2), xytext=(x0, y0 + box_h / 2), zorder=1,
                        arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1.2,
                                    "shrinkA": 0, "shrinkB": 0, "mutation_scale": 14})

    def border(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        """Where the segment from box centre *a* towards *b* leaves the box."""
        dx, dy = b[0] - a[0], b[1] - a[1]
        t = min((box_w / 2 + 0.05) / abs(dx) if dx else 1.0, (box_h / 2 + 0.05) / abs(dy) if dy else 1.0)
        return a[0] + t * dx, a[1] + t * dy

    # The MRO: one path from box edge to box edge, in lookup order.
    path = sorted(order, key=order.__getitem__)
    for a, b in zip(path, path[1:]):
        start, end = border(spots[a], spots[b]), border(spots[b], spots[a])
        ax.annotate("", xy=end, xytext=start, zorder=3,
                    arrowprops={"arrowstyle": "-|>", "color": _PATH, "lw": 2.2,
                                "shrinkA": 0, "shrinkB": 0, "mutation_scale": 18})
    for name, (x, y) in spots.items():
        role = "mixin" if name in grid.mixins else ("server" if name in grid.tree else "combined")
        marked = name in order
        ax.add_patch(FancyBboxPatch((x - box_w / 2, y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.02", zorder=2,
                                    facecolor=_ROLE_COLOURS[role], hatch=_ROLE_HATCHES[role],
                                    edgecolor=_PATH if marked else "#444444",
                                    linewidth=2.2 if marked else 0.8))
        label = name
        if role == "combined":
            server = next(s for (m, s), v in grid.cells.items() if v == name)
            label = f"{name[:-len(server)]}\n{server}" if name.endswith(server) else name
        if marked:
            label = f"{order[name]}. {label}"
        ax.text(x, y, label, ha="center", va="center", fontsize=10, zorder=4, linespacing=1.1,
                fontweight="bold" if marked else "normal",
                bbox={"boxstyle": "round,pad=0.1", "facecolor": _ROLE_COLOURS[role], "edgecolor": "none"})
    ax.set_xlim(-box_w / 2 - 0.2, width)
    ax.set_ylim(bottom - 0.2, box_h / 2 + 0.5)
    ax.set_axis_off()
    title = "sockserve's servers: the class tree, and each combined class = its row's mixin + its column's server"
    if highlight is not None:
        title += f"\nnumbered path: {highlight.__name__}.__mro__, the order Python looks a method up"
    ax.set_title(title, fontsize=11)
    handles = [FancyBboxPatch((0, 0), 1, 1, facecolor=_ROLE_COLOURS[role], hatch=_ROLE_HATCHES[role],
                              edgecolor="#444444", label=role)
               for role in ("server", "mixin", "combined")]
    ax.legend(handles=handles, loc="upper left", fontsize=10, frameon=False)
    fig.tight_layout()
    return fig


def lifecycle_chain() -> tuple[list[tuple[ServerState, str, ServerState]], tuple[ServerState, str, ServerState]]:
    """The usual life of a server, read from :data:`TRANSITIONS`: the chain of
    states in their order with the hook between each two (``CREATED
    --server_bind--> BOUND --> ...``), and the step back that lets
    ``serve_forever`` run again (STOPPING --> LISTENING). CLOSED, reachable
    from every state by ``server_close``, is left to the caller."""
    main: list[ServerState] = [s for s in ServerState if s is not ServerState.CLOSED]
    chain: list[tuple[ServerState, str, ServerState]] = [
        (a, TRANSITIONS[a][b], b) for a, b in zip(main, main[1:])
    ]
    last = main[-1]
    back_to = next(s for s in main if s in TRANSITIONS[last] and s is not last)
    back: tuple[ServerState, str, ServerState] = (last, TRANSITIONS[last][back_to], back_to)
    return chain, back


def draw_lifecycle(ax: Any = None) -> Any:
    """Draw the usual life of a server as one chain of states, the hook that
    moves it along each arrow (from :func:`lifecycle_chain`, read from
    :data:`sockserve.core.lifecycle.TRANSITIONS`), the way back that lets
    ``serve_forever`` run again, and CLOSED, which ``server_close()`` reaches
    from every state. Returns the Figure."""
    # matplotlib is optional: imported when drawing
    import matplotlib.pyplot as plt

    chain, (back_from, back_hook, back_to) = lifecycle_chain()
    states = [chain[0][0], *(b for _, _, b in chain)]
    step = 2.3
    pos = {state: (i * step, 0.0) for i, state in enumerate(states)}
    closed = (pos[states[-1]][0] + step, 0.0)
    if ax is None:
        with plt.ioff():
            fig, ax = plt.subplots(figsize=(10.0, 2.6))
    else:
        fig = ax.figure
    arrow = {"arrowstyle": "-|>", "color": "#1f4e79", "lw": 1.4, "shrinkA": 34, "shrinkB": 34}
    for old, hook, new in chain:
        (x0, y0), (x1, y1) = pos[old], pos[new]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), arrowprops=arrow)
        ax.text((x0 + x1) / 2, 0.32, hook + "()", ha="center", va="bottom", fontsize=10, color="#1f4e79")
    (x0, _), (x1, _) = pos[back_from], pos[back_to]
    ax.annotate("", xy=(x1 + 0.2, -0.28), xytext=(x0 - 0.2, -0.28),
                arrowprops={**arrow, "color": "#7f6000", "shrinkA": 0, "shrinkB": 0,
                            "connectionstyle": "arc3,rad=-0.3"})
    ax.text((x0 + x1) / 2, -0.98, f"{back_hook} (it may run again)", ha="center", va="top",
            fontsize=10, color="#7f6000")
    for state, (x, y) in pos.items():
        ax.text(x, y, state.name, ha="center", va="center", fontsize=10.5,
                bbox={"boxstyle": "round,pad=0.4", "facecolor": "#fff2cc", "edgecolor": "#444444"})
    ax.text(closed[0], 0.0, ServerState.CLOSED.name, ha="center", va="center", fontsize=10.5,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "#eeeeee", "edgecolor": "#444444"})
    ax.text(closed[0], -0.45, "server_close()\nfrom any state", ha="center", va="top", fontsize=9.5,
            color="#555555")
    ax.set_xlim(-1.0, closed[0] + 1.0)
    ax.set_ylim(-1.6, 0.9)
    ax.set_axis_off()
    ax.set_title("a server's states, from sockserve.core.lifecycle.TRANSITIONS", fontsize=11)
    fig.tight_layout()
    return fig


def describe_class_tree(which: str = "all", highlight: type | None = None) -> str:
    """:func:`draw_class_tree` in one sentence, read from the same classes:
    the plain servers and their bases, how many combined classes the mixins
    make with which servers, and *highlight*'s lookup order."""
    grid = class_grid(which)
    bases = ", ".join(f"{n.name} ({n.bases[0]})" if n.bases else n.name for n in grid.tree.values())
    text = (f"Class tree: the plain servers {bases} (each with its base in brackets); "
            f"{len(grid.cells)} combined classes, each a mixin ({', '.join(grid.mixins)}) plus a server "
            f"({', '.join(grid.columns)})")
    if highlight is not None:
        path = " -> ".join(c.__name__ for c in highlight.__mro__[:-1])
        text += f"; {highlight.__name__}.__mro__: {path}"
    return text + "."


def describe_lifecycle() -> str:
    """:func:`draw_lifecycle` in one sentence, read from
    :data:`sockserve.core.lifecycle.TRANSITIONS`."""
    chain, (back_from, back_hook, back_to) = lifecycle_chain()
    steps = chain[0][0].name + "".join(f" --{hook}()--> {new.name}" for _old, hook, new in chain)
    return (f"Server lifecycle: {steps}; from {back_from.name} back to {back_to.name} when {back_hook} "
            f"(it may run again); server_close() leads to {ServerState.CLOSED.name} from any state.")
