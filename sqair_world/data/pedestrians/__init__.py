"""Pedestrian data: static-camera video in, 64x64 foreground sequences with per-frame people counts out.

- :mod:`.video`: video files, frame folders and DukeMTMC-style multi-part videos as one frame stream;
- :mod:`.mot`: MOTChallenge ``gt.txt`` / ``det.txt`` read and written, sequence folders;
- :mod:`.duke`: DukeMTMC's ``trainval.mat`` / ``trainvalRaw.mat`` and its folder layout;
- :mod:`.background`: OpenCV background subtraction (the authors' MOG recipe, MOG2, KNN);
- :mod:`.regions`: the authors' region, counting and sequence rules;
- :mod:`.walkers`: a synthetic static camera with walkers and exact ground truth (offline demo and tests);
- :mod:`.dataset`: the whole pipeline, split by time and cached.

numpy and OpenCV only (scipy, h5py and tqdm are imported where used); neither torch nor gymnasium.
"""

from sqair_world.data.pedestrians.background import (
    BackgroundConfig,
    BackgroundSubtractor,
    has_bgsegm,
    masked_foreground,
)
from sqair_world.data.pedestrians.dataset import (
    PedestrianData,
    PedestrianSet,
    PreprocessConfig,
    load_pedestrians,
    preprocess,
)
from sqair_world.data.pedestrians.duke import (
    DUKE_COLUMNS,
    DukeGroundTruth,
    duke_ground_truth_file,
    duke_video,
    load_duke_ground_truth,
)
from sqair_world.data.pedestrians.errors import AnnotationError, VideoError
from sqair_world.data.pedestrians.mot import BoxTable, MOTSequence, read_mot, read_mot_sequence, write_mot
from sqair_world.data.pedestrians.regions import (
    box_fractions,
    chunk_runs,
    count_in_regions,
    frame_status,
    region_grid,
    sequence_runs,
)
from sqair_world.data.pedestrians.video import (
    ArrayFrames,
    FrameFolder,
    FrameSource,
    MultiPartVideo,
    VideoFile,
    open_video,
    write_frames,
    write_video,
)
from sqair_world.data.pedestrians.walkers import WalkersConfig, WalkerVideo, make_walkers

__all__ = [
    "AnnotationError",
    "ArrayFrames",
    "BackgroundConfig",
    "BackgroundSubtractor",
    "BoxTable",
    "DUKE_COLUMNS",
    "DukeGroundTruth",
    "FrameFolder",
    "FrameSource",
    "MOTSequence",
    "MultiPartVideo",
    "PedestrianData",
    "PedestrianSet",
    "PreprocessConfig",
    "VideoError",
    "VideoFile",
    "WalkerVideo",
    "WalkersConfig",
    "box_fractions",
    "chunk_runs",
    "count_in_regions",
    "duke_ground_truth_file",
    "duke_video",
    "frame_status",
    "has_bgsegm",
    "load_duke_ground_truth",
    "load_pedestrians",
    "make_walkers",
    "masked_foreground",
    "open_video",
    "preprocess",
    "read_mot",
    "read_mot_sequence",
    "region_grid",
    "sequence_runs",
    "write_frames",
    "write_mot",
    "write_video",
]
