"""Where a CAM cell sits on the image: receptive-field centres and registered upsampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import medxai_lite as mx
import medxai_lite.explain.cam as cam_mod
from medxai_lite.explain.cam import upsample_registered
from medxai_lite.models import cam_grid, get_model, grid_origin, target_layer


def _receptive_field_centre(model, arch, size):
    """Centre of mass of |d(centre cell)/d(input)|, averaged over random images."""
    torch.manual_seed(0)
    for p in model.parameters():
        p.requires_grad_(False)
    feats = {}
    hook = target_layer(model, arch).register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
    x = torch.rand(2, 3, size, size, requires_grad=True)
    model(x)
    hook.remove()
    c = feats["a"].shape[-1] // 2
    feats["a"][:, :, c, c].sum().backward()
    w = x.grad.abs().sum((0, 1)).double()
    pos = torch.arange(size, dtype=torch.float64)
    return c, float((w.sum(1) * pos).sum() / w.sum()), float((w.sum(0) * pos).sum() / w.sum())


@pytest.mark.parametrize("arch, output_stride", [("resnet18", 16), ("resnet18", 8), ("resnet14", 16), ("resnet14", 8), ("resnet50", 16),
                                                 ("densenet121", 16), ("vgg16", 16), ("efficientnet_b0", 16)])
def test_grid_origin_is_the_receptive_field_centre(arch, output_stride):
    """Known answer from the network itself: the centre cell's input gradient is centred on origin + j*S."""
    model = get_model(arch, 2, output_stride=output_stride).eval()
    size = 20 * output_stride            # big enough that the image border barely pulls the centre
    c, cy, cx = _receptive_field_centre(model, arch, size)
    expected = grid_origin(arch, output_stride) + c * output_stride
    assert abs(cy - expected) < 2.0 and abs(cx - expected) < 2.0, (cy, cx, expected)
    # and plain bilinear upsampling would be off by S/2 - 1/2 - origin (7.5 px for a stride-16 ResNet)
    if arch.startswith("resnet"):
        assert abs(cy - (c * output_stride + output_stride / 2 - 0.5)) > output_stride / 2 - 2.5


def test_upsample_registered_known_answers():
    grid = torch.zeros(1, 4, 4)
    grid[0, 1, 2] = 1.0
    for mode in ("bilinear", "bicubic"):
        up = upsample_registered(grid, (16, 16), 4, 0.0, mode=mode)
        assert up.shape == (1, 16, 16)
        assert tuple(np.unravel_index(int(up[0].argmax()), (16, 16))) == (4, 8)   # cell (1, 2) -> pixel (4, 8)
        assert up[0, 4, 8].item() == pytest.approx(1.0)                        # both pass through the cell
    bilinear = upsample_registered(grid, (16, 16), 4, 0.0, mode="bilinear")
    assert bilinear[0, 4, 10].item() == pytest.approx(0.5)                     # half-way to the next cell
    # Keys' cubic convolution, a = -0.75: half-way, the near taps weigh (a + 2)/8 - (a + 3)/4 + 1 = 0.59375
    # and the far ones a (27/8 - 45/4 + 12 - 4) = -0.09375, so a lone hot cell undershoots a cell away
    bicubic = upsample_registered(grid, (16, 16), 4, 0.0)
    assert bicubic[0, 4, 10].item() == pytest.approx(0.59375)
    assert bicubic[0, 4, 2].item() == pytest.approx(-0.09375)
    assert bicubic[0, 4, 14].item() == pytest.approx(0.0)                      # past the last centre: the border cell
    # two equal neighbours: bilinear peaks on a centre (a plateau between them), cubic convolution midway
    pair = torch.tensor([[[0.0, 1.0, 1.0, 0.0]]])
    assert upsample_registered(pair, (1, 16), 4, 0.0, mode="bilinear")[0, 0, 4:9].tolist() == [1.0] * 5
    mid = upsample_registered(pair, (1, 16), 4, 0.0)[0, 0]
    assert int(mid.argmax()) == 6 and mid[6].item() == pytest.approx(2 * 0.59375)   # above both
    # the default is the package's choice, and an unknown mode is refused by name
    assert torch.equal(upsample_registered(grid, (16, 16), 4, 0.0, mode=cam_mod.UPSAMPLE_MODE), bicubic)
    with pytest.raises(ValueError, match="mode must be one of bilinear, bicubic"):
        upsample_registered(grid, (16, 16), 4, 0.0, mode="nearest")
    # origin S/2 - 1/2 reproduces plain bilinear resizing exactly
    plain = torch.nn.functional.interpolate(grid[:, None], size=(16, 16), mode="bilinear", align_corners=False)[:, 0]
    assert torch.allclose(upsample_registered(grid, (16, 16), 4, 1.5, mode="bilinear"), plain, atol=1e-6)
    # a 1 x 1 grid is a constant map
    assert torch.equal(upsample_registered(torch.full((2, 1, 1), 3.0), (5, 5), 5, 0.0), torch.full((2, 5, 5), 3.0))
    with pytest.raises(ValueError, match="maps"):
        upsample_registered(torch.zeros(4, 4), (8, 8), 2, 0.0)


