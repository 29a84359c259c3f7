"""Evaluation: the paper's metrics (IWAE log-likelihood, counting, addition, MOTA/IDF1), the moving-MNIST
evaluation, the RAM-scored Atari evaluation, tracking scores, the paper's figures and drawing."""
