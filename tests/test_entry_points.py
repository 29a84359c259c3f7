"""Every entry point has a smoke test: each module of the package with ``if __name__ == "__main__"`` and each
console script of setup.cfg (by its name or its target's module) is named in a test file other than this one, so
a new entry point without a test fails here; and every console script's target imports and takes an argument
list, as ``main(argv)``."""

import ast
import configparser
import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"


def main_modules() -> list[str]:
    """Dotted names of the package's modules that run as ``python -m`` (an ``if __name__ == "__main__"`` block)."""
    names = []
    for path in sorted((ROOT / "sqair_world").rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        if any(isinstance(node, ast.If) and _is_main_guard(node.test) for node in tree.body):
            parts = path.relative_to(ROOT).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    return names


def _is_main_guard(test: ast.expr) -> bool:
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)
    )


def console_scripts() -> dict[str, str]:
    """``{script name: "module:function"}`` from setup.cfg's ``[options.entry_points]``."""
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    lines = cfg.get("options.entry_points", "console_scripts", fallback="").strip().splitlines()
    return dict((part.strip() for part in line.split("=", 1)) for line in lines if line.strip())


def _test_sources() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(TESTS.glob("*.py")) if p.name != Path(__file__).name}


def _named(name: str, text: str) -> bool:
    """``name`` appears as a whole module path or script name, not as the start of a longer one."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w-]|\.\w)", text) is not None


def test_the_collectors_find_the_known_entry_points():
    """Guards the guard: if the collectors found nothing, the test below would pass vacuously."""
    assert {"sqair_world.pretrain", "sqair_world.preview", "sqair_world.agents.train_ppo"} <= set(main_modules())
    assert {"sqair-pretrain", "sqair-evaluate", "sqair-preview", "sqair-train-ppo"} <= set(console_scripts())
    assert _named("sqair_world.pretrain", "from sqair_world.pretrain import main")
    assert not _named("sqair_world.data", "sqair_world.data.preview") and not _named("sqair-pre", "sqair-preview")


def entry_points() -> dict[str, list[str]]:
    """``{entry point: the names a test may call it by}``: a ``python -m`` module by its path, a console script by
    its name or its target's module."""
    points = {name: [name] for name in main_modules()}
    points.update({script: [script, target.partition(":")[0]] for script, target in console_scripts().items()})
    return points


@pytest.mark.parametrize("entry_point, names", sorted(entry_points().items()))
def test_every_entry_point_is_named_in_a_test(entry_point, names):
    sources = _test_sources()
    assert any(_named(name, text) for name in names for text in sources.values()), (
        f"{entry_point} is an entry point but no test under tests/ names it ({' or '.join(names)}): add a smoke "
        "test (one step, or --help) that runs it in-process"
    )


@pytest.mark.parametrize("script, target", sorted(console_scripts().items()))
def test_console_script_targets_import_and_take_an_argument_list(script, target):
    module, _, attr = target.partition(":")
    func = getattr(importlib.import_module(module), attr)
    assert callable(func), f"{script} -> {target} is not callable"
    inspect.signature(func).bind([])  # main(argv): tests call it in-process with an argument list
