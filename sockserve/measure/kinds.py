"""Server kinds: short names for the server classes, and a factory.

A *kind* names one server class by what it does: its concurrency and its
transport. ``"threading"`` is ``ThreadingTCPServer``, ``"forking-udp"`` is
``ForkingUDPServer``, ``"plain-unix"`` is ``UnixStreamServer``. Every server
class exported by :mod:`sockserve` is also reachable under its own class name
(``"ThreadingTCPServer"``). The table is built from ``sockserve.__all__``, so
a server class added there (with a concurrency mixin listed in
:data:`CONCURRENCY_MIXINS`) gets a kind without any edit here.

Short names follow one pattern, ``<concurrency><suffix>``:

============  ========  ======================================
transport     suffix    example
============  ========  ======================================
tcp           (none)    ``plain``, ``threading``, ``forking``
udp           -udp      ``threading-udp``
unix          -unix     ``forking-unix``
unix-dgram    -unix-dgram  ``plain-unix-dgram``
============  ========  ======================================

Callers use: :func:`resolve_kind` (name -> :class:`KindInfo`),
:func:`make_server` (a bound server, not yet serving), :func:`kind_names`
(the short names, for menus), :func:`concurrency_bound` (how many requests
a kind serves at once by design) and :data:`KINDS` (name or alias -> class).
Kinds that are not a plain class (an asyncio server) are added with
:func:`register_kind` and a ``factory``.
"""

from __future__ import annotations

import inspect
import ipaddress
import os
import shutil
import socket
import tempfile
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import sockserve

from ..core.servers import TCPServer
from .workloads import Workload, get_workload

__all__ = [
    "KindInfo",
    "KINDS",
    "CONCURRENCY_MIXINS",
    "TRANSPORTS",
    "CONCURRENCIES",
    "resolve_kind",
    "kind_names",
    "register_kind",
    "make_server",
    "concurrency_bound",
    "is_loopback",
]

TRANSPORTS: tuple[str, ...] = ("tcp", "udp", "unix", "unix-dgram")
CONCURRENCIES: tuple[str, ...] = (
    "plain",
    "threading",
    "forking",
    "threadpool",
    "prefork",
    "asyncio",
)

#: Mixin class name -> concurrency it gives. The first mixin found in a
#: server class's MRO decides; a class with none of them is "plain".
CONCURRENCY_MIXINS: dict[str, str] = {
    "ThreadingMixIn": "threading",
    "ForkingMixIn": "forking",
    "ThreadPoolMixIn": "threadpool",
    "PreForkMixIn": "prefork",
}

_SUFFIX = {"tcp": "", "udp": "-udp", "unix": "-unix", "unix-dgram": "-unix-dgram"}

_DESCRIBE_CONCURRENCY = {
    "plain": "one request at a time, in the serving thread",
    "threading": "a new thread per request",
    "forking": "a new child process per request",
    "threadpool": "a fixed pool of worker threads",
    "prefork": "a fixed pool of pre-forked worker processes",
    "asyncio": "one event loop, coroutines per connection",
}
_DESCRIBE_TRANSPORT = {
    "tcp": "TCP",
    "udp": "UDP",
    "unix": "Unix stream socket",
    "unix-dgram": "Unix datagram socket",
}


@dataclass(frozen=True)
class KindInfo:
    """What one kind of server is.

    ``server_class`` is None for kinds built by a ``factory`` instead (the
    factory takes ``(address, handler_class)`` and returns a bound server).
    """

    name: str
    server_class: type | None
    transport: str
    concurrency: str
    description: str
    factory: Callable[[Any, type], Any] | None = None

    @property
    def is_unix(self) -> bool:
        """True for Unix-socket kinds (the address is a filesystem path)."""
        return self.transport in ("unix", "unix-dgram")

    @property
    def is_stream(self) -> bool:
        """True for connection-oriented kinds (TCP, Unix stream)."""
        return self.transport in ("tcp", "unix")


#: Name or alias -> server class (or None for factory-built kinds).
KINDS: dict[str, type | None] = {}
_INFO: dict[str, KindInfo] = {}  # short name -> info
_ALIASES: dict[str, str] = {}  # class name -> short name


def transport_of(cls: type) -> str:
    """The transport of a server class, from its address family and socket type."""
    unix = getattr(cls, "address_family", None) == getattr(socket, "AF_UNIX", None)
    stream = getattr(cls, "socket_type", None) == socket.SOCK_STREAM
    if unix:
        return "unix" if stream else "unix-dgram"
    return "tcp" if stream else "udp"


