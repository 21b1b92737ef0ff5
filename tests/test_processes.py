"""processes: what forked children share (here: priming the parent's lookups)."""

from __future__ import annotations

from typing import Any

from sockserve.core.processes import prime_lookups


class Recorder:
    """A class-level descriptor that notes every lookup made through it."""

    seen: list[tuple[str, str]] = []

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        Recorder.seen.append((getattr(owner, "__name__", "?"), self.name))
        return self


class Broken:
    """A class-level descriptor whose every lookup fails."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        raise RuntimeError("no")


def test_every_name_of_every_class_is_looked_up_once_on_that_class() -> None:
    class Base:
        hook = Recorder()

    class Server(Base):
        other = Recorder()

    class Handler:
        stream = Recorder()

    Recorder.seen.clear()
    prime_lookups(Server, Handler, instance_names=("request",))
    assert sorted(Recorder.seen) == [("Handler", "stream"), ("Server", "hook"), ("Server", "other")]


def test_a_lookup_that_fails_is_passed_over() -> None:
    class Odd:
        bad = Broken()
        good = Recorder()

    Recorder.seen.clear()
    prime_lookups(Odd, instance_names=("missing",))
    assert Recorder.seen == [("Odd", "good")]
