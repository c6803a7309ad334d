"""The plugin host: discovery through entry points, attribution, duplicates, broken plugins."""

from __future__ import annotations

import os
import re
import sys
import textwrap

import attrs
import pytest

from exitcore.components import ComponentKind
from exitcore.errors import ConfigError, ExitcoreError, PluginError
from exitcore.hookspecs import hookimpl
from exitcore.plugins import PluginHost


def fake_distribution(root, dist, module, code, ep_name=None):
    """Write an installed-looking distribution (dist-info + module) under ``root``; with
    ``code=None`` no module is written (the entry point names what is there, or nothing)."""
    if code is not None:
        (root / f"{module}.py").write_text(textwrap.dedent(code))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[exitcore]\n{ep_name or module} = {module}\n")
    (info / "top_level.txt").write_text(module + "\n")


GUARD_PLUGIN = """
from exitcore import hookimpl

@hookimpl
def register_exit_guards(register):
    register("{name}", lambda p, ctx: (lambda s, a: a < 0))
"""


def test_builtins_and_shipped_packages_are_discovered_through_entry_points():
    host = PluginHost.create()
    infos = {i.name: i for i in host.plugin_infos()}
    assert infos["builtin_policies"].distribution == "exitcore"
    assert "mlp" in host.components(ComponentKind.POLICY)
    assert infos["guards"].distribution == "exitcore-guards"
    assert {c.name for c in infos["guards"].components} >= {"min_profit_for_exit", "min_bars_for_exit"}
    comp = host.get(ComponentKind.MASK, "min_exit_bar")
    assert comp.origin == "masks (exitcore-masks 0.1.0)"


def test_same_component_name_from_two_distributions_names_both(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "alpha-guards", "alpha_guards", GUARD_PLUGIN.format(name="min_profit_for_exit"))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as exc:
        PluginHost.create()
    msg = str(exc.value)
    assert "guard 'min_profit_for_exit' is registered twice" in msg
    assert "exitcore-guards 0.1.0" in msg and "alpha-guards 1.2.3" in msg


