"""Configuration: frozen attrs classes, the one cattrs converter, and path-located errors.

Every configuration value a user can set lives in one of the classes below, with its default and
its validator, so this module is also the reference for what can be written in
``experiments.toml`` (see ``docs/experiments.md``). Loading and composing the file (``extends``,
budgets, ``--set``) lives in :mod:`exitcore.experiments`; plugin parameters are validated against
each component's own ``params`` class with the same converter (:func:`structure`).
"""

from __future__ import annotations

import datetime
import difflib
import math
import re
from collections.abc import Callable, Mapping, MutableSequence, Sequence
from typing import Any, NewType, TypeVar, get_args, get_origin

import attrs
import cattrs
from cattrs.cols import homogenous_tuple_structure_factory, is_abstract_set, is_any_set, is_frozenset, is_mutable_sequence, is_sequence, list_structure_factory
from cattrs.gen import make_dict_structure_fn
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from exitcore.device import DEVICE_PATTERN, DEVICE_WORDS
from exitcore.errors import ConfigError
from exitcore.params import (
    NON_FINITE_ALLOWED,
    FieldError,
    finite,
    int_in_range,
    non_empty_str,
    non_negative,
    non_negative_int,
    matching,
    one_of,
    open_unit_interval,
    positive,
    positive_int,
    positive_int_list,
    seed_int,
    unit_interval,
)

T = TypeVar("T")

_TIMEFRAME = re.compile(r"^(\d+)(s|min|h|D)$")
_UNIT_SECONDS = {"s": 1, "min": 60, "h": 3600, "D": 86400}


def timeframe_seconds(timeframe: str) -> int:
    """Seconds in a timeframe string such as ``"15min"``, ``"1h"``, ``"30s"`` or ``"1D"``."""
    m = _TIMEFRAME.match(timeframe)
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"expected a timeframe such as '15min', '1h' or '1D', got {timeframe!r}")
    return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]


def _timeframe(_inst: Any, attribute: Any, value: str) -> None:
    from exitcore.data.timeframes import canonical_timeframe

    try:
        timeframe_seconds(canonical_timeframe(value))  # says why: ambiguous 1m, a calendar unit, ...
    except ValueError as exc:
        raise FieldError(attribute.name, str(exc)) from None


def _canonical_timeframe(value: Any) -> Any:
    """``1d`` -> ``1D``, ``4H`` -> ``4h`` (as ``--timeframe`` takes them); anything else is left
    for the validator to report."""
    from exitcore.data.timeframes import lenient_timeframe

    return lenient_timeframe(value)


class RuleError(FieldError):
    """A rule across several fields of one table failed (``train + validation + test <= 1``).

    ``fields`` are the fields the rule reads, in order; ``field`` is the one to blame when
    nothing says where the values came from. Given that, :func:`locate_problems` blames the
    value written last instead (a ``--set`` rather than the file key it met) and says where
    each value came from.
    """

    def __init__(self, field: str, message: str, fields: tuple[str, ...]):
        super().__init__(field, message)
        self.fields = fields


#: ``origin(path)`` for :func:`locate_problems`: where the value at a TOML path (relative to
#: the structured data) was written, as ``(rank, where)`` with later writes ranking higher,
#: or ``None`` for a default
Origin = Callable[[str], tuple[int, str] | None]


def _rule_problem(exc: RuleError, path: str, origin: Origin) -> tuple[str, str]:
    """``exc`` blamed on the value written last, its message naming each value's origin."""
    blamed, best, sources = exc.field, -1, []
    for name in exc.fields:
        written = origin(f"{path}.{name}")
        if written is None:
            sources.append(f"{name} by default")
            continue
        rank, where = written
        sources.append(f"{name} from {where}")
        if rank > best or (rank == best and name == exc.field):  # a tie goes to the rule's own field
            blamed, best = name, rank
    if best < 0:
        return f"{path}.{exc.field}", exc.message
    return f"{path}.{blamed}", f"{exc.message}; {', '.join(sources)}"


# --------------------------------------------------------------------------- components


@attrs.frozen
class ComponentRef:
    """A plugin component chosen by name, with its parameters (validated by the component)."""

    name: str = attrs.field(validator=non_empty_str)
    params: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class RewardRef:
    """A reward term with its weight in the weighted sum of terms."""

    name: str = attrs.field(validator=non_empty_str)
    params: dict[str, Any] = attrs.field(factory=dict)
    weight: float = attrs.field(default=1.0, validator=finite)


# --------------------------------------------------------------------------- sections


