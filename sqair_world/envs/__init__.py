"""Environment registration (being written)."""


def register_envs() -> None:
    pass
