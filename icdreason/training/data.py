"""The training Parquet files: check their shape before any work, and load them in the layout the trainers want.

- **SFT** (``icdreason distill`` / ``data prepare --sft``): trl's conversational layout, a ``messages`` column of
  ``{"role", "content"}`` lists ending with the assistant's ``<think>…</think><diagnosis>…</diagnosis>`` answer.
  For training it becomes prompt/completion pairs (everything before the last message / the last message), so the
  loss covers the answer only with any chat template (see :func:`load_sft_dataset`).
- **RL** (``icdreason data prepare``): verl's layout, ``data_source``, ``prompt`` (chat messages), ``ability``,
  ``reward_model`` = ``{"style": "rule", "ground_truth": code}`` and ``extra_info`` (``id``, ``note``, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

__all__ = ["DataCheck", "check_rl_parquet", "check_sft_parquet", "load_rl_dataset", "load_sft_dataset"]

_ROLES = {"system", "user", "assistant"}


@dataclass
class DataCheck:
    """What a checked file holds."""

    path: Path
    rows: int
    columns: list[str]


def _read_schema(path: Path | None, what: str, flag: str):
    import pyarrow.parquet as pq

    if path is None:
        raise InputError(f"no {what} file given: pass {flag} PATH.parquet")
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"{what} file not found: {path}")
    try:
        return path, pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several kinds for non-Parquet input
        raise InputError(f"{path} is not a Parquet file ({str(exc).splitlines()[0]}): write it with `icdreason data "
                         f"prepare` / `icdreason distill`") from None


def _is_messages(arrow_type) -> bool:
    import pyarrow as pa

    if not (pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)):
        return False
    item = arrow_type.value_type
    if not pa.types.is_struct(item):
        return False
    names = {item.field(i).name for i in range(item.num_fields)}
    return {"role", "content"} <= names and all(
        pa.types.is_string(item.field(n).type) or pa.types.is_large_string(item.field(n).type)
        for n in ("role", "content")
    )


def _require(schema, path: Path, column: str, ok: bool, shape: str, fix: str) -> None:
    if column not in schema.names:
        raise InputError(f"{path} has no {column!r} column (found: {', '.join(schema.names)}): {fix}")
    if not ok:
        raise InputError(f"{path}: column {column!r} must be {shape}, found {schema.field(column).type}: {fix}")


def _require_messages(schema, path: Path, column: str, shape: str, fix: str) -> None:
    _require(schema, path, column, column in schema.names and _is_messages(schema.field(column).type), shape, fix)


def _read_rows(pf, path: Path, columns: list[str]):
    """The given columns of a Parquet file that must hold rows."""
    table = pf.read(columns=columns)
    if table.num_rows == 0:
        raise InputError(f"{path} has no rows")
    return table


def check_sft_parquet(path: Path | None, *, flag: str = "--train") -> DataCheck:
    """Check an SFT file: a ``messages`` column of role/content lists, each ending with a non-empty assistant turn."""
    import pyarrow.compute as pc

    path, pf = _read_schema(path, "SFT training", flag)
    schema = pf.schema_arrow
    fix = "write it with `icdreason distill` or `icdreason data prepare --sft`"
    _require_messages(schema, path, "messages", "a list of {role, content} messages", fix)
    table = _read_rows(pf, path, ["messages"])
    messages = table.column("messages")
    ids = pf.read(columns=["id"]).column("id").to_pylist() if "id" in schema.names else None
    lengths = pc.list_value_length(messages).to_pylist()
    bad: list[str] = []
    for i, row in enumerate(messages.to_pylist()):
        problem = _sft_row_problem(row, lengths[i])
        if problem:
            bad.append(f"row {ids[i] if ids else i}: {problem}")
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise InputError(f"{path}: {len(bad)} of {table.num_rows} rows cannot be trained on; {bad[0]}{more}")
    return DataCheck(path=path, rows=table.num_rows, columns=list(schema.names))


def _sft_row_problem(row: list[dict[str, Any]] | None, length: int | None) -> str | None:
    if not row or not length or length < 2:
        return "needs at least a user and an assistant message"
    roles = [m.get("role") for m in row]
    unknown = sorted({r for r in roles if r not in _ROLES}, key=str)
    if unknown:
        return f"unknown role(s) {', '.join(map(str, unknown))} (use system, user, assistant)"
    if roles[-1] != "assistant":
        return f"the last message is from {roles[-1]!r}, not the assistant's answer"
    if "user" not in roles[:-1]:
        return "no user message before the answer"
    if not (row[-1].get("content") or "").strip():
        return "the assistant's answer is empty"
    return None


def check_rl_parquet(path: Path | None, *, flag: str = "--train") -> DataCheck:
    """Check an RL file in verl's layout (``prompt`` messages, ``reward_model.ground_truth``, ``data_source``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    path, pf = _read_schema(path, "RL training", flag)
    schema = pf.schema_arrow
    fix = "write it with `icdreason data prepare` (verl's layout)"
    _require_messages(schema, path, "prompt", "a list of {role, content} chat messages", fix)
    rm_type = schema.field("reward_model").type if "reward_model" in schema.names else None
    _require(schema, path, "reward_model",
             rm_type is not None and pa.types.is_struct(rm_type) and rm_type.get_field_index("ground_truth") >= 0,
             'a struct with a ground_truth field ({"style": "rule", "ground_truth": code})', fix)
    ds_type = schema.field("data_source").type if "data_source" in schema.names else None
    _require(schema, path, "data_source", ds_type is not None and pa.types.is_string(ds_type), "a string", fix)
    if "extra_info" in schema.names and not pa.types.is_struct(schema.field("extra_info").type):
        raise InputError(f"{path}: column 'extra_info' must be a struct (id, note, …), found "
                         f"{schema.field('extra_info').type}: {fix}")
    table = _read_rows(pf, path, ["prompt", "reward_model"])
    golds = pc.struct_field(table.column("reward_model").combine_chunks(), "ground_truth").to_pylist()
    missing = sum(1 for g in golds if g is None or not str(g).strip())
    if missing:
        raise InputError(f"{path}: {missing} of {table.num_rows} rows have no reward_model.ground_truth code: {fix}")
    empty = sum(1 for p in table.column("prompt").to_pylist() if not p or not any(m.get("role") == "user" for m in p))
    if empty:
        raise InputError(f"{path}: {empty} of {table.num_rows} prompts have no user message: {fix}")
    return DataCheck(path=path, rows=table.num_rows, columns=list(schema.names))