def test_grid_origin_bad_input():
    assert grid_origin(None, 16) is None
    with pytest.raises(ValueError, match="arch"):
        grid_origin("alexnet", 16)
    with pytest.raises(ValueError, match="stride"):
        grid_origin("resnet18", 0)


class OneCell(torch.nn.Module):
    """A ResNet whose logit 1 is the sum over channels of ``layer4`` at one ``cell``; logit 0 is zero."""

    def __init__(self, body, cell):
        super().__init__()
        self.body, self.cell = body, cell

    def forward(self, images):
        feats = {}
        h = self.body.layer4.register_forward_hook(lambda m, i, o: feats.__setitem__("a", o))
        self.body(images)
        h.remove()
        score = feats["a"][:, :, self.cell[0], self.cell[1]].sum(1)
        return torch.stack([torch.zeros_like(score), score], 1)


@pytest.mark.parametrize("method", ["hirescam", "layercam"])
def test_aligned_cam_peaks_on_the_cell_the_model_reads(method):
    """A model whose class score reads one cell of a 7 x 7 grid: a position-wise CAM (HiRes-CAM via
    pytorch-grad-cam, Layer-CAM via torchcam) aligned peaks on that cell's receptive-field centre;
    the library's own resize puts the peak half a cell further down and right."""
    torch.manual_seed(0)
    model = get_model("resnet18", 2, output_stride=16).eval()
    assert cam_grid(model, "resnet18", 112) == (7, 7)
    x = torch.randn(1, 3, 112, 112)

    wrapped = OneCell(model, (2, 5)).eval()
    aligned = mx.explain(method, wrapped, x, targets=[1], arch="resnet18", layer="body.layer4")
    library = mx.explain(method, wrapped, x, targets=[1], arch="resnet18", layer="body.layer4", align=False)
    peak = lambda m: np.unravel_index(int(m.maps[0].argmax()), m.maps[0].shape)
    assert tuple(peak(aligned)) == (32, 80)                 # 16 * (2, 5): the cell's receptive-field centre
    py, px = peak(library)
    assert 39 <= py <= 40 and 87 <= px <= 88                # 7.5 px further down and right


