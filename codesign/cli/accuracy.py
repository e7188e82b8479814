"""`codesign accuracy`: the GLUE dev metric of a block-pruned model, measured once and cached
(codesign.accuracy.measure), or the cache exported as CSV. torch is imported when it measures.
"""
from __future__ import annotations

import click

from codesign.accuracy.recipe import FIDELITIES
from codesign.glue import interval_keys
from codesign.cli.common import CodesignError, first_line


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
            if types[key] not in ("str", str, "str | None"):
                raise CodesignError(f"--recipe {item!r}: VALUE must be a number, null or "
                                    "true/false") from None
            value = text.strip()  # a text field, e.g. calib_saliency=obs
        out[key] = value
    return out


@click.command("accuracy")
@click.option("--task", help="GLUE task: sst2, cola, mrpc, stsb, rte (qnli has no train split).")
@click.option("--block", "block", default=None, help="Block shape BHxBW in the weight's "
              "orientation (rows = output features), e.g. 16x16, 256x1; 1x1 = unstructured.")
@click.option("--ratio", type=float, default=0.0, show_default=True,
              help="Fraction of blocks pruned in every encoder matrix (0 = the dense model).")
@click.option("--fidelity", type=click.Choice(FIDELITIES), default="retrain",
              show_default=True, help="Cheapest first: oneshot (block magnitude), calibrated "
              "(saliency + least-squares re-fit, no training), retrain, rgl.")
@click.option("--model", default="minilm-l6", show_default=True,
              help="Built-in name, checkpoint folder or hub id.")
@click.option("--glue-dir", type=click.Path(file_okay=False), default=None,
              help="GLUE folder (official TSV layout); default $CODESIGN_GLUE_DIR.")
@click.option("--cache", "cache_dir", type=click.Path(), default=None,
              help="Accuracy cache folder (or .sqlite file); default $CODESIGN_CACHE_DIR or "
                   "~/.cache/codesign.")
@click.option("--seed", type=int, default=None, help="Recipe seed (default 0).")
@click.option("--recipe", "recipe_items", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe field, e.g. --recipe retrain_examples=1000 or --recipe "
                   "calib_saliency=obs (repeatable).")
@click.option("--precision", default="fp32", show_default=True,
              help="Evaluate fake-quantized at a hardware precision: w4a8, w8a8, w8a16, "
                   "w16a16, fp16 (int8 = w8a8, int16 = w16a16), or fp32 (no quantization).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--progress", is_flag=True, help="Show training progress bars (stderr).")
@click.option("--export-csv", "export_csv", type=click.Path(dir_okay=False), default=None,
              help="Write every cached measurement to this CSV file and exit.")
def accuracy_cmd(task, block, ratio, fidelity, model, glue_dir, cache_dir, seed, recipe_items,
                 precision, as_json, progress, export_csv):
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
                      progress=progress, precision=precision)
    except (AccuracyError, GlueDataError) as err:
        raise CodesignError(str(err)) from None
    except ValueError as err:  # CheckpointError, bad block text from hwmodels.BlockShape
        raise CodesignError(first_line(err)) from None
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
    click.echo(f"  pruned  {rec.pruned:.4f} {_interval(rec.pruned_low, rec.pruned_high)}  "
               f"{block_text}, ratio {rec.ratio:g}, density {rec.density:.3f} "
               f"({rec.compression:.2f}x), fidelity {rec.fidelity}, {rec.precision}")
    click.echo(f"  drop    {rec.drop:+.4f}"
               + ("" if rec.precision == "fp32" else
                  f"   (pruned at {rec.precision} against the fp32 dense model)"))
    hidden = {rec.metric, *interval_keys(rec.metric)}
    others = {k: round(v, 4) for k, v in rec.metrics.items() if k not in hidden}
    if others:
        click.echo(f"  other metrics: {others}")
    click.echo(f"  provenance: {rec.source}, seed {rec.seed}, {rec.seconds:.1f} s on "
               f"{rec.device or 'cpu'} ({where}), key {rec.key}")
    click.echo(f"  recipe: {_json.dumps(r, sort_keys=True)}")
    if rec.masks_path:
        click.echo(f"  masks: {rec.masks_path}")


def _interval(low: float, high: float) -> str:
    """`[low, high]`, the 95% bootstrap interval over the dev set, or a note that it is unknown."""
    if low != low or high != high:  # NaN: a record cached before intervals existed
        return "[interval unknown]"
    return f"[{low:.4f}, {high:.4f}]"
