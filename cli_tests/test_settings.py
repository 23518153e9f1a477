"""The one settings base (icdreason.settings): YAML and KEY=VALUE strings in, typed fields out; unknown keys fail;
renamed keys still work for a release; environment overrides; help written once for flags and --help-config."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer
import yaml

from icdreason.cli import app
from icdreason.engines.base import SamplingParams, SharedOptions
from icdreason.errors import InputError, UsageError
from icdreason.settings import Settings, option, parse_assignments
from icdreason.training import GrpoConfig, SftConfig


@dataclass
class Scoring(Settings):
    """Shaped like the reward settings: a tuple given as "a,b", optional fields, environment overrides."""

    env_prefix = "SCORING_"
    yaml_section = "scoring"

    components: tuple[str, ...] = option(("format", "outcome"), "Components summed into the score.")
    weight: float = option(15.0, "Weight of the outcome.")
    bonus_from: int = option(3, "Prefix length from which the bonus is paid.")
    judge_url: str | None = option(None, "Judge base URL.")
    cache: Path | None = option(None, "Cache file.")
    strict: bool = option(False, "Refuse malformed answers.")
    extra: dict = option({}, "Free-form extras.")


# -- coercion -------------------------------------------------------------------------------------------------------


def test_strings_become_the_field_types():
    s = Scoring.from_dict({"components": "format, outcome,judge", "weight": "7.5", "bonus_from": "4",
                           "judge_url": "http://j:8000/v1", "cache": "~/scores.sqlite", "strict": "yes",
                           "extra": '{"a": [1, 2]}'})
    assert s.components == ("format", "outcome", "judge")
    assert (s.weight, s.bonus_from, s.strict) == (7.5, 4, True)
    assert s.judge_url == "http://j:8000/v1" and s.cache == Path.home() / "scores.sqlite"
    assert s.extra == {"a": [1, 2]}
    assert Scoring.from_dict({"judge_url": "none", "cache": "", "strict": "off"}).judge_url is None
    assert Scoring.from_dict({"components": "[format]", "bonus_from": "2.0"}).components == ("format",)
    assert Scoring.from_dict({"bonus_from": 2.0}).bonus_from == 2  # YAML numbers too


@pytest.mark.parametrize("key, value, message", [
    ("weight", "lots", "weight: expected float, got 'lots'"),
    ("bonus_from", "2.5", "bonus_from: expected int, got '2.5'"),
    ("strict", "maybe", "strict: expected bool, got 'maybe'"),
    ("strict", 1, "strict: expected bool, got 1"),
    ("weight", None, "weight: expected float, got no value"),
    ("extra", "[1, 2]", "extra: expected dict, got '[1, 2]'"),
])
def test_values_of_the_wrong_type_fail_in_one_line(key, value, message):
    with pytest.raises(UsageError) as info:
        Scoring.from_dict({key: value})
    assert str(info.value) == message


def test_unknown_keys_fail_and_name_the_known_ones():
    with pytest.raises(UsageError) as info:
        Scoring.from_dict({"wieght": 1}, source="scoring.yaml")
    assert str(info.value) == ("unknown key(s) in scoring.yaml: wieght (known: components, weight, bonus_from, "
                               "judge_url, cache, strict, extra)")
    with pytest.raises(UsageError, match=r"`icdreason train sft --help-config` lists the \d+ known keys"):
        SftConfig.from_dict({"learning_rat": 0.1})
    from icdreason.engines.retriever import RetrieverOptions

    with pytest.raises(UsageError) as info:  # engine options word it for `-E`
        RetrieverOptions.from_dict({"bogus": "1"})
    assert str(info.value) == ("unknown option(s) for this engine: bogus (known: candidates, evidence, index, "
                               "negation, symptoms)")


def test_parse_assignments_keeps_values_as_strings():
    assert parse_assignments(["lr=1e-5", "report-to=none", "x=a=b"]) == {"lr": "1e-5", "report_to": "none",
                                                                         "x": "a=b"}
    with pytest.raises(UsageError, match="--engine-option expects KEY=VALUE, got 'batch_size'"):
        parse_assignments(["batch_size"], flag="--engine-option")


# -- layering: YAML, base, environment -------------------------------------------------------------------------------


def test_yaml_then_overrides_then_save_and_load_back(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("scoring:\n  weight: 2\n  components: [format]\n")  # a section named by yaml_section
    s = Scoring.load(path, {"bonus-from": "5", "strict": None})  # None: not given
    assert (s.weight, s.components, s.bonus_from, s.strict) == (2.0, ("format",), 5, False)
    saved = s.save(tmp_path / "out" / "resolved.yaml")
    assert yaml.safe_load(saved.read_text())["components"] == ["format"]  # tuples are written as lists
    assert Scoring.load(saved) == s
    with pytest.raises(InputError, match="config file not found"):
        Scoring.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("- a\n- b\n")
    with pytest.raises(InputError, match="must hold a mapping"):
        Scoring.load(tmp_path / "bad.yaml")


def test_environment_overrides_on_top_of_a_base(tmp_path):
    config = tmp_path / "scoring.yaml"
    config.write_text("weight: 3\nbonus_from: 2\n")
    env = {"SCORING_CONFIG": str(config), "SCORING_BONUS_FROM": "6", "SCORING_COMPONENTS": "outcome",
           "OTHER_WEIGHT": "9"}
    s = Scoring.from_env(env, base=Scoring(judge_url="http://j/v1"))
    assert (s.weight, s.bonus_from, s.components, s.judge_url) == (3.0, 6, ("outcome",), "http://j/v1")
    with pytest.raises(UsageError, match="unknown key\\(s\\) in .*scoring.yaml: nope"):
        config.write_text("nope: 1\n")
        Scoring.from_env(env)


def test_every_value_remembers_where_it_came_from(tmp_path):
    config = tmp_path / "scoring.yaml"
    config.write_text("scoring:\n  weight: 3\n")
    s = Scoring.from_env({"SCORING_CONFIG": str(config), "SCORING_STRICT": "yes"}, base=Scoring(bonus_from=4))
    s = Scoring.from_sources({"judge_url": ("http://j/v1", "flag --judge-url")}, base=s)
    assert s.origins() == {"components": "default", "weight": f"YAML {config} ($SCORING_CONFIG)",
                           "bonus_from": "argument", "judge_url": "flag --judge-url", "cache": "default",
                           "strict": "env SCORING_STRICT", "extra": "default"}
    assert (s.weight, s.bonus_from, s.strict) == (3.0, 4, True)
    loaded = Scoring.load(config, {"cache": "c.sqlite"})
    assert (loaded.origins()["weight"], loaded.origins()["cache"]) == (f"YAML {config}", "override")
    assert Scoring.from_dict({"weight": "2"}, origin="verl reward_kwargs").origins()["weight"] == "verl reward_kwargs"
    assert Scoring.from_dict({"weight": "2"}).origins()["weight"] == "the settings"  # the source, unless named


@dataclass
class Tiered(Settings):
    """A default derived from another setting, as a reward preset supplies the reward's values."""

    tier: str = option("small", "Size tier.")
    batch: int | None = option(None, "Batch size (default: the tier's).")

    def __post_init__(self) -> None:
        if self.batch is None:
            self.derive("batch", {"small": 8, "large": 64}[self.tier], f"tier {self.tier}")


