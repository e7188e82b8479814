"""Pruning commands: `codesign prune` (a GLUE task, a block shape, a ratio -> a pruned checkpoint
and its masks, through codesign.pruning.prune_checkpoint) and `codesign masks` (the masks and
statistics of any checkpoint, through codesign.masks). torch is imported inside `prune` only.
"""
from __future__ import annotations

import click

from codesign.cli.common import CodesignError, block_option, first_line


@click.command("prune")
@click.option("--model", default="minilm-l6", show_default=True,
              help="Built-in name (minilm-l6), local checkpoint folder, or hub id (online only).")
@click.option("--task", required=True, help="GLUE task: sst2, cola, mrpc, stsb, rte.")
@click.option("--block", "block", required=True,
              help="Block shape BHxBW in the weight's orientation (rows = output features), "
                   "e.g. 16x16, 256x1; shapes that do not divide are zero-padded.")
@click.option("--ratio", type=float, default=None,
              help="Fraction of blocks pruned in every prunable matrix (compression 1/(1-r)); "
                   "required unless --latency-ms / --speedup.")
@click.option("--ratios", "ratios_file", type=click.Path(dir_okay=False), default=None,
              help="YAML/JSON per-layer ratios {layer|role|name|default: r}; --ratio is the "
                   "default.")
@click.option("--method", type=click.Choice(["rgl", "oneshot", "calibrated"]), default="rgl",
              show_default=True,
              help="rgl: reweighted group Lasso training, hard prune, masked retraining; "
                   "oneshot: dense fine-tuning, block-magnitude prune, optional retraining; "
                   "calibrated: dense fine-tuning, block saliency + least-squares re-fit "
                   "(uniform ratio, or allocated to --latency-ms / --speedup).")
@click.option("--latency-ms", type=float, default=None,
              help="calibrated: allocate the blocks so the simulated latency on --board is at "
                   "most this many ms.")
@click.option("--speedup", type=float, default=None,
              help="calibrated: allocate the blocks for this simulated speedup over the same "
                   "accelerator's dense run.")
@click.option("--board", default="zcu102", show_default=True,
              help="With a latency target: board preset (zcu102, ultra96v2) or a board YAML.")
@click.option("--set", "set_items", multiple=True, metavar="KEY=VALUE",
              help="With a latency target: board override, dotted key, YAML value, e.g. "
                   "--set sparse_strategy=compact --set pe_array.rows=16 (repeatable).")
@click.option("--balanced", is_flag=True,
              help="oneshot / calibrated: PE-balanced blocks: every block row of a group that "
                   "one column tile of --board's PE array (with --set) runs side by side keeps "
                   "the same count (compaction load imbalance 1.0); same count per matrix.")
@click.option("--sim-seq-len", type=click.IntRange(min=1), default=128, show_default=True,
              help="With a latency target: tokens per sequence of the simulated workload.")
@click.option("--calib-examples", type=click.IntRange(min=1), default=1024, show_default=True,
              help="calibrated: unlabelled training sentences of the re-fit (and of the "
                   "saliency, but fisher reads the first 256).")
@click.option("--saliency", type=click.Choice(["fisher", "obs", "norm"]), default="fisher",
              show_default=True, help="calibrated: block saliency (the label-free Fisher of "
                                      "each block's mask, the OBS proxy, or the L2 norm).")
@click.option("--scope", type=click.Choice(["matrix", "global"]), default=None,
              help="calibrated at a ratio: every matrix loses the ratio (matrix), or the least "
                   "salient blocks of the whole model go (global; needs --saliency fisher) "
                   "[default: global for fisher, matrix otherwise].")
@click.option("--min-density", type=click.FloatRange(min=0.0, max=1.0, max_open=True),
              default=None,
              help="The fraction of its blocks every matrix keeps at least (0: no floor), with "
                   "a latency target or the global ranking [default: global 0.05; latency "
                   "target 0 with --saliency fisher, 0.25 with obs or norm].")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder for the pruned checkpoint (save_pretrained) and masks.safetensors.")
@click.option("--glue-dir", type=click.Path(file_okay=False), default=None,
              help="GLUE folder (official TSV layout); default $CODESIGN_GLUE_DIR.")
@click.option("--examples", type=int, default=None,
              help="Training examples (seeded random subset); default the whole train split.")
@click.option("--epochs", type=int, default=3, show_default=True,
              help="Stage-1 epochs (RGL training, or dense fine-tuning for oneshot; 0 = none).")
@click.option("--retrain-epochs", type=int, default=None,
              help="Masked retraining epochs [default: 3 for rgl, 0 for oneshot].")
@click.option("--lr", type=float, default=2e-5, show_default=True, help="Stage-1 learning rate.")
@click.option("--retrain-lr", type=float, default=2e-5, show_default=True,
              help="Masked retraining learning rate.")
@click.option("--lambda", "lambda_", type=float, default=1e-4, show_default=True,
              help="RGL penalty weight for every matrix.")
@click.option("--lambdas", "lambdas_file", type=click.Path(dir_okay=False), default=None,
              help="YAML/JSON per-layer lambdas {layer|role|name|default: value}.")
