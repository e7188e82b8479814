"""Block masks and what a block-sparse weight means for the PE array.

`BlockMask` is the project-wide contract (see ARCHITECTURE.md): a boolean grid in the orientation
of the checkpoint parameter, nn.Linear weight = [out_features, in_features], so a block shape
``32x1`` is 32 output rows x 1 input column; grid[i, j] True = block kept. Shapes that do not
divide the matrix are zero-padded: the grid is ceil-sized and the last block row/column is
partial, costed at its real size everywhere in hwmodels.

The hardware model computes Y[M,N] = X[M,K] @ W[K,N] with W = weight.T, K = in_features,
N = out_features. `gemm_blocks` is THE one place where the parameter orientation (out, in) is
transposed to GEMM orientation (K, N); everything downstream (mapping, engines) only sees
`GemmBlocks`.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

_DIMS_RE = re.compile(r"^\s*(\d+)\s*[xX\u00d7]\s*(\d+)\s*$")


def parse_dims(text: object, what: str = "block shape") -> tuple[int, int]:
    """``"16x16" -> (16, 16)``: the one parser of ``ROWSxCOLS`` text (block shapes, PE arrays).

    Accepts ``x``, ``X`` or ``\u00d7`` and spaces around the numbers; both numbers positive.
    ValueError (one line, naming `what`) otherwise.
    """
    m = _DIMS_RE.match(text) if isinstance(text, str) else None
    if not m or int(m.group(1)) < 1 or int(m.group(2)) < 1:
        hint = " (YAML read it as a number: write it in quotes)" if isinstance(text, int) else ""
        raise ValueError(f"{text!r} is not a {what}; write ROWSxCOLS with positive integers, "
                         f"e.g. 16x16 or 32x1{hint}")
    return int(m.group(1)), int(m.group(2))


class BlockShape(NamedTuple):
    """A weight block shape in parameter orientation: `rows` output features x `cols` input
    features (``32x1`` = 32 output rows by 1 input column). A tuple, so ``bh, bw = shape``
    works; ``str(shape)`` is ``"32x1"``, the spelling of CLI, YAML, mask files and tables."""

    rows: int
    cols: int

    @classmethod
    def parse(cls, text: "str | BlockShape | tuple[int, int]") -> "BlockShape":
        """From ``"16x16"`` (see `parse_dims`) or a (rows, cols) pair; ValueError otherwise."""
        if isinstance(text, tuple):
            rows, cols = (int(v) for v in text)
            if rows < 1 or cols < 1:
                raise ValueError(f"{text!r} is not a block shape; both sizes must be positive")
            return cls(rows, cols)
        return cls(*parse_dims(text))

    @property
    def size(self) -> int:
        """Weights per block."""
        return self.rows * self.cols

    def __str__(self) -> str:
        return f"{self.rows}x{self.cols}"


@dataclass(frozen=True, eq=False)
class BlockMask:
    """Kept/pruned blocks of one weight matrix, in parameter orientation (out, in).

    grid: bool array of shape (ceil(out/bh), ceil(in/bw)); True = block kept (non-zero).
    """

    grid: np.ndarray
    block_shape: BlockShape
    matrix_shape: tuple[int, int]

    def __post_init__(self) -> None:
        bh, bw = (int(v) for v in self.block_shape)
        out, inp = (int(v) for v in self.matrix_shape)
        if bh < 1 or bw < 1 or out < 1 or inp < 1:
            raise ValueError(
                f"BlockMask: block_shape {self.block_shape} and matrix_shape {self.matrix_shape} "
                "must be positive"
            )
        grid = np.asarray(self.grid)
        expect = (math.ceil(out / bh), math.ceil(inp / bw))
        if grid.ndim != 2 or grid.shape != expect:
            raise ValueError(
                f"BlockMask: grid shape {grid.shape} does not fit matrix {out}x{inp} with blocks "
                f"{bh}x{bw}: expected {expect} (ceil(out/bh), ceil(in/bw))"
            )
        grid = grid.astype(bool, copy=True)
        grid.setflags(write=False)
        object.__setattr__(self, "grid", grid)
        object.__setattr__(self, "block_shape", BlockShape(bh, bw))
        object.__setattr__(self, "matrix_shape", (out, inp))

    # ----------------------------------------------------------------- constructors
    @classmethod
    def dense(cls, block_shape: tuple[int, int], matrix_shape: tuple[int, int]) -> "BlockMask":
        bh, bw = block_shape
        out, inp = matrix_shape
        return cls(np.ones((math.ceil(out / bh), math.ceil(inp / bw)), bool), block_shape,
                   matrix_shape)

    @classmethod
    def random(cls, block_shape: tuple[int, int], matrix_shape: tuple[int, int], density: float,
               seed: int = 0) -> "BlockMask":
        """Exactly round(density * nblocks) kept blocks, chosen by numpy Generator(seed)."""
        if not 0.0 <= density <= 1.0:
            raise ValueError(f"BlockMask.random: density {density} must be within [0, 1]")
        bh, bw = block_shape
        out, inp = matrix_shape
        shape = (math.ceil(out / bh), math.ceil(inp / bw))
        n = shape[0] * shape[1]
        keep = int(round(density * n))
        flat = np.zeros(n, bool)
        flat[np.random.default_rng(seed).choice(n, size=keep, replace=False)] = True
        return cls(flat.reshape(shape), block_shape, matrix_shape)

    @classmethod
    def n_of_m(cls, n: int, m: int, matrix_shape: tuple[int, int], seed: int = 0) -> "BlockMask":
        """An N:M mask (1x1 blocks): in every output row, each aligned group of `m` input
        features keeps exactly `n` of them (a partial last group keeps min(n, its size)),
        positions drawn by numpy Generator(seed)."""
        if not 0 <= n <= m or m < 1:
            raise ValueError(f"BlockMask.n_of_m: need 0 <= n <= m and m >= 1 (got {n}:{m})")
        out, inp = matrix_shape
        groups = math.ceil(inp / m)
        scores = np.random.default_rng(seed).random((out, groups, m))
        scores[:, -1, inp - m * (groups - 1):] = np.inf  # the padding of a partial last group
        keep = np.argsort(scores, axis=2).argsort(axis=2) < n
        return cls(keep.reshape(out, groups * m)[:, :inp], (1, 1), matrix_shape)

    # ----------------------------------------------------------------- properties
    def block_sizes(self) -> tuple[np.ndarray, np.ndarray]:
        """Real heights of the block rows and widths of the block columns (edge blocks partial)."""
        return (edge_sizes(self.matrix_shape[0], self.block_shape[0]),
                edge_sizes(self.matrix_shape[1], self.block_shape[1]))

    @property
    def kept_blocks(self) -> int:
        return int(self.grid.sum())

    @property
    def block_density(self) -> float:
        return self.kept_blocks / self.grid.size

    @property
    def kept_weights(self) -> int:
        rows, cols = self.block_sizes()
        return int(rows @ self.grid.astype(np.int64) @ cols)

    @property
    def density(self) -> float:
        """Kept weights / all weights (edge blocks counted at their real size)."""
        return self.kept_weights / (self.matrix_shape[0] * self.matrix_shape[1])

    def to_dense(self) -> np.ndarray:
        bh, bw = self.block_shape
        out, inp = self.matrix_shape
        return np.repeat(np.repeat(self.grid, bh, axis=0), bw, axis=1)[:out, :inp]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BlockMask):
            return NotImplemented
        return (self.block_shape == other.block_shape and self.matrix_shape == other.matrix_shape
                and bool(np.array_equal(self.grid, other.grid)))

    def __hash__(self) -> int:
        return hash((self.block_shape, self.matrix_shape, self.grid.tobytes()))

    @cached_property
    def content_key(self) -> tuple:
        """A content key for caches (hwmodels.sweepcache.grid_key): equal for equal masks,
        computed once per mask (the grid is read-only)."""
        from .sweepcache import grid_key

        return ("mask", *grid_key(self.grid, *self.block_shape, *self.matrix_shape))

    def __repr__(self) -> str:
        return (f"BlockMask({self.block_shape} on {self.matrix_shape[0]}x"
                f"{self.matrix_shape[1]}, {self.kept_blocks}/{self.grid.size} blocks kept)")


def edge_sizes(total: int, block: int) -> np.ndarray:
    """Real size of every block (or tile, or chunk) of `block` along an axis of `total` elements:
    ceil(total / block) sizes, all `block` but the last, which holds the remainder
    (``edge_sizes(10, 4) -> [4, 4, 2]``). int64; `total` and `block` must be >= 1."""
    if total < 1 or block < 1:
        raise ValueError(f"edge_sizes: total ({total}) and block ({block}) must be >= 1")
    n = math.ceil(total / block)
    sizes = np.full(n, block, dtype=np.int64)
    sizes[-1] = total - block * (n - 1)
    return sizes


# --------------------------------------------------------------------------- GEMM orientation
@dataclass(frozen=True, eq=False)
class GemmBlocks:
    """A mask in GEMM orientation: grid[kb, nb] over W[K, N]; block bk (along K) x bn (along N)."""

    grid: np.ndarray  # bool [ceil(K/bk), ceil(N/bn)]
    bk: int
    bn: int
    k: int
    n: int
    k_sizes: np.ndarray  # real size of each block row along K
    n_sizes: np.ndarray  # real size of each block column along N
    #: content key of the mask it came from (gemm_blocks); None: derived from the grid
    key: tuple | None = None

    @cached_property
    def content_key(self) -> tuple:
        """A content key for caches: the source mask's, or one of the grid itself."""
        if self.key is not None:
            return self.key
        from .sweepcache import grid_key

        return ("gemm", *grid_key(self.grid, self.bk, self.bn, self.k, self.n))

    @property
    def kept_blocks(self) -> int:
        return int(self.grid.sum())

    @property
    def kept_weights(self) -> int:
        return int(self.k_sizes @ self.grid.astype(np.int64) @ self.n_sizes)


