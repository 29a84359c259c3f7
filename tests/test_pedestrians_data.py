"""The pedestrian data layer: readers, background subtraction, region and sequence rules, synthetic walkers and
the cached data set, all on small files generated here."""

import dataclasses
import warnings

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from sqair_world.data.pedestrians import (  # noqa: E402
    AnnotationError,
    ArrayFrames,
    BackgroundConfig,
    BackgroundSubtractor,
    BoxTable,
    FrameFolder,
    MultiPartVideo,
    PreprocessConfig,
    VideoError,
    VideoFile,
    WalkersConfig,
    box_fractions,
    chunk_runs,
    count_in_regions,
    duke_video,
    frame_status,
    has_bgsegm,
    load_duke_ground_truth,
    load_pedestrians,
    make_walkers,
    open_video,
    preprocess,
    read_mot,
    read_mot_sequence,
    region_grid,
    sequence_runs,
    write_frames,
    write_mot,
    write_video,
)
from sqair_world.data.pedestrians import dataset as dataset_module  # noqa: E402
from sqair_world.data.pedestrians.duke import DUKE_COLUMNS, to_global_frame, to_local_frame  # noqa: E402

SMALL = WalkersConfig(height=96, width=128, num_frames=60, far_height=16, near_height=30, seed=1)


@pytest.fixture(scope="module")
def walkers():
    return make_walkers(SMALL)


def numbered_frames(n: int, first: int = 1, h: int = 48, w: int = 64) -> np.ndarray:
    """Flat frames whose grey level encodes their frame number (10 per frame), to check the numbering after a lossy
    codec."""
    levels = 10 * np.arange(first, first + n)
    return np.broadcast_to(levels[:, None, None, None], (n, h, w, 3)).astype(np.uint8).copy()


# ------------------------------------------------------------------ MOTChallenge