@attrs.frozen
class DataConfig:
    """Where bars come from and how they are prepared.

    ``source`` names a data-source component (``exitcore plugins`` lists them); ``"auto"`` lets
    the first source that recognises ``params.path`` load it. The default is the embedded,
    seeded synthetic generator.
    """

    source: str = attrs.field(default="synthetic", validator=non_empty_str)
    params: dict[str, Any] = attrs.field(factory=dict)
    #: bar length the experiment runs on; finer data is resampled to it
    timeframe: str = attrs.field(default="15min", converter=_canonical_timeframe, validator=_timeframe)
    #: a hole of more missing bars than this ends a contiguous stretch (a weekend, an outage);
    #: what an open trade does at one is ``env.data_holes``
    max_gap_bars: int = attrs.field(default=4, validator=positive_int)
    #: price of one pip; 0 infers it from the price level (0.01 for JPY-like quotes, else 0.0001)
    pip_size: float = attrs.field(default=0.0, validator=non_negative)


#: values of ``env.data_holes``
DATA_HOLES = ("hold", "close")
#: what each value does, in the words ``data inspect`` and the report use
DATA_HOLES_WORDS = {"hold": "trades stay open across holes in the data",
                    "close": "trades close at the last bar before a hole in the data, exit reason gap"}


#: the longest time stop, in bars: 100,000 is ~3 years of M15 or ~10 weeks of M1 bars
#: (``env.max_bars = 99999999999`` failed in a reward term asking for 800 GB)
MAX_BARS = 100_000


@attrs.frozen
class EnvConfig:
    """The trade episode (design.md §3)."""

    #: time stop: a trade is closed after this many bars at the latest (96 x 15 min = one day);
    #: at most MAX_BARS: per-trade tensors (the regret window, the episode table) are this long
    max_bars: int = attrs.field(default=96, validator=int_in_range(1, MAX_BARS))
    #: TIGHTEN_SL: new stop distance = tighten_factor x current distance
    tighten_factor: float = attrs.field(default=0.5, validator=open_unit_interval)
    #: PARTIAL_EXIT closes this fraction of the remaining position
    partial_fraction: float = attrs.field(default=0.5, validator=open_unit_interval)
    #: rewards are PnL fractions x reward_scale (100 = percent of the entry price)
    reward_scale: float = attrs.field(default=100.0, validator=positive)
    #: ATR period of the market's ATR series (features normalise by it)
    atr_period: int = attrs.field(default=14, validator=positive_int)
    #: what a trade does at a hole of more than data.max_gap_bars missing bars: "hold" keeps it
    #: open across (design.md §2-§3: the next bar's open settles a gap through the stop or
    #: target; a fill after a hole is valid), "close" closes it at the last bar before the hole
    #: (reason GAP) and drops signals whose fill would cross one (flat over weekends)
    data_holes: str = attrs.field(default="hold", validator=one_of(DATA_HOLES))


@attrs.frozen
class CostConfig:
    """The cost model: charged per unit closed, in pips (design.md §3)."""

    spread_pips: float = attrs.field(default=1.0, validator=non_negative)
    commission_pips: float = attrs.field(default=0.0, validator=non_negative)
    slippage_pips: float = attrs.field(default=0.0, validator=non_negative)
    #: account-currency value of one unit of position, for PnL in currency
    notional: float = attrs.field(default=100_000.0, validator=positive)
    account_currency: str = attrs.field(default="USD", validator=non_empty_str)



#: ``ppo.compile = "auto"`` compiles the CPU environment for runs this long: compiling takes
#: 2-15 s once, and saves ~3 us per env-step at 256 envs (docs/benchmarks.md), so it pays off
#: from about 4 M steps (a full v4 run is 15 M; the README's quick budget 262 k).
COMPILE_AUTO_CPU_STEPS = 4_000_000
#: automatic ``ppo.micro_batch_size`` on the CPU keeps one layer's activations within this many
#: bytes: on a 2 MiB-L2 Xeon, v4's [512, 256] network trained 5-17 % faster with 1 thread (-5 to
#: +9 % with 2) in passes of 2,048 rows than of 8,192, while [64, 64] (whole 8,192-row
#: minibatches fit) was slower when split
AUTO_CPU_ACTIVATION_BYTES = 4 * 1024 * 1024