def gemm_blocks(mask: BlockMask) -> GemmBlocks:
    """Transpose a parameter-orientation mask (out, in) to GEMM orientation (K=in, N=out).

    This is the only transposition of a mask in hwmodels."""
    bh, bw = mask.block_shape
    out, inp = mask.matrix_shape
    return GemmBlocks(grid=mask.grid.T, bk=bw, bn=bh, k=inp, n=out,
                      k_sizes=edge_sizes(inp, bw), n_sizes=edge_sizes(out, bh),
                      key=mask.content_key)


def dense_gemm_blocks(k: int, n: int) -> GemmBlocks:
    """A single all-kept block covering W (what the dense path sees)."""
    return GemmBlocks(grid=np.ones((1, 1), bool), bk=k, bn=n, k=k, n=n,
                      k_sizes=np.array([k], np.int64), n_sizes=np.array([n], np.int64),
                      key=("dense", k, n))


def _tile_ranges(total: int, tile: int, block: int) -> tuple[np.ndarray, np.ndarray]:
    """For each tile of `tile` elements along an axis of `total`, the half-open range of block
    indices that intersect it (a block straddling two tiles belongs to both)."""
    nt = math.ceil(total / tile)
    starts = np.arange(nt, dtype=np.int64) * tile
    ends = np.minimum(starts + tile, total)
    return starts // block, -(-ends // block)


