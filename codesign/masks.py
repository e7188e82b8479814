"""Block-mask files: write, read, extract from any pruned checkpoint, and summarise.

File format ("codesign-block-mask/1"): a safetensors file with one bool grid per weight matrix,
keyed by the parameter's name exactly as in the checkpoint; grid[i, j] True = block kept,
covering rows i*bh..min((i+1)*bh, out)-1 and columns j*bw..min((j+1)*bw, in)-1 of the
[out_features, in_features] parameter. Metadata (strings): `format`, `block_shape` ("16x16"),
`matrix_shapes` (JSON {name: [out, in]}), `roles` (JSON {name: [layer, role]}),
`source_checkpoint`, `source_sha256`, `method`, `ratio`, plus any extra keys given.

Extraction: a block is pruned where ALL its weights are exactly zero (whatever tool pruned it:
this project, nn_pruning, Neural Compressor, torch.ao after `prune.remove`). A kept block that
still holds some exact zeros is counted as "partially zero" (unstructured sparsity inside a
block, which a block-sparse accelerator cannot skip).

What is ignored: near-zero weights are not treated as zero (no tolerance: quantised or fp16
checkpoints keep exact zeros, and a tolerance would invent sparsity); checkpoints that store
weights in a packed sparse format must be densified first.

No torch import at module level (safetensors.numpy); a pytorch_model.bin needs torch and is
read only when given.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwmodels.sparsity import BlockMask, BlockShape

from codesign import checkpoints as ck
from codesign.errors import first_line

FORMAT = "codesign-block-mask/1"


class MaskFileError(ValueError):
    """A mask file or checkpoint cannot be read as masks (one line: which file, what to do)."""


@dataclass(frozen=True)
class MaskSet:
    """The masks of one file and its metadata (JSON fields decoded)."""

    masks: dict[str, BlockMask]
    metadata: dict[str, Any]

    @property
    def block_shape(self) -> BlockShape:
        return BlockShape.parse(self.metadata["block_shape"])


# --- file I/O ---------------------------------------------------------------------------------


def _meta_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    return json.dumps(value)


def save_masks(path: str | Path, masks: Mapping[str, BlockMask],
               metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a mask file; all masks must share one block shape. Returns the path.

    `metadata` may hold `source_checkpoint`, `source_sha256`, `method`, `ratio`, `roles`
    ({name: (layer, role)}) and any other key; non-string values are stored as JSON.
    """
    from safetensors.numpy import save_file

    if not masks:
        raise ValueError("save_masks: no masks to write")
    shapes = {tuple(m.block_shape) for m in masks.values()}
    if len(shapes) != 1:
        raise ValueError(f"save_masks: masks mix block shapes {sorted(shapes)}: one file holds "
                         "one block shape")
    block = BlockShape(*shapes.pop())
    meta = {key: _meta_text(value) for key, value in (metadata or {}).items()
            if value is not None}
    roles = (metadata or {}).get("roles") or {}
    meta.update({
        "format": FORMAT,
        "block_shape": str(block),
        "matrix_shapes": json.dumps({n: [int(s) for s in m.matrix_shape]
                                     for n, m in masks.items()}),
        "roles": json.dumps({n: [int(r[0]), str(r[1])] for n, r in roles.items()}),
    })
    tensors = {name: np.ascontiguousarray(np.asarray(m.grid, dtype=bool))
               for name, m in masks.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta)
    return path


def load_masks(path: str | Path) -> MaskSet:
    """Read a mask file written by `save_masks` (one-line MaskFileError on any problem)."""
    path = Path(path)
    if not path.is_file():
        raise MaskFileError(f"{path}: no such mask file")
    with ck.open_safetensors(path, error=MaskFileError,
                          problem="not a readable safetensors file") as handle:
        raw_meta = dict(handle.metadata() or {})
        grids = {key: handle.get_tensor(key) for key in handle.keys()}
    if raw_meta.get("format") != FORMAT:
        raise MaskFileError(f"{path}: metadata format is {raw_meta.get('format')!r}, expected "
                            f"{FORMAT!r}: write mask files with codesign masks / save_masks")
    try:
        block = BlockShape.parse(raw_meta["block_shape"])
        shapes = json.loads(raw_meta["matrix_shapes"])
        roles = json.loads(raw_meta.get("roles", "{}"))
    except (KeyError, ValueError) as err:
        raise MaskFileError(f"{path}: bad metadata ({first_line(err)})") from None
    masks: dict[str, BlockMask] = {}
    for name, grid in grids.items():
        if name not in shapes:
            raise MaskFileError(f"{path}: matrix_shapes has no entry for {name}")
        try:
            masks[name] = BlockMask(grid=np.asarray(grid).astype(bool), block_shape=block,
                                    matrix_shape=tuple(int(s) for s in shapes[name]))
        except ValueError as err:
            raise MaskFileError(f"{path}: {name}: {first_line(err)}") from None
    metadata: dict[str, Any] = {}
    for key, value in raw_meta.items():
        if key in ("matrix_shapes", "roles"):
            continue
        metadata[key] = value
    metadata["matrix_shapes"] = {n: tuple(s) for n, s in shapes.items()}
    metadata["roles"] = {n: (int(r[0]), str(r[1])) for n, r in roles.items()}
    if "ratio" in metadata:
        try:
            metadata["ratio"] = json.loads(metadata["ratio"])
        except ValueError:
            pass
    return MaskSet(masks=masks, metadata=metadata)


