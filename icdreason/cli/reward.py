"""``icdreason reward``: score responses with the training reward, list the reward settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import console, disclaimer, say

app = typer.Typer(help="The GRPO reward: score a file of responses, show the settings.", no_args_is_help=True)


def _config(config_file: Optional[Path], settings: list[str], components: Optional[str], judge_url: Optional[str],
            judge_model: Optional[str]):
    from ..errors import UsageError
    from ..rewards import RewardConfig

    base = RewardConfig.from_env()
    if config_file:
        base = RewardConfig.from_yaml(config_file, base=base)
    values: dict[str, str] = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--set expects NAME=VALUE, got {item!r} (see `icdreason reward settings`)")
        values[key.strip()] = value.strip()
    if components:
        values["components"] = components
    if judge_url:
        values["judge_url"] = judge_url
    if judge_model:
        values["judge_model"] = judge_model
    return RewardConfig.from_dict(values, base=base)


@app.command("score")
def score(
    file: Annotated[Path, typer.Argument(help="JSONL/CSV/Parquet of responses (or an `icdreason predict` output "
                                              "written with --keep-raw).")],
    gold: Annotated[Optional[Path], typer.Option("--gold", help="File of gold codes joined on id (e.g. the RL "
                                                               "Parquet of `icdreason data prepare`).")] = None,
    response_field: Annotated[Optional[str], typer.Option(help="Column holding the response.")] = None,
    gold_field: Annotated[Optional[str], typer.Option(help="Column holding the gold code.")] = None,
    config_file: Annotated[Optional[Path], typer.Option("--config", help="YAML file of reward settings.")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", help="NAME=VALUE reward setting (repeatable).")] = None,
    components: Annotated[Optional[str], typer.Option(help="Comma-separated components, e.g. "
                                                           "format,outcome,length,trace,judge.")] = None,
    judge_url: Annotated[Optional[str], typer.Option("--judge-url", help="OpenAI-compatible judge endpoint.")] = None,
    judge_model: Annotated[Optional[str], typer.Option("--judge-model", help="Judge model name.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write per-response breakdowns (JSONL).")] = None,
) -> None:
    """Score each response against its gold code and print the component table (mean, min, max, share non-zero)."""
    import json

    from rich.table import Table

    from ..rewards.report import score_file, summarize

    cfg = _config(config_file, settings or [], components, judge_url, judge_model)
    scored = score_file(file, config=cfg, gold_file=gold, response_field=response_field, gold_field=gold_field)
    for why in scored.skipped[:5]:
        say(f"skipped {why}")
    if len(scored.skipped) > 5:
        say(f"... {len(scored.skipped) - 5} more rows skipped")
    results = scored.results
    table = Table(title=f"Reward components over {len(results):,} responses "
                        f"(components on: {', '.join(cfg.components)})")
    for col in ("component", "mean", "min", "max", "non-zero"):
        table.add_column(col, justify="left" if col == "component" else "right")
    for row in summarize(results):
        table.add_row(row["component"], f"{row['mean']:.4f}", f"{row['min']:.4f}", f"{row['max']:.4f}",
                      f"{100 * row['nonzero']:.1f}%")
    console.print(table)
    n = len(results)
    console.print(f"format ok {sum(r.format_ok for r in results) / n:.1%}  ·  exact {sum(r.exact for r in results) / n:.1%}"
                  f"  ·  mean prefix {sum(r.prefix for r in results) / n:.2f} characters")
    if out:
        with open(out, "w", encoding="utf-8") as fh:
            for row, r in zip(scored.rows, results):
                fh.write(json.dumps({"id": row.get("id"), "code": r.code, "gold": r.gold, "judge_score": r.judge_score,
                                     **r.as_dict()}) + "\n")
        say(f"wrote {out}")
    disclaimer()


@app.command("settings")
def settings_cmd(
    config_file: Annotated[Optional[Path], typer.Option("--config", help="YAML file of reward settings.")] = None,
) -> None:
    """List every reward setting with its current value (defaults, $ICDREASON_REWARD_*, --config) and help."""
    from rich.table import Table

    from ..rewards import RewardConfig

    cfg = RewardConfig.from_env()
    if config_file:
        cfg = RewardConfig.from_yaml(config_file, base=cfg)
    table = Table(title="Reward settings (YAML keys, ICDREASON_REWARD_<NAME>, verl reward_kwargs)")
    for col in ("name", "value", "help"):
        table.add_column(col)
    for name, value, help_text in cfg.help_table():
        shown = ",".join(value) if isinstance(value, tuple) else str(value)
        table.add_row(name, shown, help_text)
    console.print(table)