def test_pointing_ceiling_known_answers():
    from medxai_lite.metrics import pointing_ceiling, pointing_game

    masks = np.zeros((3, 32, 32), bool)
    masks[0, 14:19, 14:19] = True        # holds node (16, 16)
    masks[1, 4:7, 4:7] = True            # between nodes 0 and 8: no node inside
    masks[2, 9:12, 9:12] = True          # 2 px from node (8, 8)
    assert pointing_ceiling(masks, 8, 0.0).tolist() == [1.0, 0.0, 0.0]
    assert pointing_ceiling(masks, 8, 0.0, tolerance=3).tolist() == [1.0, 1.0, 1.0]   # (6, 6) is 2.8 px from (8, 8)
    # the ceiling binds: any map upsampled from the 4 x 4 grid misses the second lesion
    rng = np.random.default_rng(0)
    for _ in range(20):
        maps = upsample_registered(torch.from_numpy(rng.random((3, 4, 4), dtype=np.float32)), (32, 32), 8, 0.0,
                                   mode="bilinear")
        assert np.all(pointing_game(None, None, None, maps.numpy(), masks) <= pointing_ceiling(masks, 8, 0.0))
    # a bicubic map is not bound by it: four equal cells around a lesion that holds no node peak between them
    between = np.zeros((1, 32, 32), bool)
    between[0, 11:14, 11:14] = True
    grid = torch.zeros(1, 4, 4)
    grid[0, 1:3, 1:3] = 1.0                      # nodes (8, 8), (8, 16), (16, 8), (16, 16): their middle is (12, 12)
    bicubic = upsample_registered(grid, (32, 32), 8, 0.0).numpy()
    assert np.unravel_index(bicubic[0].argmax(), (32, 32)) == (12, 12)
    assert pointing_game(None, None, None, bicubic, between)[0] == 1.0 > pointing_ceiling(between, 8, 0.0)[0]
    with pytest.raises(ValueError, match="masks"):
        pointing_ceiling(np.zeros((4, 4), bool), 8, 0.0)
    with pytest.raises(ValueError, match="tolerance"):
        pointing_ceiling(masks, 8, 0.0, tolerance=-1)


def test_pointing_ceiling_where_the_peak_is_not_one_node_pixel():
    """Two cases where the peak of a bilinearly aligned map is not the node's own pixel. A half-pixel node
    (VGG16's origin 7.5) puts it on either neighbouring pixel. Beyond the last node the map is
    clamped, so the peak is a tied block and the pointing game scores the share of it in the mask.
    The ceiling must bound every map and be reached by one."""
    from medxai_lite.metrics import pointing_ceiling, pointing_game

    hit = lambda grid, size, stride, origin, mask: pointing_game(   # noqa: E731
        None, None, None, upsample_registered(grid, (size, size), stride, origin, mode="bilinear").numpy(), mask)[0]
    half = np.zeros((1, 48, 48), bool)
    half[0, 20:24, 20:24] = True                     # holds pixel (23, 23) beside node (23.5, 23.5), not (24, 24)
    grid = torch.zeros(1, 3, 3)
    grid[0, 0, :] = grid[0, :, 0] = 0.5
    grid[0, 1, 1] = 1.0                              # the upper-left neighbours pull the peak to (23, 23)
    assert hit(grid, 48, 16, 7.5, half) == 1.0
    assert pointing_ceiling(half, 16, 7.5).tolist() == [1.0]
    corner = np.zeros((1, 32, 32), bool)
    corner[0, 26:30, 26:30] = True                   # inside the 16 x 16 block clamped to node (16, 16)
    grid = torch.zeros(1, 2, 2)
    grid[0, 1, 1] = 1.0
    assert hit(grid, 32, 16, 0.0, corner) == pytest.approx(16 / 256)
    assert pointing_ceiling(corner, 16, 0.0).tolist() == [pytest.approx(16 / 256)]
    rng = np.random.default_rng(1)
    masks = rng.random((6, 48, 48)) > 0.97           # scattered pixels, near nodes and borders alike
    for origin in (0.0, 6.0, 7.5):
        ceiling = pointing_ceiling(masks, 16, origin)
        for _ in range(30):
            grids = torch.from_numpy(rng.random((6, 3, 3), dtype=np.float32))
            maps = upsample_registered(grids, (48, 48), 16, origin, mode="bilinear").numpy()
            assert np.all(pointing_game(None, None, None, maps, masks) <= ceiling + 1e-12), origin


