"""``python -m sqair_world.evaluate CHECKPOINT``: the moving-MNIST evaluation (see :mod:`sqair_world.evaluation`)."""

import sys

from sqair_world.evaluation.moving_mnist import main

if __name__ == "__main__":
    sys.exit(main())
