"""The hardware workload of a checkpoint: its config, and its ops named as its masks are keyed.

One home for two steps that the CLI's `simulate` and the study driver both take:
- `model_config`: a model name (a built-in checkpoint of codesign, a built-in config of
  hwmodels such as ``bert-base``, or a checkpoint folder) -> its Hugging Face config as a dict;
- `encoder_workload`: that config -> `hwmodels.bert_encoder` ops whose weight names are the
  checkpoint parameter names the given masks use, so masks attach by name (ARCHITECTURE.md).
  Mask keys may carry a task-model prefix (``bert.``) or not (a bare base model); ops are matched
  to masks by (layer, role), so either works.

Only the config is read (no weights, no torch).
"""
from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import hwmodels


class ModelConfigError(ValueError):
    """A model name that is neither built in nor a folder with a readable config.json."""


@functools.lru_cache(maxsize=16)
def _config_text(name: str) -> str:
    from codesign.checkpoints import builtin_models, builtin_path, read_config

    if name in builtin_models():
        return json.dumps(read_config(builtin_path(name)))
    if name in hwmodels.BUILTIN_CONFIGS:
        return json.dumps(dict(hwmodels.BUILTIN_CONFIGS[name]))
    path = Path(name)
    cfg = path / "config.json" if path.is_dir() else path
    if not cfg.is_file():
        known = sorted(set(builtin_models()) | set(hwmodels.BUILTIN_CONFIGS))
        raise ModelConfigError(f"{name!r}: not a built-in model ({', '.join(known)}) and no "
                               "config.json there")
    try:
        return json.dumps(json.loads(cfg.read_text(encoding="utf-8")))
    except (OSError, ValueError) as err:
        raise ModelConfigError(f"{cfg}: cannot read the model config ({err})") from None


def model_config(name: str) -> dict[str, Any]:
    """The HF config of a built-in model or a checkpoint folder (a fresh dict each call)."""
    return json.loads(_config_text(str(name)))


def encoder_workload(config: Mapping[str, Any], seq_len: int, batch: int = 1, *,
                     mask_names: Iterable[str] | None = None,
                     name: str | None = None) -> hwmodels.Workload:
    """`hwmodels.bert_encoder` with the checkpoint's parameter names on its weight ops.

    With `mask_names`, an op whose (layer, role) some mask key names takes that key; the others
    take the layout's own name. A config of no known layout keeps hwmodels' default (BERT) names.
    """
    from codesign.checkpoints import structure_for

    try:
        structure = structure_for(config)
    except ValueError:
        return hwmodels.bert_encoder(config, seq_len, batch, name=name)
    by_position: dict[tuple[int, str], str] = {}
    for key in mask_names or ():
        parsed = structure.parse(key)
        if parsed is not None:
            by_position[parsed] = key

    def weight_name(layer: int, role: str) -> str:
        return by_position.get((layer, role)) or structure.weight_name(layer, role)

    return hwmodels.bert_encoder(config, seq_len, batch, weight_names=weight_name, name=name)
