"""exitcore: a plugin-based platform for reinforcement-learning trade-exit optimisation.

The engine (data, episodes, the batched environment, masked PPO, evaluation) lives in this
package; reward terms, guards, masks, features, entry strategies and evaluators are plugins
(see :mod:`exitcore.hookspecs`). Importing ``exitcore`` does not import torch.
"""

from exitcore.hookspecs import hookimpl

__version__ = "0.1.0"
__all__ = ["__version__", "hookimpl"]
