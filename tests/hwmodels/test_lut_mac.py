"""MACs built in LUTs (`mac_impl: lut`): no DSP48E2 for the array, LUTs per MAC by precision
(FINN-R's multiplier cost + a 32-bit accumulate adder), the fit check, the power model's price,
and the default (dsp) unchanged."""
from __future__ import annotations

import dataclasses
import math

import pytest
from hw_helpers import board

import hwmodels
from hwmodels.board_schema import BoardError
from hwmodels.power import mac_pj_parts
from hwmodels.resources import (LUT_MAC_LUTS, LUT_PER_MAC, MACS_PER_DSP, array_dsp, array_lut,
                                assess_fit, estimate, lut_multiplier_luts, luts_per_mac,
                                precision_cost)

INTEGER = ("w4a8", "w8a8", "w8a16", "w16a16")
LAYER = hwmodels.builtin_workload("minilm-l6", seq_len=64)


def test_lut_mac_figures_are_finn_r_plus_the_accumulator():
    # (2 ceil((W+A)/6) - 1) (W+A): 12 bits -> 3 x 12, 16 -> 5 x 16, 24 -> 7 x 24, 32 -> 11 x 32
    assert [lut_multiplier_luts(4, 8), lut_multiplier_luts(8, 8), lut_multiplier_luts(8, 16),
            lut_multiplier_luts(16, 16)] == [36, 80, 168, 352]
    assert [LUT_MAC_LUTS[p] for p in INTEGER] == [68, 112, 200, 384]
    assert LUT_MAC_LUTS["int8"] == LUT_MAC_LUTS["w8a8"] and "fp16" not in LUT_MAC_LUTS
    assert luts_per_mac("w8a8") == LUT_PER_MAC["w8a8"]  # dsp: the control logic only
    assert luts_per_mac("w8a8", "lut") == LUT_PER_MAC["w8a8"] + 112


@pytest.mark.parametrize("precision", INTEGER)
def test_a_lut_design_uses_no_dsp_for_its_array_and_the_stated_luts(precision):
    dsp = board(pe_array={"precision": precision, "rows": 24, "cols": 20})
    lut = board(pe_array={"precision": precision, "rows": 24, "cols": 20}, mac_impl="lut")
    macs = 24 * 20
    vec = dsp.vector_unit
    assert array_dsp(lut) == 0 and array_dsp(dsp) == math.ceil(macs / MACS_PER_DSP[precision])
    assert estimate(lut).dsp == vec.lanes * vec.dsp_per_lane  # only the vector unit's
    assert array_lut(lut) == macs * (LUT_PER_MAC[precision] + LUT_MAC_LUTS[precision])
    assert estimate(lut).lut - estimate(dsp).lut == macs * LUT_MAC_LUTS[precision]
    # memory is the same design
    assert (estimate(lut).bram36, estimate(lut).uram) == (estimate(dsp).bram36, estimate(dsp).uram)
    cost = precision_cost(lut)
    assert (cost.array_dsp, cost.array_lut, cost.mac_impl) == (0, array_lut(lut), "lut")
    assert "MACs in LUTs" in cost.line() and "MAC/DSP48E2" in precision_cost(dsp).line()


def test_the_fit_check_fails_when_the_luts_exceed_the_part():
    # 32x32 w16a16 in LUTs: 1,024 x (25 + 384) + control + vector lanes > 274,080
    acc = board(pe_array={"precision": "w16a16"}, mac_impl="lut")
    fit = assess_fit(acc)
    need = 1024 * (25 + 384) + 20_000 + 16 * 600
    assert estimate(acc).lut == need > acc.board.lut
    assert not fit.fits and len(fit.problems) == 1
    assert fit.problems[0].startswith(f"LUT needs {need:,} of 274,080")
    assert "MACs in LUTs (409 LUT per MAC)" in fit.problems[0]
    with pytest.raises(hwmodels.ResourceError, match="LUT needs"):
        hwmodels.load_board("zcu102", {"pe_array": {"precision": "w16a16"}, "mac_impl": "lut"})
    # the same array on DSPs fits
    assert assess_fit(board(pe_array={"precision": "w16a16"})).fits


