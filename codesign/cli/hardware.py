"""Hardware-model commands: `codesign simulate-gemm` (one GEMM) and `codesign simulate` (a whole
encoder, optionally with block masks). No torch: both import hwmodels and codesign.workload only.
"""
from __future__ import annotations

import click

from codesign.cli.common import CodesignError, block_option


def _hw_board(board: str, overrides: dict):
    import hwmodels

    try:
        return hwmodels.load_board(board, overrides)
    except ValueError as err:  # BoardError, ResourceError: already one line
        raise CodesignError(str(err)) from None


def _hw_summary(report) -> dict:
    """The JSON summary keys shared by simulate-gemm and simulate."""
    return {
        "cycles": report.total_cycles, "latency_ms": report.latency_ms,
        "compute_cycles": report.compute_cycles, "fill_drain_cycles": report.fill_drain_cycles,
        "stall_cycles": report.stall_cycles, "index_overhead_cycles": report.index_overhead_cycles,
        "vector_cycles": report.vector_cycles, "dram_bytes": report.dram_bytes,
        "index_bytes": report.index_bytes, "energy_pj": report.total_energy_pj,
        "energy_mj": report.energy_mj, "energy_pj_by_component": report.energy_pj,
        "utilization": report.utilization, "effective_utilization": report.effective_utilization,
        "load_imbalance": report.load_imbalance, "resources": report.resources,
        "fits": report.fits, "engine": report.engine, "hw_source": report.hw_source,
    }


def _dataflow_overrides(dataflow: str | None) -> dict:
    """The board override of --dataflow (None: the board's): one dataflow or a plan per op
    type, parsed once here (hwmodels.dataflow); CodesignError naming the flag and the fix."""
    if not dataflow:
        return {}
    from hwmodels.dataflow import DataflowPlan

    try:
        return {"dataflow": str(DataflowPlan.parse(dataflow))}
    except ValueError as err:
        raise CodesignError(f"--dataflow: {err}") from None


def _sparse_format_options(fn):
    fn = click.option(
        "--gather-derating", type=click.Choice(["off", "estimate"]), default=None,
        help="Lower the clock for a wide compaction crossbar (its mux levels): off, or "
             "estimate (0.5 ns per 32:1 mux level beyond the first, an estimate; see "
             "docs/hardware.md). Default: the board's (off).")(fn)
    fn = click.option(
        "--gather-block-rows", type=click.IntRange(min=1), default=None,
        help="Smallest block height (output rows) the compaction gather must serve: fewer "
             "PE-column groups, a cheaper gather (default: the board's, 1 = worst case).")(fn)
    fn = click.option(
        "--gather", type=click.Choice(["crossbar", "replicate"]), default=None,
        help="How compaction feeds each PE-column group its inputs: a crossbar (LUTs) or "
             "replicated input buffers (BRAM). Default: the board's.")(fn)
    return click.option(
        "--index-format", default=None,
        help="How compaction stores its indices: block (one 2-byte index per kept block), "
             "bitmap (one bit per block), nm or nm:M (N:M offsets, ceil(log2 M) bits per "
             "slot; nm = nm:4). Default: the board's (block).")(fn)


def _sparse_overrides(index_format: str | None, gather: str | None,
                      gather_block_rows: int | None, gather_derating: str | None = None) -> dict:
    """The board overrides of --index-format / --gather / --gather-block-rows /
    --gather-derating (None: the board's value)."""
    given = {"index_format": index_format, "gather": gather,
             "gather_block_rows": gather_block_rows, "gather_derating": gather_derating}
    return {key: value for key, value in given.items() if value is not None}


def _pipeline_overrides(weight_preload: str | None, vector_overlap: str | None) -> dict:
    """The board overrides of --weight-preload / --vector-overlap (None: the board's value)."""
    out: dict = {}
    if weight_preload:
        out["weight_preload"] = weight_preload
    if vector_overlap:
        out["vector_overlap"] = vector_overlap
    return out


#: the --precision choices: the per-operand names and the old aliases (hwmodels.accelerator)
PRECISION_CHOICES = ("w4a8", "w8a8", "w8a16", "w16a16", "fp16", "int8", "int16")


