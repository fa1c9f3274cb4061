"""A command line that behaves like the best (issue 16): one test per friction.

--version and a --help that imports nothing heavy; help text shown as written; choices
that are real choices (listed, completed by the shell); tune's options in help panels;
metavars in the words the help uses; results on stdout, progress on stderr, --json for
machines, -q/-v; tune.log with each trial and the final metrics; `grutune datasets`
fitted to the terminal. (How fast --help answers is measured by bench/cli_help.py, not
asserted here.)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import grutune
from grutune import cli
from grutune.cli import app

HEAVY = ("torch", "sklearn", "optuna", "pandas", "numpy", "scipy", "grutune.workflows.tune",
         "grutune.workflows.compare", "grutune.reporting.page", "grutune.tasks",
         "grutune.data.datasets")
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
WIDE = {"COLUMNS": "250", "TERMINAL_WIDTH": "250"}


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``grutune ARGS`` in a fresh interpreter (the console script's code path)."""
    code = "from grutune.cli import app; app(prog_name='grutune')"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, env={**ENV, **(env or {})}, timeout=600)


# --- --version, and --help that imports nothing heavy --------------------------------

def test_version_prints_the_version_on_stdout(runner):
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"grutune {grutune.__version__}\n"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["tune", "--help"],
                                  ["compare", "--help"], ["predict", "--help"], []])
