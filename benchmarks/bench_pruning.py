"""How long each pruning stage takes per 1,000 training examples, for minilm-l6 on this machine.

Stages (codesign.pruning): dense fine-tuning, stage 1 RGL training (fine-tuning + the reweighted
group Lasso penalty), stage 2 hard pruning (per-matrix block percentile; independent of the
example count, so reported in seconds per run), stage 3 masked retraining, evaluation (per 1,000
dev examples), and mask extraction from a saved checkpoint (seconds per run).

What is measured: the time of `finetune` / `evaluate` on a seeded subset of SST-2 (default 96
training examples = 3 steps of batch 32, after one untimed warm-up step), scaled linearly to
1,000 examples, as wall seconds and as process CPU seconds (with one torch thread the CPU time
is about what a quiet machine's wall time would be); every batch padded to the sequence length
(the authors' GLUE script did the same), so seq 64 and seq 128 are what they say.
What is ignored: dynamic padding (SST-2's sentences are short, so real runs with dynamic
padding are faster than this table), data loading and checkpoint writing. The load average
is printed: on a shared machine the wall figures move with it.

    python benchmarks/bench_pruning.py                  # seq 64 and 128, 2 threads
    python benchmarks/bench_pruning.py --threads 1      # a shared machine: do not oversubscribe
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from anywhere
from bench_options import add_measurement_options, use_threads  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--seqs", default="64,128")
    ap.add_argument("--examples", type=int, default=96, help="timed training examples per stage")
    ap.add_argument("--eval-examples", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--block", default="16x16")
    ap.add_argument("--ratio", type=float, default=0.5)
    add_measurement_options(ap, cache=False, recipe=False, threads=2)
    args = ap.parse_args(argv)

    import tempfile

    use_threads(args.threads)
    from codesign.checkpoints import load_model
    from codesign.glue import load_split
    from codesign.masks import extract_masks
    from codesign.pruning import oneshot_prune, save_pruned
    from codesign.pruning.rgl import GroupLassoPenalty, RGLConfig
    from codesign.pruning.train import TrainConfig, evaluate, finetune
    from hwmodels import BlockShape

    block = BlockShape.parse(args.block)
    t0 = time.perf_counter()
    loaded = load_model(args.model, task=args.task)
    load_s = time.perf_counter() - t0
    original = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    train = load_split(args.task, "train", glue_dir=args.glue_dir, limit=args.examples, seed=0)
    warm = load_split(args.task, "train", glue_dir=args.glue_dir, limit=args.batch_size, seed=1)
    dev = load_split(args.task, "dev", glue_dir=args.glue_dir, limit=args.eval_examples, seed=0)
    scale = 1000.0 / len(train)
    rows: list[tuple[str, int, float, float, str]] = []

    def timed(fn):
        # wall and process CPU seconds: on a shared machine the wall time moves with the other
        # jobs, the CPU time of a one-thread run much less
        wall, cpu = time.perf_counter(), time.process_time()
        out = fn()
        return out, time.perf_counter() - wall, time.process_time() - cpu

    for seq in (int(s) for s in args.seqs.split(",")):
        cfg = TrainConfig(epochs=1, batch_size=args.batch_size, max_seq_len=seq, seed=0,
                          pad_to_max=True, threads=args.threads)
        loaded.model.load_state_dict(original)
        finetune(loaded.model, loaded.tokenizer, warm, cfg, progress=False)  # warm-up, untimed

        loaded.model.load_state_dict(original)
        dense, wall, cpu = timed(lambda: finetune(loaded.model, loaded.tokenizer, train, cfg,
                                                  progress=False))
        rows.append(("dense fine-tuning", seq, wall * scale, cpu * scale, "1k train"))

        loaded.model.load_state_dict(original)
        penalty = GroupLassoPenalty(loaded.model, loaded.structure, block, RGLConfig())
        _, wall, cpu = timed(lambda: finetune(loaded.model, loaded.tokenizer, train, cfg,
                                              regularizer=penalty, progress=False))
        rows.append(("stage 1: RGL training", seq, wall * scale, cpu * scale, "1k train"))

        masks, wall, cpu = timed(lambda: oneshot_prune(loaded.model, loaded.structure, block,
                                                       args.ratio))
        rows.append(("stage 2: hard prune", seq, wall, cpu, "run"))

        _, wall, cpu = timed(lambda: finetune(loaded.model, loaded.tokenizer, train, cfg,
                                              masks=masks, progress=False))
        rows.append(("stage 3: masked retraining", seq, wall * scale, cpu * scale, "1k train"))

        _, wall, cpu = timed(lambda: evaluate(loaded.model, loaded.tokenizer, dev,
                                              max_seq_len=seq, batch_size=64, pad_to_max=True))
        per = 1000.0 / len(dev)
        rows.append(("evaluation", seq, wall * per, cpu * per, "1k dev"))
    with tempfile.TemporaryDirectory() as tmp:
        loaded.model.to("cpu")
        save_pruned(tmp, loaded.model, loaded.tokenizer, loaded.structure, masks,
                    metadata={"method": "oneshot"})
        _, wall, cpu = timed(lambda: extract_masks(tmp, block))
        rows.append(("mask extraction (checkpoint)", 0, wall, cpu, "run"))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# bench_pruning: {args.model} on {args.task}, block {args.block}, ratio "
          f"{args.ratio}, batch {args.batch_size}, {len(train)} timed training examples per "
          f"stage scaled to 1,000, padded to seq; device {dense.device}, torch threads "
          f"{args.threads}, load average {load:.1f}, model load {load_s:.1f} s")
    print(f"| {'stage':<30} | {'seq':>4} | {'wall s':>8} | {'cpu s':>8} | {'per':<8} |")
    print(f"|{'-' * 32}|{'-' * 6}|{'-' * 10}|{'-' * 10}|{'-' * 10}|")
    for stage, seq, wall, cpu, per in rows:
        seq_text = str(seq) if seq else "-"
        print(f"| {stage:<30} | {seq_text:>4} | {wall:>8.2f} | {cpu:>8.2f} | {per:<8} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