def test_paired_tests_against_a_reference():
    from medxai_lite.metrics import paired_tests

    rng = np.random.default_rng(1)
    random_map = rng.normal(0, 1, 30)
    table = {"good": random_map + 1.0 + rng.normal(0, 0.1, 30), "same": random_map + rng.normal(0, 0.1, 30),
             "random": random_map}
    t = paired_tests(table, reference="random", alternative="greater")
    assert list(t.method_a) == ["good", "same"] and set(t.method_b) == {"random"}
    assert t.set_index("method_a").loc["good", "significant"] and not t.set_index("method_a").loc["same", "significant"]
    # Holm over the two comparisons only: the smaller p doubles
    assert t.p_holm.min() == pytest.approx(min(1.0, 2 * t.p.min()))
    with pytest.raises(ValueError, match="reference"):
        paired_tests(table, reference="nope")


def test_aligned_cams_equal_the_librarys_where_the_grid_needs_no_shift():
    """SmallCNN downsamples with 2 x 2 max-pooling, so its cells sit where plain bilinear resizing
    puts them: its aligned grid, read back bilinearly, must give pytorch-grad-cam's own maps (the
    package's maps interpolate bicubically between the same centres). The seeded Grad-CAM and
    XGrad-CAM grids hold negative cells: the ReLU comes before the upsampling, as in the library
    (after it, the ramp from a positive to a negative cell was cut at the zero crossing: 0.60 off)."""
    from medxai_lite.explain.cam import map_from_grid
    from medxai_lite.models.zoo import SmallCNN

    torch.manual_seed(3)
    model = SmallCNN(3, width=4).eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for method in ("gradcam", "xgradcam", "gradcampp", "layercam"):
        aligned = mx.explain(method, model, x, targets=[0, 1, 2, 0], arch="small_cnn")
        library = mx.explain(method, model, x, targets=[0, 1, 2, 0], arch="small_cnn", align=False)
        if method in ("gradcam", "xgradcam"):
            assert (aligned.extras["cam"] < 0).any()            # the case the order matters for
        for mode, close in (("bilinear", True), ("bicubic", False)):
            rebuilt = map_from_grid(aligned.extras["cam"], (32, 32), "small_cnn", mode=mode).numpy()
            assert np.allclose(rebuilt, library.maps, atol=1e-5) == close, (method, mode)
        np.testing.assert_allclose(aligned.maps, map_from_grid(aligned.extras["cam"], (32, 32), "small_cnn").numpy(),
                                   atol=1e-6, err_msg=method)


def test_cells_sit_at_the_networks_stride_when_the_size_is_not_a_multiple_of_it():
    """ResNet18 at 112 px: layer4 is a 4 x 4 grid of 32 px cells (ceil(112 / 32)), not of 28 px.
    A model that reads only cell (3, 3) gets an aligned Layer-CAM peaking at pixel (96, 96), and
    the CAM grid's pointing ceiling uses the same stride."""
    from medxai_lite.metrics import cam_pointing_ceiling
    from medxai_lite.models.zoo import cell_stride

    assert (cell_stride(112, 7), cell_stride(112, 4), cell_stride(400, 13), cell_stride(64, 8)) == (16, 32, 32, 8)
    with pytest.raises(ValueError, match="positive"):
        cell_stride(112, 0)
    torch.manual_seed(0)
    model = get_model("resnet18", 2).eval()
    assert cam_grid(model, "resnet18", 112) == (4, 4)

    wrapped = OneCell(model, (3, 3)).eval()
    res = mx.explain("layercam", wrapped, torch.randn(1, 3, 112, 112), targets=[1], arch="resnet18",
                     layer="body.layer4")
    assert np.unravel_index(int(res.maps[0].argmax()), res.maps[0].shape) == (96, 96)
    masks = np.zeros((1, 112, 112), bool)
    masks[0, 95:98, 95:98] = True                 # near node (96, 96), not the 28 px guess (84, 84)
    # the last node's peak ties over the clamped block 96..111 x 96..111, 2 x 2 of it in the mask
    assert cam_pointing_ceiling(masks, model, "resnet18")[1].tolist() == [pytest.approx(4 / 256)]