@attrs.frozen
class PPOConfig:
    """Masked PPO hyperparameters (design.md §5)."""

    total_timesteps: int = attrs.field(default=10_000_000, validator=positive_int)
    n_envs: int = attrs.field(default=64, validator=positive_int)
    n_steps: int = attrs.field(default=2048, validator=positive_int)
    batch_size: int = attrs.field(default=4096, validator=positive_int)
    n_epochs: int = attrs.field(default=4, validator=positive_int)
    #: rows per forward/backward pass: a minibatch's gradient is summed over passes of this many
    #: rows (the same update up to float rounding; passes whose activations fit the CPU's cache
    #: are faster). 0 = automatic (:meth:`micro_batch_rows`)
    micro_batch_size: int = attrs.field(default=0, validator=non_negative_int)
    learning_rate: float = attrs.field(default=3e-4, validator=positive)
    anneal_lr: bool = False
    gamma: float = attrs.field(default=0.99, validator=unit_interval)
    gae_lambda: float = attrs.field(default=0.95, validator=unit_interval)
    clip_coef: float = attrs.field(default=0.2, validator=positive)
    #: value-function clipping range; 0 disables it
    clip_vf: float = attrs.field(default=0.2, validator=non_negative)
    vf_coef: float = attrs.field(default=0.5, validator=non_negative)
    entropy_coef_start: float = attrs.field(default=0.05, validator=non_negative)
    entropy_coef_end: float = attrs.field(default=0.001, validator=non_negative)
    entropy_anneal_steps: int = attrs.field(default=5_000_000, validator=non_negative_int)
    max_grad_norm: float = attrs.field(default=0.5, validator=positive)
    #: stop an update's epochs early when approx-KL exceeds this; 0 disables
    target_kl: float = attrs.field(default=0.02, validator=non_negative)
    norm_adv: bool = True
    #: policy component name (``exitcore plugins`` lists them) and its network
    policy: str = attrs.field(default="mlp", validator=non_empty_str)
    #: parameters of the policy component, checked against its params class (the built-in
    #: ``mlp`` takes none: it reads ``hidden``, ``shared_trunk`` and ``activation`` below)
    policy_params: dict[str, Any] = attrs.field(factory=dict)
    hidden: list[int] = attrs.field(factory=lambda: [256, 128], validator=positive_int_list)
    shared_trunk: bool = False
    activation: str = attrs.field(default="tanh", validator=one_of(["tanh", "relu"]))
    #: policy-network matmul precision: "fp32", or "bf16" (autocast; several times faster for
    #: large networks on CPUs with AMX/AVX512-BF16 and on GPUs, at bfloat16 precision)
    precision: str = attrs.field(default="fp32", validator=one_of(["fp32", "bf16"]))
    seed: int = attrs.field(default=0, validator=seed_int)
    #: "auto" takes CUDA when available
    device: str = attrs.field(default="auto", validator=matching(DEVICE_PATTERN, DEVICE_WORDS))
    #: write a checkpoint every this many updates (the final one is always written)
    checkpoint_every: int = attrs.field(default=10, validator=positive_int)
    #: compile the environment step with torch.compile ("auto": on CUDA, and on CPU for runs of
    #: at least COMPILE_AUTO_CPU_STEPS steps, where the faster step repays the compilation); on
    #: CUDA anything but "off" also replays training steps from CUDA graphs: the env step always,
    #: the policy step and the update in fp32 with whole minibatches (captures_graphs)
    compile: str = attrs.field(default="auto", validator=one_of(["auto", "on", "off"]))

    def compiles_env(self, device_type: str) -> bool:
        """Whether training compiles the environment step on a device of this type."""
        if self.compile != "auto":
            return self.compile == "on"
        return device_type == "cuda" or self.total_timesteps >= COMPILE_AUTO_CPU_STEPS

    def replays_env_graph(self, device_type: str) -> bool:
        """Whether training replays the compiled env step from a CUDA graph
        (exitcore/env/step_graph.py): on CUDA whenever the env is compiled."""
        return device_type == "cuda" and self.compiles_env(device_type)

    @property
    def trained_timesteps(self) -> int:
        """The steps a run trains: ``total_timesteps`` rounded up to whole updates of ``n_envs
        x n_steps`` (the trainer's last update is a whole one)."""
        per_update = self.n_envs * self.n_steps
        return -(-self.total_timesteps // per_update) * per_update

    def captures_graphs(self, device_type: str) -> bool:
        """Whether training captures the rollout's policy step and the minibatch update in CUDA
        graphs (exitcore/ppo/graphs.py): on CUDA unless ``compile = "off"``, in fp32 with whole
        minibatches (bf16 autocast and micro-batches keep the eager path)."""
        return (device_type == "cuda" and self.compile != "off" and self.precision == "fp32"
                and self.micro_batch_rows(device_type) >= self.batch_size)

    def micro_batch_rows(self, device_type: str) -> int:
        """Rows per forward/backward pass on a device of this type: ``micro_batch_size`` when set;
        automatically the whole minibatch on CUDA and in bf16 (where splitting showed no gain),
        and on the CPU in fp32 the largest power of two whose widest layer's activations fit
        :data:`AUTO_CPU_ACTIVATION_BYTES` (at least 256 rows, at most the minibatch)."""
        if self.micro_batch_size:
            return min(self.micro_batch_size, self.batch_size)
        if device_type == "cuda" or self.precision == "bf16":
            return self.batch_size
        rows = max(AUTO_CPU_ACTIVATION_BYTES // (4 * max(self.hidden)), 256)
        return min(1 << (rows.bit_length() - 1), self.batch_size)

    def __attrs_post_init__(self) -> None:
        if self.batch_size > self.n_envs * self.n_steps:
            raise RuleError(
                "batch_size",
                f"expected at most n_envs x n_steps = {self.n_envs} x {self.n_steps} = {self.n_envs * self.n_steps}, "
                f"got {self.batch_size}",
                ("batch_size", "n_envs", "n_steps"),
            )


_YEAR_OR_MONTH = re.compile(r"^\s*(\d{4})(?:[-/](\d{1,2}))?\s*$")


def parse_split_time(text: str) -> datetime.datetime:
    """A split date (``split.train_end``): ISO 8601 text, a date or a date and time, in UTC
    unless it carries an offset; also a bare year or year-month (``2016``, ``2016-01``: its
    first day) and slashes for dashes (``2016/01/31``), which earlier versions took.
    ``ValueError`` when it is none of these. The one parser of split dates (config and splits)."""
    if not isinstance(text, str):
        raise ValueError(f"expected an ISO date or time such as 2019-01-01 or 2019-01-01T12:00, got {text!r}")
    short = _YEAR_OR_MONTH.match(text)
    try:
        if short:
            when = datetime.datetime(int(short.group(1)), int(short.group(2) or 1), 1)
        else:
            when = datetime.datetime.fromisoformat(text.strip().replace("/", "-"))
    except ValueError:
        raise ValueError(f"expected an ISO date or time such as 2019-01-01 or 2019-01-01T12:00, got {text!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.timezone.utc)


def canonical_split_time(text: str) -> str:
    """The one spelling of a split date, for the config hash and comparisons: the same instant
    typed ``2019/07/01``, ``2019-07-01T00:00`` or ``2019-07-01T02:00+02:00`` reads
    ``2019-07-01`` (midnight UTC as the date alone, else ``2019-07-01T12:00`` in UTC, seconds
    only when given). The spellings most typed (``2019-07-01``, ``2019-07-01T12:00``) are their
    own canonical form, so the hashes of configurations that use them did not change. Text
    :func:`parse_split_time` refuses, and ``""`` (not set), are returned as they are."""
    if not text:
        return text
    try:
        when = parse_split_time(text).astimezone(datetime.timezone.utc)
    except ValueError:
        return text
    if when.time() == datetime.time(0):
        return when.date().isoformat()
    if when.second == 0 and when.microsecond == 0:
        return when.strftime("%Y-%m-%dT%H:%M")
    return when.replace(tzinfo=None).isoformat()


#: the split keys that hold a date (:func:`canonical_split_time`)
SPLIT_DATE_KEYS = ("train_end", "validation_end")


#: a split date's type: text, or a bare integer year (``--set split.train_end=2019``, TOML
#: ``train_end = 2019``), which is read as its text; other fields taking text refuse numbers
SplitTime = NewType("SplitTime", str)


def _structure_split_time(value: Any, _type: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 1000 <= value <= 9999:
        return str(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise TypeError(f'expected a date such as "2019-01-01" (quoted) or a year such as 2019, got {value!r}')
    return _strict_str(value, str)


def _split_time(_inst: Any, attribute: Any, value: str) -> None:
    if value == "":
        return  # not set: the fractions apply
    try:
        parse_split_time(value)
    except ValueError as exc:
        raise FieldError(attribute.name, str(exc)) from None


@attrs.frozen
class SplitConfig:
    """Time split into train / validation / test with a purge gap (design.md §2).

    Either fractions of the bar span or ISO dates (``train_end``, ``validation_end``); dates win
    when given. ``purge_bars`` 0 means the minimum the contract allows:
    ``max_bars + feature lookback``.
    """

    train: float = attrs.field(default=0.6, validator=open_unit_interval)
    validation: float = attrs.field(default=0.0, validator=unit_interval)
    test: float = attrs.field(default=0.4, validator=open_unit_interval)
    #: "" (not set) or ISO text such as "2019-01-01" (:func:`parse_split_time`)
    train_end: SplitTime = attrs.field(default="", validator=_split_time)
    validation_end: SplitTime = attrs.field(default="", validator=_split_time)
    purge_bars: int = attrs.field(default=0, validator=non_negative_int)

    def __attrs_post_init__(self) -> None:
        if self.validation_end and not self.train_end:
            raise RuleError("validation_end", f"expected train_end too when validation_end is set (got validation_end "
                                              f"{self.validation_end!r}, train_end not set)",
                            ("validation_end", "train_end"))
        if self.validation_end and parse_split_time(self.validation_end) <= parse_split_time(self.train_end):
            raise RuleError("validation_end", f"expected validation_end after train_end, got validation_end "
                                              f"{self.validation_end!r}, train_end {self.train_end!r}",
                            ("validation_end", "train_end"))
        total = self.train + self.validation + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-9) and total > 1.0:
            raise RuleError("test", f"expected train + validation + test <= 1, got {total:g} "
                                    f"(train {self.train:g}, validation {self.validation:g}, test {self.test:g})",
                            ("train", "validation", "test"))


#: where each key of an experiment's split was written: ``{"train_end":
#: ("experiments.v4_real.split.train_end", "/home/me/experiments.toml"), "test": ("--set
#: split.test", None)}`` (the TOML path or ``--set key``, and the file it is in), as
#: :func:`exitcore.experiments.resolve` works them out (``ResolvedExperiment.split_origins``)
SplitOrigins = Mapping[str, tuple[str, str | None]]


#: where each key of an experiment's data section was written, by its path in the section:
#: ``{"params.path": "--set data.params.path", "timeframe": "defaults.data.timeframe"}``, as
#: :func:`exitcore.experiments.resolve` works them out (``ResolvedExperiment.data_origins``),
#: for the errors found only when the data is read (a missing file, a timeframe it cannot take)
DataOrigins = Mapping[str, str]


def split_origin_of(key: str, origins: SplitOrigins | None = None, where: str = "split") -> tuple[str, str | None]:
    """``(path, file)`` where the split's ``key`` was written; ``(f"{where}.{key}", None)`` when
    ``origins`` does not say (a run's frozen ``config.toml``, a test's own split)."""
    if origins and key in origins:
        return origins[key]
    return f"{where}.{key}", None


def split_origin(key: str, origins: SplitOrigins | None = None, where: str = "split") -> str:
    """Where the split's ``key`` was written, as an error message starts with it:
    ``FILE:LINE: experiments.x.split.train_end``, ``--set split.train_end``, or ``split.train_end``."""
    from exitcore.toml_lines import file_key

    path, file = split_origin_of(key, origins, where)
    return file_key(file, path) if file and not path.startswith("--") else path


@attrs.frozen
class EvalConfig:
    """Evaluation on the held-out split (design.md §7)."""

    evaluators: list[ComponentRef] = attrs.field(factory=list)
    #: 0 evaluates the deterministic policy only; N adds N sampled-policy seeds
    sample_seeds: int = attrs.field(default=0, validator=non_negative_int)
    bootstrap_samples: int = attrs.field(default=2000, validator=positive_int)
    confidence: float = attrs.field(default=0.95, validator=open_unit_interval)
    #: number of walk-forward windows; 0 evaluates the single test split
    walk_forward: int = attrs.field(default=0, validator=non_negative_int)
    #: decisions the look-ahead audit samples
    audit_decisions: int = attrs.field(default=64, validator=positive_int)
    #: where the ledger is written: "csv" or "parquet" (needs pyarrow)
    ledger_format: str = attrs.field(default="csv", validator=one_of(["csv", "parquet"]))


@attrs.frozen
class ExperimentConfig:
    """A named experiment: a plugin set plus every parameter, fully resolved."""

    name: str = attrs.field(validator=non_empty_str)
    description: str = ""
    #: the chain of experiments this one extends, root first (filled in by the loader)
    lineage: list[str] = attrs.field(factory=list)
    #: values not stated by the research log, and what was assumed instead
    assumptions: list[str] = attrs.field(factory=list)
    data: DataConfig = attrs.field(factory=DataConfig)
    env: EnvConfig = attrs.field(factory=EnvConfig)
    costs: CostConfig = attrs.field(factory=CostConfig)
    ppo: PPOConfig = attrs.field(factory=PPOConfig)
    split: SplitConfig = attrs.field(factory=SplitConfig)
    eval: EvalConfig = attrs.field(factory=EvalConfig)
    entry: ComponentRef = attrs.field(factory=lambda: ComponentRef(name="donchian"))
    features: list[ComponentRef] = attrs.field(factory=list)
    rewards: list[RewardRef] = attrs.field(factory=list)
    guards: list[ComponentRef] = attrs.field(factory=list)
    masks: list[ComponentRef] = attrs.field(factory=list)


# --------------------------------------------------------------------------- converter


def _strict_int(value: Any, _type: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        # 1e6 is a float to TOML (trial AB): say how to write the whole number
        hint = (f"; write a whole number as {int(value):_} (TOML reads a number with an exponent or a point as a float)"
                if isinstance(value, float) and value.is_integer() and abs(value) < 1e18 else "")
        raise TypeError(f"expected an integer, got {value!r}{hint}")
    return value


def _strict_float(value: Any, _type: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _strict_bool(value: Any, _type: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _strict_str(value: Any, _type: Any) -> str:
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()  # a bare TOML date (train_end = 2016-06-01) means its ISO text
    if isinstance(value, bool):  # ppo.compile = true: the key takes a word ("on"), which the message can say
        word = "true" if value else "false"
        raise TypeError(f"expected text (a word, a name or a date), not the boolean {word}")
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _strict_dict(value: Any, _type: Any) -> dict:
    if not isinstance(value, dict):
        raise TypeError(f"expected a table, got {value!r}{_table_hint(value)}")
    return dict(value)


def _table_hint(value: Any) -> str:
    """How a table is written, for text that opens like one: ``--set 'ppo.policy_params={width
    3}'`` (no ``=``) is text to TOML."""
    return "; a table is written {key = value, key = value}" if isinstance(value, str) and value.lstrip().startswith("{") else ""


def _other_field_errors(cl: type, raw: dict[str, Any], skip: set[str]) -> list[FieldError]:
    """Every other field's validator run on its raw value, so that one message lists every bad
    value of a table rather than the first. Nested tables and validators that need the whole
    instance (cross-field checks) are left to the normal path."""
    out = []
    for a in attrs.fields(attrs.resolve_types(cl)):
        if a.name in skip or a.name not in raw or attrs.has(a.type):
            continue
        try:
            value = converter.structure(raw[a.name], a.type)  # e.g. a TOML date becomes its ISO text
            if a.validator is not None:
                a.validator(None, a, value)
            _check_finite(a, value)
        except FieldError as exc:
            out.append(exc)
        except Exception:  # noqa: BLE001 - not convertible (reported already) or needs the instance
            pass
    return out


def _is_array_type(t: Any) -> bool:
    """Whether ``t`` is a sequence or set annotation (``list``, ``list[int]``, ``tuple``,
    ``tuple[int, ...]``, ``tuple[int, int]``, ``Sequence[float]``, ``set[str]``...), which a TOML
    array fills."""
    if t in (Sequence, MutableSequence):
        return True
    return get_origin(t) is tuple or is_sequence(t) or is_any_set(t)


def _is_set_type(t: Any) -> bool:
    from collections.abc import Set

    origin = get_origin(t) or t
    return isinstance(origin, type) and issubclass(origin, (set, frozenset, Set)) and origin is not str


def _sorted_items(value: Any) -> list[Any]:
    items = [converter.unstructure(v) for v in value]
    try:
        return sorted(items)
    except TypeError:  # mixed types: a stable order all the same
        return sorted(items, key=repr)


def _is_table_type(t: Any) -> bool:
    """``dict[K, V]`` / ``Mapping[K, V]`` annotations other than the plain ``dict[str, Any]``
    of component parameters (which :func:`_strict_dict` takes as it is)."""
    from collections.abc import Mapping, MutableMapping

    return t != dict[str, Any] and (get_origin(t) or t) in (dict, Mapping, MutableMapping) and bool(get_args(t))


def _array_structure_fn(t: Any, conv: cattrs.Converter) -> Callable[[Any, Any], Any]:
    """cattrs' own structuring of the array type ``t`` (its items through ``conv``'s strict
    hooks), for :func:`_make_converter`'s array hook to call once the value is an array."""
    args = get_args(t)
    if t in (Sequence, MutableSequence):  # bare abstract annotations: cattrs has no hook for them
        t = tuple[Any, ...] if t is Sequence else list[Any]
    if get_origin(t) is tuple or t is tuple:
        if args and args[-1] is not Ellipsis:  # tuple[int, str]: fixed length
            return conv.gen_structure_hetero_tuple(t)
        return homogenous_tuple_structure_factory(t, conv)
    if is_any_set(t):  # set[int], frozenset[int]: built from the items' list
        items = list_structure_factory(list[args[0]] if args else list[Any], conv)
        kind = frozenset if is_frozenset(t) or is_abstract_set(t) else set
        return lambda value, _t: kind(items(value, list))
    if is_mutable_sequence(t):
        return list_structure_factory(t, conv)
    return homogenous_tuple_structure_factory(t, conv)


def _allows_non_finite(annotation: Any) -> bool:
    """Whether a field's (resolved) annotation opts in to non-finite floats with
    :data:`exitcore.params.AnyFloat`, at any depth (``list[AnyFloat]``, ``AnyFloat | None``)."""
    if NON_FINITE_ALLOWED in getattr(annotation, "__metadata__", ()):
        return True
    return any(_allows_non_finite(arg) for arg in getattr(annotation, "__args__", None) or ())


def _non_finite(value: Any, nan_only: bool = False) -> bool:
    """A float that is nan or ±inf (``nan_only``: nan), or an array or table holding one."""
    if isinstance(value, float):
        return math.isnan(value) if nan_only else not math.isfinite(value)
    if isinstance(value, dict):
        return any(_non_finite(v, nan_only) for v in value.values())
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_non_finite(v, nan_only) for v in value)
    return False


def _mentions_float(annotation: Any) -> bool:
    """Whether a (resolved) annotation is ``float`` or holds one (``list[float]``,
    ``dict[str, float]``, ``float | None``); ``Any`` does not."""
    if annotation is float:
        return True
    return any(_mentions_float(arg) for arg in getattr(annotation, "__args__", None) or ())


def _check_finite(a: attrs.Attribute, value: Any) -> None:
    """Raise :class:`FieldError` when field ``a`` holds nan or ±inf and was not annotated
    :data:`~exitcore.params.AnyFloat`. TOML accepts ``nan``/``inf``, and a plugin's float
    parameter without a ``finite`` validator took them silently (a mask comparing with ``nan``
    never allows its action), so every float is finite unless its field says otherwise. Run
    after the field's validator, whose message is more precise (``> 0``). A field whose default
    is non-finite (``limit: float = math.inf``, "no limit") accepts them too: refusing its own
    default would break the component for every user, and re-reading a run's frozen config;
    it still refuses nan, which no limit means. Only fields annotated with ``float`` are checked."""
    if not _mentions_float(a.type) or _allows_non_finite(a.type):
        return
    inf_allowed = _non_finite(a.default)
    if _non_finite(value, nan_only=inf_allowed):
        many = isinstance(value, (list, tuple, set, frozenset, dict))
        want = ("numbers or inf" if many else "a number or inf") if inf_allowed else ("finite numbers" if many else "a finite number")
        raise FieldError(a.name, f"expected {want}, got {value!r}")


def _non_finite_errors(cl: type, obj: Any) -> list[FieldError]:
    """:func:`_check_finite`'s problem for every field of the attrs instance ``obj``."""
    out = []
    for a in attrs.fields(attrs.resolve_types(cl)):
        try:
            _check_finite(a, getattr(obj, a.name))
        except FieldError as exc:
            out.append(exc)
    return out


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)

    # Tables and arrays are checked for their TOML type first, so `env = [1]` reads
    # "expected a table" rather than a Python AttributeError.
    def attrs_hook(cl: type) -> Any:
        inner = make_dict_structure_fn(cl, conv)

        def hook(value: Any, t: Any) -> Any:
            if not isinstance(value, dict):
                raise TypeError(f"expected a table, got {value!r}{_table_hint(value)}")
            try:
                obj = inner(value, t)
            except FieldError as first:  # attrs stops at the first failing validator
                others = _other_field_errors(cl, value, {first.field})
                if others:
                    raise ExceptionGroup(f"{cl.__name__}: {1 + len(others)} problems", [first, *others]) from None
                raise
            except ClassValidationError as exc:  # unknown keys or bad types: validators never ran
                with_notes, without = exc.group_exceptions()
                skip = {note.name for _sub, note in with_notes} | {e.field for e in without if isinstance(e, FieldError)}
                others = _other_field_errors(cl, value, skip)
                if others:
                    raise ExceptionGroup(f"{cl.__name__}: problems", [exc, *others]) from None
                raise
            non_finite = _non_finite_errors(cl, obj)
            if len(non_finite) == 1:
                raise non_finite[0]
            if non_finite:
                raise ExceptionGroup(f"{cl.__name__}: non-finite numbers", non_finite)
            return obj

        return hook

    def array_hook(t: Any) -> Any:
        inner = _array_structure_fn(t, conv)

        def hook(value: Any, tt: Any) -> Any:
            # cattrs would iterate any iterable, so "32" became ['3', '2'] and 32 a bare
            # "'int' object is not iterable"; a TOML array is a list (a tuple when re-structured).
            if not isinstance(value, (list, tuple)):
                # --set 'ppo.hidden=[64 64]' is text to TOML (no comma): say what an array needs
                hint = ("; an array's items are separated by commas: [64, 64]"
                        if isinstance(value, str) and value.lstrip().startswith("[") else
                        # --set ppo.hidden=64,64 (trial AB): the brackets make it an array
                        f"; write an array in brackets: [{value}]" if isinstance(value, str) and "," in value else "")
                raise TypeError(f"expected an array, got {value!r}{hint}")
            return inner(value, tt)

        return hook

    def table_hook(t: Any) -> Any:
        from cattrs.gen import make_mapping_structure_fn

        inner = make_mapping_structure_fn(t, conv)

        def hook(value: Any, tt: Any) -> Any:
            # cattrs would call value.items(): a scalar gave "'str' object has no attribute 'items'"
            if not isinstance(value, dict):
                raise TypeError(f"expected a table, got {value!r}{_table_hint(value)}")
            return inner(value, tt)

        return hook

    conv.register_structure_hook_factory(attrs.has, attrs_hook)
    conv.register_structure_hook_factory(_is_array_type, array_hook)
    conv.register_structure_hook_factory(_is_table_type, table_hook)
    conv.register_structure_hook(int, _strict_int)
    conv.register_structure_hook(float, _strict_float)
    conv.register_structure_hook(bool, _strict_bool)
    conv.register_structure_hook(str, _strict_str)
    conv.register_structure_hook(SplitTime, _structure_split_time)
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _strict_dict)
    # a set parameter is written (config.toml, the config hash) as a sorted array: a set's order
    # differs between processes, and JSON and TOML have no sets
    conv.register_unstructure_hook_func(_is_set_type, _sorted_items)
    return conv


#: the project's one converter: unknown keys are errors, no silent int/float/str coercion
converter = _make_converter()


def structure(data: Any, cls: type[T], path: str, source: str | None = None) -> T:
    """Build ``cls`` from plain data, turning every failure into a :class:`ConfigError`.

    ``path`` is the TOML path of ``data`` (``experiments.v2.ppo``); each problem is reported at
    the full path of the offending key. ``source`` (a file name) prefixes the message.
    """
    if attrs.has(cls) and not isinstance(data, dict):
        raise ConfigError([(path, f"expected a table, got {data!r}")], source)
    try:
        return converter.structure(data, cls)
    except Exception as exc:  # noqa: BLE001 - every failure is turned into located problems
        raise ConfigError(locate_problems(exc, path, cls), source) from None


def locate_problems(exc: BaseException, path: str, cls: Any = None, origin: Origin | None = None) -> list[tuple[str, str]]:
    """Walk a cattrs/attrs error tree into ``(toml_path, message)`` pairs.

    ``origin`` (see :data:`Origin`) lets a rule across fields (:class:`RuleError`) blame the
    value written last and name where each value came from.
    """
    out: list[tuple[str, str]] = []
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            sub_cls = _field_type(cls, note.name)
            if isinstance(sub, KeyError):
                out.append((f"{path}.{note.name}", "required key is missing"))
            else:
                out.extend(locate_problems(sub, f"{path}.{note.name}", sub_cls, origin))
        for sub in without:
            out.extend(locate_problems(sub, path, cls, origin))
    elif isinstance(exc, IterableValidationError):
        with_notes, without = exc.group_exceptions()
        inner = _list_item_type(cls)
        for sub, note in with_notes:
            out.extend(locate_problems(sub, f"{path}[{note.index}]", inner, origin))
        for sub in without:
            out.extend(locate_problems(sub, path, inner, origin))
    elif isinstance(exc, ForbiddenExtraKeysError):
        allowed = [a.name for a in attrs.fields(exc.cl)] if attrs.has(exc.cl) else []
        if exc.cl is ExperimentConfig:  # filled in by the loader, never set (experiments.NOT_SETTABLE)
            allowed = [a for a in allowed if a not in ("name", "lineage")]
        for key in sorted(exc.extra_fields):
            message = unknown_key_message(key, allowed)
            if {"name", "params"} <= set(allowed) and "(did you mean" not in message:
                # `{ name = "time_penalty", time_coef = 0.004 }` (trial AB): a parameter one level up
                message += f"; a component's own parameters go in its params table: params = {{ {key} = ... }}"
            out.append((f"{path}.{key}", message))
    elif isinstance(exc, RuleError) and origin is not None:
        out.append(_rule_problem(exc, path, origin))
    elif isinstance(exc, FieldError):
        out.append((f"{path}.{exc.field}", exc.message))
    elif isinstance(exc, BaseExceptionGroup):
        for sub in exc.exceptions:
            out.extend(locate_problems(sub, path, cls, origin))
    elif isinstance(exc, TypeError) and "required positional argument" in str(exc):
        missing = re.findall(r"'(\w+)'", str(exc))
        for name in missing:
            out.append((f"{path}.{name}", "required key is missing"))
    else:
        out.append((path, str(exc)))
    return out


#: names other PPO libraries (stable-baselines3, CleanRL) and common abbreviations use for
#: exitcore's keys, suggested before any spelling match (``lr`` is too short to be a typo of
#: ``learning_rate``, ``ent_coef`` is spelt closer to ``vf_coef`` than to what it means, and
#: ``tz`` is too short to be matched to ``timezone``)
OTHER_NAMES: dict[str, str] = {
    "tz": "timezone",
    "tf": "timeframe",
    "lr": "learning_rate",
    "ent_coef": "entropy_coef_start",
    "clip_range": "clip_coef",
    "clip_range_vf": "clip_vf",
    "net_arch": "hidden",
    "epochs": "n_epochs",
    "update_epochs": "n_epochs",
    "num_envs": "n_envs",
    "num_steps": "n_steps",
    "minibatch_size": "batch_size",
    "anneal_learning_rate": "anneal_lr",
}


def unknown_key_message(key: str, allowed: list[str]) -> str:
    """``unknown key 'x'`` plus the closest allowed names, for typo-friendly errors."""
    msg = f"unknown key {key!r}"
    if OTHER_NAMES.get(key) in allowed:
        close = [OTHER_NAMES[key]]
    else:
        close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        msg += f" (did you mean {close[0]!r}?)"
    if allowed:
        msg += "; allowed: " + ", ".join(allowed)
    return msg


def _field_type(cls: Any, name: str) -> Any:
    if cls is not None and attrs.has(cls):
        for a in attrs.fields(cls):
            if a.name == name:
                return a.type
    return None


def _list_item_type(cls: Any) -> Any:
    args = getattr(cls, "__args__", None)
    return args[0] if args else None


def unstructure(obj: Any) -> Any:
    """Plain data (dicts, lists, scalars) for a config object, ready for TOML or JSON."""
    return converter.unstructure(obj)