def test_mot_round_trip_through_motmetrics(tmp_path):
    mm_io = pytest.importorskip("motmetrics.io")
    table = BoxTable(
        frame=[2, 1, 1, 3],
        ids=[7, 5, 3, 5],
        boxes=[[10.5, 20.25, 30, 60], [0, 0, 12, 24], [100.75, 5, 8, 16], [1.5, 2.5, 3.5, 4.5]],
        conf=[1, 0.5, 1, 1],
    )
    path = write_mot(tmp_path / "gt" / "gt.txt", table)
    back = read_mot(path)
    want = table.sorted()
    np.testing.assert_array_equal(back.frame, [1, 1, 2, 3])
    np.testing.assert_array_equal(back.ids, want.ids)
    np.testing.assert_allclose(back.boxes, want.boxes, atol=0.005)
    np.testing.assert_allclose(back.conf, want.conf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas deprecation noise inside motmetrics
        df = mm_io.loadtxt(str(path), fmt="mot15-2D")  # motmetrics also reads the 1-based file as 0-based boxes
    np.testing.assert_array_equal(df.index.get_level_values("FrameId"), want.frame)
    np.testing.assert_array_equal(df.index.get_level_values("Id"), want.ids)
    np.testing.assert_allclose(df[["X", "Y", "Width", "Height"]].to_numpy(), want.boxes, atol=0.005)
    assert path.read_text().splitlines()[0] == "1,3,101.75,6.00,8.00,16.00,1.00,-1.00,-1.00,-1.00"


def test_read_mot_variants(tmp_path):
    mot16 = tmp_path / "mot16.txt"  # 9 columns: flag, class, visibility; whitespace and commas both work
    mot16.write_text("1, 1, 11, 21, 5, 10, 1, 1, 0.8\n1 2 31 41 5 10 0 7 0.1\n\n2,1,12,22,5,10,1,1,1.0\n")
    table = read_mot(mot16)
    assert len(table) == 3
    np.testing.assert_allclose(table.boxes[0], [10, 20, 5, 10])
    np.testing.assert_allclose(table.xyz[:, 1], [0.8, 0.1, 1.0])
    assert len(read_mot(mot16, min_conf=1)) == 2  # drops the 'do not consider' row
    det = tmp_path / "det.txt"
    det.write_text("1,-1,1,1,4,4\n")
    d = read_mot(det)
    assert d.ids.tolist() == [-1] and d.conf.tolist() == [1.0] and d.xyz.tolist() == [[-1, -1, -1]]
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    assert len(read_mot(empty)) == 0


@pytest.mark.parametrize(
    "content, match",
    [
        ("1,1,10,10,5,5,1,-1,-1,-1\n2,1,10,10\n", r"line 2: 4 columns, expected 6 to 10"),
        ("1,1,10,10,5,5\n1,2,10,10,5,5,1\n", r"line 2: 7 columns.*as many as line 1 has \(6\)"),
        ("1,1,10,10,5,5,1,-1,-1,-1\n\n3,1,abc,10,5,5,1,-1,-1,-1\n", r"line 3: 'abc' is not a number"),
        ("0,1,10,10,5,5,1,-1,-1,-1\n", r"line 1: the frame must be an integer >= 1"),
        ("1,1,10,10,5,5\n1.5,1,10,10,5,5\n", r"line 2: the frame must be an integer"),
        ("1,1,10,10,-5,5,1,-1,-1,-1\n", r"line 1: width and height must be >= 0"),
        ("1,1,nan,10,5,5,1,-1,-1,-1\n", r"line 1: a value is not finite"),
    ],
)
def test_read_mot_errors_name_file_and_line(tmp_path, content, match):
    path = tmp_path / "gt.txt"
    path.write_text(content)
    with pytest.raises(AnnotationError, match=match) as err:
        read_mot(path)
    assert str(path) in str(err.value)


def test_read_mot_missing_and_binary(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_mot(tmp_path / "nope.txt")
    binary = tmp_path / "gt.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    with pytest.raises(AnnotationError, match="not a text file"):
        read_mot(binary)


def test_box_table_dense():
    table = BoxTable(frame=[3, 1, 3, 3], ids=[9, 4, 2, 5], boxes=np.arange(16).reshape(4, 4))
    boxes, ids, valid = table.dense([3, 2, 1])
    assert boxes.shape == (3, 3, 4)
    np.testing.assert_array_equal(ids, [[2, 5, 9], [-1, -1, -1], [4, -1, -1]])
    np.testing.assert_array_equal(valid.sum(1), [3, 0, 1])
    np.testing.assert_array_equal(boxes[0, 0], [8, 9, 10, 11])  # id 2's box
    np.testing.assert_array_equal(boxes[1], 0)
    with pytest.raises(ValueError, match="distinct"):
        table.dense([1, 1])


# ------------------------------------------------------------------ DukeMTMC


def duke_matrix() -> np.ndarray:
    rng = np.random.default_rng(0)
    n = 7
    data = np.column_stack(
        [
            [1, 1, 2, 2, 2, 5, 8],
            [10, 11, 10, 12, 12, 3, 4],
            [1, 1, 30, 31, 32, 60, 90],
            rng.uniform(0, 1800, (n, 2)),
            rng.uniform(20, 300, (n, 2)),
            rng.normal(0, 10, (n, 2)),
            rng.uniform(0, 1900, (n, 2)),
        ]
    )
    assert data.shape == (n, len(DUKE_COLUMNS))
    return data


def write_v73(path, data: np.ndarray, name: str = "trainData") -> None:
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 behind a 512-byte user block with the MATLAB header, the
    matrix stored transposed."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w", userblock_size=512) as f:
        f.create_dataset(name, data=data.T)
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2018 HDF5 schema 1.00 .")


def test_duke_ground_truth_both_matlab_formats(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    data = duke_matrix()
    v5, v73 = tmp_path / "trainval.mat", tmp_path / "trainvalRaw.mat"
    scipy_io.savemat(v5, {"trainData": data})
    write_v73(v73, data)
    for path in (v5, v73):
        gt = load_duke_ground_truth(path)
        assert len(gt) == 7
        np.testing.assert_array_equal(gt.camera, data[:, 0])
        np.testing.assert_array_equal(gt.ids, data[:, 1])
        np.testing.assert_array_equal(gt.frame, data[:, 2])
        np.testing.assert_array_equal(gt.boxes, data[:, 3:7])
        np.testing.assert_array_equal(gt.world, data[:, 7:9])
        np.testing.assert_array_equal(gt.feet, data[:, 9:11])
    cam2 = gt.camera_boxes(2)
    assert cam2.frame.tolist() == [30, 31, 32] and cam2.ids.tolist() == [10, 12, 12]
    np.testing.assert_array_equal(cam2.xyz[:, :2], data[2:5, 7:9])
    assert gt.cameras.tolist() == [1, 2, 5, 8]
    assert to_local_frame(to_global_frame(17, 3), 3) == 17
    assert to_local_frame(27244, 3) == 1


def test_duke_ground_truth_errors(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    data = duke_matrix()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_duke_ground_truth(tmp_path / "missing.mat")
    wrong = tmp_path / "wrong.mat"
    scipy_io.savemat(wrong, {"trainData": data[:, :9]})
    with pytest.raises(AnnotationError, match=r"wrong.mat: trainData is float64 \(7, 9\), expected .* 11 columns"):
        load_duke_ground_truth(wrong)
    other = tmp_path / "other.mat"
    scipy_io.savemat(other, {"testData": data})
    with pytest.raises(AnnotationError, match=r"no variable 'trainData'; it holds \['testData'\]"):
        load_duke_ground_truth(other)
    bad = data.copy()
    bad[2, 4] = np.nan
    nan = tmp_path / "nan.mat"
    write_v73(nan, bad)
    with pytest.raises(AnnotationError, match=r"nan.mat: trainData row 3: a value is not finite"):
        load_duke_ground_truth(nan)
    bad = data.copy()
    bad[1, 0] = 9
    cam = tmp_path / "cam.mat"
    scipy_io.savemat(cam, {"trainData": bad})
    with pytest.raises(AnnotationError, match=r"row 2: camera must be 1..8"):
        load_duke_ground_truth(cam)
    text = tmp_path / "notes.mat"
    text.write_text("camera ID frame\n")
    with pytest.raises(AnnotationError, match="not a MATLAB .mat file"):
        load_duke_ground_truth(text)
    cut = tmp_path / "cut.mat"
    cut.write_bytes(wrong.read_bytes()[:150])
    with pytest.raises(AnnotationError, match="truncated or corrupt"):
        load_duke_ground_truth(cut)


def test_duke_layout_prefers_frames_then_video_parts(tmp_path):
    parts = tmp_path / "videos" / "camera3"
    write_video(parts / "00000.MTS", numbered_frames(5, 1), fps=10)
    write_video(parts / "00001.MTS", numbered_frames(4, 6), fps=10)
    source = duke_video(tmp_path, 3)
    assert isinstance(source, MultiPartVideo) and [n for n, _ in source] == list(range(1, 10))
    write_frames(tmp_path / "frames" / "camera3", numbered_frames(2))
    assert isinstance(duke_video(tmp_path, 3), FrameFolder)
    with pytest.raises(VideoError, match="no frames for camera 4"):
        duke_video(tmp_path, 4)


# ------------------------------------------------------------------ videos and frame folders


def test_avi_written_with_opencv_reads_back(tmp_path):
    frames = numbered_frames(12)
    path = write_video(tmp_path / "clip.avi", frames, fps=7)
    video = open_video(path)
    assert isinstance(video, VideoFile)
    assert video.num_frames == 12 and video.frame_size == (48, 64) and video.fps == pytest.approx(7)
    numbers, decoded = zip(*video)
    assert list(numbers) == list(range(1, 13))
    np.testing.assert_allclose([f.mean() for f in decoded], frames.mean((1, 2, 3)), atol=4)  # Motion-JPEG is lossy
    assert decoded[0].dtype == np.uint8 and decoded[0].shape == (48, 64, 3)


def test_truncated_and_unreadable_videos(tmp_path):
    path = write_video(tmp_path / "clip.avi", numbered_frames(20))
    data = path.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * 0.8)])  # header intact, the last frames gone
    with pytest.raises(VideoError, match=r"cut.avi: decoding stopped after \d+ of the 20 frames .* truncated"):
        list(VideoFile(cut))
    assert 0 < len(list(VideoFile(cut, check_length=False))) < 20
    stub = tmp_path / "stub.avi"
    stub.write_bytes(data[:300])  # header cut: cannot even be opened
    with pytest.raises(VideoError, match="stub.avi: OpenCV cannot open it as a video"):
        VideoFile(stub)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 20)
    with pytest.raises(VideoError, match="junk.mp4: OpenCV cannot open it"):
        open_video(junk)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_video(tmp_path / "missing.avi")


