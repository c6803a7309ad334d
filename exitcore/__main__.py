"""``python -m exitcore``: the same CLI as the ``exitcore`` and ``exit`` console scripts."""

from exitcore.cli import main

main()
