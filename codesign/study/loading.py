"""Reading a study file: YAML text -> a validated `Study`, or ONE located error line.

Errors are one line, `FILE:LINE key.path: what is wrong; allowed: ...`, located in the YAML text
through the node marks of `yaml.compose`, never a traceback. Hardware points that do not fit the
board are rejected with the numbers of hwmodels' own resource check; every accelerator choice is
resolved here once (codesign.study.hardware.resolve), so the sweep reuses what validation built.

What is ignored: YAML anchors/merge keys are resolved by PyYAML as usual but errors inside a merged
mapping point at the alias, not at the anchor.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from codesign.errors import first_line, one_line
from codesign.study.hardware import accelerator_choices, resolve
from codesign.study.schema import Study


class StudyError(ValueError):
    """A study file is invalid: one line naming the file, the line, the key and what is allowed."""

    def __init__(self, file: str, line: int | None, key: str, message: str):
        self.file, self.line, self.key, self.message = str(file), line, key, message
        where = f"{self.file}:{line}" if line else self.file
        super().__init__(f"{where} {key}: {message}" if key else f"{where}: {message}")


# --- locating errors in the YAML text -------------------------------------------------------
def _loc_to_key(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union/branch markers (e.g. 'str', 'list[str]', 'function-after[...]')."""
    out = []
    for part in loc:
        if isinstance(part, str) and ("[" in part or part in
                                      ("str", "float", "int", "bool", "dict", "list")):
            continue
        out.append(part)
    return tuple(out)


def node_line(root: yaml.Node | None, loc: tuple) -> int | None:
    """1-based line of the YAML node at `loc` (or of the deepest ancestor found)."""
    node = root
    line = (node.start_mark.line + 1) if node is not None else None
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == str(part):
                    # the value's line, unless it is a block collection starting further down
                    line = k.start_mark.line + 1
                    child = v
                    break
            if child is None and part == "tasks":  # `task:` alias
                return node_line(node, ("task",))
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if 0 <= part < len(node.value):
                child = node.value[part]
                line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
    return line


def _allowed_hint(err: dict) -> str:
    ctx = err.get("ctx") or {}
    if err["type"] == "literal_error" and "expected" in ctx:
        return f"; allowed: {ctx['expected'].replace(chr(39), '')}"
    if err["type"] == "extra_forbidden":
        return ""
    return ""


def _message(err: dict, parent_fields: list[str] | None) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        hint = f"; allowed keys here: {', '.join(parent_fields)}" if parent_fields else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key is missing"
    if kind == "literal_error":
        expected = (err.get("ctx") or {}).get("expected", "")
        allowed = ", ".join(x.strip(" '") for x in re.split(r",| or ", expected) if x.strip())
        return f"{err.get('input')!r} is not allowed; allowed: {allowed}"
    msg = err["msg"]
    msg = re.sub(r"^(Value error|Assertion failed), ", "", msg)
    given = err.get("input")
    if kind not in ("value_error",) and not isinstance(given, (dict, list)):
        msg = f"{given!r}: {msg}"
    return msg + _allowed_hint(err)


def _fields_at(loc: tuple) -> list[str] | None:
    """The keys allowed in the mapping that holds `loc`'s last part."""
    model: Any = Study
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return None
        ann = field.annotation
        # unwrap list[Model] / Model | None
        for cand in getattr(ann, "__args__", ()) or (ann,):
            cand = getattr(cand, "__args__", (cand,))[0] if hasattr(cand, "__origin__") else cand
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                model = cand
                break
        else:
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                model = ann
            else:
                return None
    fields = list(getattr(model, "model_fields", {}))
    if model is Study:
        fields.append("task")
    return fields


