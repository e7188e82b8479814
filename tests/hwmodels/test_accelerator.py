"""Board presets, overrides, one-line YAML errors and the resource fit check."""
from __future__ import annotations

import pytest

import hwmodels
from hwmodels import BoardError, ResourceError, load_board
from hwmodels.resources import estimate


def test_presets_load_and_fit():
    assert {"zcu102", "ultra96v2"} <= set(hwmodels.list_boards())
    for name in hwmodels.list_boards():
        acc = load_board(name)
        assert acc.dram_bytes_per_cycle > 0
    z = load_board("zcu102")
    assert z.board.dsp == 2520 and z.board.bram36 == 912 and z.board.uram == 0
    assert z.dram_bytes_per_cycle == pytest.approx(12.8e9 / 200e6)


def test_overrides_are_nested_and_validated():
    acc = load_board("zcu102", {"pe_array": {"rows": 48}, "dataflow": "os"})
    assert acc.pe_array.rows == 48 and acc.pe_array.cols == 32 and acc.dataflow == "os"
    with pytest.raises(BoardError) as err:
        load_board("zcu102", {"pe_array": {"rows": -3}})
    msg = str(err.value)
    assert "\n" not in msg and "zcu102.yaml" in msg and "pe_array.rows" in msg and "-3" in msg


@pytest.mark.parametrize("text,key", [
    ("pe_aray", "pe_aray"),  # misspelled section
    ("clock_mhz", "clock_mhz"),
    ("rows", "pe_array.rows"),
])
def test_board_yaml_errors_are_one_line_naming_file_and_key(tmp_path, text, key):
    src = (hwmodels.board_loader.BOARDS_DIR / "zcu102.yaml").read_text()
    if text == "pe_aray":
        bad = src.replace("pe_array:", "pe_aray:")
    elif text == "clock_mhz":
        bad = src.replace("clock_mhz: 200", "clock_mhz: fast")
    else:
        bad = src.replace("rows: 32", "rows: 0")
    path = tmp_path / "myboard.yaml"
    path.write_text(bad)
    with pytest.raises(BoardError) as err:
        load_board(str(path))
    msg = str(err.value)
    assert "\n" not in msg and "myboard.yaml" in msg and key in msg


