"""The look-ahead audit's poisonings, by name: plain constants, importable without torch (the
report renders an audit with them; :mod:`exitcore.env.causality` and :mod:`exitcore.env.lookback`
apply them)."""

#: how the bars after a decision are poisoned (exitcore/env/causality.py)
POISON_MODES = ("truncate", "nan", "huge", "random_walk")
#: poisonings of the bars before a feature's lookback (a subset of the audit's modes)
PAST_MODES = ("nan", "huge")
#: "huge" before a lookback: the bars' own prices times this, a 10 % jump (hundreds of bars'
#: moves on FX bars) that leaves float64 running sums' rounding at the data's own scale: twice
#: the prices already left 1.1e-5 of a 5-bar rolling std's z-score, 1e6 turned -1.8 into -0.3
HUGE_FACTOR = 1.1
