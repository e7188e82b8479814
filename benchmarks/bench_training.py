"""Training and evaluation speed of the three batching modes, side by side in one run.

Trains a copy of the same model (MiniLM-L6 with its seeded SST-2 head) for one epoch on the same
SST-2 training examples with each batching mode of `codesign.pruning.train` ("max_length":
every batch padded to --seq; "longest": shuffled batches padded to their longest, the previous
default; "bucket": the default, batches of similar length in a shuffled order), then evaluates
dev sentences in length-sorted and in input order. Prints examples/s, the speed-up over
padded-to-max, and the padded tokens each mode fed the model (a count, independent of load).

What it ignores: tokenisation time (cached once per process, before the timed loops) and the
first-call overheads of torch (one untimed warm-up step runs first).

Usage (about 2-3 minutes on 2 busy cores):

    python benchmarks/bench_training.py                   # 256 train, 256 dev sentences
    python benchmarks/bench_training.py --threads 1 --examples 256 --repeats 2
"""
from __future__ import annotations

import argparse
import copy
import os
import time

import numpy as np

MODES = (("max_length", "padded to --seq"), ("longest", "padded to batch's longest"),
         ("bucket", "length-bucketed (default)"))


def padded_tokens(lengths: np.ndarray, mode: str, batch_size: int, seq: int, seed: int) -> int:
    """Tokens (padding included) one epoch of `mode` feeds the model, with the run's draws."""
    import torch

    from codesign.pruning.batching import epoch_batches

    batches = epoch_batches(lengths, batch_size, mode, torch.Generator().manual_seed(seed))
    return sum(len(b) * (seq if mode == "max_length" else int(lengths[b].max()))
               for b in batches)


def time_training(base, tokenizer, split, args) -> list[dict]:
    """One epoch per mode (best of --repeats), each from a fresh copy of `base`."""
    from codesign.pruning.batching import encode, lengths_of
    from codesign.pruning.train import TrainConfig, finetune

    lengths = lengths_of(encode(tokenizer, split, args.seq))
    common = dict(epochs=1, lr=3e-4, batch_size=args.batch, max_seq_len=args.seq,
                  seed=args.seed, threads=args.threads)
    finetune(copy.deepcopy(base), tokenizer, split, TrainConfig(max_steps=1, **common),
             progress=False)  # warm-up, untimed
    rows = []
    for mode, label in MODES:
        seconds = min(finetune(copy.deepcopy(base), tokenizer, split,
                               TrainConfig(batching=mode, **common), progress=False).seconds
                      for _ in range(args.repeats))
        rows.append({"what": f"train {mode}", "label": label, "n": len(split),
                     "seconds": seconds, "per_s": len(split) / seconds,
                     "tokens": padded_tokens(lengths, mode, args.batch, args.seq, args.seed)})
    return rows


def time_evaluation(model, tokenizer, dev, args) -> list[dict]:
    """Dev predictions, length-sorted and in input order (best of --repeats)."""
    from codesign.pruning.train import evaluate

    rows = []
    for sort, label in ((False, "input order"), (True, "sorted by length (default)")):
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            evaluate(model, tokenizer, dev, max_seq_len=args.seq, batch_size=64,
                     sort_by_length=sort, threads=args.threads)
            best = min(best, time.perf_counter() - t0)
        rows.append({"what": f"evaluate {'sorted' if sort else 'unsorted'}", "label": label,
                     "n": len(dev), "seconds": best, "per_s": len(dev) / best, "tokens": None})
    return rows


def print_table(rows: list[dict]) -> None:
    base = {r["what"].split()[0]: r["per_s"] for r in rows
            if r["what"] in ("train max_length", "evaluate unsorted")}
    print(f"| {'run':<19} | {'batching':<27} | {'n':>4} | {'s':>6} | {'per s':>6} | "
          f"{'speed-up':>8} | {'tokens fed':>10} |")
    print(f"|{'-' * 21}|{'-' * 29}|{'-' * 5}:|{'-' * 7}:|{'-' * 7}:|{'-' * 9}:|{'-' * 11}:|")
    for r in rows:
        speed_up = r["per_s"] / base[r["what"].split()[0]]
        tokens = "" if r["tokens"] is None else f"{r['tokens']:,}"
        print(f"| {r['what']:<19} | {r['label']:<27} | {r['n']:>4} | {r['seconds']:>6.1f} | "
              f"{r['per_s']:>6.1f} | {speed_up:>7.2f}x | {tokens:>10} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="minilm-l6")
    ap.add_argument("--examples", type=int, default=256, help="SST-2 training examples")
    ap.add_argument("--eval-examples", type=int, default=256, help="SST-2 dev sentences")
    ap.add_argument("--seq", type=int, default=64, help="max_seq_len (the default recipe's)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: every CPU this process may use)")
    ap.add_argument("--repeats", type=int, default=1, help="best of N timings per row")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--glue-dir", default=None)
    args = ap.parse_args()

    from codesign.checkpoints import load_model
    from codesign.glue import load_split
    from codesign.pruning.batching import default_threads

    args.threads = args.threads or default_threads()
    load_before = os.getloadavg()
    loaded = load_model(args.model, task="sst2", head_seed=args.seed)
    train = load_split("sst2", "train", glue_dir=args.glue_dir, limit=args.examples,
                       seed=args.seed)
    dev = load_split("sst2", "dev", glue_dir=args.glue_dir, limit=args.eval_examples,
                     seed=args.seed)
    rows = time_training(loaded.model, loaded.tokenizer, train, args)
    rows += time_evaluation(loaded.model, loaded.tokenizer, dev, args)
    print(f"{args.model}, SST-2, seq {args.seq}, batch {args.batch}, {args.threads} torch "
          f"thread(s), best of {args.repeats}; load average before "
          f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print_table(rows)


if __name__ == "__main__":
    main()