@click.option("--eps", type=float, default=1e-3, show_default=True,
              help="RGL reweighting: alpha = 1/(||W_g|| + eps).")
@click.option("--milestones", default="4,8,12,16", show_default=True,
              help="Epochs (or steps, with --reweight-unit step) at which alpha is recomputed.")
@click.option("--reweight-unit", type=click.Choice(["epoch", "step"]), default="epoch",
              show_default=True, help="Unit of --milestones and --reweight-every.")
@click.option("--reweight-every", type=int, default=None,
              help="Also recompute alpha every N epochs/steps (short runs never reach the "
                   "milestone epochs).")
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--max-seq-len", type=int, default=128, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--eval-examples", type=int, default=None,
              help="Dev examples to evaluate the pruned model on (default all; 0 = skip).")
@click.option("--threads", type=int, default=None, help="torch threads (default: torch's).")
@click.option("--progress/--no-progress", default=True, show_default=True,
              help="Training progress bars (stderr).")
def prune_cmd(model, task, block, ratio, ratios_file, method, latency_ms, speedup, board,
              set_items, balanced, sim_seq_len, calib_examples, saliency, scope, min_density,
              out_dir, glue_dir, examples, epochs, retrain_epochs, lr, retrain_lr, lambda_,
              lambdas_file, eps, milestones, reweight_unit, reweight_every, batch_size, max_seq_len, seed,
              eval_examples, threads, progress):
    """Block-prune a BERT-family model on a GLUE task; write the checkpoint and its masks.

    Writes OUT/ (config.json, model.safetensors, tokenizer files: loadable with
    AutoModelForSequenceClassification.from_pretrained), OUT/masks.safetensors and
    OUT/prune.json (recipe, per-stage seconds, dev metric).
    """
    from codesign.pruning import read_per_matrix_file

    block_shape = block_option(block)
    target = _latency_target(method, ratio, latency_ms, speedup, board, set_items, sim_seq_len,
                             balanced)
    balance = _balance(method, target, board, set_items) if balanced else None
    try:
        ratio_spec = ratio if ratios_file is None else read_per_matrix_file(
            ratios_file, default=ratio, what="--ratios")
        lambda_spec = None if lambdas_file is None else read_per_matrix_file(
            lambdas_file, default=lambda_, what="--lambdas")
    except ValueError as err:
        raise CodesignError(str(err)) from None
    try:
        marks = tuple(int(x) for x in milestones.split(",") if x.strip())
    except ValueError:
        raise CodesignError(f"--milestones {milestones!r}: write integers separated by commas, "
                            "e.g. 4,8,12,16") from None
    if ratio is not None and not 0.0 <= ratio <= 1.0:
        raise CodesignError(f"--ratio {ratio}: must lie in [0, 1]")
    if retrain_epochs is None:
        retrain_epochs = 3 if method == "rgl" else 0
    try:
        from codesign.pruning import prune_checkpoint
        from codesign.pruning.checkpoint import CalibrationConfig
        from codesign.pruning.rgl import RGLConfig
        from codesign.pruning.train import TrainConfig

        common = dict(batch_size=batch_size, max_seq_len=max_seq_len, seed=seed, threads=threads)
        rgl = None if method != "rgl" else RGLConfig(
            lambda_=lambda_, lambdas=lambda_spec, eps=eps, milestones=marks,
            reweight_every=reweight_every, schedule_unit=reweight_unit)
        done = prune_checkpoint(
            model=model, task=task, block_shape=block_shape, ratio=ratio_spec, method=method,
            out_dir=out_dir, train=TrainConfig(epochs=epochs, lr=lr, **common),
            retrain=TrainConfig(epochs=retrain_epochs, lr=retrain_lr, **common), rgl=rgl,
            glue_dir=glue_dir, examples=examples, eval_examples=eval_examples,
            progress=progress, target=target,
            calibration=CalibrationConfig(
                examples=calib_examples, saliency=saliency, scope=scope,
                **({} if min_density is None else {"min_density": min_density})),
            **({"balance": balance} if balance is not None else {}))
    except ValueError as err:  # CheckpointError, GlueDataError, MaskFileError are ValueErrors
        raise CodesignError(first_line(err)) from None
    _print_pruned(done, ratio)
    if balance is not None:
        click.echo(f"PE-balanced blocks: groups of the {balance.cols} PE columns of {board}"
                   + (f" with {' '.join(set_items)}" if set_items else ""))


