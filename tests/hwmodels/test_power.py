"""The FPGA power model (hwmodels.power, energy_model: fpga) and the old table kept as a mode."""
from __future__ import annotations

import math

import pytest
import yaml

import hwmodels
from hw_helpers import board
from hwmodels.board_loader import BOARDS_DIR
from hwmodels.board_schema import BoardError
from hwmodels.energy import HOROWITZ_45NM, price
from hwmodels.power import (ACCESS_BYTES, COEFFICIENTS, mac_pj_parts, power_mw,
                            vector_pj_per_element)
from hwmodels.resources import LUT_PER_MAC

LAYER = hwmodels.builtin_workload("minilm-l6", seq_len=64)


def _dynamic_mw(acc):
    rep = hwmodels.simulate(LAYER, acc)
    return power_mw(rep.energy_pj, rep.latency_ms)["dynamic"], rep


def test_presets_use_the_fpga_model_with_every_coefficient_sourced():
    for name in hwmodels.list_boards():
        acc = hwmodels.load_board(name)
        assert acc.energy_model == "fpga"
        assert tuple(k for k, _ in acc.power.sources) == COEFFICIENTS
        for key in COEFFICIENTS:
            src = acc.power.source(key)
            # a source names a document/measurement or says it is an estimate
            assert "estimate" in src or "report" in src or "DS891" in src, (name, key, src)


def test_derived_table_is_the_coefficients_per_action():
    acc = board()
    c, t = acc.power, acc.energy
    luts = LUT_PER_MAC["int8"]
    parts = mac_pj_parts(c, "int8")
    assert parts == {"dsp": c.dsp_pj_per_cycle / 2, "logic": luts * c.lut_pj_per_cycle,
                     "clock": luts * c.clock_pj_per_lut_cycle}
    assert t.mac_pj == pytest.approx(sum(parts.values()))
    assert t.buffer_read_pj_per_byte == t.buffer_write_pj_per_byte == \
        c.bram36_pj_per_access / ACCESS_BYTES
    v = acc.vector_unit
    assert t.vector_pj == pytest.approx(v.dsp_per_lane * c.dsp_pj_per_cycle + v.lut_per_lane
                                        * (c.lut_pj_per_cycle + c.clock_pj_per_lut_cycle))
    assert t.static_mw == c.part_static_mw
    # int16 takes a whole DSP per MAC
    assert mac_pj_parts(c, "int16")["dsp"] == c.dsp_pj_per_cycle


def test_uram_buffers_are_priced_with_the_uram_figure():
    acc = board(buffers={"weight": {"memory": "uram"}})
    t = acc.energy
    assert t.uram_buffers == ("weight",)
    counts = hwmodels.ActionCounts(weight_buffer_read_bytes=100, input_buffer_read_bytes=100)
    pj = price(counts, t)
    assert pj["weight_buffer"] == pytest.approx(100 * acc.power.uram_pj_per_access / 8)
    assert pj["input_buffer"] == pytest.approx(100 * acc.power.bram36_pj_per_access / 8)


@pytest.mark.parametrize("small,big", [((16, 16), (32, 32)), ((32, 32), (64, 32))])
def test_dynamic_power_grows_with_the_array(small, big):
    p_small, _ = _dynamic_mw(board(pe_array={"rows": small[0], "cols": small[1]}))
    p_big, _ = _dynamic_mw(board(pe_array={"rows": big[0], "cols": big[1]}))
    assert p_big > p_small


def test_dynamic_power_grows_with_the_clock_and_dynamic_energy_does_not_change():
    p100, r100 = _dynamic_mw(board(clock_mhz=100))
    p200, r200 = _dynamic_mw(board(clock_mhz=200))
    assert p200 > p100
    dyn = lambda r: sum(v for k, v in r.energy_pj.items() if k != "static")  # noqa: E731
    # the same work costs the same switching energy; only its duration (static) changes
    # (DRAM stalls differ with the clock, so bytes are equal and the dynamic energy too)
    assert dyn(r100) == pytest.approx(dyn(r200))
    assert r100.energy_pj["static"] > r200.energy_pj["static"]


def test_static_part_is_part_static_power_times_latency():
    acc = board()
    rep = hwmodels.simulate(LAYER, acc)
    # mW x ms = uJ = 1e6 pJ
    assert rep.energy_pj["static"] == pytest.approx(acc.power.part_static_mw * rep.latency_ms * 1e6)


