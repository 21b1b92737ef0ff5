"""Pictures of the package drawn from the package itself.

The class tree is read from the classes (``__subclasses__`` from each root,
``__bases__`` for the edges, ``__mro__`` for the lookup order), and the server
lifecycle from :data:`sockserve.lifecycle.TRANSITIONS`; nothing is typed in,
so the pictures change when the code does.

Plain data first (:func:`class_graph`, :func:`text_tree`, :func:`hook_owners`:
no matplotlib, testable anywhere), then the drawings (:func:`draw_class_tree`,
:func:`draw_lifecycle`), which import matplotlib only when called. Layout is
deterministic: the same package gives the same picture.
"""

from __future__ import annotations

import socketserver
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sockserve

from .lifecycle import TRANSITIONS, ServerState

__all__ = [
    "ClassNode",
    "ClassGraph",
    "class_graph",
    "text_tree",
    "hook_owners",
    "REQUEST_HOOKS",
    "draw_class_tree",
    "draw_lifecycle",
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


def draw_class_tree(
    which: str = "stdlib",
    highlight: type | None = None,
    handlers: bool = False,
    ax: Any = None,
) -> Any:
    """Draw the class tree (boxes, arrows from a subclass to each base).

    With *highlight*, the classes of ``highlight.__mro__`` are outlined and
    numbered in the order Python looks a method up. Returns the Figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    graph = class_graph(which, handlers=handlers)
    width = max((n.x for n in graph.nodes.values()), default=0.0) + 1
    if ax is None:
        with plt.ioff():
            fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * width), 1.0 * graph.depth + 0.8))
    else:
        fig = ax.figure
    order = {}
    if highlight is not None:
        order = {c.__name__: i for i, c in enumerate(highlight.__mro__[:-1], start=1)}
    box_w, box_h, step_y = 0.92, 0.42, 1.0
    for child, base in graph.edges:
        a, b = graph.nodes[child], graph.nodes[base]
        on_path = child in order and base in order
        ax.annotate(
            "",
            xy=(b.x, -b.level * step_y - box_h / 2),
            xytext=(a.x, -a.level * step_y + box_h / 2),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "#cc0000" if on_path else "#666666",
                "lw": 1.6 if on_path else 0.8,
                "shrinkA": 0,
                "shrinkB": 0,
            },
        )
    for node in graph.nodes.values():
        y = -node.level * step_y
        marked = node.name in order
        ax.add_patch(
            FancyBboxPatch(
                (node.x - box_w / 2, y - box_h / 2),
                box_w,
                box_h,
                boxstyle="round,pad=0.02",
                facecolor=_ROLE_COLOURS[node.role],
                edgecolor="#cc0000" if marked else "#444444",
                linewidth=2.0 if marked else 0.8,
            )
        )
        label = node.name if not marked else f"{order[node.name]}. {node.name}"
        size = 7.5 if len(label) < 24 else (6.5 if len(label) < 27 else 5.8)
        ax.text(node.x, y, label, ha="center", va="center", fontsize=size)
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(-(graph.depth - 1) * step_y - 0.5, 0.5)
    ax.set_axis_off()
    title = "request handlers" if handlers else "servers and mixins"
    if highlight is not None:
        title += f": {highlight.__name__}.__mro__ in red (lookup order numbered)"
    ax.set_title(f"sockserve {title}, drawn from the classes", fontsize=10)
    handles = [
        FancyBboxPatch((0, 0), 1, 1, facecolor=colour, edgecolor="#444444", label=role)
        for role, colour in _ROLE_COLOURS.items()
        if any(n.role == role for n in graph.nodes.values())
    ]
    ax.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
    fig.tight_layout()
    return fig


def draw_lifecycle(ax: Any = None) -> Any:
    """Draw the server states and the hooks that move between them
    (from :data:`sockserve.lifecycle.TRANSITIONS`). Returns the Figure."""
    import matplotlib.pyplot as plt

    states = list(ServerState)
    main = [s for s in states if s is not ServerState.CLOSED]
    pos: dict[ServerState, tuple[float, float]] = {s: (i * 1.6, 0.0) for i, s in enumerate(main)}
    pos[ServerState.CLOSED] = ((len(main) - 1) * 0.8, -1.6)
    if ax is None:
        with plt.ioff():
            fig, ax = plt.subplots(figsize=(9.0, 3.4))
    else:
        fig = ax.figure
    for old, moves in TRANSITIONS.items():
        for new, hook in moves.items():
            (x0, y0), (x1, y1) = pos[old], pos[new]
            if new is ServerState.CLOSED:
                ax.annotate("", xy=(x1, y1 + 0.18), xytext=(x0, y0 - 0.18),
                            arrowprops={"arrowstyle": "-|>", "color": "#bbbbbb", "lw": 0.7})
                continue
            rad = -0.35 if x1 > x0 else -0.45
            colour = "#1f4e79" if x1 > x0 else "#7f6000"
            ax.annotate(
                "",
                xy=(x1, y1),
                xytext=(x0, y0),
                arrowprops={
                    "arrowstyle": "-|>",
                    "connectionstyle": f"arc3,rad={rad}",
                    "color": colour,
                    "shrinkA": 16,
                    "shrinkB": 16,
                },
            )
            # the apex of an arc3 curve is rad * length / 2 off the chord
            apex = -rad * (x1 - x0) / 2
            ax.text((x0 + x1) / 2, y0 + apex + (0.07 if apex > 0 else -0.07), hook,
                    ha="center", va="center", fontsize=6.5, color=colour,
                    bbox={"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none"})
    for state, (x, y) in pos.items():
        ax.text(x, y, state.name, ha="center", va="center", fontsize=8.5,
                bbox={"boxstyle": "round", "facecolor": "#fff2cc", "edgecolor": "#444444"})
    ax.text(pos[ServerState.CLOSED][0] + 1.2, -1.6, "server_close() from any state",
            fontsize=7, color="#888888", va="center")
    ax.set_xlim(-0.8, (len(main) - 1) * 1.6 + 0.8)
    ax.set_ylim(-2.0, 1.3)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title("server states (sockserve.lifecycle.TRANSITIONS)", fontsize=10)
    fig.tight_layout()
    return fig