def _latency_target(method, ratio, latency_ms, speedup, board, set_items, seq_len,
                    balanced=False):
    """The LatencyTarget of the options (None without --latency-ms / --speedup)."""
    if latency_ms is None and speedup is None:
        if ratio is None:
            raise CodesignError("give --ratio, or --latency-ms / --speedup (method calibrated)")
        if set_items and not balanced:
            raise CodesignError("--set applies to the latency target or --balanced: add "
                                "--latency-ms, --speedup or --balanced")
        return None
    if latency_ms is not None and speedup is not None:
        raise CodesignError("give one target: --latency-ms or --speedup, not both")
    if method != "calibrated":
        raise CodesignError(f"--latency-ms / --speedup need --method calibrated (got {method})")
    if latency_ms is not None and not latency_ms > 0:
        raise CodesignError(f"--latency-ms {latency_ms}: must be > 0")
    if speedup is not None and not speedup >= 1:
        raise CodesignError(f"--speedup {speedup}: must be >= 1 (over the dense run)")
    from codesign.pruning.checkpoint import LatencyTarget

    return LatencyTarget(board=board, overrides=parse_set_items(set_items),
                         latency_ms=latency_ms, speedup=speedup, seq_len=seq_len)


def _balance(method, target, board, set_items):
    """The PEBalance of --balanced: the PE array of --board with the --set overrides."""
    if method not in ("oneshot", "calibrated"):
        raise CodesignError(f"--balanced applies to --method oneshot or calibrated (got {method})")
    if target is not None:
        raise CodesignError("--balanced goes with --ratio, not with --latency-ms / --speedup "
                            "(the latency-aware allocation levels PE-column groups itself)")
    import hwmodels

    from codesign.pruning.balance import PEBalance

    try:
        return PEBalance.of(hwmodels.load_board(board, parse_set_items(set_items) or None))
    except ValueError as err:
        raise CodesignError(f"--board {board}: {first_line(err)}") from None


def parse_set_items(items) -> dict:
    """`--set a.b=value` items as a nested dict ({"a": {"b": value}}), values read as YAML."""
    import yaml

    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CodesignError(f"--set {item!r}: write KEY=VALUE, e.g. sparse_strategy=compact")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            raise CodesignError(f"--set {item!r}: the value is not valid YAML") from None
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise CodesignError(f"--set {item!r}: {part} is set to a value already")
        node[parts[-1]] = value
    return out


def _print_pruned(done, ratio: float | None) -> None:
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in done.stage_seconds.items())
    click.echo(f"pruned {done.source} ({done.architecture}) on {done.task}: method "
               f"{done.method}, block {done.block_shape}, "
               + (f"ratio {ratio}, " if done.allocation is None else "latency-aware, ")
               + f"{done.train_examples} training examples")
    a = done.allocation
    if a is not None:
        click.echo(f"simulated latency {a['latency_ms']:.4f} ms (target {a['target_ms']:.4f} ms"
                   + (f", speedup {a['target_speedup']:g}x" if a["target_speedup"] else "")
                   + f"; dense {a['dense_ms']:.4f} ms, speedup {a['speedup']:.3f}x) on "
                   f"{a['accelerator']}" + (f" with {a['overrides']}" if a["overrides"] else "")
                   + f", seq {a['seq_len']}")
    click.echo(f"stages: {stages}; device {done.devices}")
    click.echo(f"density {done.stats.density:.4f} (block density {done.stats.block_density:.4f}),"
               f" compression {done.stats.compression:.3f}x over {done.n_matrices} matrices")
    if done.dev_metrics is not None:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in done.dev_metrics.items())
        click.echo(f"dev ({done.dev_examples} examples): {shown} "
                   f"[headline: {done.headline_metric}]")
    click.echo(f"wrote {done.checkpoint} (sha256 {done.sha256[:16]}...), "
               f"{done.masks_path}, {done.info_path}")


@click.command("masks")
@click.argument("checkpoint")
@click.option("--block", "block", required=True,
              help="Block shape BHxBW in the weight's orientation, e.g. 16x16, 32x1.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write the extracted masks to this safetensors file.")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as one JSON object.")
@click.option("--include-heads", is_flag=True, help="Also the pooler and classifier matrices.")
def masks_cmd(checkpoint, block, out_path, as_json, include_heads):
    """Extract the block masks of a pruned checkpoint and report their statistics.

    CHECKPOINT: a save_pretrained folder, a single .safetensors/.bin weights file, or a built-in
    model name. A block is pruned where all its weights are exactly zero; kept blocks that still
    hold zeros are reported as partially zero. Prints per-matrix block counts and densities, the
    spread of kept blocks per block-row and block-column (load imbalance), per-layer and overall
    density.
    """
    import json

    block_shape = block_option(block)
    try:
        from codesign.masks import extract_masks, save_masks

        extraction = extract_masks(checkpoint, block_shape, include_heads=include_heads)
        written = None
        if out_path:
            written = save_masks(out_path, extraction.masks, extraction.metadata)
    except ValueError as err:  # CheckpointError / MaskFileError are ValueErrors
        raise CodesignError(first_line(err)) from None
    if as_json:
        payload = extraction.stats.to_dict()
        payload["source_checkpoint"] = extraction.metadata["source_checkpoint"]
        payload["source_sha256"] = extraction.metadata["source_sha256"]
        payload["masks_file"] = None if written is None else str(written)
        click.echo(json.dumps(payload))
        return
    click.echo(f"{checkpoint} (sha256 {extraction.metadata['source_sha256'][:16]}...)")
    click.echo(extraction.stats.table())
    if written is not None:
        click.echo(f"wrote {written}")