def _range_any(grid: np.ndarray, lo: np.ndarray, hi: np.ndarray, axis: int) -> np.ndarray:
    """any(grid[lo_t:hi_t]) along `axis` for every range t, via prefix sums (ranges may overlap)."""
    if axis == 0:
        cs = np.zeros((grid.shape[0] + 1, grid.shape[1]), np.int32)
        np.cumsum(grid, axis=0, out=cs[1:])
        return (cs[hi] - cs[lo]) > 0
    cs = np.zeros((grid.shape[0], grid.shape[1] + 1), np.int32)
    np.cumsum(grid, axis=1, out=cs[:, 1:])
    return (cs[:, hi] - cs[:, lo]) > 0


def tile_occupancy(gb: GemmBlocks, tile_k: int, tile_n: int) -> np.ndarray:
    """bool [ceil(K/tile_k), ceil(N/tile_n)]: True where at least one kept block intersects the
    PE-array weight tile (tile skipping may skip only the False tiles)."""
    klo, khi = _tile_ranges(gb.k, tile_k, gb.bk)
    nlo, nhi = _tile_ranges(gb.n, tile_n, gb.bn)
    rows = _range_any(gb.grid, klo, khi, axis=0)  # [nKt, nNb]
    return _range_any(rows, nlo, nhi, axis=1)  # [nKt, nNt]


@dataclass(frozen=True, eq=False)
class ColumnPacking:
    """Compaction along K, per column tile of PE columns (see `column_tile_packing`)."""

    packed_k: np.ndarray  # [nNt] max packed K length over the tile's block columns (sets time)
    mean_k: np.ndarray  # [nNt] mean packed K length over them (the balanced ideal)
    used_k: np.ndarray  # [nNt] K positions used by any of them (inputs to gather)
    groups: np.ndarray  # [nNt] block columns (= PE column groups, index streams) in the tile
    kept_elems: np.ndarray  # [nNt] kept weights whose output column lies in the tile
    kept_blocks: np.ndarray  # [nNt] kept blocks of the tile's block columns (indices to store)
    gathered_k: np.ndarray  # [nNt] sum over the tile's groups of their packed K (input reads)
    used_k_total: int  # K positions used by any kept block of the matrix