def test_a_derived_default_is_derived_afresh_when_the_settings_are_layered():
    small = Tiered()
    assert (small.batch, small.origins()) == (8, {"tier": "default", "batch": "tier small"})
    large = Tiered.from_dict({"tier": "large"}, base=small, origin="flag --tier")
    assert (large.batch, large.origins()) == (64, {"tier": "flag --tier", "batch": "tier large"})
    fixed = Tiered.from_dict({"batch": "16"}, base=small, origin="flag --batch")
    again = Tiered.from_dict({"tier": "large"}, base=fixed, origin="flag --tier")
    assert (again.batch, again.origins()["batch"]) == (16, "flag --batch")  # set explicitly: kept


def test_a_renamed_option_still_works_with_a_deprecation_line(capsys):
    from icdreason.engines.openai_engine import OpenAIOptions

    options = OpenAIOptions.from_dict({"base_url": "http://127.0.0.1:9/v1", "max_retries": "2"})
    assert options.retries == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["warning: max_retries is deprecated, use retries (the old name stops working in the next "
                   "release)"]


# -- help written once ------------------------------------------------------------------------------------------------


def test_help_config_shows_types_as_a_user_types_them(runner):
    result = runner.invoke(app, ["train", "grpo", "--help-config"])
    assert result.exit_code == 0
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:4]]
            for line in result.stdout.splitlines() if line.count("│") >= 5 and line.split("│")[1].strip()}
    assert rows["rewards"] == ["a,b,c", "none"]  # none: the reward preset's components
    assert rows["use_kl_loss"] == ["true/false", "false"]
    assert rows["train_batch_size"] == ["INTEGER", "64"]
    assert rows["output_dir"] == ["PATH", "runs/grpo"]
    assert rows["judge_url"] == ["TEXT", "none"]
    assert "<bool>" not in result.stdout and "list[str]" not in result.stdout and "PosixPath" not in result.stdout


