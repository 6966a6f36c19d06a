"""CLIPRegionVerifier: regions of the CAMs, crops, the presence rule; its use by WSSSEncoderDecoder
for images without labels; the preflight check of its checkpoint."""
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from open_clip.model import get_model_preprocess_cfg
from mmengine.registry import init_default_scope

from mmseg_clip_wsss.apis import MissingAssetError, check_config_assets
from mmseg_clip_wsss.models.segmentors import CLIPRegionVerifier
from mmseg_clip_wsss.models.segmentors.cam_output import rgb_pixels
from test_segmentor import LABELS, SWIN_CFG, K, S, build, model_cfg, samples

H = W = 40
RED, BLUE, GREEN, GREY = (255., 0., 0.), (0., 0., 255.), (0., 255., 0.), (128., 128., 128.)


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def colour_verifier(tiny_clip, **kwargs):
    """A verifier whose 'CLIP' embeds a crop as its mean colour (centred on grey), with classes 1/2/3 =
    red/blue/green and one background word = grey. The crops' normalisation is undone with the CLIP's
    own preprocessing constants, read from open_clip here."""
    verifier = CLIPRegionVerifier(tiny_clip['model_name'], tiny_clip['pretrained'], **kwargs)
    cfg = get_model_preprocess_cfg(verifier.model)
    mean = torch.tensor(cfg['mean']).view(1, 3, 1, 1) * 255
    std = torch.tensor(cfg['std']).view(1, 3, 1, 1) * 255
    verifier.model.encode_image = lambda x: (x * std + mean).mean(dim=(2, 3)) - 100.0  # (N, 3)
    verifier.text = F.normalize(torch.tensor([RED, BLUE, GREEN, GREY]) - 100.0, dim=1)
    verifier.num_classes = 3
    return verifier


def scene():
    """A grey image with a red square (rows/cols 5-14) and a blue square (rows/cols 22-33)."""
    image = torch.full((3, H, W), 128.)
    image[:, 5:15, 5:15] = torch.tensor(RED)[:, None, None]
    image[:, 22:34, 22:34] = torch.tensor(BLUE)[:, None, None]
    return image


def test_a_class_is_present_when_one_of_its_regions_is_classified_as_it(tiny_clip):
    verifier = colour_verifier(tiny_clip)
    cams = torch.zeros(1, 4, H, W)
    cams[0, 1, 4:16, 4:16] = 1.0  # red claims the red square: right
    cams[0, 2, 21:35, 21:35] = 0.9  # blue claims the blue square: right
    cams[0, 3, 5:15, 5:15] = 0.8  # green claims the red square too: wrong
    cams[0, 3, 0:2, 38:40] = 1.0  # and a speck below min_area (4 of 1600 px)
    present = verifier(scene()[None], cams, foreground=[1, 2, 3])
    assert present.tolist() == [[0, 1, 1, 0]]
    # a region classified as another class proves neither: red without a region of its own stays absent
    green_only = cams.clone()
    green_only[0, 1] = 0
    assert verifier(scene()[None], green_only, foreground=[1, 2, 3]).tolist() == [[0, 0, 1, 0]]
    # one class named: a region that looks like background (grey) proves nothing
    grey_claim = torch.zeros(1, 4, H, W)
    grey_claim[0, 1, 16:40, 0:20] = 1.0  # a grey corner
    assert verifier(scene()[None], grey_claim, foreground=[1, 2, 3]).sum() == 0
    # nothing above the region threshold: nothing present
    assert verifier(scene()[None], cams * 0.4, foreground=[1, 2, 3]).sum() == 0
    # the region threshold bounds the regions: at 0.95 only red's map is left
    strict = colour_verifier(tiny_clip, region_threshold=0.95)
    assert strict(scene()[None], cams, foreground=[1, 2, 3]).tolist() == [[0, 1, 0, 0]]


