"""The one progress helper: a bar on a terminal, nothing with --json or off a terminal."""

import io

from neuroloop.progress import Progress, progress_enabled


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_for_json_even_on_a_terminal(monkeypatch):
    monkeypatch.delenv("NEUROLOOP_PROGRESS", raising=False)
    assert progress_enabled(stream=_Tty()) is True
    assert progress_enabled(as_json=True, stream=_Tty()) is False


def test_off_when_not_a_terminal(monkeypatch):
    monkeypatch.delenv("NEUROLOOP_PROGRESS", raising=False)
    assert progress_enabled(stream=io.StringIO()) is False


def test_forced_on_draws_on_stderr_with_eta_and_never_on_stdout(monkeypatch, capsys):
    monkeypatch.setenv("NEUROLOOP_PROGRESS", "1")
    with Progress(4, "replay", unit="hop") as bar:
        assert bar.enabled
        for _ in range(4):
            bar.update()
    out, err = capsys.readouterr()
    assert out == ""
    assert "replay" in err and "/4" in err and "hop" in err


def test_forced_on_is_still_off_for_json(monkeypatch, capsys):
    monkeypatch.setenv("NEUROLOOP_PROGRESS", "1")
    with Progress(4, "replay", as_json=True) as bar:
        assert not bar.enabled
        bar.update(4)
    assert capsys.readouterr() == ("", "")
