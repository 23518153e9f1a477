"""``icdreason reward``: score responses with the training reward, list the reward settings and their origins."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import cell, console, disclaimer, renamed_flag, renamed_value, say

app = typer.Typer(help="The GRPO reward: score a file of responses, show the settings.", no_args_is_help=True)

PresetOption = Annotated[Optional[str], typer.Option("--preset", help="Reward preset: deepicd-r1 (default: the "
                                                     "paper's GRPO jobs), icdreason, authors-readme.")]
ConfigOption = Annotated[Optional[Path], typer.Option("--config", help="YAML file of reward settings.")]
SetOption = Annotated[Optional[list[str]], typer.Option("--set", help="NAME=VALUE reward setting (repeatable).")]
JudgeUrlOption = Annotated[Optional[str], typer.Option("--judge-url", help="OpenAI-compatible judge endpoint.")]
JudgeModelOption = Annotated[Optional[str], typer.Option("--judge-model", help="Judge model name.")]
JudgePromptOption = Annotated[Optional[Path], typer.Option("--judge-prompt", help="Judge prompt JSON {SYSTEM, USER} "
                                                           "(the authors' files load as they are; default: "
                                                           "icdreason's own prompt).")]


def _config(preset: Optional[str], config_file: Optional[Path], settings: list[str], components: Optional[str],
            judge_url: Optional[str], judge_model: Optional[str], judge_prompt: Optional[Path]):
    """Preset and environment, then --config, then --set and the dedicated flags (each value keeps its origin)."""
    from ..rewards import RewardConfig
    from ..settings import parse_assignments

    cfg = RewardConfig.from_env()
    if config_file:
        cfg = RewardConfig.load(config_file, base=cfg, origin=f"YAML {config_file} (--config)")
    given = {key: (value.strip(), "flag --set") for key, value in parse_assignments(settings).items()}
    flags = {"preset": preset, "components": components, "judge_url": judge_url, "judge_model": judge_model,
             "judge_prompt": str(judge_prompt) if judge_prompt else None}
    given.update({name: (value, f"flag --{name.replace('_', '-')}") for name, value in flags.items() if value})
    return RewardConfig.from_sources(given, base=cfg) if given else cfg


@app.command("score")
def score(
    file: Annotated[Path, typer.Argument(help="JSONL/CSV/Parquet of responses (or an `icdreason predict` output "
                                              "written with --keep-raw).")],
    gold: Annotated[Optional[Path], typer.Option("--gold", help="File of gold codes joined on id (e.g. the RL "
                                                               "Parquet of `icdreason data prepare`).")] = None,
    response_column: Annotated[Optional[str], typer.Option("--response-column", help="Column holding the "
                                                           "response.")] = None,
    gold_column: Annotated[Optional[str], typer.Option("--gold-column", help="Column holding the gold code.")] = None,
    preset: PresetOption = None,
    config_file: ConfigOption = None,
    settings: SetOption = None,
    components: Annotated[Optional[str], typer.Option(metavar="a,b,c", help="Comma-separated components, e.g. "
                                                      "format,outcome,length,trace,judge.")] = None,
    judge_url: JudgeUrlOption = None,
    judge_model: JudgeModelOption = None,
    judge_prompt: JudgePromptOption = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write per-response breakdowns (JSONL).")] = None,
    response_field: Annotated[Optional[str], renamed_flag("--response-column", "--response-field")] = None,
    gold_field: Annotated[Optional[str], renamed_flag("--gold-column", "--gold-field")] = None,
) -> None:
    """Score each response against its gold code and print the component table (mean, min, max, share non-zero)."""
    import json

    from rich.table import Table

    from ..rewards.presets import departures
    from ..rewards.report import score_file, summarize

    response_column = renamed_value(response_column, response_field, default=None, new="--response-column")
    gold_column = renamed_value(gold_column, gold_field, default=None, new="--gold-column")
    cfg = _config(preset, config_file, settings or [], components, judge_url, judge_model, judge_prompt)
    for note in departures(cfg):
        say(f"note: {note}")
    scored = score_file(file, config=cfg, gold_file=gold, response_field=response_column, gold_field=gold_column)
    for why in scored.skipped[:5]:
        say(f"skipped {why}")
    if len(scored.skipped) > 5:
        say(f"... {len(scored.skipped) - 5} more rows skipped")
    results = scored.results
    table = Table(title=cell(f"Reward components over {len(results):,} responses "
                             f"(preset {cfg.preset}, rule {cfg.rule}; components on: {', '.join(cfg.components)})"))
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
        from ..files import atomic_write

        def write(fh) -> None:
            for row, r in zip(scored.rows, results):
                fh.write(json.dumps({"id": row.get("id"), "code": r.code, "gold": r.gold, "judge_score": r.judge_score,
                                     **r.as_dict()}, ensure_ascii=False) + "\n")

        atomic_write(out, write)
        say(f"wrote {out}")
    disclaimer()


@app.command("settings")
def settings_cmd(
    preset: PresetOption = None,
    config_file: ConfigOption = None,
    settings: SetOption = None,
    judge_url: JudgeUrlOption = None,
    judge_model: JudgeModelOption = None,
    judge_prompt: JudgePromptOption = None,
) -> None:
    """List every reward setting: its value, where the value came from (preset, YAML, $ICDREASON_REWARD_*, flag) and
    what it does; then where the configuration departs from the preset's original."""
    from rich.table import Table
    from rich.text import Text

    from ..rewards.presets import UNUSED_BY_RULE, departures, get_preset

    cfg = _config(preset, config_file, settings or [], None, judge_url, judge_model, judge_prompt)
    chosen = get_preset(cfg.preset)
    origins = cfg.origins()
    console.print(Text(f"Reward preset: {cfg.preset} ({origins['preset']}) - {chosen.summary}"))
    table = Table(title="Reward settings (YAML keys, ICDREASON_REWARD_<NAME>, verl reward_kwargs)")
    for col in ("name", "value", "origin", "help"):
        table.add_column(col, overflow="fold")
    unused = UNUSED_BY_RULE[cfg.rule]
    for name, value, help_text in cfg.help_table():
        shown = ",".join(value) if isinstance(value, tuple) else str(value)
        origin = origins[name]
        if origin.startswith("preset ") and chosen.source(name):
            origin = f"{origin}: {chosen.source(name)}"
        if name in unused:
            origin += f" (not used by the {cfg.rule} rule)"
        table.add_row(Text(name), cell(shown), cell(origin), Text(help_text))
    console.print(table)
    for note in departures(cfg):
        console.print(Text(f"note: {note}"))
