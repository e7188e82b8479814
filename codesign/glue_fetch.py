"""Write the official GLUE TSV layout from the Hugging Face `datasets` copy of GLUE.

What is modelled: for each task, the splits codesign.glue reads (``TaskSpec.splits``: train and
dev; QNLI dev only) are loaded from ``nyu-mll/glue`` (``validation`` becomes ``dev.tsv``) and
written in the layout of the GLUE download script, so `codesign.glue.load_split` reads them like
the official files: SST-2 ``sentence, label``; CoLA without a header (source, label, ``*`` for
unacceptable, sentence); MRPC with a UTF-8 byte-order mark and the ``Quality, #1 ID, #2 ID,
#1 String, #2 String`` header; STS-B's ten columns with the score as ``%.3f``; RTE and QNLI with
string labels (entailment / not_entailment). Every written file is read back by load_split and
its row count checked.

What is ignored: the columns the Hugging Face copy does not carry (CoLA's source, MRPC's
sentence ids, STS-B's genre/file/year/source columns) are written as ``-`` or the row's index;
test splits (no labels) are not written. Characters that would split a row or a column (tabs,
line breaks of any kind) inside a sentence become spaces.

Needs the optional `datasets` package (``pip install -e .[hub]``) and the hub: offline
(HF_DATASETS_OFFLINE / HF_HUB_OFFLINE set, `datasets` missing, or the hub unreachable) it fails
at once with one line saying how to point at a local folder instead. Tests inject `load=`.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from codesign.errors import first_line
from codesign.glue import GLUE_DIR_ENV, TASKS, GlueDataError, TaskSpec, get_task, load_split

log = logging.getLogger("codesign")

HUB_DATASET = "nyu-mll/glue"
OFFLINE_ENV = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
_HUB_SPLIT = {"train": "train", "dev": "validation"}
_LOCAL_FIX = (f"point ${GLUE_DIR_ENV} (or the study's glue_dir) at a local folder in the official "
              "GLUE TSV layout instead")
# characters str.splitlines() breaks on, and the column separator
_BREAKS = re.compile("[\t\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")

# (config, hub split) -> the split, as a datasets.Dataset or a mapping of column -> values
Loader = Callable[[str, str], Any]
Row = Mapping[str, Any]


class GlueFetchError(GlueDataError):
    """GLUE cannot be fetched (offline, `datasets` missing, hub error): one line and the fix."""


def _text(row: Row, column: str) -> str:
    return _BREAKS.sub(" ", str(row[column]))


def _label_name(spec: TaskSpec, row: Row) -> str:
    return spec.label_names[int(row["label"])]  # type: ignore[index]


# per task: the header (None: no header row) and one row's columns, in the official order
_LAYOUTS: dict[str, tuple[tuple[str, ...] | None, Callable[[TaskSpec, Row], list[str]]]] = {
    "sst2": (("sentence", "label"), lambda s, r: [_text(r, "sentence"), str(int(r["label"]))]),
    "cola": (None, lambda s, r: ["-", str(int(r["label"])), "" if int(r["label"]) else "*",
                                 _text(r, "sentence")]),
    "mrpc": (("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
             lambda s, r: [str(int(r["label"])), str(r["idx"]), str(r["idx"]),
                           _text(r, "sentence1"), _text(r, "sentence2")]),
    "stsb": (("index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2", "score"),
             lambda s, r: [str(r["idx"]), "-", "-", "-", "-", "-", "-", _text(r, "sentence1"),
                           _text(r, "sentence2"), f"{float(r['label']):.3f}"]),
    "rte": (("index", "sentence1", "sentence2", "label"),
            lambda s, r: [str(r["idx"]), _text(r, "sentence1"), _text(r, "sentence2"),
                          _label_name(s, r)]),
    "qnli": (("index", "question", "sentence", "label"),
             lambda s, r: [str(r["idx"]), _text(r, "question"), _text(r, "sentence"),
                           _label_name(s, r)]),
}


def hub_loader() -> Loader:
    """`datasets.load_dataset(HUB_DATASET, config, split=...)`, or a one-line GlueFetchError at
    once when the hub is switched off or `datasets` is not installed."""
    for name in OFFLINE_ENV:
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            raise GlueFetchError(f"${name} is set, so GLUE cannot be fetched from the Hugging "
                                 f"Face hub: {_LOCAL_FIX}")
    try:
        import datasets
    except ImportError:
        raise GlueFetchError("fetching GLUE needs the `datasets` package (pip install -e '.[hub]'"
                             f"), which is not installed: install it, or {_LOCAL_FIX}") from None

    def load(config: str, split: str) -> Any:
        try:
            return datasets.load_dataset(HUB_DATASET, config, split=split)
        except Exception as err:  # noqa: BLE001 - any hub/network failure becomes one line
            raise GlueFetchError(f"could not load {HUB_DATASET} {config}/{split} from the Hugging"
                                 f" Face hub ({type(err).__name__}: {first_line(err)}): offline? "
                                 f"{_LOCAL_FIX}") from None

    return load


def _rows(data: Any) -> list[dict[str, Any]]:
    """The rows of a datasets.Dataset or of a mapping of column -> values."""
    columns = data if isinstance(data, Mapping) else {c: data[c] for c in data.column_names}
    names = list(columns)
    return [dict(zip(names, values)) for values in zip(*(list(columns[c]) for c in names))]


def _check_labels(spec: TaskSpec, split: str, rows: Sequence[Row]) -> None:
    """Class labels must be 0..num_labels-1 (the hub's test splits carry -1: not written)."""
    if spec.is_regression:
        return
    bad = sorted({int(r["label"]) for r in rows} - set(range(spec.num_labels)))
    if bad:
        raise GlueFetchError(f"{spec.name} {split}: labels {bad} outside 0..{spec.num_labels - 1}"
                             f" in the loaded {HUB_DATASET} copy: is it GLUE's {spec.name}?")


def _write_split(root: Path, spec: TaskSpec, split: str, rows: Sequence[Row]) -> Path:
    """Write one split's TSV (atomically) and check load_split reads back every row."""
    header, layout = _LAYOUTS[spec.name]
    lines = [] if header is None else ["\t".join(header)]
    lines += ["\t".join(layout(spec, row)) for row in rows]
    path = root / spec.folder / f"{split}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    # MRPC's official files start with a byte-order mark; the reader drops it either way
    encoding = "utf-8-sig" if spec.name == "mrpc" else "utf-8"
    try:
        with open(tmp, "w", encoding=encoding, newline="\n") as fh:
            fh.write("\n".join(lines) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    read = len(load_split(spec, split, glue_dir=root))
    if read != len(rows):
        raise GlueFetchError(f"{path}: wrote {len(rows)} rows but read back {read}")
    log.info("wrote %s (%d rows)", path, len(rows))
    return path


def fetch_glue(out_dir: str | Path, tasks: Iterable[str] | None = None, *,
               load: Loader | None = None) -> list[Path]:
    """Write `tasks` (default: every task codesign.glue reads) under `out_dir` in the official
    GLUE TSV layout; returns the files written, e.g. ``out_dir/SST-2/train.tsv``.

    `load(config, hub_split)` returns one split (default: `hub_loader()`, the Hugging Face hub).
    Task names are checked before anything is loaded; existing files are replaced.
    """
    specs = [get_task(t) for t in (TASKS if tasks is None else tasks)]
    load = hub_loader() if load is None else load
    root = Path(out_dir).expanduser()
    written = []
    for spec in specs:
        loaded = {split: _rows(load(spec.name, _HUB_SPLIT[split])) for split in spec.splits}
        for split, rows in loaded.items():
            _check_labels(spec, split, rows)
            written.append(_write_split(root, spec, split, rows))
    return written