def column_tile_packing(gb: GemmBlocks, tile_n: int) -> ColumnPacking:
    """Compaction along K per column tile of `tile_n` PE columns.

    Each block column (bn output features) intersecting a column tile occupies its own group of
    PE columns with its own gathered input stream, and its kept blocks are packed along K. The
    group with the longest packed K sets the tile's time; a block column straddling two tiles
    belongs to both (its values are split by column, its indices are needed by both).
    """
    g64 = gb.grid.astype(np.int64)
    packed = gb.k_sizes @ g64  # [nNb]
    counts = g64.sum(axis=0)  # kept blocks per block column
    lo, hi = _tile_ranges(gb.n, tile_n, gb.bn)
    width = int((hi - lo).max())
    raw = lo[:, None] + np.arange(width)[None, :]
    valid = raw < hi[:, None]
    idx = np.minimum(raw, hi[:, None] - 1)
    vals = packed[idx]
    packed_k = vals.max(axis=1)
    groups = valid.sum(axis=1)
    gathered = np.where(valid, vals, 0).sum(axis=1)
    kept_blocks = np.where(valid, counts[idx], 0).sum(axis=1)
    per_col = np.repeat(packed, gb.bn)[: gb.n]
    starts = np.arange(0, gb.n, tile_n)
    kept_elems = np.add.reduceat(per_col, starts)
    used_rows = _range_any(gb.grid, lo, hi, axis=1)  # [nKb, nNt]
    used_k = gb.k_sizes @ used_rows.astype(np.int64)
    used_total = int(gb.k_sizes @ gb.grid.any(axis=1).astype(np.int64))
    return ColumnPacking(packed_k=packed_k, mean_k=gathered / groups, used_k=used_k,
                         groups=groups, kept_elems=kept_elems, kept_blocks=kept_blocks,
                         gathered_k=gathered, used_k_total=used_total)


def balance_groups(n: int, bn: int, cols: int) -> tuple[tuple[int, int], ...]:
    """The block columns (GEMM orientation: W's N = out_features in blocks of `bn`) that
    compaction runs side by side, as half-open ranges [lo, hi) of block-column indices, in
    order, covering all ceil(n / bn) of them.

    A column tile of `cols` PE columns holds every block column intersecting it, each in its own
    PE-column group, and the one with the longest packed K sets the tile's time
    (`column_tile_packing`); its load imbalance is 1.0 exactly when they all pack the same K.
    Column tiles that share a block column (one straddling a tile edge) form one group. Depends
    on the array width only (not on K, the row count or the dataflow)."""
    lo, hi = _tile_ranges(n, cols, bn)
    groups: list[tuple[int, int]] = []
    start, end = int(lo[0]), int(hi[0])
    for a, b in zip(lo[1:].tolist(), hi[1:].tolist()):
        if a < end:  # shares a block column with the group so far
            end = max(end, b)
        else:
            groups.append((start, end))
            start, end = a, b
    groups.append((start, end))
    return tuple(groups)