def test_energy_varies_with_the_design_not_only_with_latency():
    """Energy / latency (mean power) differs between designs: the energy axis has a signal of
    its own (with the old table it was ~static power for every design)."""
    powers = []
    for ov in ({}, {"pe_array": {"rows": 16, "cols": 16}},
               {"buffers": {"input": {"capacity_bytes": 32768},
                            "weight": {"capacity_bytes": 32768}}}):
        rep = hwmodels.simulate(LAYER, board(**ov))
        powers.append(rep.energy_mj / rep.latency_ms)
    assert max(powers) / min(powers) > 1.2


def test_sparsity_lowers_dynamic_energy():
    wl = hwmodels.gemm_workload(128, 768, 768)
    acc = board()
    mask = hwmodels.BlockMask.random((32, 32), (768, 768), 0.25, seed=0)
    dense = hwmodels.simulate(wl, acc)
    sparse = hwmodels.simulate(wl, acc, {"gemm.weight": mask})
    assert sparse.energy_pj["mac"] < dense.energy_pj["mac"]
    assert sparse.total_energy_pj < dense.total_energy_pj


def test_energy_at_least_macs_and_mandatory_accesses():
    wl = hwmodels.gemm_workload(96, 256, 320)
    for ov in ({}, {"dataflow": "os"}, {"pe_array": {"rows": 8, "cols": 16}}):
        acc = board(**ov)
        rep = hwmodels.simulate(wl, acc)
        mandatory = sum(o.mandatory_dram_bytes for o in rep.ops)
        floor = rep.executed_macs * acc.energy.mac_pj + mandatory * acc.energy.dram_pj_per_byte
        assert rep.total_energy_pj >= floor


def test_given_energy_figures_win_over_derived_ones():
    acc = board(energy={"static_mw": 0, "vector_pj": 2.5})
    assert acc.energy.static_mw == 0 and acc.energy.vector_pj == 2.5
    assert acc.energy.mac_pj == board().energy.mac_pj


def test_table_mode_reproduces_the_old_pricing():
    acc = board(energy_model="table", energy={**HOROWITZ_45NM, "static_mw": 3000})
    t = acc.energy
    assert (t.mac_pj, t.buffer_read_pj_per_byte, t.vector_pj, t.static_mw) == (0.3, 1.25, 1.5, 3000)
    rep = hwmodels.simulate(hwmodels.gemm_workload(64, 64, 64), acc)
    assert rep.energy_pj["mac"] == 64 ** 3 * 0.3
    assert rep.energy_pj["static"] == pytest.approx(3000 * rep.latency_ms * 1e6)


def _write(tmp_path, edit):
    data = yaml.safe_load((BOARDS_DIR / "zcu102.yaml").read_text())
    edit(data)
    path = tmp_path / "myboard.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_missing_power_coefficient_is_one_line_naming_file_and_key(tmp_path):
    path = _write(tmp_path, lambda d: d["power"].pop("dsp_pj_per_cycle"))
    with pytest.raises(BoardError) as err:
        hwmodels.load_board(path)
    msg = str(err.value)
    assert "\n" not in msg and "myboard.yaml" in msg and "power.dsp_pj_per_cycle" in msg


def test_a_coefficient_without_a_source_is_rejected(tmp_path):
    path = _write(tmp_path, lambda d: d["power"]["lut_pj_per_cycle"].pop("source"))
    with pytest.raises(BoardError, match=r"power\.lut_pj_per_cycle\.source"):
        hwmodels.load_board(path)


def test_fpga_without_power_section_and_table_without_figures_are_one_line(tmp_path):
    with pytest.raises(BoardError, match=r"myboard\.yaml: power: missing"):
        hwmodels.load_board(_write(tmp_path, lambda d: d.pop("power")))
    with pytest.raises(BoardError, match=r"energy\.mac_pj: missing"):
        hwmodels.load_board(_write(tmp_path, lambda d: d.update(energy_model="table")))


def test_to_dict_round_trips_the_power_model():
    acc = board()
    data = {k: v for k, v in acc.to_dict().items() if k != "source"}
    again = hwmodels.accelerator_from_dict(data, "again")
    assert again.energy == acc.energy and again.power == acc.power


def test_power_mw_splits_dynamic_and_static():
    p = power_mw({"mac": 2e9, "static": 1e9}, latency_ms=1.0)
    assert p == {"mac": 2000.0, "static": 1000.0, "dynamic": 2000.0, "total": 3000.0}
    assert power_mw({"mac": 1.0}, 0.0) == {}
    assert math.isclose(vector_pj_per_element(board().power, board().vector_unit),
                        board().energy.vector_pj)