# --- extraction -------------------------------------------------------------------------------


def block_nonzero_counts(weight: np.ndarray, block_shape: tuple[int, int]) -> np.ndarray:
    """Number of non-zero weights per block (grid shape; zero padding for partial blocks)."""
    w = np.asarray(weight)
    if w.ndim != 2:
        raise ValueError(f"need a 2-D weight, got shape {w.shape}")
    bh, bw = (int(x) for x in block_shape)
    rows, cols = math.ceil(w.shape[0] / bh), math.ceil(w.shape[1] / bw)
    nz = np.zeros((rows * bh, cols * bw), dtype=np.int64)
    nz[: w.shape[0], : w.shape[1]] = w != 0
    return nz.reshape(rows, bh, cols, bw).sum(axis=(1, 3))


@dataclass(frozen=True)
class Extraction:
    """Masks extracted from a checkpoint, their statistics and the file metadata to save."""

    masks: dict[str, BlockMask]
    stats: MaskStats
    metadata: dict[str, Any]


def _read_tensors(files: list[Path], wanted: set[str] | None) -> dict[str, np.ndarray]:
    """Named arrays from safetensors (numpy, no torch) or pytorch .bin files (torch)."""
    out: dict[str, np.ndarray] = {}
    for path in files:
        if path.suffix == ".safetensors":
            out.update(_read_safetensors(path, wanted))
            continue
        import torch

        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001
            raise MaskFileError(f"{path}: corrupt or unreadable weights file "
                                f"({first_line(err)})") from None
        for key, tensor in state.items():
            if wanted is None or key in wanted:
                out[key] = tensor.float().numpy()
    return out


def _read_safetensors(path: Path, wanted: set[str] | None) -> dict[str, np.ndarray]:
    """The `wanted` arrays of one safetensors file (all when None), through numpy; a dtype
    numpy lacks (bfloat16) reads the file through torch instead, as float32."""
    try:
        with ck.open_safetensors(path, error=MaskFileError, passthrough=(TypeError,)) as handle:
            return {key: handle.get_tensor(key) for key in handle.keys()
                    if wanted is None or key in wanted}
    except TypeError:
        pass
    with ck.open_safetensors(path, error=MaskFileError, framework="pt") as handle:
        return {key: handle.get_tensor(key).float().numpy() for key in handle.keys()
                if wanted is None or key in wanted}


def _names_in(files: list[Path]) -> list[str]:
    names: list[str] = []
    for path in files:
        if path.suffix == ".safetensors":
            with ck.open_safetensors(path, error=MaskFileError) as handle:
                names.extend(handle.keys())
        else:
            names.extend(_read_tensors([path], None).keys())
    return names