def test_broken_yaml_and_unknown_board(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(BoardError, match=r"b\.yaml.*line"):
        load_board(str(path))
    with pytest.raises(BoardError, match="no such preset"):
        load_board("zcu999")


def test_a_board_file_is_parsed_once_per_content(tmp_path):
    """A sweep loads one board per accelerator choice: the parse is cached per file content,
    each caller gets its own copy, and an edited file is parsed again."""
    src = (hwmodels.board_loader.BOARDS_DIR / "zcu102.yaml").read_text()
    path = tmp_path / "mine.yaml"
    path.write_text(src)
    first = load_board(str(path), {"clock_mhz": 150})  # overrides merge into a copy
    assert first.clock_mhz == 150 and load_board(str(path)).clock_mhz == 200
    path.write_text(src.replace("clock_mhz: 200", "clock_mhz: 250"))
    assert load_board(str(path)).clock_mhz == 250
    path.write_text("name: [unclosed\n")
    with pytest.raises(BoardError, match=r"mine\.yaml.*line"):
        load_board(str(path))


def test_dsp_packing_and_bram_estimate():
    acc = load_board("zcu102")
    est = estimate(acc)
    # 32x32 int8 MACs, two per DSP48E2, + 16 lanes x 2 DSPs
    assert est.dsp == 32 * 32 // 2 + 16 * 2
    # 512 KiB + 512 KiB + 256 KiB of 4 KiB BRAM36
    assert est.bram36 == 128 + 128 + 64
    int16 = load_board("zcu102", {"pe_array": {"precision": "int16"}})
    assert estimate(int16).dsp == 32 * 32 + 32


@pytest.mark.parametrize("overrides,resource", [
    ({"pe_array": {"rows": 64, "cols": 80}}, "DSP"),
    ({"buffers": {"weight": {"capacity_bytes": 4 << 20}}}, "BRAM36"),
    ({"buffers": {"weight": {"capacity_bytes": 1 << 20, "memory": "uram"}}}, "URAM"),
])
def test_resource_check_rejects_over_budget(overrides, resource):
    with pytest.raises(ResourceError) as err:
        load_board("zcu102", overrides)
    msg = str(err.value)
    assert "\n" not in msg and resource in msg and "of" in msg and "%" in msg
    acc = load_board("zcu102", overrides, check_fit=False)  # sweeps can still record fits=False
    rep = hwmodels.simulate(hwmodels.gemm_workload(16, 64, 64), acc)
    assert rep.fits is False


def test_ultra96_rejects_a_zcu102_sized_array():
    with pytest.raises(ResourceError, match="DSP needs"):
        load_board("ultra96v2", {"pe_array": {"rows": 32, "cols": 32}})


def test_hwmodels_imports_only_its_allowed_dependencies():
    import subprocess
    import sys

    code = ("import sys, hwmodels; hwmodels.simulate(hwmodels.gemm_workload(8, 8, 8), "
            "hwmodels.load_board('zcu102'), engine='event');"
            "bad = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'transformers', 'codesign', 'pandas', 'click'}); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)


def test_energy_table_is_replaceable():
    acc = load_board("zcu102", {"energy": {"static_mw": 0, "dram_pj_per_byte": 0}})
    rep = hwmodels.simulate(hwmodels.gemm_workload(64, 64, 64), acc)
    assert rep.energy_pj["static"] == 0 and rep.energy_pj["dram"] == 0
    assert rep.energy_pj["mac"] == pytest.approx(64 ** 3 * acc.energy.mac_pj)


def test_mac_energy_follows_the_array_precision():
    # the presets give one MAC figure per precision; the array's precision picks it
    small = {"rows": 16, "cols": 16}
    figures = {p: load_board("zcu102", {"pe_array": {**small, "precision": p}}).energy.mac_pj
               for p in ("int8", "int16", "fp16")}
    assert figures["int8"] < figures["int16"] < figures["fp16"]
    assert load_board("zcu102", {"energy": {"mac_pj": 0.7}}).energy.mac_pj == 0.7


def test_mac_energy_table_without_the_arrays_precision_is_one_line(tmp_path):
    import yaml

    data = yaml.safe_load(open(hwmodels.board_loader.BOARDS_DIR / "zcu102.yaml"))
    data["energy"]["mac_pj"] = {"int8": 0.3}
    data["pe_array"].update(precision="fp16", rows=8, cols=8)
    path = tmp_path / "fp16board.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(BoardError) as err:
        load_board(path)
    assert "energy.mac_pj" in str(err.value) and "fp16" in str(err.value)
    assert "\n" not in str(err.value)


def test_assess_fit_of_a_design_that_fits():
    acc = load_board("zcu102")
    fit = hwmodels.assess_fit(acc)
    assert fit.fits and fit.problems == () and fit.message == ""
    assert fit.as_dict() == estimate(acc).as_dict(acc)
    assert hwmodels.check_fit(acc) == fit.estimate


def test_assess_fit_names_one_problem_per_over_used_resource():
    # 128x128 fp16: DSP and LUT over budget; a 4 MiB weight buffer: BRAM36 too; URAM unused
    acc = load_board("zcu102", {"pe_array": {"rows": 128, "cols": 128, "precision": "fp16"},
                                "buffers": {"weight": {"capacity_bytes": 4 << 20}}},
                     check_fit=False)
    fit = hwmodels.assess_fit(acc)
    table = fit.as_dict()
    over = [k for k, row in table.items() if row["used"] > row["available"]]
    assert over == ["dsp", "bram36", "lut"]
    assert not fit.fits and len(fit.problems) == len(over)
    for key, problem in zip(over, fit.problems):
        row = table[key]
        assert problem.startswith(f"{key.upper()} needs {row['used']:,} of {row['available']:,} (")
        assert "does not fit" not in problem and "\n" not in problem
    assert fit.message == "; ".join(fit.problems)
    with pytest.raises(ResourceError) as err:
        hwmodels.check_fit(acc)
    assert str(err.value) == (f"zcu102.yaml (with overrides): design does not fit "
                              f"{acc.board.part}: {fit.problems[0]}")
