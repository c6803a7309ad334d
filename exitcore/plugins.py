"""The plugin host: hookspecs, entry-point discovery, component registry, typed facade.

The engine never calls ``pm.hook.*`` directly; it asks a :class:`PluginHost` for components
by kind and name. Built-in behaviour (``exitcore.builtin``) and the shipped plugin packages
are discovered exactly like a third party's, through the ``exitcore`` entry-point group.
Tests build hermetic hosts with ``PluginHost.create(autoload=False, plugins=[...])``.
"""

from __future__ import annotations

import difflib
import importlib.metadata as md
import inspect
import os
import re
import sys
import types
import warnings
from collections.abc import Iterable
from typing import Any

import attrs
import pluggy

from exitcore import hookspecs
from exitcore.components import Component, ComponentKind
from exitcore.errors import ExitcoreError, ExitcoreWarning, PluginError, describe_exception, innermost_match

ENTRY_POINT_GROUP = "exitcore"
#: what a component's name may not hold: ``/`` (log keys are ``guard_blocks/<name>``), ``=``
#: and quotes (a ``--set`` value or a TOML string around it), control characters, and spaces at
#: its ends (invisible in a table); a space inside (``"my guard"``) is fine
BAD_COMPONENT_NAME = re.compile(r"[/=\"'\x00-\x1f\x7f]|^\s|\s$")
#: set to 1 to skip entry-point discovery (only explicitly registered plugins are used)
DISABLE_AUTOLOAD_ENV = "EXITCORE_DISABLE_PLUGIN_AUTOLOAD"
#: environment variable naming plugin modules to load beside the installed ones (comma-separated,
#: importable from ``sys.path``/``PYTHONPATH``): plugins without installing them, e.g. into a
#: shared or read-only environment
PLUGINS_ENV = "EXITCORE_PLUGINS"

_REGISTER_HOOKS: dict[ComponentKind, str] = {
    ComponentKind.REWARD: "register_reward_terms",
    ComponentKind.GUARD: "register_exit_guards",
    ComponentKind.MASK: "register_action_masks",
    ComponentKind.FEATURE: "register_features",
    ComponentKind.ENTRY: "register_entry_strategies",
    ComponentKind.DATA_SOURCE: "register_data_sources",
    ComponentKind.EVALUATOR: "register_evaluators",
    ComponentKind.POLICY: "register_policies",
}
#: where an experiment names a component of each kind (mirrors ExperimentConfig), for the hint
#: when a name is asked for as one kind but registered as another
_NAMED_IN: dict[ComponentKind, str] = {
    ComponentKind.REWARD: "list it under rewards",
    ComponentKind.GUARD: "list it under guards",
    ComponentKind.MASK: "list it under masks",
    ComponentKind.FEATURE: "list it under features",
    ComponentKind.ENTRY: "set it as entry.name",
    ComponentKind.DATA_SOURCE: "set it as data.source",
    ComponentKind.EVALUATOR: "list it under eval.evaluators",
    ComponentKind.POLICY: "set it as ppo.policy",
}


@attrs.frozen
class PluginInfo:
    """One registered plugin, where it came from, and what it contributed."""

    name: str
    distribution: str
    version: str
    components: tuple[Component, ...]
    hooks: tuple[str, ...]
    #: :func:`source_hash` of the plugin's code
    source: str = ""