def test_the_check_names_the_resource_each_implementation_runs_out_of():
    """56x56 w4a8: on DSPs 1,568 + 32 of 2,520 fit; in LUTs 3,136 x 98 LUT do not (LUT only);
    40x40 in LUTs fits with the vector unit's 32 DSPs alone."""
    big = board(pe_array={"rows": 56, "cols": 56, "precision": "w4a8"})
    assert assess_fit(big).fits and estimate(big).dsp == 1568 + 32
    big_lut = dataclasses.replace(big, mac_impl="lut")
    assert [p.split()[0] for p in assess_fit(big_lut).problems] == ["LUT"]
    assert estimate(big_lut).lut == 3136 * 98 + 20_000 + 16 * 600
    small = board(pe_array={"rows": 40, "cols": 40, "precision": "w4a8"}, mac_impl="lut")
    assert assess_fit(small).fits and estimate(small).dsp == 32


def test_the_dsp_default_is_unchanged():
    plain = board()
    explicit = board(mac_impl="dsp")
    assert plain.mac_impl == "dsp" and plain == dataclasses.replace(explicit, source=plain.source)
    assert hwmodels.simulate(LAYER, plain).to_dict() == hwmodels.simulate(LAYER, explicit).to_dict()
    parts = mac_pj_parts(plain.power, "int8")
    assert parts == mac_pj_parts(plain.power, "int8", "dsp")
    assert plain.energy.mac_pj == pytest.approx(sum(parts.values()))
    # the preset's YAML layout round-trips without naming the default
    data = {k: v for k, v in plain.to_dict().items() if k != "source"}
    assert hwmodels.accelerator_from_dict(data, "again").mac_impl == "dsp"


@pytest.mark.parametrize("precision", INTEGER)
def test_the_power_model_prices_lut_macs_as_luts(precision):
    acc = board(pe_array={"precision": precision}, mac_impl="lut")
    c = acc.power
    luts = LUT_PER_MAC[precision] + LUT_MAC_LUTS[precision]
    parts = mac_pj_parts(c, precision, "lut")
    assert parts == {"dsp": 0.0, "logic": luts * c.lut_pj_per_cycle,
                     "clock": luts * c.clock_pj_per_lut_cycle}
    assert acc.energy.mac_pj == pytest.approx(sum(parts.values()))
    # same schedule, only the MAC price differs
    dsp = board(pe_array={"precision": precision})
    a, b = hwmodels.simulate(LAYER, dsp), hwmodels.simulate(LAYER, acc)
    assert a.total_cycles == b.total_cycles and a.executed_macs == b.executed_macs
    assert b.energy_pj["mac"] == pytest.approx(a.energy_pj["mac"] * acc.energy.mac_pj
                                               / dsp.energy.mac_pj)
    assert {k: v for k, v in b.energy_pj.items() if k != "mac"} == \
        {k: v for k, v in a.energy_pj.items() if k != "mac"}


def test_lut_round_trips_and_fp16_has_no_lut_figure():
    acc = board(pe_array={"precision": "w4a8"}, mac_impl="lut")
    data = {k: v for k, v in acc.to_dict().items() if k != "source"}
    again = hwmodels.accelerator_from_dict(data, "again")
    assert again.mac_impl == "lut" and again.energy == acc.energy
    with pytest.raises(BoardError, match="mac_impl: lut has no LUT-MAC figure for fp16"):
        board(pe_array={"precision": "fp16"}, mac_impl="lut")
    with pytest.raises(BoardError, match="mac_impl"):
        board(mac_impl="bram")
    with pytest.raises(ValueError, match="no LUT-MAC figure"):
        luts_per_mac("fp16", "lut")


@pytest.mark.parametrize("command", [["simulate-gemm"], ["simulate", "--model", "minilm-l6",
                                                         "--seq-len", "32"]])
def test_cli_mac_impl_reaches_the_model(command):
    import json

    from click.testing import CliRunner

    from codesign.cli import main

    def run(*extra):
        res = CliRunner().invoke(main, [*command, "--precision", "w4a8", *extra, "--json"])
        assert res.exit_code == 0, res.output
        return json.loads(res.output)

    plain, dsp, lut = run(), run("--mac-impl", "dsp"), run("--mac-impl", "lut")
    assert plain == dsp and plain["precision"]["mac_impl"] == "dsp"
    acc = board(pe_array={"precision": "w4a8"}, mac_impl="lut")
    assert lut["precision"]["array_dsp"] == 0
    assert lut["precision"]["array_lut"] == 1024 * (30 + 68)
    assert lut["resources"]["dsp"]["used"] == 32 and lut["cycles"] == plain["cycles"]
    assert lut["precision"]["mac_pj"] == acc.energy.mac_pj