def concurrency_of(cls: type) -> str:
    """The concurrency of a server class, from the mixins in its MRO."""
    for base in cls.__mro__:
        found = CONCURRENCY_MIXINS.get(base.__name__)
        if found is not None:
            return found
    return "plain"


def register_kind(
    name: str,
    server_class: type | None,
    *,
    transport: str | None = None,
    concurrency: str | None = None,
    description: str | None = None,
    factory: Callable[[Any, type], Any] | None = None,
    alias: str | None = None,
) -> KindInfo:
    """Add (or replace) a kind; transport and concurrency default to what
    the class says. Returns its :class:`KindInfo`."""
    if server_class is None and factory is None:
        raise ValueError(f"kind {name!r} needs a server_class or a factory")
    if server_class is not None:
        transport = transport or transport_of(server_class)
        concurrency = concurrency or concurrency_of(server_class)
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {TRANSPORTS}, got {transport!r}")
    if concurrency not in CONCURRENCIES:
        raise ValueError(f"concurrency must be one of {CONCURRENCIES}, got {concurrency!r}")
    if description is None:
        cls_name = server_class.__name__ if server_class is not None else name
        description = (
            f"{cls_name}: {_DESCRIBE_TRANSPORT[transport]}, "
            f"{_DESCRIBE_CONCURRENCY[concurrency]}"
        )
    info = KindInfo(name, server_class, transport, concurrency, description, factory)
    _INFO[name] = info
    KINDS[name] = server_class
    alias = alias or (server_class.__name__ if server_class is not None else None)
    if alias and alias != name:
        _ALIASES[alias] = name
        KINDS[alias] = server_class
    return info


def _register_exported_classes() -> None:
    for export in sockserve.__all__:
        cls = getattr(sockserve, export, None)
        if not (isinstance(cls, type) and issubclass(cls, TCPServer)):
            continue  # mixins, handlers, BaseServer: not servers one can bind
        transport, concurrency = transport_of(cls), concurrency_of(cls)
        name = concurrency + _SUFFIX[transport]
        # Two exported classes with the same traits: the first gets the
        # short name, the other is known by its class name alone.
        register_kind(cls.__name__ if name in _INFO else name, cls)

_register_exported_classes()


def _asyncio_server(address: Any, handler: type, class_attributes: Mapping[str, Any] | None = None) -> Any:
    from .aio import AsyncioServer  # imported on use: asyncio is a heavy import

    cls: type = AsyncioServer
    if class_attributes:
        cls = type(cls.__name__, (cls,), {"__module__": cls.__module__, **class_attributes})
    return cls(address, handler)


register_kind("asyncio", None, transport="tcp", concurrency="asyncio",
              factory=_asyncio_server, alias="AsyncioServer",
              description="AsyncioServer: TCP, one event loop, coroutines per connection")
register_kind("asyncio-unix", None, transport="unix", concurrency="asyncio",
              factory=_asyncio_server,
              description="AsyncioServer: Unix stream socket, one event loop, coroutines per connection")


#: The class attribute that bounds how many requests a kind serves at once.
_BOUND_ATTRIBUTE = {"threadpool": "pool_size", "prefork": "workers", "forking": "max_children"}


def concurrency_bound(info: KindInfo) -> int | None:
    """How many requests a server of this kind serves at once at most, from
    its class (a thread pool's ``pool_size``, a pre-forked server's
    ``workers``, a forking server's ``max_children``); None when nothing
    bounds it but the clients (plain serves one: see
    :func:`sockserve.measure.limits.throughput_limit`)."""
    attribute = _BOUND_ATTRIBUTE.get(info.concurrency)
    value = getattr(info.server_class, attribute, None) if attribute else None
    return int(value) if isinstance(value, int) and value >= 1 else None


def kind_names(transport: str | None = None) -> list[str]:
    """The short kind names (no class-name aliases), optionally of one transport."""
    names = [
        name
        for name, info in _INFO.items()
        if name not in _ALIASES and (transport is None or info.transport == transport)
    ]

    def order(name: str) -> tuple[int, int]:
        info = _INFO[name]
        return TRANSPORTS.index(info.transport), CONCURRENCIES.index(info.concurrency)

    return sorted(names, key=order)


