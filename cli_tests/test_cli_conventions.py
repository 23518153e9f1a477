"""The CLI speaks one language (docs/cli-conventions.md): every command's options are walked and held to the naming
rules; renamed flags keep their old spelling, hidden, for one release, with one deprecation line."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

import pytest
import typer

from icdreason.cli import WORKFLOW, app
from icdreason.cli.common import RENAMED
from icdreason.codes import chapter_label

ROOT = Path(__file__).resolve().parents[1]


def _commands(group, prefix=()):
    for name, command in group.commands.items():
        path = (*prefix, name)
        yield path, command
        if hasattr(command, "commands"):
            yield from _commands(command, path)


def _root():
    return typer.main.get_command(app)


def _leaves():
    """(command words, click command, its params including --help) for every runnable command and the root."""
    root = _root()
    out = []
    for path, command in [((), root), *_commands(root)]:
        ctx = typer.Context(command, info_name=" ".join(path) or "icdreason", help_option_names=["-h", "--help"])
        out.append((" ".join(path) or "icdreason", command, ctx, command.get_params(ctx)))
    return out


def _options(param) -> list[str]:
    return [*param.opts, *param.secondary_opts]


PYTHON_LIKE = re.compile(r"[<>\[\]]|\b(bool|str|int|float|list|dict|tuple|path|int range|float range)\b")


def test_option_types_read_as_what_a_user_types():
    shown = {}
    for name, _command, ctx, params in _leaves():
        for param in params:
            label = param.display_type_rich(ctx) or ""
            shown[f"{name} {'/'.join(_options(param)) or param.name}"] = label
    bad = {where: label for where, label in shown.items() if PYTHON_LIKE.search(label)}
    assert bad == {}
    root_help = [label for where, label in shown.items() if where in ("icdreason -h/--help", "icdreason --help/-h")]
    assert shown["predict --resume"] == "" and root_help == [""]  # a switch shows no type
    assert shown["predict inputs"] == "TEXT" and shown["kb search --limit/-n"] == "INTEGER"
    assert shown["reward score --components"] == "a,b,c"


def test_rendered_help_has_no_python_types(runner):
    for name, _command, _ctx, _params in _leaves():
        words = [] if name == "icdreason" else name.split()
        result = runner.invoke(app, [*words, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, name
        assert not re.search(r"<(bool|str|int|float|path|list\[\w+\]|int range|float range)>", result.stdout), name


def test_brackets_in_help_stay_visible(runner):
    # typer renders help as rich markup: an unescaped [train] would vanish from the screen.
    for name, command, _ctx, params in _leaves():
        for text in [command.help or "", *(getattr(p, "help", None) or "" for p in params)]:
            assert not re.search(r"(?<!\\)\[[a-z][a-z,]*\]", text), f"{name}: escape the brackets in {text!r}"
    result = runner.invoke(app, ["predict", "--help"])
    assert "pip install '.[ray]' in the icdreason checkout" in " ".join(result.stdout.replace("│", " ").split())


def test_one_flag_one_meaning_across_commands():
    kinds: dict[str, set] = defaultdict(set)
    shorts: dict[str, set] = defaultdict(set)
    for name, _command, _ctx, params in _leaves():
        for param in params:
            if getattr(param, "hidden", False) or param.param_type_name != "option":
                continue
            longs = [o for o in _options(param) if o.startswith("--")]
            for opt in longs:
                kinds[opt].add("switch" if param.is_flag else "value")
                assert not opt.endswith("-field"), f"{name} {opt}: table columns are --*-column"
                if opt.endswith("-column"):
                    assert param.type_descriptor.annotation is str, f"{name} {opt} names a column"
            for opt in _options(param):
                if len(opt) == 2:
                    shorts[opt].add(longs[0])
            if "--json" in longs:
                assert param.is_flag, f"{name}: --json prints JSON on stdout (a switch); files go to --out"
            if "--out" in longs:
                assert not param.is_flag and "-o" in param.opts, f"{name}: --out/-o takes the output path"
            if "--limit" in longs:
                assert param.type_descriptor.annotation is int, f"{name}: --limit is a count"
            assert not {"--top-k", "--top", "--pred-column"} & set(longs), f"{name}: use the new names"
    assert {flag: k for flag, k in kinds.items() if len(k) > 1} == {}  # never a switch here and a value there
    assert {s: sorted(longs) for s, longs in shorts.items() if len(longs) > 1} == {"-o": ["--out", "--output-dir"]}


def test_renamed_flags_are_hidden_aliases_of_their_new_name():
    assert RENAMED == {"--top-k": "--differential", "--top": "--limit", "-k": "--limit",
                       "--pred-column": "--prediction-column", "--json": "--out",
                       "--response-field": "--response-column", "--gold-field": "--gold-column"}
    used = set()
    for name, _command, _ctx, params in _leaves():
        visible = {o for p in params if not getattr(p, "hidden", False) for o in _options(p)}
        for param in params:
            old = [o for o in _options(param) if o in RENAMED and param.hidden]
            for spelling in old:
                used.add(spelling)
                assert RENAMED[spelling] in visible, f"{name}: {spelling} has no visible {RENAMED[spelling]}"
            if param.hidden is False and set(_options(param)) & set(RENAMED) and "--json" not in param.opts:
                pytest.fail(f"{name}: {param.opts} still shows an old spelling")
    assert used == set(RENAMED)


def test_old_spellings_work_for_one_release_with_one_deprecation_line(runner, built_kb, tmp_path):
    result = runner.invoke(app, ["kb", "search", "nstemi", "-k", "2", "--json", "--kb", str(built_kb)])
    assert result.exit_code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    assert result.stderr.splitlines() == ["--top/-k is deprecated; use --limit"]
    new = runner.invoke(app, ["kb", "search", "nstemi", "--limit", "2", "--json", "--kb", str(built_kb)])
    assert new.stdout == result.stdout and new.stderr == ""

    note = tmp_path / "n.txt"
    note.write_text("chest pain")
    shown = runner.invoke(app, ["predict", str(note), "--top-k", "3", "--show-prompt"])
    assert shown.exit_code == 0 and shown.stderr.splitlines() == ["--top-k is deprecated; use --differential"]
    both = runner.invoke(app, ["predict", str(note), "--top-k", "3", "--differential", "4", "--show-prompt"])
    assert both.exit_code == 2 and "--differential and its old spelling --top-k disagree" in both.stderr

    gold, preds = tmp_path / "gold.csv", tmp_path / "preds.csv"
    gold.write_text("id,code\na,I21.4\n")
    preds.write_text("id,answer\na,I21.4\n")
    old = runner.invoke(app, ["eval", str(preds), "--gold", str(gold), "--pred-column", "answer", "--json",
                              str(tmp_path / "m.json")])
    assert old.exit_code == 0, old.stderr
    assert "--pred-column is deprecated; use --prediction-column" in old.stderr.splitlines()
    assert "--json is deprecated; use --out" in old.stderr.splitlines()
    assert (tmp_path / "m.json").read_text().startswith("{")


def test_commands_are_listed_in_workflow_order(runner):
    top = list(_root().commands)
    assert sorted(top) == sorted(WORKFLOW)
    result = runner.invoke(app, ["--help"], env={"COLUMNS": "200"})
    listed = [m.group(1) for m in re.finditer(r"^│ (\w[\w-]*) ", result.stdout, re.M) if m.group(1) in WORKFLOW]
    assert listed == list(WORKFLOW)
    assert listed.index("kb") < listed.index("predict") < listed.index("eval") < listed.index("audit")
    assert listed.index("data") < listed.index("predict") and listed.index("distill") < listed.index("train")


def test_no_install_hint_names_a_package_that_is_not_on_pypi():
    # icdreason is installed from its checkout: `pip install 'icdreason[train]'` cannot work.
    offenders = [f"{p.relative_to(ROOT)}" for p in [*ROOT.glob("icdreason/**/*.py"), *ROOT.glob("docs/*.md"),
                                                    ROOT / "README.md"]
                 if re.search(r"pip install '?icdreason\[", p.read_text())]
    assert offenders == []


def test_one_chapter_form_for_people():
    assert chapter_label(9) == "9 (I00-I99)" and chapter_label("1") == "1 (A00-B99)"
    assert chapter_label(None) == "-" and chapter_label(23) == "23"


def test_kb_info_pluralises_and_shows_chapters_one_way(runner, built_kb):
    result = runner.invoke(app, ["kb", "info", "--kb", str(built_kb)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.stderr
    assert "categorys" not in result.stdout and "│ categories " in result.stdout and "│ subcategories " in result.stdout
    assert "│ 9 (I00-I99) " in result.stdout and "│ 1 (A00-B99) " in result.stdout