def test_mts_like_parts_run_one_frame_counter(tmp_path):
    folder = tmp_path / "camera1"
    lengths, first = (6, 4, 7), 1  # a transport stream needs 4+ frames this small to be probed
    for i, n in enumerate(lengths):  # MPEG transport streams named like DukeMTMC's parts
        write_video(folder / f"{i:05d}.MTS", numbered_frames(n, first), fps=10)
        first += n
    video = open_video(folder)
    assert isinstance(video, MultiPartVideo) and video.num_frames == 17
    numbers, frames = zip(*video)
    assert list(numbers) == list(range(1, 18))
    # each frame's content is the frame its number names: the counter runs on across parts
    np.testing.assert_allclose([f.mean() / 10 for f in frames], numbers, atol=0.6)
    with pytest.raises(VideoError, match=r"00002.MTS: decoded 7 frames, expected 8; the file is truncated"):
        list(MultiPartVideo(folder, part_frames=[6, 4, 8]))
    (folder / "00001.MTS").unlink()
    with pytest.raises(VideoError, match=r"missing video parts between 00000.MTS and 00002.MTS \(numbers 1\)"):
        MultiPartVideo(folder)


def test_frame_folder_numbering_and_errors(tmp_path):
    folder = write_frames(tmp_path / "img1", numbered_frames(6), ext=".png")
    source = open_video(folder)
    assert isinstance(source, FrameFolder) and source.num_frames == 6
    numbers, frames = zip(*source)
    assert list(numbers) == [1, 2, 3, 4, 5, 6]
    np.testing.assert_array_equal(frames[3], numbered_frames(1, 4)[0])  # PNG: lossless
    assert isinstance(open_video(tmp_path), FrameFolder)  # a MOTChallenge sequence folder: its img1/
    every30 = tmp_path / "every30"
    for n in (30, 60, 90):
        write_frames(every30, numbered_frames(1), first_frame=n, ext=".png")
    assert [n for n, _ in FrameFolder(every30)] == [30, 60, 90]
    (folder / "000004.png").unlink()
    with pytest.raises(VideoError, match=r"missing frames between 000003.png and 000005.png \(numbers 4\)"):
        FrameFolder(folder)
    with pytest.raises(VideoError, match=r"missing frames between 000030.png and 000060.png \(numbers 40, 50\)"):
        FrameFolder(every30, step=10)
    (folder / "000004.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(VideoError, match="000004.png: cannot be read as an image"):
        list(FrameFolder(folder))
    cv2.imwrite(str(folder / "000004.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(VideoError, match="000004.png: 10x10, but 000001.png is 64x48"):
        list(FrameFolder(folder))
    (folder / "cover.png").write_bytes((folder / "000001.png").read_bytes())
    with pytest.raises(VideoError, match="cover.png: has no number in its name"):
        FrameFolder(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoError, match="neither image files"):
        open_video(empty)


# ------------------------------------------------------------------ regions, counts, sequences


def test_region_grid_covers_the_frame():
    grid = region_grid(180, 240, 64, 32)
    assert len(grid) == 35
    assert sorted(set(grid[:, 0].tolist())) == [0, 32, 64, 96, 116]
    assert sorted(set(grid[:, 1].tolist())) == [0, 32, 64, 96, 128, 160, 176]
    with pytest.raises(ValueError, match="does not fit"):
        region_grid(50, 240)


def test_box_counts_only_above_a_quarter_inside():
    regions = np.array([[0, 0], [0, 64]])
    boxes = np.array(
        [
            [
                [10, 10, 20, 40],  # fully in region 0
                [48, 0, 64, 10],  # exactly 25% in region 0 (not counted), 75% in region 1
                [44, 20, 64, 10],  # 31.25% in region 0, 68.75% in region 1
                [300, 0, 10, 10],  # outside both
                [0, 0, 0, 0],  # padding slot
            ]
        ],
        float,
    )
    valid = np.array([[True, True, True, True, False]])
    np.testing.assert_allclose(box_fractions(boxes, regions)[0, 0, :4], [1, 0.25, 0.3125, 0])
    counts, fraction_sum, inside = count_in_regions(boxes, valid, regions)
    np.testing.assert_array_equal(counts, [[2, 2]])
    np.testing.assert_allclose(fraction_sum, [[1.3125, 1.4375]])
    np.testing.assert_array_equal(inside[0, 0], [True, False, True, False, False])


def test_invalid_and_empty_frames():
    counts = np.array([4, 3, 1, 1, 2, 0])
    fraction_sum = np.array([4.0, 2.5, 0.5, 1.0, 0.9, 0.0])
    invalid, empty = frame_status(counts, fraction_sum)
    np.testing.assert_array_equal(invalid, [True, False, False, False, False, False])
    np.testing.assert_array_equal(empty, [False, False, True, False, True, True])  # less than one person inside


def authors_walk(invalid, empty, max_empty=1):
    """The authors' sequence walk for one stream, written out loop by loop, keeping the sequence open at the end."""
    runs, seq, n_empty, last_empty = [], [], 0, False
    for t, (inv, emp) in enumerate(zip(invalid, empty)):
        if inv:
            n_empty = 0
            if seq:
                runs.append(seq)
            seq = []
        elif emp and seq:
            if n_empty < max_empty:
                n_empty += 1
                seq.append(t)
            else:
                n_empty = 0
                runs.append(seq)
                seq = []
        else:
            if not seq and not emp and last_empty:
                seq.append(t - 1)
            seq.append(t)
        last_empty = emp
    if seq:
        runs.append(seq)
    return [(s[0], s[-1] + 1) for s in runs]


def runs_of(pattern: str):
    invalid = np.array([c == "I" for c in pattern])[:, None]
    empty = np.array([c == "E" for c in pattern])[:, None]
    _, start, stop = sequence_runs(invalid, empty)
    return list(zip(start.tolist(), stop.tolist()))


@pytest.mark.parametrize(
    "pattern, runs",
    [
        ("NNNNNNN", [(0, 7)]),
        ("NNENNEN", [(0, 5), (5, 7)]),  # the second empty closes; the next sequence starts with it
        ("NNINN", [(0, 2), (3, 5)]),  # an invalid frame belongs to no sequence
        ("EENNN", [(0, 5)]),  # an empty frame may open a sequence, and one more empty joins it
        ("NEENNN", [(0, 2), (2, 6)]),
        ("NENNNNE", [(0, 6)]),  # the counter is not reset by non-empty frames
        ("IIII", []),
        ("NNNNI", [(0, 4)]),
    ],
)
def test_sequence_walk_on_hand_made_patterns(pattern, runs):
    assert runs_of(pattern) == runs
    invalid, empty = [c == "I" for c in pattern], [c == "E" for c in pattern]
    assert authors_walk(invalid, empty) == runs


def test_sequence_walk_vectorised_over_regions_matches_the_loop():
    rng = np.random.default_rng(0)
    F, R = 60, 40
    kind = rng.choice(3, (F, R), p=[0.7, 0.2, 0.1])  # normal, empty, invalid
    invalid, empty = kind == 2, kind == 1
    stream, start, stop = sequence_runs(invalid, empty)
    for r in range(R):
        mine = list(zip(start[stream == r].tolist(), stop[stream == r].tolist()))
        assert mine == authors_walk(invalid[:, r], empty[:, r]), r


def test_chunks_are_non_overlapping_fives():
    stream, start = chunk_runs(np.array([0, 0, 3]), np.array([0, 20, 2]), np.array([12, 24, 17]), 5)
    assert stream.tolist() == [0, 0, 3, 3, 3]
    assert start.tolist() == [0, 5, 2, 7, 12]


# ------------------------------------------------------------------ synthetic walkers


def test_walkers_are_deterministic(walkers):
    again = make_walkers(SMALL)
    np.testing.assert_array_equal(again.frames, walkers.frames)
    np.testing.assert_array_equal(again.gt.boxes, walkers.gt.boxes)
    other = make_walkers(dataclasses.replace(SMALL, seed=2))
    assert not np.array_equal(other.frames, walkers.frames)


def test_walker_boxes_cover_the_drawn_walkers(walkers):
    F, H, W = walkers.labels.shape
    gt = walkers.gt
    for row in range(len(gt)):
        t, wid = gt.frame[row] - 1, gt.ids[row]
        left, top, w, h = gt.boxes[row].astype(int)
        ys, xs = np.nonzero(walkers.labels[t] == wid)
        if len(ys):
            assert ys.min() >= top and ys.max() < top + h and xs.min() >= left and xs.max() < left + w
        fully_seen = walkers.visibility[row] == 1
        if fully_seen and left >= 0 and top >= 0 and left + w <= W and top + h <= H:
            assert (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1) == (top, left, top + h, left + w)  # tight
    # every drawn pixel belongs to a walker with a row in that frame
    for t in range(F):
        drawn = set(np.unique(walkers.labels[t]).tolist()) - {0}
        assert drawn <= set(gt.ids[gt.frame == t + 1].tolist())
    assert walkers.masks.dtype == bool and walkers.masks.any()


def test_walker_ids_persist_enter_leave_and_occlude(walkers):
    gt, F = walkers.gt, SMALL.num_frames
    H, W = SMALL.height, SMALL.width
    entered = left_view = 0
    for wid in np.unique(gt.ids):
        rows = np.flatnonzero(gt.ids == wid)
        frames = gt.frame[rows]
        assert np.array_equal(frames, np.arange(frames[0], frames[-1] + 1))  # one unbroken track per id
        centre = gt.boxes[rows, :2] + gt.boxes[rows, 2:] / 2
        assert np.abs(np.diff(centre, axis=0)).max() < 8  # moves a few pixels per frame, never jumps
        x0, x1 = gt.boxes[rows[[0, -1]], 0], gt.boxes[rows[[0, -1]], 0] + gt.boxes[rows[[0, -1]], 2]
        if frames[0] > 1:
            entered += 1
            assert x0[0] < 0 or x1[0] > W  # comes in across the left or right edge
        if frames[-1] < F:
            left_view += 1
            assert x0[1] < 0 or x1[1] > W
    assert entered >= 2 and left_view >= 2
    inside = (gt.boxes[:, 0] >= 0) & (gt.boxes[:, 0] + gt.boxes[:, 2] <= W) & (gt.boxes[:, 1] + gt.boxes[:, 3] <= H)
    assert ((walkers.visibility < 0.9) & inside).any()  # some walker is partly hidden behind another
    assert len(np.unique(gt.ids)) > SMALL.initial_walkers


def test_walkers_write_a_mot_sequence(tmp_path, walkers):
    folder = walkers.write(tmp_path / "walkers-01", video=True)
    seq = read_mot_sequence(folder)
    assert seq.info["seqLength"] == str(SMALL.num_frames) and seq.info["imWidth"] == str(SMALL.width)
    assert seq.frames.num_frames == SMALL.num_frames and seq.det is None
    np.testing.assert_array_equal(seq.gt.ids, walkers.gt.sorted().ids)
    np.testing.assert_allclose(seq.gt.boxes, walkers.gt.sorted().boxes)
    assert VideoFile(folder / "video.avi").num_frames == SMALL.num_frames


# ------------------------------------------------------------------ background subtraction


def foreground_scores(video, method: str) -> tuple[float, float]:
    """Mean over frames after a warm-up of (fraction of the foreground inside ground-truth boxes, fraction of the
    walkers' pixels found)."""
    sub = BackgroundSubtractor(BackgroundConfig(method=method, output_width=SMALL.width))
    precision, recall = [], []
    for t, (number, frame) in enumerate(video.source()):
        _, mask = sub.apply(frame)
        if t < 15:
            continue
        in_box = np.zeros_like(mask)
        for left, top, w, h in video.gt.boxes[video.gt.frame == number].astype(int):
            in_box[max(top, 0) : top + h, max(left, 0) : left + w] = True
        precision.append((mask & in_box).sum() / max(mask.sum(), 1))
        recall.append((mask & video.masks[t]).sum() / max(video.masks[t].sum(), 1))
    return float(np.mean(precision)), float(np.mean(recall))


@pytest.mark.parametrize("method", ["mog2", "knn", "mog"])
def test_background_subtraction_finds_the_walkers(walkers, method):
    assert has_bgsegm(), (
        "the authors' MOG needs opencv-contrib-python-headless (cv2.bgsegm), a dependency of the package"
    )
    precision, recall = foreground_scores(walkers, method)
    assert precision > 0.85 and recall > 0.6, (precision, recall)


def test_background_output_is_the_inverted_frame_at_width_240():
    rng = np.random.default_rng(0)
    sub = BackgroundSubtractor(BackgroundConfig(method="mog2"))
    for _ in range(20):
        sub.apply(np.clip(120 + rng.normal(0, 2, (288, 384, 3)), 0, 255).astype(np.uint8))
    frame = np.clip(120 + rng.normal(0, 2, (288, 384, 3)), 0, 255).astype(np.uint8)
    frame[100:200, 100:140] = [20, 40, 200]  # a dark, blue person
    image, mask = sub.apply(frame)
    assert image.shape == (180, 240, 3) and mask.shape == (180, 240) and image.dtype == np.uint8
    assert mask[70:120, 70:85].all() and not mask[:50].any()
    assert image.max() == 255 and (image[:50] == 0).all()
    r, g, b = image[90, 75]
    assert r > b and g > b  # inverted colours: the blue person comes out yellowish


def test_mog2_drops_shadows():
    rng = np.random.default_rng(0)
    cfg = BackgroundConfig(method="mog2", output_width=64, pre_median=0, erode_iterations=0, dilate_iterations=0)
    sub = BackgroundSubtractor(cfg)
    for _ in range(40):
        sub.apply(np.clip(150 + rng.normal(0, 2, (48, 64, 3)), 0, 255).astype(np.uint8))
    frame = np.clip(150 + rng.normal(0, 2, (48, 64, 3)), 0, 255)
    frame[10:30, 5:25] *= 0.6  # a shadow: darker, same hue
    frame[10:30, 35:55] = [30, 200, 60]  # an object
    _, mask = sub.apply(frame.astype(np.uint8))
    assert not mask[12:28, 7:23].any() and mask[12:28, 37:53].all()


def test_authors_recipe_without_contrib_says_what_to_install(monkeypatch):
    monkeypatch.delattr(cv2, "bgsegm", raising=False)
    with pytest.raises(ImportError, match=r"needs cv2.bgsegm.*pip install opencv-contrib-python-headless"):
        BackgroundSubtractor(BackgroundConfig(method="mog"))
    assert BackgroundConfig().resolved().method == "mog2"
    image, mask = BackgroundSubtractor(BackgroundConfig()).apply(np.full((40, 60, 3), 100, np.uint8))
    assert image.shape == (160, 240, 3) and mask.shape == (160, 240)
    with pytest.raises(ValueError, match="method must be"):
        BackgroundConfig(method="gmg")


# ------------------------------------------------------------------ the data set


def test_every_frame_feeds_the_background_model(monkeypatch, walkers):
    calls = []

    class Counting(BackgroundSubtractor):
        def apply(self, frame):
            calls.append(1)
            return super().apply(frame)

    monkeypatch.setattr(dataset_module, "BackgroundSubtractor", Counting)
    background = BackgroundConfig(method="mog2", output_width=SMALL.width)
    cfg = PreprocessConfig(background=background, step=3, region_stride=16, val_fraction=0.0, max_empty=5)
    data = preprocess(walkers.source(), cfg, walkers.gt, progress=False)
    assert len(calls) == SMALL.num_frames  # all 60 frames, though only every 3rd is kept
    assert data.meta["frames_kept"] == 17  # frames 12, 15, ..., 60: every 3rd after the 10 warm-up frames
    assert (data.train.frame_numbers % 3 == 0).all() and data.train.frame_numbers.min() >= 12
    assert (np.diff(data.train.frame_numbers, axis=0) == 3).all()


def test_annotations_in_another_resolution(walkers):
    """DukeMTMC's boxes are 1920 px wide whatever the frames are: annotation_width rescales them."""
    cfg = PreprocessConfig(foreground="ground_truth", step=2, region_stride=32, val_fraction=0.0, max_empty=3)
    native = preprocess(walkers.source(), cfg, walkers.gt, masks=walkers.masks, progress=False)
    big = walkers.gt.scaled(1920 / SMALL.width)
    scaled = preprocess(walkers.source(), cfg, big, annotation_width=1920, masks=walkers.masks, progress=False)
    assert len(native.train) > 5
    np.testing.assert_array_equal(scaled.train.counts, native.train.counts)
    np.testing.assert_allclose(scaled.train.boxes, native.train.boxes, atol=1e-3)
    # the output is 240 wide: boxes in region pixels are the walkers' boxes scaled by 240 / 128
    s = int(np.argmax(native.train.counts[0]))
    n, (y, x) = native.train.frame_numbers[0, s], native.train.regions[s]
    row = np.flatnonzero((walkers.gt.frame == n) & (walkers.gt.ids == native.train.ids[0, s, 0]))[0]
    want = walkers.gt.boxes[row] * 240 / SMALL.width - [x, y, 0, 0]
    np.testing.assert_allclose(native.train.boxes[0, s, 0], want, atol=1e-3)
    with pytest.raises(ValueError, match="columns differ in length"):
        BoxTable(frame=[1, 2], ids=[1], boxes=np.zeros((2, 4)))


def expected_counts(gt: BoxTable, numbers: np.ndarray, region: np.ndarray) -> np.ndarray:
    """People counted in one region, frame by frame, straight from the rule: more than 25% of the box inside."""
    out = []
    for n in numbers:
        boxes = gt.boxes[gt.frame == n]
        y, x = region
        iw = np.clip(np.minimum(boxes[:, 0] + boxes[:, 2], x + 64) - np.maximum(boxes[:, 0], x), 0, None)
        ih = np.clip(np.minimum(boxes[:, 1] + boxes[:, 3], y + 64) - np.maximum(boxes[:, 1], y), 0, None)
        out.append(int((iw * ih / (boxes[:, 2] * boxes[:, 3]) > 0.25).sum()))
    return np.array(out)


def test_synthetic_data_set_counts_split_and_cache(tmp_path, monkeypatch):
    walkers_cfg = WalkersConfig(num_frames=90, seed=4)
    cfg = PreprocessConfig(foreground="ground_truth", step=2, all_phases=True, region_stride=44, val_fraction=0.25)
    data = load_pedestrians(walkers_cfg, cfg, cache_dir=tmp_path, progress=False)
    train, val = data.train, data.val
    assert len(train) > 20 and len(val) > 2
    assert train.frames.shape == (5, len(train), 3, 64, 64) and train.frames.dtype == np.uint8
    assert train.counts.shape == (5, len(train)) and train.counts.dtype == np.int64
    assert train.boxes.shape == (5, len(train), 3, 4) and train.ids.shape == (5, len(train), 3)
    assert train.has_counts and train.counts.max() <= 3
    np.testing.assert_array_equal((train.ids >= 0).sum(-1), train.counts)
    assert (train.counts == 0).sum(0).max() <= 2  # at most one empty frame, besides one a sequence may start with
    gt = make_walkers(walkers_cfg).gt
    for s in range(0, len(train), 7):
        np.testing.assert_array_equal(
            train.counts[:, s], expected_counts(gt, train.frame_numbers[:, s], train.regions[s])
        )
    # consecutive frames of one phase: 2 frames apart; validation after a gap of seq_len * step frames
    assert (np.diff(train.frame_numbers, axis=0) == 2).all()
    assert val.frame_numbers.min() > train.frame_numbers.max() + 5 * 2 - 1
    assert data.meta["val_after_frame"] == 67
    # the crops are the processed frames' regions: foreground where people are, black elsewhere
    assert (train.frames.reshape(5, len(train), -1).max(-1) > 0).mean() > 0.9
    # cached: a second call reads the file, and other parameters make another file
    files = list(tmp_path.glob("pedestrians_*.npz"))
    assert len(files) == 1
    monkeypatch.setattr(dataset_module, "preprocess", lambda *a, **k: pytest.fail("rebuilt instead of cached"))
    again = load_pedestrians(walkers_cfg, cfg, cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(again.train.frames, train.frames)
    np.testing.assert_array_equal(again.val.counts, val.counts)
    assert again.meta == data.meta
    monkeypatch.undo()
    load_pedestrians(walkers_cfg, dataclasses.replace(cfg, max_empty=0), cache_dir=tmp_path, progress=False)
    assert len(list(tmp_path.glob("pedestrians_*.npz"))) == 2


def test_video_file_without_annotations(tmp_path, walkers):
    path = write_video(tmp_path / "walkers.avi", walkers.frames, fps=7)
    cfg = PreprocessConfig(
        background=BackgroundConfig(method="mog2"), step=1, region_stride=32, val_fraction=0.2, max_empty=0
    )
    data = load_pedestrians(path, cfg, cache_dir=tmp_path, progress=False)
    assert len(data.train) and len(data.val)
    assert not data.train.has_counts and (data.train.counts == -1).all() and (data.train.ids == -1).all()
    assert data.meta["output_size"] == [180, 240] and data.meta["foreground"] == "mog2"
    # without counts, a frame is empty where under 1% of the region is foreground; with max_empty=0 only the first
    # frame of a sequence may be one (the authors' walk opens sequences on empty frames)
    active = (data.train.frames.max(2) > 0).reshape(5, len(data.train), -1).mean(-1)
    assert active[1:].min() > 0.005


def test_data_set_errors(tmp_path, walkers):
    path = write_video(tmp_path / "short.avi", walkers.frames[:8])
    with pytest.raises(ValueError, match="'ground_truth' needs the synthetic walkers' masks"):
        load_pedestrians(path, PreprocessConfig(foreground="ground_truth"), cache=False)
    with pytest.raises(ValueError, match=r"no training and no validation sequence of 5 frames.*8 frames kept"):
        load_pedestrians(path, PreprocessConfig(step=1, warmup=0), cache=False, progress=False)
    with pytest.raises(ValueError, match=r"no frame kept of the 8 read: all were warm-up frames \(warmup=10\)"):
        preprocess(ArrayFrames(walkers.frames[:8]), PreprocessConfig(), progress=False)
    with pytest.raises(ValueError, match="no frame kept of the 8 read: none has a number divisible by step=30"):
        preprocess(ArrayFrames(walkers.frames[:8]), PreprocessConfig(warmup=0), progress=False)
    with pytest.raises(ValueError, match="val_fraction must be in"):
        PreprocessConfig(val_fraction=1.0)
