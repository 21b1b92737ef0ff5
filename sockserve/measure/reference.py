"""A stored reference run: what a quiet multi-core machine measured.

A student on one busy core measures what their machine allows, which is
honest but cannot show what forking does with free cores. Lesson 04 therefore
shows, beside the live run, a run recorded once on a quiet machine with
several cores, labelled as not the student's, with its cores and load: the
file ``notebooks/data/concurrency-reference.json``, shipped in the wheel with
the lessons.

:func:`record_reference` measures one (the cpu comparison of lesson 04 and
the convoy); ``benchmarks/record_reference.py`` runs it and writes the file,
and refuses to write one from a busy machine unless it is marked
provisional. :func:`load_reference` reads it back; :meth:`Reference.label`
says whose run it is, from what the file recorded.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .conclusions import BUSY, cores_text, report
from .convoy import Convoy, convoy, convoy_report
from .experiment import compare
from .results import Comparison, read_json, write_json

__all__ = ["Reference", "record_reference", "load_reference", "REFERENCE_FILE"]

#: Where the lessons find it, relative to the notebooks' folder.
REFERENCE_FILE = "data/concurrency-reference.json"


@dataclass
class Reference:
    """A recorded cpu comparison and convoy, and where they were recorded.

    ``recorded`` holds ``created``, ``machine`` (the processor's
    architecture), ``python``, ``cpus``, ``usable_cores``, ``loadavg`` (the
    1-minute load average before and after), ``others_took`` (cores other
    programs took during the comparison, measured), ``quiet`` (whether that
    was below :data:`~sockserve.measure.conclusions.BUSY` of the cores),
    ``provisional`` and a ``note``.
    """

    cpu: Comparison
    convoy: Convoy | None = None
    recorded: dict[str, Any] = field(default_factory=dict)

    @property
    def quiet(self) -> bool:
        return bool(self.recorded.get("quiet"))

    @property
    def provisional(self) -> bool:
        return bool(self.recorded.get("provisional"))

    def report(self) -> str:
        """The sentences of the stored runs, about *its* cores, not the reader's."""
        text = report(self.cpu, owner="its")
        if self.convoy is not None:
            text += "\n" + convoy_report(self.convoy, owner="its")
        return text

    def label(self) -> str:
        """Whose run this is, in words, from what was recorded."""
        r = self.recorded
        cores = r.get("usable_cores")
        loads = r.get("loadavg") or []
        load = f", load average {loads[0]:.2f}" if loads and loads[0] is not None else ""
        took = r.get("others_took")
        others = (f"; other programs took {took:.2f} of {cores_text(cores, 'its')} during it"
                  if took is not None else "")
        text = (f"Not your machine: a reference run recorded on {str(r.get('created', '?'))[:10]} on a "
                f"{'quiet' if self.quiet else 'busy'} machine with {cores_text(cores, '').strip()} "
                f"({r.get('machine', '?')}, Python {r.get('python', '?')}{load}){others}.")
        if self.provisional:
            text += (" Provisional: " + str(r.get("note") or "recorded on a busy machine, to be recorded "
                                                              "again on a quiet one") + ".")
        return text

    def to_dict(self) -> dict[str, Any]:
        return {"recorded": dict(self.recorded), "cpu": self.cpu.to_dict(),
                "convoy": self.convoy.to_dict() if self.convoy is not None else None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        found = data.get("convoy")
        return cls(cpu=Comparison.from_dict(data["cpu"]),
                   convoy=Convoy.from_dict(found) if found else None,
                   recorded=dict(data.get("recorded", {})))

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


def load_reference(path: str | os.PathLike[str] = REFERENCE_FILE) -> Reference:
    """Read a reference written by :meth:`Reference.save`."""
    return Reference.from_dict(read_json(path))


def record_reference(*, duration: float = 3.0, clients: int = 4, provisional: bool = False,
                     note: str = "", with_convoy: bool = True) -> Reference:
    """Measure lesson 04's cpu comparison (plain, threading, forking; 10 ms
    of CPU per request, *clients* clients, *duration* seconds each in
    rounds) and the convoy, and record where and how loaded the machine
    was. Bounded: about ``2 * duration * 3`` seconds plus start-up."""
    before = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    cpu = compare("cpu", ("plain", "threading", "forking"), clients=clients, duration=duration)
    found_convoy = convoy(duration=duration) if with_convoy else None
    after = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    usage = cpu.cpu()
    usable = cpu.runs[0].usable_cores if cpu.runs else None
    took = usage.others_took if usage is not None else None
    quiet = took is not None and usable is not None and took < BUSY * usable
    recorded = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": platform.machine(),
        "python": platform.python_version(), "cpus": os.cpu_count(), "usable_cores": usable,
        "loadavg": [before, after], "others_took": took, "quiet": quiet, "provisional": provisional,
        "note": note,
    }
    return Reference(cpu, found_convoy, recorded)
