"""The crossbar gather's optional clock derating (hwmodels.resources.GatherDerating): off by
default and then bit-identical; on, it lowers the clock only when compaction gathers through a
crossbar of more than one PE-column group, by the closed form of its mux levels, more for wider
crossbars; simulate, the batched path and both engines price latency at that clock."""
from __future__ import annotations

import dataclasses

import pytest

import hwmodels
from hwmodels import BlockMask, simulate
from hwmodels.batch import simulate_points
from hwmodels.board_schema import BoardError
from hwmodels.resources import (ESTIMATED_GATHER_DERATING, GatherDerating, crossbar_fan_in,
                                gather_clock_mhz)

from hw_helpers import board


def _compact(**over):
    return board(sparse_strategy="compact", gather="crossbar", **over)


def _gemm():
    wl = hwmodels.gemm_workload(128, 768, 768)
    return wl, {"gemm.weight": BlockMask.random((1, 16), (768, 768), 0.5, seed=3)}


@pytest.mark.parametrize("fan_in,levels", [(1, 0), (2, 1), (32, 1), (33, 2), (1024, 2),
                                           (1025, 3), (32768, 3), (32769, 4)])
def test_mux_levels_closed_form(fan_in, levels):
    assert ESTIMATED_GATHER_DERATING.levels(fan_in) == levels
    assert GatherDerating(0.5, fan_in_per_level=4).levels(16) == 2
    assert GatherDerating(0.5, fan_in_per_level=4).levels(17) == 3


def test_off_is_the_default_and_bit_identical():
    wl, masks = _gemm()
    default = _compact()
    assert default.gather_derating is None and "gather_derating" not in default.to_dict()
    off = _compact(gather_derating="off")
    assert off == default and simulate(wl, off, masks) == simulate(wl, default, masks)
    assert gather_clock_mhz(default) == default.clock_mhz == 200


def test_on_lowers_the_clock_by_the_closed_form_and_prices_latency_at_it():
    wl, masks = _gemm()
    on = _compact(gather_derating="estimate")  # 32x32, gather_block_rows 1: G = 32, N = 1024
    assert crossbar_fan_in(on) == 32 * 32
    expect = 1000.0 / (1000.0 / 200 + (2 - 1) * 0.5)  # two levels: one beyond the first
    assert gather_clock_mhz(on) == pytest.approx(expect) and expect < 200
    rep = simulate(wl, on, masks)
    assert rep.clock_mhz == pytest.approx(expect)
    assert rep.latency_ms == pytest.approx(rep.total_cycles / (expect * 1e3))
    base = simulate(wl, _compact(), masks)
    assert rep.compute_cycles == base.compute_cycles  # the same schedule, a slower clock
    assert rep.latency_ms > base.latency_ms
    assert rep.energy_pj["static"] > base.energy_pj["static"]  # static power x a longer time


@pytest.mark.parametrize("over", [
    {"sparse_strategy": "tile-skip"}, {"sparse_strategy": "dense"},
    {"sparse_strategy": "compact", "gather": "replicate"},
    {"sparse_strategy": "compact", "gather_block_rows": 32},  # one group: no crossbar
])
def test_only_a_crossbar_gather_is_derated(over):
    wl, masks = _gemm()
    acc = board(gather_derating="estimate", **over)
    assert crossbar_fan_in(acc) == 0 and gather_clock_mhz(acc) == acc.clock_mhz
    plain = dataclasses.replace(acc, gather_derating=None)
    assert simulate(wl, acc, masks) == simulate(wl, plain, masks)


def test_the_derating_grows_with_the_crossbar_width():
    # fan-in G x R: (rows, cols, gather_block_rows) from narrow to wide
    designs = [(8, 8, 2), (16, 8, 2), (16, 16, 1), (32, 32, 1), (64, 32, 1), (64, 64, 1)]
    widths, clocks = [], []
    for rows, cols, gbr in designs:
        acc = _compact(gather_derating="estimate", gather_block_rows=gbr,
                       pe_array={"rows": rows, "cols": cols})
        widths.append(crossbar_fan_in(acc))
        clocks.append(gather_clock_mhz(acc))
    assert widths == sorted(widths) and len(set(widths)) == len(widths)
    assert all(a >= b for a, b in zip(clocks, clocks[1:]))  # never faster when wider
    assert clocks[0] == 200 and clocks[-1] < clocks[3] < clocks[0]  # 32, 1024, 4096 lanes
    # a slower mux level derates more
    slow = _compact(gather_derating={"ns_per_level": 1.0, "source": "test figure, not data"})
    assert gather_clock_mhz(slow) == pytest.approx(1000 / 6)
    assert gather_clock_mhz(slow) < clocks[3]


def test_the_yaml_form_needs_a_source_and_round_trips():
    with pytest.raises(BoardError, match="gather_derating") as err:
        _compact(gather_derating={"ns_per_level": 0.5})
    assert "\n" not in str(err.value)
    acc = _compact(gather_derating="estimate")
    assert acc.gather_derating == ESTIMATED_GATHER_DERATING
    assert "estimate" in acc.gather_derating.source
    data = {k: v for k, v in acc.to_dict().items() if k != "source"}
    back = hwmodels.accelerator_from_dict(data)
    assert back.gather_derating == acc.gather_derating


def test_batch_and_event_engine_use_the_derated_clock():
    wl, masks = _gemm()
    accs = [_compact(gather_derating=d, clock_mhz=c, dram={"bandwidth_gb_s": bw})
            for d in ("off", "estimate") for c in (150.0, 250.0) for bw in (2.0, 19.2)]
    for acc, rep in zip(accs, simulate_points(wl, accs, masks)):
        ref = simulate(wl, acc, masks)
        assert rep == dataclasses.replace(ref, ops=())
        assert rep.clock_mhz == gather_clock_mhz(acc)
    acc = _compact(gather_derating="estimate", dram={"bandwidth_gb_s": 2.0})
    a, e = simulate(wl, acc, masks), simulate(wl, acc, masks, engine="event")
    assert a.clock_mhz == e.clock_mhz < 200
    assert abs(a.total_cycles - e.total_cycles) <= 0.03 * e.total_cycles