def test_masked_crop_and_window(tiny_clip):
    verifier = colour_verifier(tiny_clip)
    region = torch.zeros(H, W, dtype=torch.bool)
    region[22:34, 22:34] = True
    top, left, side = verifier._window(region.numpy())
    assert side == 14 and (top, left) == (21, 21)  # the 12 px box x 1.2, centred
    region_small = torch.zeros(H, W, dtype=torch.bool)
    region_small[0:2, 38:40] = True
    top, left, side = verifier._window(region_small.numpy())
    assert side == 12 and (top, left) == (0, 28)  # min_window x 40 px, shifted inside the image
    crops = verifier._crops(scene(), region.numpy())
    assert crops.shape == (2, 3, *verifier.input_size)
    masked, context = crops
    # the masked crop is blue on the rest's median colour (grey); the context crop is the image
    assert torch.allclose(masked[:, 0, 0], torch.tensor([128., 128., 128.]))
    assert torch.allclose(masked[:, masked.shape[1] // 2, masked.shape[2] // 2], torch.tensor(BLUE))


def test_bad_arguments_and_unembedded_classes(tiny_clip):
    for kwargs, match in ((dict(region_threshold=1.0), 'region_threshold'), (dict(min_area=0), 'min_area'),
                          (dict(context=0.5), 'context')):
        with pytest.raises(ValueError, match=match):
            CLIPRegionVerifier(tiny_clip['model_name'], tiny_clip['pretrained'], **kwargs)
    verifier = CLIPRegionVerifier(tiny_clip['model_name'], tiny_clip['pretrained'])
    with pytest.raises(RuntimeError, match='set_class_prompts'):
        verifier(scene()[None], torch.zeros(1, 3, H, W), foreground=[1, 2])
    verifier = CLIPRegionVerifier(tiny_clip['model_name'], tiny_clip['pretrained'],
                                  background_words=('ground', 'Dog', 'sky'))
    verifier.set_class_prompts([['cat', 'kitty'], ['dog']])
    assert verifier.num_classes == 2 and verifier.text.shape[0] == 4  # 'Dog' is a class, not a word
    with pytest.raises(RuntimeError, match='3 foreground classes'):
        verifier(scene()[None], torch.zeros(1, 4, H, W), foreground=[1, 2, 3])


def test_segmentor_takes_the_classes_of_unlabelled_images_from_the_verifier(tiny_clip):
    model = build(model_cfg(SWIN_CFG, tiny_clip, test_cfg=dict(output='cam', bg_threshold=0.3,
                                                                verify_classes=dict()))).eval()
    verifier = model.class_verifier
    # defaults to the text encoder's CLIP; the foreground classes are embedded; not in the checkpoint
    assert verifier.num_classes == K - 1 and verifier.clip_model == tiny_clip['model_name']
    assert not any(key.startswith('class_verifier') for key in model.state_dict())
    calls = []

    def fake(images, cams, foreground):
        calls.append((images, cams, foreground))
        present = torch.zeros(cams.shape[:2])
        present[:, 3] = 1  # 'car' only
        return present

    model.class_verifier = fake
    raw = torch.randint(0, 256, (2, 3, S, S)).float()  # RGB
    pre = model.data_preprocessor
    x = (raw - pre.mean) / pre.std  # what the preprocessor makes of RGB input (bgr_to_rgb done)
    unlabelled = samples(LABELS)
    del unlabelled[0].gt_image_labels  # image 0 has no labels, image 1 keeps its own
    with torch.no_grad():
        results = model.predict(x, unlabelled)
    images, cams, foreground = calls[0]
    torch.testing.assert_close(images, raw, atol=0, rtol=0)  # the verifier sees the RGB pixels
    # a BGR model (no channel conversion) still gives the verifier RGB
    pre.channel_conversion = False
    torch.testing.assert_close(rgb_pixels((raw.flip(1) - pre.mean) / pre.std, pre), raw, atol=0, rtol=0)
    pre.channel_conversion = True
    assert foreground == [1, 2, 3] and cams.shape == (2, K, S, S)
    assert torch.all(cams.amax(dim=(2, 3))[:, 1:] <= 1 + 1e-5)  # every class switched on, scaled
    assert set(results[0].pred_sem_seg.data.unique().tolist()) <= {0, 3}
    assert set(results[1].pred_sem_seg.data.unique().tolist()) <= {0, 2}  # its own labels
    with torch.no_grad():
        model.predict(x, samples(LABELS))
    assert len(calls) == 1  # a labelled batch needs no verifier
    # new class names re-embed the verifier's classes
    model.class_verifier = verifier
    model.set_class_names(['background', 'cat', 'dog', 'car', 'bus', 'tram'])
    assert verifier.num_classes == 5


def test_verifier_needs_a_text_encoder_and_its_checkpoint_is_preflighted(tiny_clip, tmp_path):
    cfg = model_cfg(SWIN_CFG, tiny_clip, test_cfg=dict(output='cam', verify_classes=dict()))
    cfg.text_encoder = None
    cfg.decode_head = dict(type='CAMClassifierHead', in_channels=16, channels=16, num_classes=K, in_index=3,
                           loss_mlc=dict(type='MultiLabelScoreLoss', pooling='gap'))
    cfg.neck = None
    with pytest.raises(ValueError, match='verify_classes needs the class names.*set it to None'):
        build(cfg)
    for verify, match in ((dict(clip_model='RN50'), r'verify_classes\.clip_pretrained'),
                          ('{}', r'must be a dict.*got .\{\}.'),
                          (dict(threshold=0.3), r"verify_classes: .*unexpected keyword argument 'threshold'"),
                          (dict(region_threshold=2), r'verify_classes: .*region_threshold=2 must lie in')):
        with pytest.raises(ValueError, match=match):
            build(model_cfg(SWIN_CFG, tiny_clip, test_cfg=dict(output='cam', verify_classes=verify)))
    missing = str(tmp_path / 'nowhere' / 'clip.pt')
    config = Config(dict(model=dict(test_cfg=dict(verify_classes=dict(clip_pretrained=missing)))))
    with pytest.raises(MissingAssetError, match=r'model\.test_cfg\.verify_classes\.clip_pretrained: file .*clip\.pt'):
        check_config_assets(config, ())


def test_the_verifier_leaves_training_as_it_was(tiny_clip):
    """Building the verifier's CLIP draws no random numbers of the run: the same seed gives the same
    initial weights and the same random stream after the build."""
    plain = build(model_cfg(SWIN_CFG, tiny_clip, test_cfg=dict(output='cam')))
    after_plain = torch.rand(4)
    checked = build(model_cfg(SWIN_CFG, tiny_clip, test_cfg=dict(output='cam', verify_classes=dict())))
    after_checked = torch.rand(4)
    assert checked.class_verifier is not None and plain.class_verifier is None
    assert plain.state_dict().keys() == checked.state_dict().keys()
    assert all(torch.equal(a, checked.state_dict()[k]) for k, a in plain.state_dict().items())
    assert torch.equal(after_plain, after_checked)
