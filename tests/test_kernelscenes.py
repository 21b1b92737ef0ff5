"""The kernel's-view lesson's scenes (sockserve.workbook.kernelscenes): each shows what it says, on live loopback servers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sockserve.workbook import kernelscenes
from sockserve.kernel import view as kernelview

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/net is Linux's")


@linux_only
def test_construction_listens_only_after_server_activate() -> None:
    scene = kernelscenes.construction(request_queue_size=7)
    bound, activated, closed = scene.readings
    assert not bound.listening and bound.server == {}
    assert activated.listening and activated.queue == 0 and activated.queue_max == 7
    assert not closed.listening
    text = str(scene)
    assert "refused" in text and "connected (the kernel completed the handshake" in text
    assert "its inode is the LISTEN row's: True" in text


@linux_only
def test_a_burst_fills_a_small_backlog_and_every_client_is_served_after_all() -> None:
    scene = kernelscenes.burst(backlog=2, clients=6)
    (before,) = scene.readings
    assert before.queue == 3 and before.queue_max == 2 and before.queue_full
    assert before.count("SYN-SENT", "client") + before.count("SYN-RECV") == 3
    assert scene.facts["served"] == 6
    assert scene.series is not None and max(r.queue or 0 for r in scene.series.readings) >= 1
    # The figure covers the whole scene: its readings go on past the last reply ...
    replies = scene.facts["replies"]
    assert len(replies) == 6 and all(t is not None for t in replies)
    assert scene.series.readings[0].at < scene.facts["burst_at"]
    assert scene.series.readings[-1].at >= scene.facts["burst_at"] + max(replies)
    # ... and the server closed each connection first, so TIME-WAIT is on its side only.
    last = scene.series.readings[-1]
    assert last.count("TIME-WAIT", "server") == 6 and last.count("TIME-WAIT", "client") == 0
    text = kernelscenes.reply_times(scene)
    assert text.startswith(f"The server began accepting {scene.facts['accepting']:.2f} s after the burst; "
                           "replies came at ")


@linux_only
def test_the_handshake_states_are_held_still() -> None:
    deferred, full = kernelscenes.handshake().readings
    assert deferred.count("SYN-RECV") == 1 and deferred.count("ESTABLISHED", "client") == 1
    assert full.queue == 1 and full.count("SYN-SENT", "client") == 1


@linux_only
@pytest.mark.parametrize("closes_first", ["client", "server"])
def test_time_wait_stays_on_the_side_that_closes_first(closes_first: str) -> None:
    (reading,) = kernelscenes.teardown(closes_first, connections=3).readings
    other = "server" if closes_first == "client" else "client"
    assert reading.count("TIME-WAIT", closes_first) == 3
    assert reading.count("TIME-WAIT", other) == 0
    with pytest.raises(ValueError, match="closes_first"):
        kernelscenes.teardown("nobody")


@linux_only
def test_a_server_that_never_closes_holds_close_wait_until_it_does() -> None:
    before, after = kernelscenes.forgotten_close(connections=2).readings
    assert before.count("CLOSE-WAIT") == 2 and before.count("FIN-WAIT-2", "client") == 2
    assert after.count("CLOSE-WAIT") == 0


def test_every_scene_says_not_available_where_there_is_no_proc_net(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kernelview, "PROC_NET", str(tmp_path / "missing"))
    for scene in (kernelscenes.construction(), kernelscenes.burst(), kernelscenes.handshake(),
                  kernelscenes.teardown(), kernelscenes.forgotten_close()):
        assert str(scene) == kernelview.NOT_AVAILABLE and not scene.available and scene.readings == ()


def test_reply_times_name_the_stretch_without_replies() -> None:
    late = kernelscenes.Scene("burst", (), facts={"replies": [0.54, 0.54, 0.55, 1.02, 1.02, None],
                                                   "accepting": 0.54})
    assert kernelscenes.reply_times(late) == (
        "The server began accepting 0.54 s after the burst; replies came at 0.54, 0.54, 0.55, 1.02, 1.02 s: "
        "3, then none for 0.47 s, then 2 more; 1 client got none.")
    steady = kernelscenes.Scene("burst", (), facts={"replies": [0.3, 0.31, 0.32], "accepting": 0.3})
    assert kernelscenes.reply_times(steady).endswith("replies came at 0.30, 0.31, 0.32 s.")
    assert kernelscenes.reply_times(kernelscenes.Scene("burst", (), facts={"replies": [None]})) == \
        "No client got a reply."