def extract_masks(checkpoint: str | Path, block_shape: tuple[int, int] | str,
                  include_heads: bool = False) -> Extraction:
    """Extract the block masks of every prunable matrix of a (pruned) checkpoint.

    `checkpoint`: a save_pretrained folder (config.json says the architecture), a single
    .safetensors / .bin weights file (the layout is recognised from the parameter names), or a
    built-in model name. Reads weights with safetensors.numpy: no model is built.
    """
    block = BlockShape.parse(block_shape)
    path = Path(str(checkpoint)).expanduser()
    if str(checkpoint) in ck.builtin_models():
        path = ck.builtin_path(str(checkpoint))
    if path.is_dir():
        config = ck.read_config(path)
        structure = ck.structure_for(config, source=str(path / "config.json"))
        files = ck.weight_files(path)
        names = _names_in(files)
        structure = structure.detect_prefix(names)
    elif path.is_file():
        files = [path]
        names = _names_in(files)
        structure = _guess_structure(names, path)
    else:
        raise MaskFileError(f"{checkpoint}: no such checkpoint folder or weights file")
    prunable = structure.prunable(names, include_heads=include_heads)
    if not prunable:
        raise MaskFileError(f"{path}: no {structure.architecture} weight matrices found")
    weights = _read_tensors(files, {n for n, _, _ in prunable})
    masks: dict[str, BlockMask] = {}
    partial: dict[str, int] = {}
    nonzero: dict[str, int] = {}
    roles: dict[str, tuple[int, str]] = {}
    for name, layer, role in prunable:
        w = weights[name]
        counts = block_nonzero_counts(w, block)
        mask = BlockMask(grid=counts > 0, block_shape=block,
                         matrix_shape=tuple(int(s) for s in w.shape))
        full = np.outer(*mask.block_sizes())  # weights per block (edge blocks partial)
        masks[name] = mask
        partial[name] = int(((counts > 0) & (counts < full)).sum())
        nonzero[name] = int(counts.sum())
        roles[name] = (layer, role)
    stats = mask_statistics(masks, roles=roles, partial_blocks=partial, nonzero_weights=nonzero)
    metadata = {"source_checkpoint": str(checkpoint), "source_sha256": ck.checkpoint_sha256(path),
                "method": "extracted", "roles": roles,
                "ratio": round(1.0 - stats.block_density, 6)}
    return Extraction(masks=masks, stats=stats, metadata=metadata)


def _guess_structure(names: list[str], path: Path) -> Any:
    best, count = None, 0
    for structure in ck.STRUCTURES.values():
        found = len(structure.prunable(names))
        if found > count:
            best, count = structure, found
    if best is None:
        raise MaskFileError(f"{path}: no BERT, RoBERTa or DistilBERT weight names found "
                            "(pass the checkpoint folder with its config.json)")
    return best.detect_prefix(names)


# --- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MatrixStats:
    """One matrix: its block counts, densities and the spread of kept blocks over rows/columns.

    `row_counts[i]` = kept blocks in block-row i (what one PE row / output tile must process),
    `col_counts[j]` = kept blocks in block-column j; their max/mean ratio is the load imbalance
    a static partition over rows (columns) would see.
    """

    name: str
    layer: int
    role: str
    matrix_shape: tuple[int, int]
    blocks: int
    kept_blocks: int
    partial_blocks: int | None  # kept blocks holding some exact zeros (None: weights unknown)
    density: float  # kept weights / weights (edge blocks at real size)
    block_density: float
    weight_density: float | None  # non-zero weights / weights (None: weights unknown)
    row_counts: tuple[int, ...]
    col_counts: tuple[int, ...]

    @staticmethod
    def _spread(counts: tuple[int, ...]) -> dict[str, float]:
        arr = np.asarray(counts, dtype=float)
        mean = float(arr.mean()) if arr.size else 0.0
        return {"min": float(arr.min()), "mean": mean, "max": float(arr.max()),
                "std": float(arr.std()),
                "imbalance": float(arr.max() / mean) if mean > 0 else float("nan")}

    @property
    def row_spread(self) -> dict[str, float]:
        return self._spread(self.row_counts)

    @property
    def col_spread(self) -> dict[str, float]:
        return self._spread(self.col_counts)