# --------------------------------------------------------------------------- index formats
#: bits of index the decoder reads per cycle: one 64-bit BRAM word (a model figure, as before)
INDEX_DECODE_BITS_PER_CYCLE = 64
_NM_GROUPS = (2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class IndexFormat:
    """How compaction stores where the kept weights sit along K, per block column (GEMM
    orientation; a parameter block row):

    * ``block``: one `index_bytes` index (the K block row) per kept block;
    * ``bitmap``: one bit per block of the block column, kept or not;
    * ``nm`` / ``nm:M``: N:M offsets, ceil(log2 M) bits per slot, N slots per aligned group of
      M K positions (N = the most kept positions of any group of the matrix; shorter groups are
      padded, as SCALE-Sim 3.0's ELLPACK-block metadata is). ``nm`` is ``nm:4`` (2:4 hardware).

    A block column with no kept block stores nothing (its tiles are empty). The bits of a
    column tile are stored contiguously (its bytes are ceil(bits / 8)).
    """

    kind: str  # "block", "bitmap" or "nm"
    group_m: int = 0  # M of ``nm`` (0 otherwise)

    @classmethod
    def parse(cls, text: "str | IndexFormat") -> "IndexFormat":
        """``"block"``, ``"bitmap"``, ``"nm"`` (= ``"nm:4"``) or ``"nm:M"`` (M a power of 2,
        2..256); ValueError (one line) otherwise."""
        if isinstance(text, IndexFormat):
            return text
        kind, sep, m = str(text).strip().partition(":")
        if kind in ("block", "bitmap") and not sep:
            return cls(kind)
        if kind == "nm" and (not sep or (m.isdigit() and int(m) in _NM_GROUPS)):
            return cls("nm", int(m) if sep else 4)
        raise ValueError(f"index format {text!r}: use block, bitmap, nm or nm:M with M one of "
                         f"{', '.join(map(str, _NM_GROUPS))}")

    def __str__(self) -> str:
        return f"nm:{self.group_m}" if self.kind == "nm" else self.kind


def nm_slots(gb: GemmBlocks, group_m: int) -> int:
    """N of the mask read as N:M along K: the most kept K positions of any block column in any
    aligned group of `group_m` K positions (0 for an empty mask)."""
    kept_k = np.repeat(gb.grid, gb.k_sizes, axis=0)  # [K, nNb] kept K positions
    pad = (-gb.k) % group_m
    if pad:
        kept_k = np.pad(kept_k, ((0, pad), (0, 0)))
    counts = kept_k.reshape(-1, group_m, kept_k.shape[1]).sum(axis=1)
    return int(counts.max()) if counts.size else 0


def index_bits_per_block_column(gb: GemmBlocks, fmt: IndexFormat, index_bytes: int) -> np.ndarray:
    """int64 [nNb]: index bits each block column stores in format `fmt` (see `IndexFormat`)."""
    kept = gb.grid.sum(axis=0).astype(np.int64)
    if fmt.kind == "block":
        return kept * (8 * index_bytes)
    nonempty = (kept > 0).astype(np.int64)
    if fmt.kind == "bitmap":
        return nonempty * gb.grid.shape[0]
    bits = math.ceil(math.log2(fmt.group_m))
    return nonempty * (nm_slots(gb, fmt.group_m) * math.ceil(gb.k / fmt.group_m) * bits)


@dataclass(frozen=True, eq=False)
class IndexLayout:
    """A mask's indices per column tile of `tile_n` PE columns. A block column is needed by
    every column tile it intersects but its indices are fetched (and decoded) once, with the
    first of them, and kept for the others (at most one block column's worth per tile edge)."""

    bits: np.ndarray  # [nNt] index bits fetched with the tile
    bytes: np.ndarray  # [nNt] ceil(bits / 8)
    new_groups: np.ndarray  # [nNt] block columns whose first column tile this is

    @property
    def total_bytes(self) -> int:
        return int(self.bytes.sum())


def index_layout(gb: GemmBlocks, tile_n: int, fmt: IndexFormat, index_bytes: int) -> IndexLayout:
    """Where the indices of `gb` in format `fmt` are fetched: see `IndexLayout`."""
    n_tiles = math.ceil(gb.n / tile_n)
    first = (np.arange(gb.grid.shape[1], dtype=np.int64) * gb.bn) // tile_n
    bits = np.bincount(first, weights=index_bits_per_block_column(gb, fmt, index_bytes),
                       minlength=n_tiles).astype(np.int64)
    return IndexLayout(bits=bits, bytes=-(-bits // 8),
                       new_groups=np.bincount(first, minlength=n_tiles).astype(np.int64))


def nonzeros_per_pe_column(gb: GemmBlocks, cols: int) -> np.ndarray:
    """Kept weights mapped onto each of the `cols` PE columns (column j of W goes to PE column
    j mod cols): the per-column load behind the load-imbalance figure."""
    per_n = (gb.k_sizes @ gb.grid.astype(np.int64))  # per block column
    per_col_of_w = np.repeat(per_n, gb.bn)[: gb.n]
    pad = (-gb.n) % cols
    return np.pad(per_col_of_w, (0, pad)).reshape(-1, cols).sum(axis=0)


def nonzeros_per_pe_row(gb: GemmBlocks, rows: int) -> np.ndarray:
    """Kept weights mapped onto each of the `rows` PE rows (row k of W goes to PE row k mod rows)."""
    per_k = gb.grid.astype(np.int64) @ gb.n_sizes
    per_row_of_w = np.repeat(per_k, gb.bk)[: gb.k]
    pad = (-gb.k) % rows
    return np.pad(per_row_of_w, (0, pad)).reshape(-1, rows).sum(axis=0)
