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

import functools
import math
import re
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

import numpy as np

# tile occupancy and packing live in hwmodels.occupancy; re-exported here, where callers look
from .occupancy import (ColumnPacking, balance_groups, column_tile_packing,  # noqa: F401
                        prefix_sums, tile_occupancy)

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

    def __getstate__(self) -> dict:
        """Pickled without its memoised GEMM-orientation view (rebuilt on demand)."""
        return {k: v for k, v in self.__dict__.items() if k != "_gemm_blocks"}

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
    return _edge_sizes(int(total), int(block)).copy()


@functools.lru_cache(maxsize=4096)
def _edge_sizes(total: int, block: int) -> np.ndarray:
    """`edge_sizes`, memoised and read-only (for hwmodels' own callers, which never write)."""
    if total < 1 or block < 1:
        raise ValueError(f"edge_sizes: total ({total}) and block ({block}) must be >= 1")
    n = math.ceil(total / block)
    sizes = np.full(n, block, dtype=np.int64)
    sizes[-1] = total - block * (n - 1)
    return _read_only(sizes)


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

    @cached_property
    def kept_weights(self) -> int:
        return int(self.kept_k_per_column @ self.n_sizes)

    # Sums over the block grid that do not depend on the hardware, computed once per mask
    # (a GemmBlocks is immutable and `gemm_blocks` returns one object per mask).
    @cached_property
    def kept_k_per_column(self) -> np.ndarray:
        """int64 [nNb]: kept K positions (= packed K under compaction) of each block column."""
        return _read_only(self.k_sizes @ self.grid.astype(np.int64))

    @cached_property
    def kept_per_column(self) -> np.ndarray:
        """int64 [nNb]: kept blocks of each block column."""
        return _read_only(self.grid.sum(axis=0, dtype=np.int64))

    @cached_property
    def used_k_total(self) -> int:
        """K positions used by any kept block."""
        return int(self.k_sizes @ self.grid.any(axis=1).astype(np.int64))

    @cached_property
    def memo(self) -> dict:
        """Per-mask results of hardware-independent functions with parameters (index bits per
        format), filled by the functions of this module."""
        return {}


def _read_only(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def gemm_blocks(mask: BlockMask) -> GemmBlocks:
    """Transpose a parameter-orientation mask (out, in) to GEMM orientation (K=in, N=out).

    This is the only transposition of a mask in hwmodels. One GemmBlocks per mask object
    (memoised on it, as its content key is), so its hardware-independent sums are computed once
    per mask, not once per design point."""
    gb = mask.__dict__.get("_gemm_blocks")
    if gb is None:
        bh, bw = mask.block_shape
        out, inp = mask.matrix_shape
        gb = GemmBlocks(grid=mask.grid.T, bk=bw, bn=bh, k=inp, n=out,
                        k_sizes=_edge_sizes(inp, bw), n_sizes=_edge_sizes(out, bh), key=mask.content_key)
        mask.__dict__["_gemm_blocks"] = gb
    return gb


def dense_gemm_blocks(k: int, n: int) -> GemmBlocks:
    """A single all-kept block covering W (what the dense path sees)."""
    return GemmBlocks(grid=np.ones((1, 1), bool), bk=k, bn=n, k=k, n=n,
                      k_sizes=np.array([k], np.int64), n_sizes=np.array([n], np.int64),
                      key=("dense", k, n))


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
    """int64 [nNb]: index bits each block column stores in format `fmt` (see `IndexFormat`);
    memoised per mask (read-only)."""
    key = ("index_bits", str(fmt), index_bytes)
    hit = gb.memo.get(key)
    if hit is None:
        hit = gb.memo[key] = _read_only(_index_bits(gb, fmt, index_bytes))
    return hit


def _index_bits(gb: GemmBlocks, fmt: IndexFormat, index_bytes: int) -> np.ndarray:
    kept = gb.kept_per_column
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
    """Where the indices of `gb` in format `fmt` are fetched: see `IndexLayout`. Block column c
    is first needed by column tile c * bn // tile_n, so tile t fetches block columns
    [ceil(t tile_n / bn), ceil((t + 1) tile_n / bn)) (clipped to the grid). `gb` may be a
    `hwmodels.occupancy.GridStack` of masks of one shape: `bits` and `bytes` then have a
    leading axis over them (the same integers per mask)."""
    edges, new_groups = _index_edges(gb.n, tile_n, gb.bn, gb.n_sizes.size)
    members = getattr(gb, "members", None)
    per_column = (index_bits_per_block_column(gb, fmt, index_bytes) if members is None else
                  np.stack([index_bits_per_block_column(x, fmt, index_bytes) for x in members]))
    cs = prefix_sums(per_column)[..., edges]
    bits = cs[..., 1:] - cs[..., :-1]
    return IndexLayout(bits=bits, bytes=-(-bits // 8), new_groups=new_groups)


@functools.lru_cache(maxsize=1024)
def _index_edges(n: int, tile_n: int, bn: int, nnb: int) -> tuple[np.ndarray, np.ndarray]:
    """The first block column each column tile fetches (and one past the last tile's), and
    the block columns per tile (see `index_layout`); memoised, read-only."""
    n_tiles = math.ceil(n / tile_n)
    edges = np.minimum(-(-(np.arange(n_tiles + 1, dtype=np.int64) * tile_n) // bn), nnb)
    return _read_only(edges), _read_only(edges[1:] - edges[:-1])


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