def test_a_plugin_raising_while_registering_is_named_with_its_distribution(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "broken-exits", "broken_exits", """
        from exitcore import hookimpl

        @hookimpl
        def register_action_masks(register):
            raise RuntimeError("cannot find my model file")
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"plugin 'broken_exits' \(broken-exits 1.2.3\) raised in register_action_masks: RuntimeError: cannot find my model file") as exc:
        PluginHost.create()
    # the plugin's own line, so its author needs no traceback
    assert str(exc.value).endswith(f"(at {tmp_path / 'broken_exits.py'}:6)")


def test_a_plugin_that_fails_to_import_is_named(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "typo-exits", "typo_exits", "import not_a_module_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"plugin 'typo_exits' \(typo-exits 1.2.3\) failed to load .*ModuleNotFoundError") as exc:
        PluginHost.create()
    assert str(exc.value).endswith(f"(at {tmp_path / 'typo_exits.py'}:1)")  # not importlib's frames


def test_an_entry_point_naming_a_missing_module_says_what_to_do(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "missing-plug", "realpkg.plugn", None, ep_name="missing")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as exc:
        PluginHost.create()
    assert str(exc.value) == (
        "plugin 'missing' (missing-plug 1.2.3) failed to load from 'realpkg.plugn': ModuleNotFoundError: No module "
        "named 'realpkg'; the entry point names a module that is not installed: fix the entry point in missing-plug's "
        "metadata ([project.entry-points.exitcore] in its pyproject.toml, then reinstall it), or uninstall missing-plug")


def _hookless_dist(root, module: str, code: str | None) -> None:
    """A distribution ``empty-plug`` whose entry point ``empty`` imports ``module``: a file with
    ``code``, or with ``code=None`` a folder without ``__init__.py`` (a namespace package)."""
    fake_distribution(root, "empty-plug", module, None, ep_name="empty")
    if code is None:
        (root / module).mkdir()
    else:
        (root / f"{module}.py").write_text(code)


@pytest.mark.parametrize("namespace", [False, True])
def test_a_plugin_that_implements_no_hook_is_warned_about_naming_what_was_imported(tmp_path, monkeypatch, request,
                                                                                   namespace):
    """A same-named folder on sys.path shadowed the real package: the plugin was listed, its
    components were "unknown", and nothing said why."""
    from exitcore.errors import ExitcoreWarning

    module = f"shadowed_plug_{namespace}".lower()  # a name of its own: sys.modules keeps what was imported
    _hookless_dist(tmp_path, module, None if namespace else "VERSION = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    request.addfinalizer(lambda: sys.modules.pop(module, None))
    imported = (f"imported as a namespace package from {tmp_path / module}" if namespace
                else f"imported from {tmp_path / (module + '.py')}")
    message = (f"plugin 'empty' (empty-plug 1.2.3) implements no exitcore hooks: entry point '{module}' {imported}; "
               "if that is not the plugin's module, a same-named file or folder earlier on sys.path (the current "
               "directory) shadows it: rename it or run from elsewhere")
    with pytest.warns(ExitcoreWarning) as record:
        host = PluginHost.create()
    assert message in [str(w.message) for w in record]
    assert message in host.hookless
    with pytest.raises(ConfigError) as exc:  # the component it was meant to register: unknown, with the note
        host.get(ComponentKind.GUARD, "my_guard", where="guards[0].name")
    assert str(exc.value).endswith(f"; note: {message}")


def test_a_hook_function_without_hookimpl_is_named_instead_of_a_shadowing_hint(tmp_path, monkeypatch):
    """A plugin-author trial: `def register_features(register)` without `@hookimpl` was warned
    about as "implements no exitcore hooks ... a same-named file or folder shadows it"."""
    from exitcore.errors import ExitcoreWarning

    fake_distribution(tmp_path, "undecorated-plug", "undecorated_plug", """
        from exitcore import hookimpl


        def register_features(register):
            register("momo", lambda p, ctx: None)
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    message = (f"plugin 'undecorated_plug' (undecorated-plug 1.2.3) implements no exitcore hooks: register_features "
               f"(at {tmp_path / 'undecorated_plug.py'}:5) is not marked with @exitcore.hookimpl, so pluggy does not "
               "call it: decorate it with @hookimpl (from exitcore import hookimpl)")
    with pytest.warns(ExitcoreWarning) as record:
        host = PluginHost.create()
    assert message in [str(w.message) for w in record]
    with pytest.raises(ConfigError) as exc:  # the repetition in the unknown-component error too
        host.get(ComponentKind.FEATURE, "momo", where="features[0].name")
    assert str(exc.value).endswith(f"; note: {message}")
    assert "shadows" not in str(exc.value)


def test_one_hook_function_without_hookimpl_beside_marked_ones_is_named(tmp_path, monkeypatch):
    """A plugin whose guards were marked and whose feature was not: the feature was "unknown",
    and nothing said why (the plugin did implement hooks, so no hookless warning came)."""
    from exitcore.errors import ExitcoreWarning

    fake_distribution(tmp_path, "halfmarked-plug", "halfmarked_plug", """
        from exitcore import hookimpl

        @hookimpl
        def register_exit_guards(register):
            register("half_guard", lambda p, ctx: (lambda s, a: a < 0))

        def register_features(register):
            register("half_feature", lambda p, ctx: None)
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    message = (f"plugin 'halfmarked_plug' (halfmarked-plug 1.2.3): register_features "
               f"(at {tmp_path / 'halfmarked_plug.py'}:8) is not marked with @exitcore.hookimpl, so pluggy does not "
               "call it (the plugin's other hooks are): decorate it with @hookimpl (from exitcore import hookimpl)")
    with pytest.warns(ExitcoreWarning) as record:
        host = PluginHost.create()
    assert message in [str(w.message) for w in record]
    assert "half_guard" in host.components(ComponentKind.GUARD)
    with pytest.raises(ConfigError) as exc:
        host.get(ComponentKind.FEATURE, "half_feature", where="features[0].name")
    assert str(exc.value).endswith(f"; note: {message}")


def test_a_hook_implementation_with_an_unknown_parameter_is_one_located_line(tmp_path, monkeypatch, make_host):
    fake_distribution(tmp_path, "badarg-plug", "badarg_plug", """
        from exitcore import hookimpl

        @hookimpl
        def register_features(registrar):
            registrar("momo", lambda p, ctx: None)
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as exc:
        PluginHost.create()
    assert str(exc.value) == (
        "plugin 'badarg_plug' (badarg-plug 1.2.3) has an invalid hook implementation: register_features(registrar): "
        f"unknown parameter 'registrar'; the hook offers register (at {tmp_path / 'badarg_plug.py'}:4)")

    class Listener:  # a plugin object: `self` is not one of the parameters
        @hookimpl
        def iteration_end(self, run, update, metric):
            pass

    with pytest.raises(PluginError, match=r"^plugin 'Listener' \(no distribution\) has an invalid hook implementation: "
                                          r"iteration_end\(run, update, metric\): unknown parameter 'metric'; the hook "
                                          r"offers run, update, metrics \(at .*test_plugins.py:\d+\)$"):
        make_host(Listener())


def test_a_misspelt_register_keyword_is_named_with_a_suggestion(tmp_path, monkeypatch, make_host):
    fake_distribution(tmp_path, "kwtypo-plug", "kwtypo_plug", """
        import attrs
        from exitcore import hookimpl

        @attrs.frozen
        class P:
            n: int = 1

        @hookimpl
        def register_features(register):
            register("momo", lambda p, ctx: None, param=P)
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError) as exc:
        PluginHost.create()
    assert str(exc.value) == (
        "plugin 'kwtypo_plug' (kwtypo-plug 1.2.3): register() in register_features got an unknown keyword 'param' "
        "(did you mean 'params'?); it takes name, build and the keywords params, description "
        f"(at {tmp_path / 'kwtypo_plug.py'}:11)")

    class Source:  # data sources take sniff= too; a keyword like none of them has no suggestion
        @hookimpl
        def register_data_sources(self, register):
            register("feed", lambda p: None, colour="red")

    with pytest.raises(PluginError, match=r"got an unknown keyword 'colour'; it takes name, build and the keywords "
                                          r"params, description, sniff \(at "):
        make_host(Source())


def test_params_given_by_position_are_named_with_the_plugins_line(make_host):
    @attrs.frozen
    class P:
        n: int = 1

    class ByPosition:
        @hookimpl
        def register_reward_terms(self, register):
            register("bonus", lambda p, ctx: None, P)

    with pytest.raises(PluginError) as exc:
        make_host(ByPosition())
    assert re.fullmatch(
        r"plugin 'ByPosition' \(no distribution\): register\(\) in register_reward_terms got 1 argument after name and "
        r"build for 'bonus'; params, description go by keyword \(register\('bonus', build, params=\.\.\.\)\) "
        r"\(at .*test_plugins\.py:\d+\)", str(exc.value)), str(exc.value)
    assert f"test_plugins.py:{ByPosition.register_reward_terms.__code__.co_firstlineno + 2}" in str(exc.value)


def test_a_component_listed_under_another_kind_says_where_it_belongs(make_host):
    class Mixed:
        @hookimpl
        def register_features(self, register):
            register("momentum", lambda p, ctx: None)

        @hookimpl
        def register_policies(self, register):
            register("tiny", lambda p, ctx: None)

    host = make_host(Mixed())
    with pytest.raises(ConfigError, match=r"^guards\[0\]\.name: unknown guard 'momentum' \('momentum' is a feature: "
                                          r"list it under features\); available exit guards: none installed$"):
        host.get(ComponentKind.GUARD, "momentum", where="guards[0].name")
    with pytest.raises(ConfigError, match=r"unknown feature 'tiny' \('tiny' is a policy: set it as ppo\.policy\); "
                                          r"available features: momentum \[Mixed \(no distribution\)\]"):
        host.get(ComponentKind.FEATURE, "tiny", where="features[0].name")


def test_every_plugin_error_labels_the_distribution_with_its_version(tmp_path, monkeypatch):
    """"(trialr-typohook)" in one message, "(trialr-importerr 0.1.0)" in another."""
    fake_distribution(tmp_path, "typohook-plug", "typohook_plug", """
        from exitcore import hookimpl

        @hookimpl
        def register_featurs(register):
            pass
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"^plugin 'typohook_plug' \(typohook-plug 1.2.3\) implements unknown hook"):
        PluginHost.create()
    (tmp_path / "typohook_plug.py").unlink()
    other = tmp_path / "other"
    other.mkdir()
    fake_distribution(other, "late-plug", "late_plug", """
        from exitcore import hookimpl

        @hookimpl
        def run_started(run):
            raise RuntimeError("no mail server")
    """)
    import shutil

    shutil.rmtree(tmp_path / "typohook_plug-1.2.3.dist-info")
    monkeypatch.syspath_prepend(str(other))
    host = PluginHost.create()
    with pytest.raises(PluginError, match=r"^plugin 'late_plug' \(late-plug 1.2.3\) raised in run_started: "):
        host.run_started("r")


def test_every_entry_point_exitcore_declares_implements_hooks():
    """pyproject.toml's own entry points (the installed metadata can be older): ``builtin``
    named the package ``exitcore.builtin``, which implements none."""
    import importlib
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    for name, module in project["project"]["entry-points"]["exitcore"].items():
        plugin = importlib.import_module(module)
        assert any(hasattr(getattr(plugin, attr), "exitcore_impl") for attr in dir(plugin)), name


def test_a_plugin_with_a_syntax_error_is_located_by_file_and_line(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "typo-exits", "typo_exits", "import math\n\ndef f(:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"failed to load .*SyntaxError") as exc:
        PluginHost.create()
    assert str(exc.value).endswith(f"(at {tmp_path / 'typo_exits.py'}:3)")


def test_an_error_raised_inside_torch_is_located_at_the_plugin_line_that_called_it():
    import os

    import torch

    from exitcore.errors import describe_exception, raised_at

    def feature(bars):  # a shape mistake: torch raises, the plugin's line is what matters
        return torch.cat([bars, torch.zeros(3, 2)], dim=0)

    try:
        feature(torch.zeros(4, 3))
    except RuntimeError as err:
        caught = err
    here = f"{os.path.relpath(__file__)}:{feature.__code__.co_firstlineno + 1}"  # relative to the working directory
    assert raised_at(caught) == here
    assert describe_exception(caught).startswith("RuntimeError: ") and describe_exception(caught).endswith(f"(at {here})")
    import pandas as pd

    def column(frame):  # raised deep inside pandas' Python code: still the plugin's line
        return frame["spread"]

    try:
        column(pd.DataFrame({"close": [1.0]}))
    except KeyError as err:
        assert raised_at(err) == f"{os.path.relpath(__file__)}:{column.__code__.co_firstlineno + 1}"
    assert raised_at(ValueError("never raised")) == ""  # no frame: no location, no "(at )"
    assert describe_exception(ValueError("x")) == "ValueError: x"


def test_misspelt_hook_fails_at_start_up(make_host):
    class Typo:
        @hookimpl
        def register_exit_gaurds(self, register):  # misspelt on purpose
            register("x", lambda p, ctx: None)

    with pytest.raises(PluginError, match=r"plugin 'Typo' \(no distribution\) implements unknown hook\(s\) "
                                          r"'register_exit_gaurds' \(did you mean 'register_exit_guards'\?\)"):
        make_host(Typo())


def test_duplicate_between_test_plugins_and_attribution(make_host):
    class One:
        @hookimpl
        def register_reward_terms(self, register):
            register("same", lambda p, ctx: None, description="first")

    class Two:
        @hookimpl
        def register_reward_terms(self, register):
            register("same", lambda p, ctx: None)

    host = make_host(One())
    assert host.get(ComponentKind.REWARD, "same").plugin == "One"
    with pytest.raises(PluginError, match="reward 'same' is registered twice: by One .* and by Two"):
        make_host(One(), Two())


def test_register_validates_its_arguments(make_host):
    class BadParams:
        @hookimpl
        def register_features(self, register):
            register("f", lambda p, ctx: None, params=dict)

    with pytest.raises(PluginError, match="params must be an attrs class"):
        make_host(BadParams())

    class SniffingGuard:
        @hookimpl
        def register_exit_guards(self, register):
            register("g", lambda p, ctx: None, sniff=lambda s: None)

    with pytest.raises(PluginError, match="only data sources take sniff="):
        make_host(SniffingGuard())


def test_unknown_component_lists_the_available_ones_with_their_plugins(make_host):
    import exitcore_masks

    host = make_host(exitcore_masks)
    with pytest.raises(ConfigError, match=r"x\.y: unknown mask 'min_exit_bars' \(did you mean 'min_exit_bar'\?\); "
                                          r"available action masks: min_exit_bar \[exitcore_masks \(exitcore-masks 0.1.0\)\]"):
        host.get(ComponentKind.MASK, "min_exit_bars", where="x.y")


def test_lifecycle_hooks_are_called(make_host):
    calls = []

    class Listener:
        @hookimpl
        def run_started(self, run):
            calls.append(("started", run))

        @hookimpl
        def iteration_end(self, run, update, metrics):
            calls.append(("iteration", update, metrics["x"]))

        @hookimpl
        def run_finished(self, run, status, results):
            calls.append(("finished", status))

    host = make_host(Listener())
    host.run_started("r")
    host.iteration_end("r", 3, {"x": 1.5})
    host.run_finished("r", "done", {})
    assert calls == [("started", "r"), ("iteration", 3, 1.5), ("finished", "done")]


def _helper_that_fails():
    raise KeyError("no such metric")


def test_a_raising_lifecycle_hook_is_named_and_run_finished_only_warns(make_host, capsys):
    class Quiet:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            pass

    class Failing:
        @hookimpl
        def run_started(self, run):
            raise ExitcoreError("budget exhausted")

        @hookimpl
        def iteration_end(self, run, update, metrics):
            _helper_that_fails()  # the plugin's own frame is found below a helper's

        @hookimpl
        def run_finished(self, run, status, results):
            raise RuntimeError("mail server down")

    host = make_host(Quiet(), Failing())
    with pytest.raises(PluginError, match=r"plugin '.*Failing.*' \(no distribution\) raised in run_started: budget exhausted"):
        host.run_started("r")
    with pytest.raises(PluginError, match=r"'.*Failing.*' .* raised in iteration_end: KeyError: 'no such metric'"):
        host.iteration_end("r", 1, {})
    host.run_finished("r", "done", {})  # the run is recorded already: a warning, not an error
    err = capsys.readouterr().err
    assert "warning: plugin" in err and "raised in run_finished: RuntimeError: mail server down" in err
    assert "the run's status 'done' stands" in err


def test_lazy_build_imports_only_when_called(tmp_path, monkeypatch):
    import sys

    from exitcore.components import lazy

    (tmp_path / "lazy_target_mod.py").write_text("def build(params, ctx):\n    return ('built', params, ctx)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    build = lazy("lazy_target_mod:build")
    assert "lazy_target_mod" not in sys.modules
    assert build(1, ctx=2) == ("built", 1, 2)
    assert "lazy_target_mod" in sys.modules
    with pytest.raises(ValueError, match="expects 'package.module:function'"):
        lazy("no_colon")


def test_iteration_end_answers_ask_to_stop_early(make_host):
    class Quiet:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            return True if update == 1 else None

    class Watchful:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            return f"entropy {metrics['entropy']} below 0.05" if metrics["entropy"] < 0.05 else None

    class Blunt:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            return update < 3

    host = make_host(Quiet(), Watchful(), Blunt())
    assert host.iteration_end("r", 1, {"entropy": 0.5}) is None
    assert host.iteration_end("r", 2, {"entropy": 0.01}) == "entropy 0.01 below 0.05"
    assert host.iteration_end("r", 3, {"entropy": 0.5}) == "an iteration_end hook returned False"


def test_iteration_end_answers_that_are_not_a_plain_bool(make_host):
    """np.False_ (what `return x.mean() > 0.05` gives) was ignored as an answer to go on, and so
    was any other value, silently (a plugin-author trial)."""
    import warnings

    import numpy as np
    import torch

    from exitcore.errors import ExitcoreWarning

    answers = []

    class Numeric:
        @hookimpl
        def iteration_end(self, run, update, metrics):
            return answers[update - 1]

    host = make_host(Numeric())
    import pandas as pd

    answers += [np.False_, torch.tensor(False), np.array([False]), pd.Series([False]),
                np.True_, torch.tensor(True), pd.Series([True]), 0, "", 0.0]
    assert [host.iteration_end("r", u, {}) for u in (1, 2, 3, 4)] == ["an iteration_end hook returned False"] * 4
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert [host.iteration_end("r", u, {}) for u in range(5, 11)] == [None] * 6
    said = [str(w.message) for w in caught if issubclass(w.category, ExitcoreWarning)]
    # once per kind of answer: 0 and 0.0 and "" each once; np.True_, tensor(True), Series([True]) go on quietly
    assert len(said) == 3 and said[0].startswith("an iteration_end hook (plugins implementing it: ")
    assert "returned 0 (int), which neither stops nor continues training" in said[0]
    assert "returned '' (str)" in said[1] and "returned 0.0 (float)" in said[2]


@pytest.mark.parametrize("name", ["a/b", "x=1", "'q'", 'say "hi"', " lead", "trail ", "tab\there", ""])
def test_a_component_name_that_cannot_be_written_everywhere_is_refused(make_host, name):
    class Spaced:
        @hookimpl
        def register_exit_guards(self, register):
            register(name, lambda p, ctx: (lambda s, a: a < 0))

    with pytest.raises(PluginError, match="without a name" if not name else r"a component name holds no '/', '='"):
        make_host(Spaced())


@pytest.mark.parametrize("name", ["atr-14.v2_b", "my guard", "1st"])
def test_names_with_digits_dots_dashes_and_inner_spaces_are_accepted(make_host, name):
    class Fine:
        @hookimpl
        def register_exit_guards(self, register):
            register(name, lambda p, ctx: (lambda s, a: a < 0))

    assert name in make_host(Fine()).components(ComponentKind.GUARD)


def test_a_plugin_installed_in_the_interpreters_own_site_packages_is_located(tmp_path, monkeypatch):
    """Without a virtualenv site-packages lies inside the stdlib folder, and every frame there
    was skipped as the standard library's: the plugin's line was lost."""
    import importlib.util
    import sysconfig

    from exitcore.errors import raised_at

    site = tmp_path / "lib" / "python3.11" / "site-packages"
    site.mkdir(parents=True)
    (site / "plug.py").write_text("def build():\n    return {}['spread']\n")
    spec = importlib.util.spec_from_file_location("plug", site / "plug.py")
    plug = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plug)
    paths = {"stdlib": str(tmp_path / "lib" / "python3.11"), "purelib": str(site), "platlib": str(site)}
    monkeypatch.setattr(sysconfig, "get_paths", lambda *a, **k: paths)
    try:
        plug.build()
    except KeyError as err:
        assert raised_at(err) == f"{site / 'plug.py'}:2"
    (tmp_path / "lib" / "python3.11" / "json_like.py").write_text("def load():\n    raise ValueError('x')\n")
    spec = importlib.util.spec_from_file_location("json_like", tmp_path / "lib" / "python3.11" / "json_like.py")
    lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lib)
    try:
        lib.load()
    except ValueError as err:  # the standard library's own frames are still skipped
        assert not raised_at(err).startswith(str(tmp_path / "lib" / "python3.11" / "json_like.py"))


def test_plugin_modules_named_by_exitcore_plugins_load_without_installing(tmp_path):
    """A shared or read-only environment could not take a plugin (it had to be pip-installed into
    exitcore's environment; a user trial built an overlay venv): EXITCORE_PLUGINS names modules
    to load from PYTHONPATH."""
    import subprocess

    (tmp_path / "myterms.py").write_text(
        "from exitcore import hookimpl\n\n\n@hookimpl\ndef register_reward_terms(register):\n"
        "    register('zero_term', lambda params, ctx: (lambda before, action, after: after.upnl * 0.0),"
        " description='always 0')\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "EXITCORE_PLUGINS": " myterms ,"}
    env.pop("EXITCORE_DISABLE_PLUGIN_AUTOLOAD", None)

    def plugins(**more):
        return subprocess.run([sys.executable, "-m", "exitcore", "plugins"], capture_output=True, text=True,
                              env={**env, **more}, timeout=120)

    out = plugins()
    assert out.returncode == 0, out.stderr
    assert re.search(r"\n\s+zero_term\s+always 0\n", out.stdout), out.stdout
    # an installed plugin's module named too (set in a shell, then pip-installed): loaded once, no error
    out = plugins(EXITCORE_PLUGINS="myterms,exitcore_features,myterms")
    assert out.returncode == 0 and out.stdout.count("zero_term") == 1, out.stderr
    # a module whose hook lacks @hookimpl is warned about as an entry point's is
    (tmp_path / "unmarked.py").write_text("def register_features(register):\n    pass\n")
    out = plugins(EXITCORE_PLUGINS="unmarked")
    assert out.returncode == 0 and ("warning: plugin 'unmarked' (no distribution) implements no exitcore hooks: "
                                    "register_features (at ") in out.stderr, out.stderr
    out = plugins(EXITCORE_PLUGINS="nothere")
    assert out.returncode == 2 and out.stderr == (
        "error: EXITCORE_PLUGINS: plugin module 'nothere' failed to import: ModuleNotFoundError: No module named "
        "'nothere'; put the folder holding it on PYTHONPATH\n")
    # a module of its own named as a shipped plugin is: it was imported, then skipped without a word
    (tmp_path / "rewards.py").write_text((tmp_path / "myterms.py").read_text())
    out = plugins(EXITCORE_PLUGINS="rewards")
    assert out.returncode == 2 and out.stderr == (
        f"error: EXITCORE_PLUGINS: plugin module 'rewards' ({tmp_path / 'rewards.py'}) has the name of the installed "
        "plugin 'rewards', which exitcore loads already: rename the module\n")


def test_the_source_hash_covers_the_plugins_whole_top_level_package(tmp_path, monkeypatch):
    """An entry point naming a submodule (my_pkg.plugin) whose components live in a sibling
    module hashed only the entry module: an edit of the reward code was the same trial (review AA)."""
    import importlib

    from exitcore.plugins import source_hash

    package = tmp_path / "srcpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "plugin.py").write_text("from srcpkg.rewards import build\n")
    (package / "rewards.py").write_text("def build(params, ctx):\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("srcpkg.plugin")
    try:
        first = source_hash(module)
        (package / "rewards.py").write_text("def build(params, ctx):\n    return 1000\n")
        assert source_hash(module) != first and len(first) == 16
        single = tmp_path / "single_mod.py"  # a top-level module: its own file
        single.write_text("x = 1\n")
        one = importlib.import_module("single_mod")
        before = source_hash(one)
        single.write_text("x = 2\n")
        assert source_hash(one) != before
    finally:
        for name in ("srcpkg", "srcpkg.plugin", "srcpkg.rewards", "single_mod"):
            sys.modules.pop(name, None)


def test_the_source_hash_of_a_namespace_packages_plugin_covers_its_code(tmp_path, monkeypatch):
    """A plugin under a namespace package (nsco/ without __init__.py) hashed as "": runs whose
    reward code differed were one trial (review AB)."""
    import importlib

    from exitcore.plugins import source_hash

    (tmp_path / "nsco" / "exitplug").mkdir(parents=True)  # nsco: a namespace package
    (tmp_path / "nsco" / "exitplug" / "__init__.py").write_text("from nsco.exitplug.terms import build\n")
    (tmp_path / "nsco" / "exitplug" / "terms.py").write_text("def build(params, ctx):\n    return 1\n")
    (tmp_path / "nsco" / "loose.py").write_text("x = 1\n")  # a module right in the namespace
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        package, loose = importlib.import_module("nsco.exitplug"), importlib.import_module("nsco.loose")
        first, one = source_hash(package), source_hash(loose)
        assert first and one and first != one
        (tmp_path / "nsco" / "exitplug" / "terms.py").write_text("def build(params, ctx):\n    return 2\n")
        assert source_hash(package) not in ("", first)
        (tmp_path / "nsco" / "loose.py").write_text("x = 2\n")
        assert source_hash(loose) not in ("", one)
    finally:
        for name in ("nsco", "nsco.exitplug", "nsco.exitplug.terms", "nsco.loose"):
            sys.modules.pop(name, None)


def test_the_source_hash_follows_a_symlinked_folder_of_the_package(tmp_path, monkeypatch):
    """Python imports through a symlinked subfolder; rglob did not descend into it, so an edit of
    the code there was the same trial (review AB). A link back up is walked once, not forever."""
    import importlib

    from exitcore.plugins import source_hash

    shared = tmp_path / "real" / "sharedcode"
    shared.mkdir(parents=True)
    (shared / "__init__.py").write_text("")
    (shared / "terms.py").write_text("K = 1\n")
    package = tmp_path / "root" / "linkpkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("from linkpkg.shared.terms import K\n")
    try:
        (package / "shared").symlink_to(shared, target_is_directory=True)
        (shared / "up").symlink_to(package, target_is_directory=True)  # a loop
    except OSError:
        pytest.skip("this file system makes no symlinks")
    monkeypatch.syspath_prepend(str(tmp_path / "root"))
    try:
        module = importlib.import_module("linkpkg")
        first = source_hash(module)
        (shared / "terms.py").write_text("K = 2\n")
        assert source_hash(module) != first
    finally:
        for name in ("linkpkg", "linkpkg.shared", "linkpkg.shared.terms"):
            sys.modules.pop(name, None)