@dataclass(frozen=True)
class MaskStats:
    """Statistics of a set of masks: per matrix, per layer, overall."""

    block_shape: BlockShape
    matrices: tuple[MatrixStats, ...]
    total_weights: int
    kept_weights: int
    nonzero_weights: int | None
    layer_density: dict[int, float] = field(default_factory=dict)

    @property
    def density(self) -> float:
        return self.kept_weights / self.total_weights if self.total_weights else float("nan")

    @property
    def block_density(self) -> float:
        blocks = sum(m.blocks for m in self.matrices)
        return sum(m.kept_blocks for m in self.matrices) / blocks if blocks else float("nan")

    @property
    def compression(self) -> float:
        """All prunable weights / non-zero weights (the paper's count; mask-kept if unknown)."""
        kept = self.nonzero_weights if self.nonzero_weights is not None else self.kept_weights
        return self.total_weights / kept if kept else float("inf")

    @property
    def partial_blocks(self) -> int | None:
        if any(m.partial_blocks is None for m in self.matrices):
            return None
        return sum(int(m.partial_blocks) for m in self.matrices)

    def to_dict(self) -> dict[str, Any]:
        return {
            "block_shape": str(self.block_shape),
            "total_weights": self.total_weights,
            "kept_weights": self.kept_weights,
            "nonzero_weights": self.nonzero_weights,
            "density": self.density,
            "block_density": self.block_density,
            "compression": self.compression,
            "partial_blocks": self.partial_blocks,
            "layer_density": {str(k): v for k, v in sorted(self.layer_density.items())},
            "matrices": [
                {"name": m.name, "layer": m.layer, "role": m.role,
                 "matrix_shape": list(m.matrix_shape), "blocks": m.blocks,
                 "kept_blocks": m.kept_blocks, "partial_blocks": m.partial_blocks,
                 "density": m.density, "block_density": m.block_density,
                 "weight_density": m.weight_density,
                 "row_spread": m.row_spread, "col_spread": m.col_spread,
                 "row_counts": list(m.row_counts), "col_counts": list(m.col_counts)}
                for m in self.matrices],
        }

    def table(self) -> str:
        """A plain-text report: one line per matrix, then per layer and overall."""
        lines = [f"block {self.block_shape}: kept blocks per block-row / "
                 "block-column shown as min/mean/max (imbalance = max/mean)"]
        head = (f"{'layer':>5} {'role':<10} {'shape':>10} {'blocks':>7} {'kept':>7} "
                f"{'partial':>7} {'density':>8} {'row min/mean/max':>18} {'imb':>5} "
                f"{'col min/mean/max':>18} {'imb':>5}")
        lines.append(head)
        lines.append("-" * len(head))
        for m in self.matrices:
            r, c = m.row_spread, m.col_spread
            partial = "-" if m.partial_blocks is None else str(m.partial_blocks)
            lines.append(
                f"{m.layer:>5} {m.role:<10} {m.matrix_shape[0]:>4}x{m.matrix_shape[1]:<5} "
                f"{m.blocks:>7} {m.kept_blocks:>7} {partial:>7} {m.density:>8.4f} "
                f"{r['min']:>5.0f}/{r['mean']:>6.1f}/{r['max']:<5.0f} {r['imbalance']:>5.2f} "
                f"{c['min']:>5.0f}/{c['mean']:>6.1f}/{c['max']:<5.0f} {c['imbalance']:>5.2f}")
        lines.append("")
        lines.append("per-layer density: " + ", ".join(
            f"L{k}={v:.4f}" for k, v in sorted(self.layer_density.items())))
        partial = self.partial_blocks
        lines.append(
            f"overall: density {self.density:.4f} (block density {self.block_density:.4f}), "
            f"compression {self.compression:.3f}x over {self.total_weights:,} prunable weights"
            + ("" if partial is None else f", partially-zero kept blocks {partial:,}"))
        return "\n".join(lines)


def mask_statistics(masks: Mapping[str, BlockMask],
                    roles: Mapping[str, tuple[int, str]] | None = None,
                    partial_blocks: Mapping[str, int] | None = None,
                    nonzero_weights: Mapping[str, int] | None = None) -> MaskStats:
    """Statistics of masks (partial blocks and non-zero weights only when given, from weights)."""
    if not masks:
        raise ValueError("mask_statistics: no masks")
    roles = roles or {}
    block = tuple(next(iter(masks.values())).block_shape)
    matrices = []
    layer_tot: dict[int, int] = {}
    layer_kept: dict[int, int] = {}
    total = kept_total = nonzero_total = 0
    for name, mask in masks.items():
        grid = np.asarray(mask.grid, dtype=bool)
        size = int(mask.matrix_shape[0]) * int(mask.matrix_shape[1])
        kept = mask.kept_weights
        layer, role = roles.get(name, (-1, "?"))
        nz = None if nonzero_weights is None else int(nonzero_weights[name])
        matrices.append(MatrixStats(
            name=name, layer=int(layer), role=str(role),
            matrix_shape=(int(mask.matrix_shape[0]), int(mask.matrix_shape[1])),
            blocks=int(grid.size), kept_blocks=int(grid.sum()),
            partial_blocks=None if partial_blocks is None else int(partial_blocks[name]),
            density=kept / size, block_density=float(grid.mean()),
            weight_density=None if nz is None else nz / size,
            row_counts=tuple(int(x) for x in grid.sum(axis=1)),
            col_counts=tuple(int(x) for x in grid.sum(axis=0))))
        total += size
        kept_total += kept
        nonzero_total += nz or 0
        layer_tot[int(layer)] = layer_tot.get(int(layer), 0) + size
        layer_kept[int(layer)] = layer_kept.get(int(layer), 0) + kept
    return MaskStats(block_shape=BlockShape(*block), matrices=tuple(matrices),
                     total_weights=total, kept_weights=kept_total,
                     nonzero_weights=None if nonzero_weights is None else nonzero_total,
                     layer_density={k: layer_kept[k] / layer_tot[k] for k in layer_tot})

