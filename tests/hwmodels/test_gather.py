"""Compaction's gather: its BRAM36/LUT cost grows with the PE-column groups and counts in the
fit check; dense and tile-skip designs are unchanged (hwmodels.resources.gather_cost)."""
from __future__ import annotations

import pytest

from hwmodels import BoardError, ResourceError, load_board
from hwmodels.resources import (assess_fit, benes_switches, estimate, gather_cost,
                                gather_groups)


def _compact(gather: str, block_rows: int, **over):
    return load_board("zcu102", {"sparse_strategy": "compact", "gather": gather,
                                 "gather_block_rows": block_rows, **over}, check_fit=False)


def test_benes_switch_count_closed_form():
    # (N/2)(2 log2 N - 1): N=2 -> 1, N=8 -> 4*5, N=1024 -> 512*19; non-powers round up
    assert [benes_switches(n) for n in (1, 2, 8, 1024)] == [0, 1, 20, 512 * 19]
    assert benes_switches(5) == benes_switches(8)


@pytest.mark.parametrize("block_rows,groups", [(1, 32), (2, 16), (3, 11), (32, 1), (64, 1)])
def test_groups_follow_block_height_against_array_columns(block_rows, groups):
    assert gather_groups(_compact("crossbar", block_rows)) == groups


def test_replicate_copies_the_input_buffer_per_group():
    # zcu102 input buffer: 512 KiB = 128 BRAM36; dense total 320 (128 + 128 + 64)
    for block_rows, groups in ((32, 1), (16, 2), (4, 8), (1, 32)):
        acc = _compact("replicate", block_rows)
        assert gather_cost(acc).bram36 == 128 * (groups - 1)
        assert estimate(acc).bram36 == 320 + 128 * (groups - 1)


def test_crossbar_widens_the_buffer_and_adds_a_benes_network():
    # G=32 groups x 32 lanes int8: 1,024 B/cycle -> 128 banks per half, 256 BRAM36 (+128);
    # Benes over 1,024 lanes x 8 bits = 512 * 19 * 8 LUT
    g = gather_cost(_compact("crossbar", 1))
    assert (g.groups, g.bram36, g.lut) == (32, 128, 512 * 19 * 8)
    g8 = gather_cost(_compact("crossbar", 4))  # 8 x 32 = 256 lanes, 256 B/cycle: 64 BRAM < 128
    assert (g8.groups, g8.bram36, g8.lut) == (8, 0, 128 * 15 * 8)
    assert gather_cost(_compact("crossbar", 32)).lut == 0  # one group: no network


@pytest.mark.parametrize("gather", ["crossbar", "replicate"])
def test_gather_resources_grow_with_groups(gather):
    costs = [estimate(_compact(gather, rows)) for rows in (32, 16, 8, 4, 2, 1)]
    for fewer, more in zip(costs, costs[1:]):
        assert more.bram36 >= fewer.bram36 and more.lut >= fewer.lut
        assert (more.bram36, more.lut) != (fewer.bram36, fewer.lut)


def test_dense_and_tile_skip_resources_pinned_and_gather_free():
    # the figures before the gather model (zcu102: 32x32 int8, 16 vector lanes)
    for strategy in ("dense", "tile-skip"):
        for gather in ("crossbar", "replicate"):
            acc = load_board("zcu102", {"sparse_strategy": strategy, "gather": gather,
                                        "gather_block_rows": 1})
            est = estimate(acc)
            assert (est.dsp, est.bram36, est.uram, est.lut) == (544, 320, 0, 60_320)
            assert gather_cost(acc).groups == 0
    u = estimate(load_board("ultra96v2"))
    assert (u.dsp, u.bram36, u.uram, u.lut) == (144, 80, 0, 32_480)


def test_one_group_compact_costs_only_the_index_decoder():
    # blocks as tall as the array is wide: the dense design + 60 LUT per column (as before)
    for gather in ("crossbar", "replicate"):
        est = estimate(_compact(gather, 32))
        assert (est.bram36, est.lut) == (320, 60_320 + 32 * 60)


def test_big_compact_array_stops_fitting_and_the_message_names_the_gather():
    big = {"pe_array": {"rows": 64, "cols": 64}}
    assert assess_fit(load_board("zcu102", {**big, "sparse_strategy": "tile-skip"},
                                 check_fit=False)).fits
    fit = assess_fit(_compact("crossbar", 1, **big))
    assert not fit.fits
    assert "LUT" in fit.message and "crossbar gather for 64 PE-column groups" in fit.message
    assert assess_fit(_compact("crossbar", 64, **big)).fits  # wide blocks: one stream
    rep = assess_fit(_compact("replicate", 1))
    assert not rep.fits and "BRAM36" in rep.message and "replicate gather" in rep.message
    with pytest.raises(ResourceError, match="gather"):
        load_board("zcu102", {"sparse_strategy": "compact", "gather": "replicate"})


def test_gather_keys_are_validated():
    with pytest.raises(BoardError, match="gather"):
        load_board("zcu102", {"gather": "benes"})
    with pytest.raises(BoardError, match="gather_block_rows"):
        load_board("zcu102", {"gather_block_rows": 0})