def load_study(path: str | Path, *, check_fit: bool = True, check_data: bool = True) -> Study:
    """Read and validate a study file; raise StudyError (one line) on any problem.

    `check_fit`: every accelerator choice fits the board (when the study requires it);
    `check_data`: the GLUE folder holds every task's train and dev files, so a missing file
    stops the dry run and the sweep before any training, not after stage 1 has started."""
    path = Path(path)
    shown = os.path.relpath(path) if not str(path).startswith("..") else str(path)
    if len(shown) > len(str(path)):
        shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StudyError(shown, None, "", f"cannot read the study file ({exc.strerror})")
    try:
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise StudyError(shown, line, "", f"not valid YAML ({problem})")
    if not isinstance(data, dict):
        raise StudyError(shown, 1, "", "a study is a YAML mapping with keys name, model, tasks, "
                         "pruning, hardware, objectives (see docs/studies.md)")
    try:
        study = Study.model_validate(data)
    except ValidationError as exc:
        err = dict(exc.errors()[0])
        loc = _clean_loc(tuple(err["loc"]))
        # list-item errors carry their index (and buffer name) in the text: "@1@ ..."
        msg = re.sub(r"^(Value error|Assertion failed), ", "", err["msg"])
        while (m := re.match(r"^@([^@]+)@ ", msg)):
            part = m.group(1)
            msg = msg[m.end():]
            loc = loc + (int(part) if part.isdigit() else part,)
        err["msg"] = msg
        raise StudyError(shown, node_line(root, loc), _loc_to_key(loc),
                         _message(err, _fields_at(loc)))
    _check_semantics(study, shown, root)
    if check_data:
        _check_glue(study, shown, root)
    if check_fit:
        check_hardware(study, shown, root)
    return study


def _check_glue(study: Study, shown: str, root: yaml.Node) -> None:
    """The GLUE folder (the study's glue_dir, else $CODESIGN_GLUE_DIR) has every task's files."""
    from codesign.glue import GlueDataError, check_glue_dir

    try:
        check_glue_dir(study.glue_dir, study.tasks)
    except GlueDataError as exc:
        key = ("glue_dir",) if study.glue_dir else ("tasks",)
        raise StudyError(shown, node_line(root, key), key[0], one_line(exc)) from None


def _check_semantics(study: Study, shown: str, root: yaml.Node) -> None:
    """Checks that need the file system or other packages (model folder, board name)."""
    name = study.model.name
    from codesign.checkpoints import builtin_models

    if name not in builtin_models():
        folder = Path(name)
        if not (folder / "config.json").exists():
            raise StudyError(shown, node_line(root, ("model", "name")), "model.name",
                             f"{name!r} is neither a built-in model "
                             f"({', '.join(builtin_models())})"
                             " nor a checkpoint folder with a config.json")
    from hwmodels import list_boards

    boards = list(list_boards())
    board = study.hardware.board
    if board not in boards and not Path(board).is_file():
        raise StudyError(shown, node_line(root, ("hardware", "board")), "hardware.board",
                         f"{board!r} is not a board preset or YAML file; allowed: "
                         f"{', '.join(boards)}")


def check_hardware(study: Study, shown: str, root: yaml.Node | None) -> None:
    """Build every accelerator choice with hwmodels and run its resource check."""
    swept = study.hardware.swept()
    for choice in accelerator_choices(study):
        combo = choice.study_values()
        try:
            fit = resolve(study, choice).fit
        except (ValueError, TypeError, KeyError) as exc:
            key, loc = _blame(combo, swept, str(exc))
            raise StudyError(shown, node_line(root, loc), key, one_line(exc))
        if study.constraints.fits_board and not fit.fits:
            key, loc = _blame(combo, swept, fit.message, prefer="pe_array")
            raise StudyError(shown, node_line(root, loc), key,
                             f"{_describe(combo)} does not fit {study.hardware.board}: "
                             f"{fit.message}; use smaller values, or set "
                             "constraints.fits_board: false to keep them as infeasible points")


def _describe(combo: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in combo.items() if k in
                     ("pe_array", "precision", "clock_mhz") or k.startswith("buffers_kib"))


def _blame(combo: dict, swept: dict[str, list], message: str,
           prefer: str | None = None) -> tuple[str, tuple]:
    """Which study key to blame for a combination that fails: the one named in the message,
    else the preferred key; list entries are named by their index."""
    lowered = message.lower()
    order = [k for k in combo if k.split(".")[-1].split("_")[0] in lowered]
    if prefer and prefer in combo and not order:
        order = [prefer]
    if not order:
        order = list(combo)[:1]
    if not order:
        return "hardware.board", ("hardware", "board")
    key = order[0]
    parts = ("hardware",) + tuple(key.split("."))
    values = swept[key]
    shown = "hardware." + key
    if len(values) > 1:
        idx = values.index(combo[key])
        parts = parts + (idx,)
        shown += f"[{idx}]"
    return shown, parts
