from __future__ import annotations

from dinoscope.progress import progress_enabled, track


def test_track_is_silent_and_complete_off_terminal(capsys) -> None:
    assert not progress_enabled()  # pytest captures stderr: not a terminal
    assert list(track(iter(range(5)), total=5, description="x")) == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""