def source_hash(plugin: Any) -> str:
    """A short sha256 of a plugin's Python source: every ``.py`` file of the top-level package
    its module belongs to (an entry point ``my_pkg.plugin`` whose components live in
    ``my_pkg.rewards`` is hashed whole; exitcore's built-in data sources and policies are
    exitcore's own package), or the module's file when it is a top-level module; for a plugin
    object, its class's module's. ``""`` where no source file is found. Part of a run's trial
    (:func:`code_hash`); run.json records it per plugin."""
    import hashlib
    from pathlib import Path

    module = plugin if isinstance(plugin, types.ModuleType) else sys.modules.get(type(plugin).__module__)
    # the outermost package with a file of its own: a namespace package (``acme`` of
    # ``acme.exits``, a folder without __init__.py) has none, and hashing it gave ""
    parts = getattr(module, "__name__", "").split(".")
    top = next((m for i in range(1, len(parts) + 1)
                if getattr(m := sys.modules.get(".".join(parts[:i])), "__file__", None)), module)
    file = getattr(top, "__file__", None)
    if not file or not file.endswith(".py"):
        return ""
    path = Path(file)
    files = _package_sources(path.parent) if path.name == "__init__.py" else [(path.name, path)]
    digest = hashlib.sha256()
    for relative, f in files:
        try:
            content = f.read_bytes()
        except OSError:
            continue
        digest.update(relative.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:16]


def _package_sources(root: Any) -> list[tuple[str, Any]]:
    """``(path relative to root, path)`` of every ``.py`` file under ``root``, sorted, through
    symlinked folders too (Python imports through them; ``rglob`` does not descend into them),
    each real folder once (a link back up is no loop)."""
    from pathlib import Path

    found, seen = [], set()
    for folder, subfolders, names in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        # in name order: which path reaches a folder linked twice must not depend on the listing's order
        subfolders[:] = sorted(d for d in subfolders if d != "__pycache__")
        found += [(Path(folder, n).relative_to(root).as_posix(), Path(folder, n)) for n in names if n.endswith(".py")]
    return sorted(found)


def code_hash(infos: Iterable[PluginInfo], used: Iterable[str]) -> str:
    """A short hash of the code of the plugins named ``used`` (their :func:`source_hash`): part
    of a run's trial with its configuration hash and seed (:attr:`exitcore.registry.RunRecord.trial`),
    so a run after an edit of a component's code is another trial."""
    import hashlib
    import json

    wanted = set(used)
    sources = sorted([i.name, i.source] for i in infos if i.name in wanted)
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:16]