def _params(*path: str) -> dict[str, object]:
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    return {p.name: p for p in command.params}


def test_flags_take_their_help_from_the_settings_fields():
    predict = _params("predict")
    for name in SharedOptions.field_names():  # each shared engine option has a flag of the same name
        assert predict[name].help == SharedOptions.help_for(name), name
    for name in ("n", "temperature", "top_p", "max_new_tokens", "seed", "constrain"):
        assert predict[name].help == SamplingParams.help_for(name), name
    sft = _params("train", "sft")
    assert sft["lr"].help == SftConfig.help_for("learning_rate") and sft["batch_size"].metavar == "INTEGER"
    assert sft["report_to"].metavar == "a,b,c"
    grpo = _params("train", "grpo")
    assert grpo["train"].help == GrpoConfig.help_for("train_file")
    assert grpo["gpus"].help == GrpoConfig.help_for("gpus")


def test_flag_bounds_come_from_the_field_metadata(runner):
    for flag, value, bound in (("--concurrency", "0", "greater than or equal to 1"),
                               ("--gpu-memory-utilization", "1.5", "less than or equal to 1"),
                               ("--n", "257", "less than or equal to 256")):
        result = runner.invoke(app, ["predict", "note.txt", flag, value])
        assert result.exit_code == 2 and f"Invalid value for '{flag}'" in result.stderr
        assert bound in " ".join(result.stderr.replace("│", " ").split()), flag


def test_predict_pipeline_flags_match_the_predict_settings_help():
    """PredictSettings lives in icdreason.predict, too heavy to import for `--help`: its flags copy the help text,
    and this test keeps the copies equal."""
    from icdreason.predict import PredictSettings

    predict = _params("predict")
    for name in ("batch_size", "max_note_chars", "keep_raw"):
        assert predict[name].help == PredictSettings.help_for(name), name
    assert predict["differential"].help == PredictSettings.help_for("top_k")  # --differential sets top_k


def test_engines_share_the_canonical_option_names():
    from icdreason.engines.hf import TransformersOptions
    from icdreason.engines.openai_engine import OpenAIOptions
    from icdreason.engines.retriever import RetrieverOptions
    from icdreason.engines.vllm_engine import VllmOptions

    shared = set(SharedOptions.field_names())
    used = set()
    for options in (RetrieverOptions, TransformersOptions, OpenAIOptions, VllmOptions):
        names = set(options.field_names())
        assert not names & {"max_retries", "base_urls", "max_concurrency", "request_timeout"}, options
        for name in names & shared:
            assert options.help_for(name) == SharedOptions.help_for(name), (options, name)
            assert options.type_label(name) == SharedOptions.type_label(name), (options, name)
        used |= names & shared
    assert used == shared  # every shared name is an option of some engine


# -- machine-dependent defaults ----------------------------------------------------------------------------------------


def test_device_defaults_are_resolved_in_an_explicit_step():
    def no_count() -> int:
        raise AssertionError("the device count is not needed here")

    sft = SftConfig()
    assert sft.gpus is None and sft.per_device_batch_size is None and not sft.resolved
    assert sft.resolve(devices=2) is sft
    assert (sft.gpus, sft.per_device_batch_size, sft.gradient_accumulation_steps, sft.bf16) == (2, 4, 4, True)
    assert SftConfig(gpus=8).resolve(devices=no_count).gradient_accumulation_steps == 1
    assert SftConfig().resolve(devices=lambda: 6).gpus == 4
    grpo = GrpoConfig().resolve(devices=0)
    assert (grpo.backend, grpo.gpus) == ("trl", 0)
    assert (GrpoConfig().resolve(devices=lambda: 2).backend, GrpoConfig(backend="trl").resolve(devices=1).gpus) == (
        "verl", 1)
    assert GrpoConfig(backend="verl").resolve(devices=no_count).gpus == 4
    with pytest.raises(UsageError, match="the verl backend trains on GPUs"):
        GrpoConfig(gpus=0).resolve(devices=3)


def test_building_a_config_does_not_import_torch():
    code = ("import sys; from icdreason.training import GrpoConfig, SftConfig; SftConfig(); GrpoConfig(); "
            "SftConfig.from_dict({'epochs': '2'}); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