def resolve_kind(name: str | type | KindInfo) -> KindInfo:
    """The :class:`KindInfo` for a kind name, a class-name alias, or a class
    (a KindInfo is returned as it is: it was resolved already).

    Raises ValueError naming the valid kinds when *name* is unknown.
    """
    if isinstance(name, KindInfo):
        return name
    if isinstance(name, type):
        for info in _INFO.values():
            if info.server_class is name:
                return info
        if issubclass(name, TCPServer):
            return KindInfo(
                name.__name__, name, transport_of(name), concurrency_of(name),
                f"{name.__name__} (not an exported sockserve class)",
            )
        raise ValueError(f"{name.__name__} is not a server class")
    found = _INFO.get(_ALIASES.get(name, name))
    if found is None:
        lowered = {n.lower(): n for n in list(_INFO) + list(_ALIASES)}
        match = lowered.get(name.lower())
        if match is not None:
            return resolve_kind(match)
        raise ValueError(
            f"unknown server kind {name!r}; choose one of: {', '.join(kind_names())} "
            "(or a class name such as ThreadingTCPServer)"
        )
    return found


def is_loopback(host: str) -> bool:
    """True when *host* names only loopback addresses (127.0.0.0/8, ::1)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(
        ipaddress.ip_address(str(addr[4][0]).split("%")[0]).is_loopback for addr in found
    )


_IPV6_CLASSES: dict[type, type] = {}


def _ipv6_variant(cls: type) -> type:
    """The same server class on AF_INET6 (same name, so traces read the same)."""
    if cls not in _IPV6_CLASSES:
        _IPV6_CLASSES[cls] = type(
            cls.__name__,
            (cls,),
            {"address_family": socket.AF_INET6, "__module__": cls.__module__,
             "__doc__": f"{cls.__name__} on IPv6."},
        )
    return _IPV6_CLASSES[cls]


def make_server(
    kind: str | type | KindInfo,
    workload: str | type | Workload = "echo",
    host: str = "127.0.0.1",
    port: int = 0,
    path: str | None = None,
    class_attributes: Mapping[str, Any] | None = None,
    **params: float,
) -> Any:
    """A server of *kind* serving *workload*, bound (and listening), not serving.

    *workload* is a workload name, or a request handler class (one written
    in a notebook, say), served as it is.

    TCP/UDP kinds bind ``(host, port)``; an IPv6 host (``"::1"``) gives the
    AF_INET6 variant of the class. Unix kinds bind *path*, and
    ``server_close()`` removes the socket file (``remove_socket_file`` is set
    on the server); with no path, a fresh private temporary directory is made
    and removed again when the server object is garbage collected or the
    interpreter exits.
    *class_attributes* (e.g. ``{"allow_reuse_address": True}``) are set on a
    subclass of the kind's class (same name) before it binds; a kind built by
    a factory gets them as its ``class_attributes`` keyword if it takes one
    (the asyncio kinds do), else on the server it returns, after binding.
    *params* go to the workload (e.g. ``delay_ms=10``); a *workload* that is
    already a :class:`~sockserve.measure.workloads.Workload` (and a *kind*
    that is a :class:`KindInfo`) is used as it is, not resolved again. Bind errors are
    raised as the ``OSError`` the core explains; a bad kind or workload is a
    ``ValueError``.

    The caller runs ``serve_forever()`` and ends with ``shutdown()`` and
    ``server_close()`` (or ``with server:``).
    """
    info = resolve_kind(kind)
    if isinstance(workload, type):
        if params:
            raise ValueError(f"workload parameters {sorted(params)} are for a named workload, "
                             f"not for the handler class {workload.__name__}")
        handler = workload
    else:
        if isinstance(workload, str):
            workload = get_workload(workload, **params)
        elif params:
            raise ValueError("give the workload's parameters to get_workload, not with a Workload")
        handler = workload.handler
    address: Any
    cleanup_dir: str | None = None
    if info.is_unix:
        if path is None:
            cleanup_dir = tempfile.mkdtemp(prefix="sockserve-")
            path = os.path.join(cleanup_dir, "server.sock")
        address = os.fspath(path)
    else:
        address = (host, port)
    try:
        if info.server_class is None:
            assert info.factory is not None
            factory: Any = info.factory  # (address, handler[, class_attributes=...])
            if class_attributes and "class_attributes" in inspect.signature(factory).parameters:
                server = factory(address, handler, class_attributes=class_attributes)
            else:
                server = info.factory(address, handler)
                for name, value in (class_attributes or {}).items():
                    setattr(server, name, value)
        else:
            cls = info.server_class
            if not info.is_unix and ":" in host:
                cls = _ipv6_variant(cls)
            if class_attributes:
                cls = type(cls.__name__, (cls,), {"__module__": cls.__module__, **class_attributes})
            server = cls(address, handler)
            if info.is_unix:
                server.remove_socket_file = True  # read by server_close()
    except BaseException:
        if cleanup_dir is not None:
            shutil.rmtree(cleanup_dir, ignore_errors=True)
        raise
    if cleanup_dir is not None:
        weakref.finalize(server, shutil.rmtree, cleanup_dir, True)
    return server