def load_sft_dataset(path: Path, *, max_samples: int | None = None):
    """The SFT file as a ``datasets.Dataset`` of conversational prompt/completion pairs.

    ``prompt`` is every message before the answer, ``completion`` the answer (a one-message list). trl then computes
    the loss on the completion only (``completion_only_loss``), which works with any chat template; the alternative,
    ``assistant_only_loss``, needs ``{% generation %}`` markers in the template, which Qwen2.5's template lacks.
    """
    from datasets import Dataset

    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["messages"])
    if max_samples is not None:
        table = table.slice(0, max_samples)
    rows = [{"prompt": [_msg(m) for m in messages[:-1]], "completion": [_msg(messages[-1])]}
            for messages in table.column("messages").to_pylist()]
    return Dataset.from_list(rows)


def load_rl_dataset(path: Path, *, max_samples: int | None = None):
    """The RL file as a ``datasets.Dataset`` for trl's GRPOTrainer (``prompt`` messages plus the reward columns)."""
    from datasets import Dataset

    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if max_samples is not None:
        table = table.slice(0, max_samples)
    records = table.to_pylist()
    for record in records:
        record["prompt"] = [_msg(m) for m in record["prompt"]]
    return Dataset.from_list(records)


def _msg(message: dict[str, Any]) -> dict[str, str]:
    return {"role": message["role"], "content": message["content"] or ""}
