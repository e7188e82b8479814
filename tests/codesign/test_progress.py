"""codesign.sweep.progress: the plain lines a sweep prints when stderr is not a terminal."""
import io

from codesign.sweep.progress import Progress


def test_plain_lines_hold_back_an_early_eta_and_end_at_zero():
    progress = Progress(stream=io.StringIO(), every_s=0.0, force_plain=True)
    progress.start(total=100)
    progress.advance(1, "latency_ms=4.9 (dense)")
    progress.note("measured sst2 16x16 ratio 0.5 (calibrated): accuracy 0.861")
    for _ in range(98):
        progress.advance()
    progress.advance()
    lines = progress.stream.getvalue().splitlines()
    assert lines[0] == "points: 0/100 already stored"
    # one point of 100 gives no rate to trust: no ETA yet; the best is carried along
    assert lines[1] == "1/100 points, ETA ?, best latency_ms=4.9 (dense)"
    assert lines[2] == "measured sst2 16x16 ratio 0.5 (calibrated): accuracy 0.861"
    assert lines[-1] == "100/100 points, ETA 0s, best latency_ms=4.9 (dense)"
    assert len(lines) == 3 + 99  # every_s=0: a line per point


def test_a_short_stage_ends_at_zero_too():
    progress = Progress(stream=io.StringIO(), every_s=1e12, force_plain=True)
    progress.start(total=2)
    progress.advance()  # within every_s of the start: no line
    progress.advance()  # the last point always prints
    assert progress.stream.getvalue().splitlines()[1:] == ["2/2 points, ETA 0s"]
