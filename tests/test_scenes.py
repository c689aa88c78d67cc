"""Backgrounds, blending and the scene dataset."""

import numpy as np
import pytest
import torch
from PIL import Image

import aimeye
from aimeye import backgrounds as bgmod
from aimeye.backgrounds import Backgrounds
from aimeye.paper import NONE
from aimeye.scenes import SceneStream, blend, generate, make_scenes


def test_blending_maths():
    fg = np.array([0.8, 0.8, 0.8], np.float32)
    alpha = np.array([1.0, 0.5, 0.0], np.float32)
    bg = np.array([0.2, 0.2, 0.2], np.float32)
    out = blend(fg * alpha, alpha, bg)  # the renderer returns fg·α (over black)
    np.testing.assert_allclose(out, [0.8, 0.5, 0.2], atol=1e-6)  # straight alpha, not α²


def test_scene_equals_render_plus_background():
    s = generate(np.arange(8), "test", 3, quantise=False)
    pos = s.labels != NONE
    assert pos.any()
    bgs = Backgrounds("test")
    for k in torch.nonzero(pos).flatten().tolist():
        from aimeye.scenes import sample_rng

        rng = sample_rng("test", 3, int(s.indices[k]))
        rng.uniform(-0.5, 0.5, 3)
        bg, bg_id = bgs.sample(rng)
        assert bg_id == s.bg_ids[k]
        expect = s.renders[k, 0].numpy() + bg * (1 - s.alphas[k, 0].numpy())
        np.testing.assert_allclose(s.images[k, 0].numpy(), expect, atol=1e-6)


def test_photo_sources_are_disjoint_between_splits():
    train, test = Backgrounds("train"), Backgrounds("test")
    assert set(train.files).isdisjoint(test.files)
    assert len(train.files) >= 10 and len(test.files) >= 4
    assert set(bgmod.PHOTOS_TRAIN).isdisjoint(bgmod.PHOTOS_TEST)


def test_deadleaves_seeds_are_disjoint_between_splits():
    rng = np.random.default_rng(0)
    train = Backgrounds("train", photos=False)
    test = Backgrounds("test", photos=False)
    a, _ = train.sample(rng)
    b, _ = test.sample(np.random.default_rng(0))
    assert not np.array_equal(a, b)


def test_user_folder_split_is_disjoint(tmp_path):
    for i in range(20):
        Image.fromarray(np.full((80, 90), i * 10, np.uint8)).save(tmp_path / f"img{i}.png")
    train = bgmod.folder_images(tmp_path, "train")
    test = bgmod.folder_images(tmp_path, "test")
    assert set(train).isdisjoint(test) and len(train) + len(test) == 20 and test
    b = Backgrounds("test", photos=False, deadleaves=False, folder=str(tmp_path))
    img, _ = b.sample(np.random.default_rng(0))
    assert img.shape == (64, 64) and img.dtype == np.float32
    with pytest.raises(FileNotFoundError):
        bgmod.folder_images(tmp_path / "nope", "train")


def test_crops_are_valid():
    b = Backgrounds("train")
    rng = np.random.default_rng(0)
    ids = set()
    for _ in range(50):
        img, i = b.sample(rng)
        ids.add(i)
        assert img.shape == (64, 64) and 0 <= img.min() and img.max() <= 1
    assert len(ids) > 5


def test_make_scenes_public_api_and_balance():
    s = aimeye.make_scenes(40, split="test", seed=0)
    assert s.images.shape == (40, 1, 64, 64) and s.images.dtype == torch.float32
    assert s.alphas.shape == (40, 1, 64, 64)
    assert s.labels.dtype == torch.int64 and s.rotations.shape == (40, 3) and s.rotations.dtype == torch.float32
    assert 0 <= s.images.min() and s.images.max() <= 1
    assert torch.bincount(s.labels, minlength=4).tolist() == [10, 10, 10, 10]
    none = s.labels == NONE
    assert (s.alphas[none] == 0).all() and (s.rotations[none] == 0).all()
    assert (s.rotations.abs() <= 0.5).all()
    assert (s.alphas[~none].flatten(1).sum(1) > 50).all()
    # 8-bit like the paper's images
    assert torch.allclose(s.images * 255, (s.images * 255).round(), atol=1e-4)


def test_samples_are_deterministic_per_split_seed_index():
    a = make_scenes(12, "test", 5)
    b = generate(np.array([7, 3]), "test", 5)
    assert torch.equal(a.images[[7, 3]], b.images)
    assert torch.equal(a.rotations[[7, 3]], b.rotations)
    c = make_scenes(12, "test", 6)
    assert not torch.equal(a.images, c.images)
    d = make_scenes(12, "train", 5)
    assert not torch.equal(a.images, d.images)


def test_disk_cache_round_trip(tmp_path):
    a = make_scenes(8, "test", 0, cache_dir=tmp_path)
    assert list(tmp_path.glob("*.npz"))
    b = make_scenes(8, "test", 0, cache_dir=tmp_path)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_stream_is_resumable_and_positive_only_works():
    s = SceneStream("train", seed=1, batch_size=6, classes=(0, 1, 2))
    first = [b for _, b in zip(range(3), s)]
    resumed = next(iter(SceneStream("train", seed=1, batch_size=6, classes=(0, 1, 2), start_batch=2)))
    assert torch.equal(first[2].images, resumed.images)
    assert (first[0].labels != NONE).all()


def test_contact_sheet_cli(tmp_path):
    from aimeye.cli import main

    out = tmp_path / "sheet.png"
    main(["sheet", "--out", str(out), "--n", "2"])
    im = Image.open(out)
    assert im.size[0] > 100 and im.size[1] > 300