class PluginHost:
    """A pluggy manager plus the component registry built from its ``register_*`` hooks."""

    def __init__(self, pm: pluggy.PluginManager, dists: dict[str, tuple[str, str]], strict: bool = True,
                 hookless: Iterable[str] = ()):
        self.pm = pm
        self._dists = dists  # plugin name -> (distribution, version)
        #: one warning per entry-point plugin whose module implements no hook (see :meth:`create`)
        self.hookless: list[str] = list(hookless)
        self._warned_answers: set[str] = set()  # iteration_end answers warned about (by type), once each
        self._components: dict[ComponentKind, dict[str, Component]] = {k: {} for k in ComponentKind}
        #: with ``strict=False``: the registration problems that were skipped instead of raised
        self.problems: list[str] = []
        self._strict = strict
        self._sources: dict[str, str] = {}  # plugin name -> source_hash, read once per host (one run)
        self._collect()

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, autoload: bool | None = None, plugins: Iterable[Any] = (), strict: bool = True) -> PluginHost:
        """Build a host: entry-point plugins (unless ``autoload`` is off) plus ``plugins``.

        ``plugins`` are modules or objects with hook implementations, registered in order
        after the entry points (tests pass their own here with ``autoload=False``).
        ``autoload=None`` follows the ``EXITCORE_DISABLE_PLUGIN_AUTOLOAD`` environment variable;
        with autoload, the modules ``EXITCORE_PLUGINS`` names (comma-separated) are loaded too.
        ``strict=False`` (``exitcore plugins``, to diagnose): a component registered twice or a
        raising ``register_*`` hook is recorded in :attr:`problems` and skipped, not raised.
        An entry-point plugin whose module implements no exitcore hook is warned about
        (:class:`ExitcoreWarning`, kept in :attr:`hookless`), naming the file that was imported.
        """
        if autoload is None:
            autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "") not in ("1", "true", "yes")
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        dists: dict[str, tuple[str, str]] = {}
        hookless: list[str] = []
        if autoload:
            for ep in _entry_points():
                dist_name = ep.dist.metadata["Name"] if ep.dist else ""
                version = ep.dist.version if ep.dist else ""
                label = plugin_label(ep.name, dist_name, version)
                try:
                    plugin = ep.load()
                except Exception as exc:  # noqa: BLE001 - a broken plugin is reported, named
                    raise PluginError(
                        f"{label} failed to load from {ep.value!r}: "
                        f"{describe_exception(exc)}{_missing_module_advice(ep, exc, dist_name)}"
                    ) from exc
                if pm.has_plugin(ep.name):
                    other = " ".join(dists.get(ep.name, ("?", ""))).strip()
                    raise PluginError(
                        f"two plugins are named {ep.name!r}: one from {other}, one from "
                        f"{f'{dist_name} {version}'.strip() or '?'}; rename one entry point"
                    )
                _register(pm, plugin, ep.name, label)
                dists[ep.name] = (dist_name, version)
                # its components would only be "unknown", unexplained; exitcore's own hookless
                # 'builtin' entry point is dropped, but editable installs made before still list it
                if not pm.get_hookcallers(plugin) and (dist_name, ep.name) != ("exitcore", "builtin"):
                    hookless.append(_hookless_message(f"entry point {ep.value!r}", plugin, label))
                elif unmarked := _partly_unmarked_message(plugin, label):
                    hookless.append(unmarked)
            for module in _env_plugins(pm):
                dists[module.__name__] = _distribution_of(module)
                label = plugin_label(module.__name__, *dists[module.__name__])
                _register(pm, module, module.__name__, label)
                if not pm.get_hookcallers(module):
                    hookless.append(_hookless_message(f"{PLUGINS_ENV} module {module.__name__!r}", module, label))
                elif unmarked := _partly_unmarked_message(module, label):
                    hookless.append(unmarked)
        for plugin in plugins:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
            if pm.has_plugin(name) or pm.is_registered(plugin):
                continue  # the same module already arrived through its entry point
            dists[name] = _distribution_of(plugin)
            _register(pm, plugin, name, plugin_label(name, *dists[name]))
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise _unknown_hooks(pm, exc.plugin, dists) from None
        for message in hookless:  # the CLI prints these as "warning: ..." lines, once each
            warnings.warn(message, ExitcoreWarning, stacklevel=2)
        return cls(pm, dists, strict, hookless)

    def _label(self, plugin: str) -> str:
        """``plugin 'name' (distribution version)`` for messages (see :func:`plugin_label`)."""
        return plugin_label(plugin, *self._dists.get(plugin, ("", "")))

    def _problem(self, error: PluginError) -> None:
        if self._strict:
            raise error
        self.problems.append(str(error))

    def _collect(self) -> None:
        for kind, hook_name in _REGISTER_HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            # Call each implementation with its own register() so every component is
            # attributed to the plugin that registered it; get_hookimpls() is in plugin
            # registration order (pluggy only *calls* them last-registered-first).
            for impl in hook.get_hookimpls():
                dist, version = self._dists.get(impl.plugin_name, ("", ""))
                register = _Registrar(self, kind, impl.plugin_name, dist, version)
                try:
                    impl.function(register)
                except PluginError as exc:
                    self._problem(exc)
                except Exception as exc:  # noqa: BLE001 - reported with plugin and distribution
                    error = PluginError(f"{self._label(impl.plugin_name)} raised in {hook_name}: "
                                        f"{describe_exception(exc)}")
                    error.__cause__ = exc
                    self._problem(error)

    def _add(self, component: Component) -> None:
        table = self._components[component.kind]
        existing = table.get(component.name)
        if existing is not None:
            self._problem(PluginError(
                f"{component.kind.value} {component.name!r} is registered twice: by {existing.origin} "
                f"and by {component.origin}; uninstall or rename one"
            ))
            return  # lenient: the first registration stays
        table[component.name] = component

    # ------------------------------------------------------------------ queries

    def components(self, kind: ComponentKind) -> dict[str, Component]:
        """All components of ``kind``, by name, in registration order."""
        return dict(self._components[kind])

    def get(self, kind: ComponentKind, name: str, where: str = "") -> Component:
        """The component ``name`` of ``kind``; an unknown name lists the available ones.

        ``where`` is the TOML path or option that asked for it, used in the message.
        """
        table = self._components[kind]
        if name in table:
            return table[name]
        from exitcore.errors import ConfigError

        available = ", ".join(f"{c.name} [{c.origin}]" for c in table.values()) or "none installed"
        # a feature listed under guards: the name is right, the list is not (a look-alike of
        # this kind would be a wrong suggestion then)
        elsewhere = [f"{name!r} is a {other.value.replace('_', ' ')}: {_NAMED_IN[other]}"
                     for other in ComponentKind if other is not kind and name in self._components[other]]
        close = difflib.get_close_matches(name, list(table), n=1)
        hint = (f" ({'; '.join(elsewhere)})" if elsewhere
                else f" (did you mean {close[0]!r}?)" if close else "")
        # a plugin that registered nothing may be the one meant to provide it
        empty = "".join(f"; note: {message}" for message in self.hookless)
        # a package installed without its entry point is the likeliest cause when nothing is close
        found = ("" if elsewhere or close or self.hookless else  # a hookless plugin's note says more
                 "; a plugin's components are found through its entry point in the 'exitcore' group "
                 "([project.entry-points.exitcore] in its pyproject.toml, then reinstall it; docs/plugins.md), "
                 f"or a module named in ${PLUGINS_ENV} (is it set in this shell?): "
                 "`exitcore plugins` lists the plugins that loaded")
        raise ConfigError([(where, f"unknown {kind.value} {name!r}{hint}; available {kind.plural}: {available}{empty}{found}")])

    def _source_of(self, name: str, plugin: Any) -> str:
        """:func:`source_hash` of plugin ``name``, computed once: a run's registry row and its
        run.json name the same code, even if a file is saved while it starts."""
        if name not in self._sources:
            self._sources[name] = source_hash(plugin)
        return self._sources[name]

    def plugin_infos(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution, version, components and hooks."""
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            dist, version = self._dists.get(name, ("", ""))
            comps = tuple(c for table in self._components.values() for c in table.values() if c.plugin == name)
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or []))
            infos.append(PluginInfo(name=name, distribution=dist, version=version, components=comps, hooks=hooks,
                                    source=self._source_of(name, plugin)))
        return infos

    # ------------------------------------------------------------------ typed hook calls

    def add_commands(self, cli: Any) -> list[str]:
        """Let plugins add CLI subcommands to the root group ``cli``; returns one problem per
        plugin whose commands were refused. A plugin that raises, or redefines an existing
        command, has none of its commands added; the others' are, and the built-ins stay."""
        problems = []
        for impl in self.pm.hook.register_commands.get_hookimpls():
            before = dict(cli.commands)
            label = self._label(impl.plugin_name)
            try:
                impl.function(cli)
            except Exception as exc:  # noqa: BLE001
                problems.append(f"{label} raised in register_commands: {exc}")
            else:
                replaced = [name for name, cmd in before.items() if cli.commands.get(name) is not cmd]
                if replaced:
                    problems.append(f"{label} redefines the command(s) "
                                    f"{', '.join(replaced)}; its commands are not added")
                else:
                    continue
            cli.commands.clear()  # undo everything this plugin added or replaced
            cli.commands.update(before)
        return problems

    def run_started(self, run: Any) -> None:
        """Notify plugins that ``run`` starts; an exception is a :class:`PluginError` naming the plugin."""
        self._notify("run_started", run=run)

    def iteration_end(self, run: Any, update: int, metrics: dict[str, Any]) -> str | None:
        """Notify plugins that PPO update ``update`` finished with ``metrics`` (exceptions as
        above); returns why training should end now when a plugin asked for it (returned False,
        also numpy's or a one-element tensor's, or a non-empty string), else None. Any other
        answer (``0``, ``""``, a list) is not understood: warned about once, and training goes on."""
        reasons = []
        for answer in self._notify("iteration_end", run=run, update=update, metrics=metrics) or []:
            if isinstance(answer, str) and answer:
                reasons.append(answer)
                continue
            truth = _boolean(answer)
            if truth is False:
                reasons.append("an iteration_end hook returned False")
            elif truth is None and type(answer).__name__ not in self._warned_answers:
                self._warned_answers.add(type(answer).__name__)
                names = ", ".join(repr(i.plugin_name) for i in self.pm.hook.iteration_end.get_hookimpls())
                warnings.warn(f"an iteration_end hook (plugins implementing it: {names}) returned {answer!r} "
                              f"({type(answer).__name__}), which neither stops nor continues training: return None or "
                              "True to go on, False or a non-empty string saying why to stop; training goes on",
                              ExitcoreWarning, stacklevel=2)
        return "; ".join(reasons) or None

    def run_finished(self, run: Any, status: str, results: dict[str, Any]) -> None:
        """Notify plugins that ``run`` ended with ``status``. The run has been recorded already,
        so a plugin raising here cannot change its outcome: the error is a warning on stderr."""
        try:
            self._notify("run_finished", run=run, status=status, results=results)
        except Exception as exc:  # noqa: BLE001 - named by _notify when it can be; never changes the outcome
            what = str(exc) if isinstance(exc, PluginError) else f"a run_finished hook raised {describe_exception(exc)}"
            print(f"warning: {what} (the run's status {status!r} stands)", file=sys.stderr)

    def _notify(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call lifecycle ``hook`` and return its implementations' non-None answers; an
        exception from an implementation is re-raised as a :class:`PluginError` naming its
        plugin and distribution."""
        caller = getattr(self.pm.hook, hook)
        try:
            return caller(**kwargs)
        except Exception as exc:
            impl = _raising_impl(caller.get_hookimpls(), exc)
            if impl is None:
                raise
            what = str(exc) if isinstance(exc, ExitcoreError) else describe_exception(exc)
            raise PluginError(f"{self._label(impl.plugin_name)} raised in {hook}: {what}") from exc


def _boolean(answer: Any) -> bool | None:
    """``answer`` as a truth value when it is one: a bool, numpy's ``np.bool_`` or a one-element
    boolean tensor or array (what ``return entropy.mean() > 0.05`` gives); else None."""
    if isinstance(answer, bool):
        return answer
    if str(getattr(answer, "dtype", "")) in ("bool", "torch.bool") and _one(answer):
        try:  # .item(): bool() of a pandas Series raises, of a tensor or array it works
            return bool(answer.item())
        except Exception:  # an exotic container: warned about as an answer that is not a truth value
            return None
    return None


def _one(value: Any) -> bool:
    """Whether an array or tensor holds exactly one element."""
    size = value.numel() if callable(getattr(value, "numel", None)) else getattr(value, "size", None)
    return size == 1


class _Registrar:
    """The ``register`` callback handed to one plugin's ``register_*`` hook."""

    def __init__(self, host: PluginHost, kind: ComponentKind, plugin: str, dist: str, version: str):
        self._host, self._kind, self._plugin, self._dist, self._version = host, kind, plugin, dist, version
        self._label = plugin_label(plugin, dist, version)

    def __call__(
        self,
        name: str,
        build: Any,
        *positional: Any,
        params: type | None = None,
        description: str = "",
        sniff: Any = None,
        **unknown: Any,
    ) -> None:
        # Caught here, else Python's TypeError names _Registrar.__call__, not the plugin's line
        if positional:
            self._extra_positional(name, len(positional))
        if unknown:
            self._unknown_keywords(list(unknown))
        if not isinstance(name, str) or not name:
            raise PluginError(f"{self._label} registered a {self._kind.value} without a name")
        if BAD_COMPONENT_NAME.search(name):
            raise PluginError(f"{self._label} registered {self._kind.value} {name!r}: a component name "
                              "holds no '/', '=', quote or control character and no space at either end "
                              "(it is written in experiments.toml, on command lines and in log keys)")
        if not callable(build):
            raise PluginError(f"{self._label}: {self._kind.value} {name!r} has no callable build")
        if params is not None and not attrs.has(params):
            raise PluginError(
                f"{self._label}: {self._kind.value} {name!r} params must be an attrs class, got {params!r}"
            )
        if sniff is not None and self._kind is not ComponentKind.DATA_SOURCE:
            raise PluginError(f"{self._label}: only data sources take sniff=, not {self._kind.value} {name!r}")
        self._host._add(
            Component(
                kind=self._kind,
                name=name,
                build=build,
                params=params,
                description=description,
                sniff=sniff,
                plugin=self._plugin,
                distribution=self._dist,
                version=self._version,
            )
        )

    def _unknown_keywords(self, keywords: list[str]) -> None:
        """Refuse ``register(..., param=P)``: name each unknown keyword with a likely meant one,
        the keywords this kind takes, and the plugin's line that called ``register``."""
        accepted = self._keywords()
        named = []
        for keyword in keywords:
            close = difflib.get_close_matches(keyword, accepted, n=1)
            named.append(repr(keyword) + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise PluginError(f"{self._label}: register() in {_REGISTER_HOOKS[self._kind]} got an unknown "
                          f"keyword{'s' if len(named) > 1 else ''} {', '.join(named)}; it takes name, build and the "
                          f"keywords {', '.join(accepted)} (at {_plugin_line()})")

    def _keywords(self) -> list[str]:
        """The keywords ``register`` takes for this kind."""
        return ["params", "description"] + (["sniff"] if self._kind is ComponentKind.DATA_SOURCE else [])

    def _extra_positional(self, name: Any, count: int) -> None:
        """Refuse ``register("x", build, P)``: only name and build go by position."""
        accepted = self._keywords()
        raise PluginError(f"{self._label}: register() in {_REGISTER_HOOKS[self._kind]} got {count} argument"
                          f"{'s' if count > 1 else ''} after name and build for {name!r}; "
                          f"{', '.join(accepted)} go by keyword (register({name!r}, build, params=...)) "
                          f"(at {_plugin_line()})")


def _plugin_line() -> str:
    """``file:line`` of the plugin code that called ``register`` (three frames up: this
    function, the _Registrar method that refuses the call, and its ``__call__``)."""
    caller = sys._getframe(3)
    return f"{_shown_path(caller.f_code.co_filename)}:{caller.f_lineno}"


def plugin_label(name: str, dist: str, version: str) -> str:
    """``plugin 'name' (distribution version)``: how every message names a plugin, with
    ``no distribution`` for one registered as an object that no installed distribution holds."""
    return f"plugin {name!r} ({f'{dist} {version}'.strip() or 'no distribution'})"


def _hook_names() -> list[str]:
    """The names of the hooks exitcore specifies (the functions of :mod:`exitcore.hookspecs`)."""
    return [n for n in dir(hookspecs) if hasattr(getattr(hookspecs, n), f"{hookspecs.PROJECT}_spec")]


def _shown_path(path: str) -> str:
    """``path`` relative to the working directory when it lies under it (as
    :func:`exitcore.errors.raised_at` shows one), else as it is."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return rel if not rel.startswith("..") else path


def _defined_at(function: Any) -> str:
    """``file:line`` where ``function`` (or a bound method's function) is defined; ``""`` if unknown."""
    code = getattr(getattr(function, "__func__", function), "__code__", None)
    return f"{_shown_path(code.co_filename)}:{code.co_firstlineno}" if code is not None else ""


def _unmarked_hooks(plugin: Any) -> list[str]:
    """``name (at file:line)`` of each function of ``plugin`` named like a hook but not marked
    with ``@hookimpl``, which pluggy silently skips."""
    found = []
    for name in _hook_names():
        function = getattr(plugin, name, None)
        if inspect.isroutine(function) and not hasattr(function, f"{hookspecs.PROJECT}_impl"):
            where = _defined_at(function)
            found.append(f"{name} (at {where})" if where else name)
    return found


def _entry_points() -> list[md.EntryPoint]:
    return sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: (not ep.name.startswith("builtin"), ep.name))


def _missing_module_advice(ep: md.EntryPoint, exc: BaseException, dist: str) -> str:
    """What to do when the module an entry point names is not installed (not when the module
    is there and one of its own imports fails: that is the plugin's to fix)."""
    missing = getattr(exc, "name", None) if isinstance(exc, ModuleNotFoundError) else None
    if not missing or not (ep.module == missing or ep.module.startswith(missing + ".")):
        return ""
    dist = dist or "the distribution"
    return (f"; the entry point names a module that is not installed: fix the entry point in {dist}'s metadata "
            f"([project.entry-points.exitcore] in its pyproject.toml, then reinstall it), or uninstall {dist}")


def _hookless_message(source: str, plugin: Any, label: str) -> str:
    """The warning for a plugin (``label``: :func:`plugin_label`; ``source``: the entry point or
    the ``EXITCORE_PLUGINS`` name that loaded it) that implements no
    hook: its functions named like hooks that lack ``@hookimpl``; failing those, what was
    imported, since a same-named module or folder earlier on ``sys.path`` (the current
    directory) can shadow the real package, and a folder without ``__init__.py`` imports as an
    empty namespace package."""
    unmarked = _unmarked_hooks(plugin)
    if unmarked:
        return f"{label} implements no exitcore hooks: {_unmarked_words(unmarked)}"
    module = plugin if isinstance(plugin, types.ModuleType) else sys.modules.get(type(plugin).__module__)
    file = getattr(module, "__file__", None)
    if file:
        imported = f"imported from {file}"
    else:  # a namespace package: a folder (or several) with no __init__.py
        folders = list(dict.fromkeys(getattr(module, "__path__", []) or []))  # a folder twice on sys.path: once
        imported = f"imported as a namespace package from {', '.join(folders)}" if folders else "imported from no file"
    return (f"{label} implements no exitcore hooks: {source} {imported}; if that is not the plugin's module, a same-named file or folder earlier on "
            "sys.path (the current directory) shadows it: rename it or run from elsewhere")


def _partly_unmarked_message(plugin: Any, label: str) -> str:
    """The warning for a plugin that implements some hooks while others of its functions named
    like hooks lack ``@hookimpl`` (their components would only be "unknown"); ``""`` if none."""
    unmarked = _unmarked_hooks(plugin)
    return f"{label}: {_unmarked_words(unmarked, others=True)}" if unmarked else ""


def _unmarked_words(unmarked: list[str], others: bool = False) -> str:
    """``X (at f:l) is not marked with @exitcore.hookimpl, so pluggy does not call it ...``
    (``others``: the plugin's other hooks are called)."""
    one = len(unmarked) == 1
    it = "it" if one else "them"
    besides = " (the plugin's other hooks are)" if others else ""
    return (f"{' and '.join(unmarked)} {'is' if one else 'are'} not marked with @exitcore.hookimpl, so pluggy does "
            f"not call {it}{besides}: decorate {it} with @hookimpl (from exitcore import hookimpl)")


def _register(pm: pluggy.PluginManager, plugin: Any, name: str, label: str) -> None:
    """Register ``plugin`` as ``name``; a hook implementation pluggy refuses is a one-line
    :class:`PluginError` starting with ``label`` (:func:`plugin_label`)."""
    try:
        pm.register(plugin, name=name)
    except pluggy.PluginValidationError as exc:
        # pluggy's own text spans lines and names no file; other refusals (wrapper options) keep it, joined
        why = _bad_parameters(plugin) or "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise PluginError(f"{label} has an invalid hook implementation: {why}") from None
    except ValueError as exc:
        raise PluginError(f"{label} cannot be registered: {exc}") from None


def _bad_parameters(plugin: Any) -> str:
    """``hook(declared): unknown parameter 'x'; the hook offers ... (at file:line)`` for the
    first ``@hookimpl`` function of ``plugin`` with a parameter its hookspec lacks (a misspelt
    ``register``), as pluggy checks them: parameters without a default; else ``""``."""
    for name in _hook_names():
        function = getattr(plugin, name, None)
        if not hasattr(function, f"{hookspecs.PROJECT}_impl"):
            continue
        try:
            declared = inspect.signature(function).parameters.values()  # a bound method's has no self
        except (TypeError, ValueError):
            continue
        offered = list(inspect.signature(getattr(hookspecs, name)).parameters)
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        unknown = [p.name for p in declared if p.default is p.empty and p.kind in positional and p.name not in offered]
        if unknown:
            where = _defined_at(function)
            return (f"{name}({', '.join(p.name for p in declared)}): unknown parameter"
                    f"{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; the hook offers "
                    f"{', '.join(offered)}" + (f" (at {where})" if where else ""))
    return ""


def _unknown_hooks(pm: pluggy.PluginManager, plugin: Any, dists: dict[str, tuple[str, str]]) -> PluginError:
    """The error for a plugin with ``@hookimpl`` functions that match no hookspec (a typo)."""
    name = pm.get_name(plugin) or repr(plugin)
    specs = _hook_names()
    unknown = []
    for caller in pm.get_hookcallers(plugin) or []:
        if not caller.has_spec():
            close = difflib.get_close_matches(caller.name, specs, n=1)
            unknown.append(repr(caller.name) + (f" (did you mean {close[0]!r}?)" if close else ""))
    label = plugin_label(name, *dists.get(name, ("", "")))
    return PluginError(f"{label} implements unknown hook(s) {', '.join(unknown)}; docs/plugins.md lists the hooks")


def _raising_impl(impls: list[Any], exc: BaseException) -> Any:
    """The hook implementation whose function is the deepest frame of ``exc``'s traceback."""
    by_code = {}
    for impl in impls:
        fn = getattr(impl.function, "__func__", impl.function)  # a plugin object's bound method
        if hasattr(fn, "__code__"):
            by_code[fn.__code__] = impl
    return innermost_match(exc, by_code)


def _env_plugins(pm: pluggy.PluginManager) -> list[types.ModuleType]:
    """The modules :data:`PLUGINS_ENV` names, imported (one that fails is an error naming it);
    a module an entry point already registered (an installed plugin), or named twice, is not
    loaded twice; another module named as an installed plugin is (``rewards.py`` beside the
    shipped ``rewards``) is an error, not silently skipped."""
    import importlib

    modules: list[types.ModuleType] = []
    for name in filter(None, (n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(","))):
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported, named
            hint = ("; put the folder holding it on PYTHONPATH"
                    if isinstance(exc, ModuleNotFoundError) and exc.name == name.split(".")[0] else "")
            raise PluginError(f"{PLUGINS_ENV}: plugin module {name!r} failed to import: "
                              f"{describe_exception(exc)}{hint}") from exc
        if pm.is_registered(module) or module in modules:
            continue
        if pm.has_plugin(name):  # another module under that name: an installed plugin's entry point
            raise PluginError(f"{PLUGINS_ENV}: plugin module {name!r} ({getattr(module, '__file__', None) or 'no file'}) "
                              f"has the name of the installed plugin {name!r}, which exitcore loads already: "
                              "rename the module")
        modules.append(module)
    return modules


def _distribution_of(plugin: Any) -> tuple[str, str]:
    """Best effort (distribution, version) for a plugin registered by object, not entry point."""
    module = plugin if isinstance(plugin, types.ModuleType) else None
    top = (getattr(module, "__name__", "") or getattr(type(plugin), "__module__", "")).split(".")[0]
    for dist_name in md.packages_distributions().get(top, []):
        try:
            return dist_name, md.version(dist_name)
        except md.PackageNotFoundError:
            continue
    return "", ""
