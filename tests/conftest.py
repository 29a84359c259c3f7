import os
import sys

# One CPU thread for the tests and the CLIs they start: the tests use small tensors, where a second
# thread costs more in wake-ups than it gains (badly so on a loaded machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))  # tests share toy_data.py
torch.set_num_threads(1)