def _precision_overrides(precision: str | None, mac_impl: str | None = None) -> dict:
    """The board overrides of --precision and --mac-impl (None: the board's)."""
    out: dict = {"pe_array": {"precision": precision}} if precision else {}
    return {**out, "mac_impl": mac_impl} if mac_impl else out


def _precision_summary(acc) -> dict:
    """What the array's precision costs (hwmodels.resources.precision_cost), for the JSON."""
    from dataclasses import asdict

    from hwmodels.resources import precision_cost

    return dict(asdict(precision_cost(acc)), mac_pj=acc.energy.mac_pj)


def _precision_line(acc) -> str:
    from hwmodels.resources import precision_cost

    return f"  precision      {precision_cost(acc).line()}, {acc.energy.mac_pj:.3g} pJ/MAC"


def _hw_common(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(fn)
    fn = click.option("--precision", type=click.Choice(PRECISION_CHOICES), default=None,
                      help="Weight/activation bits of the array: w4a8, w8a8, w8a16, w16a16, "
                           "fp16 (int8 = w8a8, int16 = w16a16). Default: the board's.")(fn)
    fn = click.option("--mac-impl", type=click.Choice(["dsp", "lut"]), default=None,
                      help="How the array's MACs are built: dsp (DSP48E2 slices) or lut "
                           "(multipliers and accumulators in LUTs, no array DSP). Default: the "
                           "board's (dsp).")(fn)
    fn = click.option("--vector-overlap", type=click.Choice(["none", "fused"]), default=None,
                      help="none: vector ops run after their GEMM; fused: overlapped with it "
                           "(default: the board's).")(fn)
    fn = click.option("--weight-preload", type=click.Choice(["serial", "overlapped"]),
                      default=None,
                      help="serial: SCALE-Sim's counting (preload + skew every fold); "
                           "overlapped: double-buffered PE registers (default: the board's).")(fn)
    fn = click.option("--dataflow", default=None, metavar="DF|PLAN",
                      help="ws or os for every GEMM, or a plan per op type, e.g. "
                           "projections=ws,attention=os or ws,qk=os (selectors: projections, "
                           "ffn, attention and the roles q k v attn_out ffn_in ffn_out qk av; "
                           "a bare ws/os covers the ops not named). Default: the board's.")(fn)
    fn = click.option("--engine", type=click.Choice(["analytical", "event"]),
                      default="analytical", show_default=True,
                      help="analytical: closed forms (fast); event: simpy tile-level "
                           "simulation (the reference).")(fn)
    fn = click.option("--board", default="zcu102", show_default=True,
                      help="Board preset (zcu102, ultra96v2) or a board YAML file.")(fn)
    return fn


@click.command("simulate-gemm")
@click.option("--m", "m", type=click.IntRange(min=1), default=128, show_default=True,
              help="Rows of X and Y (tokens x batch).")
@click.option("--k", "k", type=click.IntRange(min=1), default=768, show_default=True,
              help="Reduction dim = the weight's in_features.")
@click.option("--n", "n", type=click.IntRange(min=1), default=768, show_default=True,
              help="Output dim = the weight's out_features.")
@click.option("--array", default=None, help="PE array RxC, e.g. 32x32 (default: the board's).")
@click.option("--block", default=None,
              help="Weight block shape BHxBW (rows = output features); with --density makes a "
                   "random block mask.")
@click.option("--density", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Fraction of blocks kept (with --block).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random mask.")
@click.option("--sparse-strategy", type=click.Choice(["dense", "tile-skip", "compact"]),
              default=None, help="How the array exploits the mask (default: the board's).")
@_sparse_format_options
@_hw_common
def simulate_gemm(m, k, n, array, dataflow, block, density, seed, sparse_strategy, index_format,
                  gather, gather_block_rows, gather_derating, board, engine, weight_preload,
                  vector_overlap, mac_impl, precision, as_json) -> None:
    """Simulate one GEMM Y[M,N] = X[M,K] @ W[K,N] (W = weight.T), dense or block-sparse."""
    import json

    import hwmodels

    overrides = {**_pipeline_overrides(weight_preload, vector_overlap),
                 **_precision_overrides(precision, mac_impl)}
    if array:
        try:
            rows, cols = hwmodels.parse_dims(array, "PE array")
        except ValueError as err:
            raise CodesignError(f"--array: {err}") from None
        overrides.setdefault("pe_array", {}).update(rows=rows, cols=cols)
    overrides.update(_dataflow_overrides(dataflow))
    if sparse_strategy:
        overrides["sparse_strategy"] = sparse_strategy
    overrides.update(_sparse_overrides(index_format, gather, gather_block_rows, gather_derating))
    acc = _hw_board(board, overrides)
    workload = hwmodels.gemm_workload(m, k, n)
    masks = None
    if block:
        shape = block_option(block)
        masks = {"gemm.weight": hwmodels.BlockMask.random(shape, (n, k), density, seed)}
    report = hwmodels.simulate(workload, acc, masks, engine=engine)
    if as_json:
        out = _hw_summary(report)
        out.update(m=m, k=k, n=n, array=f"{acc.pe_array.rows}x{acc.pe_array.cols}",
                   dataflow=str(acc.dataflow_plan), clock_mhz=report.clock_mhz,
                   weight_preload=acc.weight_preload,
                   vector_overlap=acc.vector_overlap, board=acc.name, block=block,
                   density=masks["gemm.weight"].density if masks else 1.0,
                   sparse_strategy=acc.sparse_strategy if masks else "dense",
                   index_format=acc.index_format, load_imbalance=report.load_imbalance,
                   tiles_skipped=report.ops[0].tiles_skipped, tiles_total=report.ops[0].tiles_total,
                   precision=_precision_summary(acc))
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(report.table(per_op=False))
    click.echo(_precision_line(acc))
    op = report.ops[0]
    click.echo(f"  array {acc.pe_array.rows}x{acc.pe_array.cols} {op.dataflow}, "
               f"{op.folds:,} folds"
               + (f", mask {block} density {op.density:.3f} ({op.strategy}: "
                  f"{op.tiles_skipped:,}/{op.tiles_total:,} tiles skipped)" if masks else ""))


@click.command("simulate")
@click.option("--model", default="bert-base", show_default=True,
              help="bert-base, distilbert, minilm-l6, or a Hugging Face checkpoint folder "
                   "(only its config.json is read).")
@click.option("--seq-len", type=click.IntRange(min=1), default=128, show_default=True,
              help="Tokens per sequence.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sequences per inference (weight GEMMs get M = seq-len x batch).")
@click.option("--masks", "masks_path", type=click.Path(dir_okay=False), default=None,
              help="Block-mask file (safetensors, keys = checkpoint parameter names).")
@_sparse_format_options
@_hw_common
def simulate_model(model, seq_len, batch, masks_path, index_format, gather, gather_block_rows,
                   gather_derating, board, engine, dataflow, weight_preload, vector_overlap,
                   mac_impl, precision, as_json) -> None:
    """Simulate a whole BERT-family encoder (optionally with block masks) on a board."""
    import json

    import hwmodels

    from codesign.workload import ModelConfigError, encoder_workload, model_config

    try:
        config = model_config(model)
    except ModelConfigError as err:
        raise CodesignError(f"--model {err}") from None
    overrides = _pipeline_overrides(weight_preload, vector_overlap)
    overrides.update(_sparse_overrides(index_format, gather, gather_block_rows, gather_derating))
    overrides.update(_precision_overrides(precision, mac_impl))
    overrides.update(_dataflow_overrides(dataflow))
    acc = _hw_board(board, overrides)
    masks = None
    if masks_path:
        from codesign.masks import load_masks

        try:
            masks = dict(load_masks(masks_path).masks)
        except (OSError, ValueError) as err:
            raise CodesignError(f"--masks {masks_path}: {err}") from None
    try:
        workload = encoder_workload(config, seq_len, batch, mask_names=masks, name=model)
        report = hwmodels.simulate(workload, acc, masks, engine=engine)
    except ValueError as err:
        raise CodesignError(str(err)) from None
    if as_json:
        out = _hw_summary(report)
        out.update(model=model, seq_len=seq_len, batch=batch, board=acc.name,
                   dataflow=str(acc.dataflow_plan), clock_mhz=report.clock_mhz,
                   weight_preload=acc.weight_preload, vector_overlap=acc.vector_overlap,
                   masks=masks_path, precision=_precision_summary(acc), report=report.to_dict())
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(report.table())
    click.echo(_precision_line(acc))
