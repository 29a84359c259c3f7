"""Gymnasium wrappers: Atari maze preprocessing, SQAIR object slots (single env and vector envs)."""
from sqair_world.wrappers.atari import GAMES, MazePreprocessing, collect_sequences, make_maze_env
from sqair_world.wrappers.slots import SlotEncoder, SQAIRObservation, record_episode_gif
from sqair_world.wrappers.vector import SQAIRVecEnv, SQAIRVectorObservation

__all__ = ["GAMES", "MazePreprocessing", "collect_sequences", "make_maze_env", "SlotEncoder", "SQAIRObservation",
           "record_episode_gif", "SQAIRVecEnv", "SQAIRVectorObservation"]
