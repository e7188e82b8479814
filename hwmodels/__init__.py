"""hwmodels: a cycle-approximate model of a block-sparse systolic-array accelerator (FPGA/edge).

Imports only numpy, scipy, simpy, pyyaml, pydantic and the standard library.
Public API: load_board, list_boards, Accelerator, Workload, GemmOp, VectorOp, bert_encoder,
BlockMask, BlockShape, DataflowPlan, parse_dims, edge_sizes, simulate, Report, OpReport, ActionCounts, price,
assess_fit, FitCheck.
"""
from .accelerator import (Accelerator, Buffer, Dram, EnergyTable, BoardResources, PEArray,
                          VectorUnit)
from .actions import ActionCounts
from .board_loader import accelerator_from_dict, list_boards, load_board
from .board_schema import BoardError
from .energy import price
from .report import OpReport, Report
from .resources import (FitCheck, ResourceError, assess_fit, check_fit,
                        estimate as estimate_resources)
from .simulate import gemm_workload, simulate
from .batch import simulate_points
from .costs import CostTable, build_costs
from .dataflow import DataflowPlan
from .sparsity import BlockMask, BlockShape, IndexFormat, edge_sizes, parse_dims
from .workload import BUILTIN_CONFIGS, GemmOp, VectorOp, Workload, bert_encoder, builtin_workload

__all__ = [
    "Accelerator", "BoardError", "BoardResources", "Buffer", "Dram", "EnergyTable", "PEArray",
    "VectorUnit", "accelerator_from_dict", "list_boards", "load_board", "ActionCounts", "price",
    "OpReport", "Report", "FitCheck", "ResourceError", "assess_fit", "check_fit",
    "estimate_resources", "gemm_workload", "simulate", "simulate_points", "build_costs",
    "CostTable", "DataflowPlan", "BlockMask", "BlockShape", "IndexFormat", "edge_sizes",
    "parse_dims", "BUILTIN_CONFIGS", "GemmOp", "VectorOp", "Workload", "bert_encoder",
    "builtin_workload",
]
