"""The `codesign` command: parse, call, print.

Heavy imports (torch, transformers, optuna) live inside the commands that need them, so that
`codesign --help` and `codesign simulate-gemm` start in well under a second.
"""
from __future__ import annotations

import click


class CodesignError(click.ClickException):
    """A user-facing one-line error (bad file, bad key, missing data)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="codesign")
def main() -> None:
    """Hardware/algorithm co-design of block-sparse BERT-class transformers."""


# --- hardware model: simulate-gemm, simulate (owned by the hwmodels developer) ---------------


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


def _hw_common(fn):
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")(fn)
    fn = click.option("--engine", type=click.Choice(["analytical", "event"]),
                      default="analytical", show_default=True,
                      help="analytical: closed forms (fast); event: simpy tile-level "
                           "simulation (the reference).")(fn)
    fn = click.option("--board", default="zcu102", show_default=True,
                      help="Board preset (zcu102, ultra96v2) or a board YAML file.")(fn)
    return fn


@main.command("simulate-gemm")
@click.option("--m", "m", type=click.IntRange(min=1), default=128, show_default=True,
              help="Rows of X and Y (tokens x batch).")
@click.option("--k", "k", type=click.IntRange(min=1), default=768, show_default=True,
              help="Reduction dim = the weight's in_features.")
@click.option("--n", "n", type=click.IntRange(min=1), default=768, show_default=True,
              help="Output dim = the weight's out_features.")
@click.option("--array", default=None, help="PE array RxC, e.g. 32x32 (default: the board's).")
@click.option("--dataflow", type=click.Choice(["ws", "os"]), default=None,
              help="Weight or output stationary (default: the board's).")
@click.option("--block", default=None,
              help="Weight block shape BHxBW (rows = output features); with --density makes a "
                   "random block mask.")
@click.option("--density", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Fraction of blocks kept (with --block).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random mask.")
@click.option("--sparse-strategy", type=click.Choice(["dense", "tile-skip", "compact"]),
              default=None, help="How the array exploits the mask (default: the board's).")
@_hw_common
def simulate_gemm(m, k, n, array, dataflow, block, density, seed, sparse_strategy, board, engine,
                  as_json) -> None:
    """Simulate one GEMM Y[M,N] = X[M,K] @ W[K,N] (W = weight.T), dense or block-sparse."""
    import json

    import hwmodels

    overrides: dict = {}
    if array:
        try:
            rows, cols = hwmodels.parse_dims(array, "PE array")
        except ValueError as err:
            raise CodesignError(f"--array: {err}") from None
        overrides["pe_array"] = {"rows": rows, "cols": cols}
    if dataflow:
        overrides["dataflow"] = dataflow
    if sparse_strategy:
        overrides["sparse_strategy"] = sparse_strategy
    acc = _hw_board(board, overrides)
    workload = hwmodels.gemm_workload(m, k, n)
    masks = None
    if block:
        try:
            shape = hwmodels.BlockShape.parse(block)
        except ValueError as err:
            raise CodesignError(f"--block: {err}") from None
        masks = {"gemm.weight": hwmodels.BlockMask.random(shape, (n, k), density, seed)}
    report = hwmodels.simulate(workload, acc, masks, engine=engine)
    if as_json:
        out = _hw_summary(report)
        out.update(m=m, k=k, n=n, array=f"{acc.pe_array.rows}x{acc.pe_array.cols}",
                   dataflow=acc.dataflow, board=acc.name, block=block,
                   density=masks["gemm.weight"].density if masks else 1.0,
                   sparse_strategy=acc.sparse_strategy if masks else "dense",
                   load_imbalance=report.load_imbalance,
                   tiles_skipped=report.ops[0].tiles_skipped, tiles_total=report.ops[0].tiles_total)
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(report.table(per_op=False))
    op = report.ops[0]
    click.echo(f"  array {acc.pe_array.rows}x{acc.pe_array.cols} {acc.dataflow}, "
               f"{op.folds:,} folds"
               + (f", mask {block} density {op.density:.3f} ({op.strategy}: "
                  f"{op.tiles_skipped:,}/{op.tiles_total:,} tiles skipped)" if masks else ""))


@main.command("simulate")
@click.option("--model", default="bert-base", show_default=True,
              help="bert-base, distilbert, minilm-l6, or a Hugging Face checkpoint folder "
                   "(only its config.json is read).")
@click.option("--seq-len", type=click.IntRange(min=1), default=128, show_default=True,
              help="Tokens per sequence.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sequences per inference (weight GEMMs get M = seq-len x batch).")
@click.option("--masks", "masks_path", type=click.Path(dir_okay=False), default=None,
              help="Block-mask file (safetensors, keys = checkpoint parameter names).")
@_hw_common
def simulate_model(model, seq_len, batch, masks_path, board, engine, as_json) -> None:
    """Simulate a whole BERT-family encoder (optionally with block masks) on a board."""
    import json

    import hwmodels

    from codesign.workload import ModelConfigError, encoder_workload, model_config

    try:
        config = model_config(model)
    except ModelConfigError as err:
        raise CodesignError(f"--model {err}") from None
    acc = _hw_board(board, {})
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
                   masks=masks_path, report=report.to_dict())
        click.echo(json.dumps(out, indent=2))
        return
    click.echo(report.table())


# --- pruning and masks: prune, masks (owned by the pruning developer) ------------------------


def _per_matrix_file(path: str | None, default: float, what: str):
    """A number, or a YAML/JSON mapping {layer | role | parameter name | default: value}."""
    if path is None:
        return default
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except OSError as err:
        raise CodesignError(f"{what} file {path}: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise CodesignError(f"{what} file {path}: not valid YAML/JSON "
                            f"({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict) or not all(isinstance(v, (int, float)) for v in data.values()):
        raise CodesignError(f"{what} file {path}: expected a mapping of layer index, role or "
                            "parameter name (or 'default') to a number")
    data.setdefault("default", default)
    return data


def _parse_block_option(text: str):
    from hwmodels import BlockShape

    try:
        return BlockShape.parse(text)
    except ValueError as err:
        raise CodesignError(f"--block: {err}") from None


@main.command("prune")
@click.option("--model", default="minilm-l6", show_default=True,
              help="Built-in name (minilm-l6), local checkpoint folder, or hub id (online only).")
@click.option("--task", required=True, help="GLUE task: sst2, cola, mrpc, stsb, rte.")
@click.option("--block", "block", required=True,
              help="Block shape BHxBW in the weight's orientation (rows = output features), "
                   "e.g. 16x16, 256x1; shapes that do not divide are zero-padded.")
@click.option("--ratio", type=float, required=True,
              help="Fraction of blocks pruned in every prunable matrix (compression 1/(1-r)).")
@click.option("--ratios", "ratios_file", type=click.Path(dir_okay=False), default=None,
              help="YAML/JSON per-layer ratios {layer|role|name|default: r}; --ratio is the "
                   "default.")
@click.option("--method", type=click.Choice(["rgl", "oneshot"]), default="rgl", show_default=True,
              help="rgl: reweighted group Lasso training, hard prune, masked retraining; "
                   "oneshot: dense fine-tuning, block-magnitude prune, optional retraining.")
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
def prune_cmd(model, task, block, ratio, ratios_file, method, out_dir, glue_dir, examples,
              epochs, retrain_epochs, lr, retrain_lr, lambda_, lambdas_file, eps, milestones,
              reweight_unit, reweight_every, batch_size, max_seq_len, seed, eval_examples,
              threads, progress):
    """Block-prune a BERT-family model on a GLUE task; write the checkpoint and its masks.

    Writes OUT/ (config.json, model.safetensors, tokenizer files: loadable with
    AutoModelForSequenceClassification.from_pretrained), OUT/masks.safetensors and
    OUT/prune.json (recipe, per-stage seconds, dev metric).
    """
    import json
    import time

    block_shape = _parse_block_option(block)
    ratio_spec = _per_matrix_file(ratios_file, ratio, "--ratios")
    lambda_spec = _per_matrix_file(lambdas_file, lambda_, "--lambdas")
    try:
        marks = tuple(int(x) for x in milestones.split(",") if x.strip())
    except ValueError:
        raise CodesignError(f"--milestones {milestones!r}: write integers separated by commas, "
                            "e.g. 4,8,12,16") from None
    if not 0.0 <= ratio <= 1.0:
        raise CodesignError(f"--ratio {ratio}: must lie in [0, 1]")
    if retrain_epochs is None:
        retrain_epochs = 3 if method == "rgl" else 0
    try:
        from codesign.checkpoints import load_model
        from codesign.glue import compute_metrics, headline_metric, load_split
        from codesign.masks import mask_statistics
        from codesign.pruning import save_pruned
        from codesign.pruning.rgl import RGLConfig, oneshot_pipeline, rgl_prune
        from codesign.pruning.train import TrainConfig, evaluate

        train_split = load_split(task, "train", glue_dir=glue_dir, limit=examples, seed=seed)
        dev_split = None
        if eval_examples != 0:
            dev_split = load_split(task, "dev", glue_dir=glue_dir, limit=eval_examples,
                                   seed=seed)
        loaded = load_model(model, task=task)
        common = dict(batch_size=batch_size, max_seq_len=max_seq_len, seed=seed, threads=threads)
        stage1 = TrainConfig(epochs=epochs, lr=lr, **common)
        stage3 = TrainConfig(epochs=retrain_epochs, lr=retrain_lr, **common)
        start = time.perf_counter()
        if method == "rgl":
            lambdas = lambda_spec if isinstance(lambda_spec, dict) else None
            rgl = RGLConfig(lambda_=lambda_, lambdas=lambdas, eps=eps, milestones=marks,
                            reweight_every=reweight_every, schedule_unit=reweight_unit)
            result = rgl_prune(loaded.model, loaded.tokenizer, loaded.structure, train_split,
                               block_shape, ratio_spec, rgl=rgl, train=stage1, retrain=stage3,
                               progress=progress)
        else:
            result = oneshot_pipeline(loaded.model, loaded.tokenizer, loaded.structure,
                                      train_split, block_shape, ratio_spec, train=stage1,
                                      retrain=stage3, progress=progress)
        metrics = None
        if dev_split is not None:
            preds = evaluate(loaded.model, loaded.tokenizer, dev_split, max_seq_len=max_seq_len,
                             batch_size=max(64, batch_size))
            metrics = compute_metrics(task, preds, dev_split.labels)
        seconds = time.perf_counter() - start
        loaded.model.to("cpu")
        saved = save_pruned(out_dir, loaded.model, loaded.tokenizer, loaded.structure,
                            result.masks, {
                                "method": method, "ratio": ratio_spec, "task": task,
                                "parent_checkpoint": loaded.source,
                                "parent_sha256": loaded.sha256})
        roles = {n: (layer, r) for n, layer, r in loaded.structure.prunable(
            list(result.masks), include_heads=True)}
        stats = mask_statistics(result.masks, roles=roles)
        info = {"model": loaded.source, "model_sha256": loaded.sha256, "task": task,
                "method": method, "block_shape": block, "ratio": ratio_spec,
                "train_examples": len(train_split), "dev_examples":
                    None if dev_split is None else len(dev_split),
                "stage_seconds": result.stage_seconds, "seconds": seconds,
                "settings": result.settings, "reweight_points": list(result.reweight_points),
                "dev_metrics": metrics, "density": stats.density,
                "compression": stats.compression, "checkpoint_sha256": saved["sha256"]}
        with open(saved["checkpoint"] / "prune.json", "w", encoding="utf-8") as fh:
            json.dump(info, fh, indent=2, default=str)
    except ValueError as err:  # CheckpointError, GlueDataError, MaskFileError are ValueErrors
        raise CodesignError(str(err).splitlines()[0] if str(err) else type(err).__name__) \
            from None
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.stage_seconds.items())
    click.echo(f"pruned {loaded.source} ({loaded.structure.architecture}) on {task}: method "
               f"{method}, block {block}, ratio {ratio}, {len(train_split)} training examples")
    click.echo(f"stages: {stages}; device {_device_of(result)}")
    click.echo(f"density {stats.density:.4f} (block density {stats.block_density:.4f}), "
               f"compression {stats.compression:.3f}x over {len(result.masks)} matrices")
    if metrics is not None:
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        click.echo(f"dev ({len(dev_split)} examples): {shown} "
                   f"[headline: {headline_metric(task)}]")
    click.echo(f"wrote {saved['checkpoint']} (sha256 {saved['sha256'][:16]}...), "
               f"{saved['masks']}, {saved['checkpoint'] / 'prune.json'}")


def _device_of(result) -> str:
    devices = {s.device for s in result.stage_stats.values() if s is not None}
    return ", ".join(sorted(devices)) or "cpu"


@main.command("masks")
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

    block_shape = _parse_block_option(block)
    try:
        from codesign.masks import extract_masks, save_masks

        extraction = extract_masks(checkpoint, block_shape, include_heads=include_heads)
        written = None
        if out_path:
            written = save_masks(out_path, extraction.masks, extraction.metadata)
    except ValueError as err:  # CheckpointError / MaskFileError are ValueErrors
        raise CodesignError(str(err).splitlines()[0] if str(err) else type(err).__name__) \
            from None
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


# --- accuracy (owned by the accuracy developer) ----------------------------------------------


def _parse_recipe_overrides(items: tuple[str, ...]) -> dict:
    import dataclasses as _dc
    import json as _json

    from codesign.accuracy import Recipe

    types = {f.name: f.type for f in _dc.fields(Recipe)}
    out: dict = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or key not in types:
            raise CodesignError(f"--recipe {item!r}: write KEY=VALUE with KEY one of "
                                f"{', '.join(types)}")
        try:
            value = _json.loads(text)
        except ValueError:
            raise CodesignError(f"--recipe {item!r}: VALUE must be a number, null or true/false") from None
        out[key] = value
    return out


@main.command("accuracy")
@click.option("--task", help="GLUE task: sst2, cola, mrpc, stsb, rte (qnli has no train split).")
@click.option("--block", "block", default=None, help="Block shape BHxBW in the weight's "
              "orientation (rows = output features), e.g. 16x16, 256x1; 1x1 = unstructured.")
@click.option("--ratio", type=float, default=0.0, show_default=True,
              help="Fraction of blocks pruned in every encoder matrix (0 = the dense model).")
@click.option("--fidelity", type=click.Choice(["oneshot", "retrain", "rgl"]), default="retrain",
              show_default=True)
@click.option("--model", default="minilm-l6", show_default=True,
              help="Built-in name, checkpoint folder or hub id.")
@click.option("--glue-dir", type=click.Path(file_okay=False), default=None,
              help="GLUE folder (official TSV layout); default $CODESIGN_GLUE_DIR.")
@click.option("--cache", "cache_dir", type=click.Path(), default=None,
              help="Accuracy cache folder (or .sqlite file); default $CODESIGN_CACHE_DIR or "
                   "~/.cache/codesign.")
@click.option("--seed", type=int, default=None, help="Recipe seed (default 0).")
@click.option("--recipe", "recipe_items", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. --recipe retrain_examples=1000 (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--progress", is_flag=True, help="Show training progress bars (stderr).")
@click.option("--export-csv", "export_csv", type=click.Path(dir_okay=False), default=None,
              help="Write every cached measurement to this CSV file and exit.")
def accuracy_cmd(task, block, ratio, fidelity, model, glue_dir, cache_dir, seed, recipe_items,
                 as_json, progress, export_csv):
    """Measure (or read from the cache) the GLUE dev metric of a block-pruned model.

    Prints the dense fine-tuned baseline and the pruned model's metric with their provenance
    (fidelity, recipe, seed, wall time, mask file). A point measured once is served from the
    cache afterwards. `codesign accuracy --export-csv FILE` exports the cache instead.
    """
    import json as _json

    from codesign.accuracy import AccuracyCache, AccuracyError, Recipe, measure
    from codesign.glue import GlueDataError

    try:
        cache = AccuracyCache(cache_dir)
        if export_csv:
            path = cache.export_csv(export_csv)
            click.echo(f"wrote {len(cache)} measurement(s) from {cache.path} to {path}")
            return
        if not task:
            raise CodesignError("--task is required (e.g. --task sst2), or use --export-csv FILE")
        overrides = _parse_recipe_overrides(recipe_items)
        if seed is not None:
            overrides["seed"] = seed
        recipe = Recipe.from_dict(overrides)
        rec = measure(model, task, block, ratio, fidelity, recipe, glue_dir=glue_dir, cache=cache,
                      progress=progress)
    except (AccuracyError, GlueDataError) as err:
        raise CodesignError(str(err)) from None
    except ValueError as err:  # CheckpointError, bad block text from hwmodels.BlockShape
        raise CodesignError(str(err).splitlines()[0] if str(err) else type(err).__name__) from None
    if as_json:
        click.echo(_json.dumps(rec.to_dict(), sort_keys=True))
        return
    r = rec.recipe
    where = "from cache" if rec.from_cache else "measured now"
    block_text = rec.block_shape or "dense"
    click.echo(f"{rec.task} dev {rec.metric} ({rec.dev_examples} examples), model {rec.model}")
    click.echo(f"  dense   {rec.dense:.4f}   fine-tuned on {r.get('dense_examples') or 'all'} "
               f"examples x {r.get('dense_epochs')} epoch(s), seq {r.get('max_seq_len')}, "
               f"{rec.dense_seconds:.1f} s once per task")
    click.echo(f"  pruned  {rec.pruned:.4f}   {block_text}, ratio {rec.ratio:g}, density "
               f"{rec.density:.3f} ({rec.compression:.2f}x), fidelity {rec.fidelity}")
    click.echo(f"  drop    {rec.drop:+.4f}")
    others = {k: round(v, 4) for k, v in rec.metrics.items() if k != rec.metric}
    if others:
        click.echo(f"  other metrics: {others}")
    click.echo(f"  provenance: {rec.source}, seed {rec.seed}, {rec.seconds:.1f} s on "
               f"{rec.device or 'cpu'} ({where}), key {rec.key}")
    click.echo(f"  recipe: {_json.dumps(r, sort_keys=True)}")
    if rec.masks_path:
        click.echo(f"  masks: {rec.masks_path}")


# --- studies: sweep, pareto (owned by the study developer) -----------------------------------


@main.command("sweep")
@click.argument("study_file", metavar="STUDY.yaml", type=click.Path(dir_okay=False))
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Results folder (default: the study's `output`, else results/NAME).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Local worker processes for the hardware simulations.")
@click.option("--dask", "dask_address", default=None, metavar="ADDRESS",
              help="Run the hardware simulations on an existing dask.distributed scheduler, "
                   "e.g. tcp://10.0.0.5:8786.")
@click.option("--dry-run", is_flag=True,
              help="Validate the study, print the design space and an estimate of the work.")
def sweep_command(study_file: str, out_dir: str | None, workers: int, dask_address: str | None,
                  dry_run: bool) -> None:
    """Run (or resume) a co-design study: block shape x compression x accelerator.

    Evaluates every design point's latency and energy (hwmodels) and GLUE accuracy (measured once
    per block shape and ratio, cached), stores each point as it finishes (re-running skips
    stored points), then writes points.csv, pareto.png/svg, speedup.png/svg and report.md.
    """
    import sys

    from codesign.study import StudyError, load_study

    try:
        study = load_study(study_file)
    except StudyError as exc:
        raise CodesignError(str(exc)) from None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the CLI prints its own progress
    from codesign import sweep as sw

    if dry_run:
        info = sw.describe(study, out_dir)
        _print_design_space(study, info)
        return
    from codesign.accuracy import AccuracyError
    from codesign.glue import GlueDataError
    from codesign.store import StoreError

    progress = sw.Progress(stream=sys.stderr)
    try:
        result = sw.run_sweep(study, out_dir, workers=workers, dask=dask_address,
                              progress=progress)
    except sw.SweepInterrupted as exc:
        r = exc.result
        raise CodesignError(f"interrupted: {r.n_points} point(s) stored in {r.out_dir} "
                            f"({r.n_new} new this run); run the same command again to resume")
    except (StudyError, StoreError, AccuracyError, GlueDataError) as exc:
        raise CodesignError(" ".join(str(exc).split())) from None
    except (OSError, ValueError) as exc:
        raise CodesignError(f"{study_file}: {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())}") from None
    except Exception as exc:  # noqa: BLE001 - one line for users; the traceback on request
        import os

        if os.environ.get("CODESIGN_DEBUG"):
            raise
        raise CodesignError(f"{study_file}: internal error, {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:300]} (stored points are kept; "
                            "CODESIGN_DEBUG=1 shows the traceback)") from None
    df = result.points
    front = int(df["pareto"].sum()) if "pareto" in df else 0
    click.echo(f"{result.n_points} design points ({result.n_new} computed now, "
               f"{result.n_points - result.n_new if result.n_new <= result.n_points else 0} "
               f"from the store, {result.n_failed} failed), {result.n_accuracy_measured} "
               f"accuracy look-ups, {front} on the Pareto front, {result.seconds:.1f} s")
    click.echo(f"results in {result.out_dir}: " + ", ".join(p.name for p in result.files))


def _print_design_space(study, info: dict) -> None:
    import math

    click.echo(f"study {study.name}: {study.question}".rstrip(": "))
    click.echo(f"  model {study.model.name}, seq {study.model.seq_len}, batch "
               f"{study.model.batch}; tasks {', '.join(study.tasks)}")
    ratios = ", ".join(f"{r:g} ({1 / (1 - r):.2f}x)" for r in study.pruning.ratios)
    click.echo(f"  pruning {study.pruning.method}: blocks {', '.join(study.pruning.block_shapes)};"
               f" ratios {ratios}")
    stages = " -> ".join(f"{s.fidelity}" + (f" ({s.promote})" if i else "")
                         for i, s in enumerate(study.accuracy.stages))
    click.echo(f"  accuracy: {'measured, ' + stages if study.accuracy.measure else 'not measured'}"
               f"; recipe {study.accuracy.recipe}")
    click.echo(f"  board {study.hardware.board}, {info['accelerators']} accelerator choice(s):")
    for key, values in info["swept"].items():
        click.echo(f"    {key}: {', '.join(str(v) for v in values)}")
    objectives = ", ".join(f"{o.direction} {o.metric}" for o in study.objectives)
    click.echo(f"  objectives: {objectives}; search {study.search.method}"
               + (f" ({study.search.trials} trials)" if study.search.trials else ""))
    click.echo(f"  design points: {info['n_points']} ({info['stored']} already stored in "
               f"{info['out_dir']}); distinct (task, block, ratio) accuracy measurements: "
               f"{info['accuracy_configs']} + dense")
    hw = info["hw_seconds_per_point"]
    hw_text = f"{hw * 1000:.0f} ms per hardware point (timed one)" if math.isfinite(hw) else \
        "hardware time unknown"
    acc = info["accuracy_seconds"]
    click.echo(f"  estimate from a cold cache: ~{info['estimate_s'] / 60:.1f} min on 2 CPU cores "
               f"({hw_text}; accuracy: ~{acc['dense']:.0f} s dense fine-tuning per task, "
               f"~{acc['oneshot']:.0f} s per oneshot point, ~{acc['retrain']:.0f} s per retrain"
               " point); a warm cache makes it much less")

# pareto (owned by the plots/report developer): re-plot and re-print a finished study
@main.command("pareto")
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--no-plots", is_flag=True, help="Only rewrite and print report.md.")
def pareto_command(results_dir: str, no_plots: bool) -> None:
    """Redraw pareto/speedup figures and report.md of a finished study in RESULTS_DIR.

    Reads RESULTS_DIR/points.csv and study.yaml only: nothing is simulated or measured again.
    """
    from codesign.report import replot

    try:
        written, text = replot(results_dir, plots=not no_plots)
    except ValueError as exc:
        raise CodesignError(" ".join(str(exc).split())) from None
    click.echo(text)
    click.echo("wrote " + ", ".join(str(p) for p in written))



if __name__ == "__main__":
    main()