def test_help_and_version_import_nothing_heavy(args):
    code = ("import atexit, sys\n"
            f"atexit.register(lambda: print('LOADED', [m for m in {HEAVY!r} "
            "if m in sys.modules], file=sys.stderr))\n"
            f"sys.argv = ['grutune', *{args!r}]\n"
            "from grutune.cli import main\nmain()\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stderr, proc.stderr
    assert "Usage:" in proc.stdout or proc.stdout.startswith("grutune ")


def test_no_arguments_show_the_help_once(runner):
    result = runner.invoke(app, [])
    assert result.exit_code == 0
    assert result.stdout.count("Usage:") == 1 and "tune" in result.stdout


def test_import_grutune_is_lazy_and_keeps_every_public_name():
    code = ("import importlib, sys, grutune\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
            "from grutune import Bundle, ConfigError, TuneResult, load_bundle, predict_file, tune\n"
            "for name, module in grutune._LAZY.items():\n"
            "    where = importlib.import_module('grutune.' + module)\n"
            "    assert getattr(grutune, name) is getattr(where, name), name\n"
            "import grutune.bundle as b, grutune.workflows.tune as p\n"
            "import grutune.workflows.predict as w\n"
            "assert TuneResult is p.TuneResult and Bundle is b.Bundle\n"
            "assert load_bundle is b.load_bundle and predict_file is w.predict_file\n"
            "assert callable(tune)\n")
    assert _fresh_python(code).strip() == "[]"
    for name in grutune.__all__:
        assert getattr(grutune, name) is not None and name in dir(grutune)
    assert issubclass(grutune.DataError, grutune.GrutuneError)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        grutune.nope  # noqa: B018


def test_the_predict_path_imports_no_scikit_learn_or_scipy_stats():
    """``grutune predict`` loads a bundle, reads rows and runs the model: every task's
    module imports scikit-learn and scipy's statistics (1.5 s and 0.8 s of a start) only
    where they fit or score, never on import."""
    code = ("import sys\n"
            "import grutune.bundle, grutune.cli, grutune.tasks, grutune.workflows.predict\n"
            "from grutune.tasks import TASKS\n"
            "print(sorted(TASKS), [m for m in ('sklearn', 'scipy.stats') if m in sys.modules])\n")
    out = _fresh_python(code)
    tasks, loaded = out.strip().split("] ")
    assert "forecast" in tasks and "text" in tasks
    assert loaded == "[]", out


def _fresh_python(code: str) -> str:
    """The standard output of ``code`` run in a fresh interpreter, which must succeed."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=ENV, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# --- help text shows what it says ------------------------------------------------------

def _commands():
    import typer

    group = typer.main.get_command(app)
    return group, group.commands


def test_help_text_keeps_its_square_brackets(runner):
    """Every bracketed part of every help text (``'grutune[mlflow]'``) is in --help."""
    _, commands = _commands()
    checked = 0
    for name, command in commands.items():
        result = runner.invoke(app, [name, "--help"], env=WIDE)
        assert result.exit_code == 0, result.output
        shown = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())
        for param in command.params:
            written = (param.help or "").replace("\\[", "[")
            for part in re.findall(r"\[[^\]]*\]", written):
                assert part in shown, (name, param.name, part)
                checked += 1
    assert checked >= 1  # --mlflow's 'grutune[mlflow]' at least
    result = runner.invoke(app, ["tune", "--help"], env=WIDE)
    assert "pip install 'grutune[mlflow]'" in " ".join(result.stdout.split())
    result = runner.invoke(app, ["datasets"], env=WIDE)
    assert "pip install 'grutune[datasets]'" in result.stdout


# --- choices are real choices -----------------------------------------------------------

def test_choices_are_listed_in_help(runner):
    from grutune.config import PRUNERS, SAMPLERS, SCALINGS

    result = runner.invoke(app, ["tune", "--help"], env=WIDE)
    for names in (cli.TASK_NAMES, SAMPLERS, PRUNERS, SCALINGS):
        assert f"<{'|'.join(names)}>" in result.stdout, names
    metrics = dict.fromkeys(m for names in cli.TASK_METRICS.values() for m in names)
    assert f"<{'|'.join(metrics)}>" in result.stdout
    result = runner.invoke(app, ["export", "--help"], env=WIDE)
    assert "<onnx|torchscript>" in result.stdout


def test_the_light_task_list_is_the_registry_s_built_ins():
    """The names --help shows without importing the registry (which imports PyTorch)
    are its built-in tasks, and each task accepts exactly the metrics listed for it."""
    from grutune.exceptions import ConfigError
    from grutune.export import FORMATS
    from grutune.tasks import TASKS

    built_in = [name for name, cls in TASKS.items() if cls.__module__.startswith("grutune.")]
    assert list(cli.TASK_NAMES) == built_in
    every = {m for names in cli.TASK_METRICS.values() for m in names} | {"auc", "r2"}
    for name, metrics in cli.TASK_METRICS.items():
        assert TASKS[name]().metric == metrics[0]  # the default first
        for metric in every:
            if metric in metrics:
                assert TASKS[name](metric).metric == metric
            else:
                with pytest.raises(ConfigError, match="--metric"):
                    TASKS[name](metric)
    assert cli.EXPORT_FORMATS == FORMATS


@pytest.mark.parametrize("words, expected", [
    ("tune --sampler ", ["tpe", "random", "grid", "cmaes", "qmc", "gp"]),
    ("tune --pruner h", ["hyperband"]),
    ("tune --scaling ", ["standard", "minmax", "robust"]),
    ("tune --task ", ["text", "series", "forecast", "recommend"]),
    ("tune --task forecast --metric ", ["mase", "mae", "rmse"]),
    ("compare --metric f", ["f1_macro"]),
    ("export --format ", ["onnx", "torchscript"]),
    ("tune --dataset bbc", ["bbc-news"]),
])
def test_shell_completion_offers_the_choices(words, expected):
    line = f"grutune {words}"
    proc = _cli(env={"_GRUTUNE_COMPLETE": "complete_bash", "COMP_WORDS": line,
                     "COMP_CWORD": str(len(line.split()) - (0 if line.endswith(" ") else 1))})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == expected


def test_a_bad_choice_is_one_error_line(runner):
    result = runner.invoke(app, ["tune", "--sampler", "magic"])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: --sampler: must be one of tpe, random, grid, cmaes, qmc, gp; got 'magic'"]


# --- help panels and metavars ------------------------------------------------------------

def test_tune_options_are_grouped_in_help_panels(runner):
    _, commands = _commands()
    for name in ("tune", "compare"):
        panels = {p.name: p.rich_help_panel for p in commands[name].params
                  if p.param_type_name == "option" and p.name != "help"}
        assert len(panels) >= 30 and None not in panels.values(), panels
        result = runner.invoke(app, [name, "--help"], env=WIDE)
        titles = re.findall(r"╭─ (\w+) ─", result.stdout)
        assert titles == ["Arguments", "Options", "Data", "Search", "Training", "Storage",
                          "Output"], titles
    panels = {p.name: p.rich_help_panel for p in commands["tune"].params}
    assert panels["dataset"] == panels["task"] == "Data"
    assert panels["sampler"] == panels["trials"] == "Search"
    assert panels["max_epochs"] == panels["repeats"] == "Training"
    assert panels["storage"] == panels["study"] == "Storage"
    assert panels["run_dir"] == panels["as_json"] == panels["quiet"] == "Output"


@pytest.mark.parametrize("command, usage", [
    ("tune", "grutune tune [OPTIONS] [FILE]"),
    ("compare", "grutune compare [OPTIONS] [FILE]"),
    ("predict", "grutune predict [OPTIONS] {MODEL} {FILE}"),
    ("export", "grutune export [OPTIONS] {MODEL}"),
    ("report", "grutune report [OPTIONS] {RUN_DIR}"),
    ("dashboard", "grutune dashboard [OPTIONS] {RUN_DIR}"),
])
def test_metavars_are_the_words_the_help_uses(runner, command, usage):
    result = runner.invoke(app, [command, "--help"], env=WIDE, prog_name="grutune")
    assert usage in result.stdout
    if command in ("tune", "compare"):
        for option, metavar in (("--test", "FILE"), ("--space", "FILE"),
                                ("--run-dir", "RUN_DIR"), ("--study", "STUDY")):
            assert re.search(rf"{option}\s+{metavar}\s", result.stdout), (option, metavar)
    result = runner.invoke(app, ["predict"])
    assert "Missing argument 'MODEL'" in result.stderr


# --- stdout carries results, stderr progress --------------------------------------------

QUICK = ["tune", "--dataset", "bbc-news", "--sample", "300", "--trials", "2", "--max-epochs",
         "1", "--workers", "1", "--repeats", "1", "--folds", "1", "--no-refit", "--no-baseline"]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One real short tune, its stdout and stderr apart; later runs on the same run
    directory resume with no trial left (evaluate and print again)."""
    run_dir = tmp_path_factory.mktemp("polish") / "run"
    proc = _cli(*QUICK, "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    return run_dir, proc


@pytest.mark.realdata
def test_results_on_stdout_progress_on_stderr(quick_run):
    run_dir, proc = quick_run
    assert "Test metrics" in proc.stdout and f"run directory: {run_dir}" in proc.stdout
    assert "accuracy" in proc.stdout
    assert "Tuning a GRU classifier" not in proc.stdout and "trial   0" not in proc.stdout
    assert "Tuning a GRU classifier" in proc.stderr and "trial   0" in proc.stderr
    assert "Test metrics" not in proc.stderr and "run directory:" not in proc.stderr


@pytest.mark.realdata
def test_tune_log_holds_each_trial_and_the_final_metrics(quick_run):
    run_dir, _ = quick_run
    text = (run_dir / "tune.log").read_text()
    assert re.search(r"INFO trial +0 +complete", text) and re.search(r"INFO trial +1 ", text)
    assert "Test metrics" in text and "accuracy" in text and "run directory:" in text


@pytest.mark.realdata
def test_json_is_the_only_thing_on_stdout_and_pipes_into_json_load(quick_run):
    run_dir, _ = quick_run
    proc = _cli(*QUICK, "--run-dir", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["run_dir"] == str(run_dir) and summary["task"] == "text"
    assert summary["best_params"] and "lr" in summary["best_params"]
    assert 0 <= summary["test_metrics"]["accuracy"] <= 1
    assert summary["metrics_file"] == str(run_dir / "metrics.json")
    assert summary["interrupted"] is False
    assert "Test metrics" in proc.stderr  # the human tables join the progress
    # the pipe of the issue, through a shell
    code = "from grutune.cli import app; app(prog_name='grutune')"
    command = " ".join([sys.executable, "-c", f'"{code}"', *QUICK, "--run-dir",
                        str(run_dir), "--json", "2>/dev/null", "|", sys.executable, "-c",
                        "'import json,sys; print(json.load(sys.stdin)[\"run_dir\"])'"])
    piped = subprocess.run(command, shell=True, capture_output=True, text=True, env=ENV,
                           timeout=600)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.strip() == str(run_dir)


@pytest.mark.realdata
def test_quiet_prints_only_results_and_verbose_adds_debug_logging(quick_run):
    run_dir, _ = quick_run
    quiet = _cli(*QUICK, "--run-dir", str(run_dir), "-q")
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stderr == ""
    assert "Test metrics" in quiet.stdout and "run directory:" in quiet.stdout
    verbose = _cli(*QUICK, "--run-dir", str(run_dir), "-v")
    assert verbose.returncode == 0, verbose.stderr
    lines = verbose.stderr.splitlines()
    assert any(line.startswith("debug: data: DataConfig(") for line in lines), lines
    assert any(line.startswith("info: search: ") for line in lines), lines
    assert "Test metrics" in verbose.stdout


def test_quiet_and_verbose_together_is_one_error_line(runner):
    result = runner.invoke(app, ["tune", "-q", "-v"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: give -q/--quiet or -v/--verbose, not both"


# --- `grutune datasets` fits the terminal ----------------------------------------------

def test_datasets_fits_the_terminal_width(runner):
    from grutune.data.datasets import DATASETS

    for width in (70, 100):
        result = runner.invoke(app, ["datasets"], env={"COLUMNS": str(width)})
        assert result.exit_code == 0, result.output
        lines = result.stdout.rstrip("\n").splitlines()
        assert max(len(line) for line in lines) <= width, (width, result.stdout)
        for name in DATASETS:  # names are never broken
            assert re.search(rf"│ {re.escape(name)} +│", result.stdout), name


def test_datasets_into_a_pipe_keeps_one_line_per_dataset(runner):
    from grutune.data.datasets import DATASETS

    result = runner.invoke(app, ["datasets"], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    for d in DATASETS.values():
        assert any(d.name in line and d.source in line for line in result.stdout.splitlines())


def test_readme_documents_the_new_flags():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    for flag in ("--version", "--json", "-q", "-v"):
        assert flag in readme, flag


# --- the plan says which GRU recurrence runs ---------------------------------------------

@pytest.mark.realdata
def test_the_plan_says_which_recurrence_runs(quick_run, tmp_path):
    from grutune.nn.recurrence import cpu_kernel

    _, proc = quick_run
    built = cpu_kernel() is not None
    assert ("GRU recurrence: grutune's C++ kernel." in proc.stderr) == built
    one = [*QUICK, "--trials", "1"]  # the last --trials wins
    slow = _cli(*one, "--run-dir", str(tmp_path / "plain"), env={"GRUTUNE_NO_KERNEL": "1"})
    assert slow.returncode == 0, slow.stderr
    assert "GRU recurrence: plain PyTorch, about 1.6x slower" in " ".join(slow.stderr.split())


# --- lines that say what happened, and no warning for what the user asked ----------------

@pytest.mark.realdata
def test_automatic_folds_are_explained_epochs_are_per_fold_and_repeats_1_is_quiet(tmp_path):
    """``--sample 300`` leaves too few rows for one validation split: the plan says that
    the sample turned cross-validation on, each trial line gives epochs per fold (not
    their sum), and ``--repeats 1`` is not reported as a warning."""
    proc = _cli("tune", "--dataset", "bbc-news", "--sample", "300", "--trials", "1",
                "--max-epochs", "1", "--workers", "1", "--repeats", "1",
                "--run-dir", str(tmp_path / "cv"), env=WIDE)
    assert proc.returncode == 0, proc.stderr
    err = " ".join(proc.stderr.split())
    assert "5-fold cross-validation" in err
    assert "(--sample 300 leaves fewer than 500 rows, too few for one validation split; " \
           "--folds 1 turns it off)" in err
    assert re.search(r"trial +0 +complete .* epochs 1/fold ", err)
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("warning")]
    assert warnings and not any("repeat" in line for line in warnings)  # others do warn
