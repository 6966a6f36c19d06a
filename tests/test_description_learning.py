"""Learning from descriptions: soft targets from descriptions, the description contrastive loss."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import open_clip
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from mmseg_clip_wsss.models.losses import DescriptionContrastiveLoss, region_text_similarity
from mmseg_clip_wsss.models.open_clip_models import load_open_clip
from mmseg_clip_wsss.models.text import CLIPPromptTextEncoder, DescriptionTargets, class_word_pattern
from mmseg_clip_wsss.registry import MODELS

WORDS = [['background'], ['disc', 'circle'], ['ring', 'hoop'], ['square'], ['cross', 'plus sign']]


def test_word_matches_find_names_synonyms_and_plurals_as_whole_words():
    targets = DescriptionTargets(WORDS)
    texts = ['two circles on the ground.', 'a Plus  Signs and a hoop.', 'a discotheque, squared.',
             'a busy picture.']
    assert targets.word_matches(texts).tolist() == [[0, 1, 0, 0, 0], [0, 0, 1, 0, 1], [0, 0, 0, 0, 0],
                                                    [0, 0, 0, 0, 0]]
    assert class_word_pattern(['cross']).search('three crosses')
    with pytest.raises(ValueError, match='at least one word'):
        class_word_pattern(['  '])


def test_description_naming_no_known_class_gives_no_positive_target():
    """Image 0: descriptions that name no class -- not even when the text tower points at one
    with all its weight; image 1: one named class among vague words."""
    targets = MODELS.build(dict(type='DescriptionTargets', class_words=WORDS))
    class_embeds = torch.eye(5, 8)
    desc = [['a busy picture.', 'something round on the ground.'], ['something round and a hoop.']]
    embeds = torch.stack([class_embeds[1], class_embeds[1] + 0.01, class_embeds[2]])  # CLIP: disc, disc, ring
    y, conf = targets(desc, embeds, class_embeds)
    assert y[0].tolist() == [1, 0, 0, 0, 0]  # background only: no positive foreground target
    assert y[1, 2] == pytest.approx(1.0) and y[1, [1, 3, 4]].tolist() == [0, 0, 0]
    assert conf[1, 2] == 1 and conf[0, 0] == 1
    # unnamed classes: "absent" with confidence negative_weight x (1 - the text tower's hint)
    assert conf[0, 1] == pytest.approx(0.0, abs=1e-4)  # the tower is sure of a disc: no "absent"
    assert conf[0, 3] == pytest.approx(1.0, abs=1e-4)
    # word matches alone (no embeddings), and a word the text tower disagrees with
    y_words, _ = targets(desc)
    assert y_words[0, 1:].sum() == 0 and y_words[1].tolist() == [1, 0, 1, 0, 0]
    y_disagree, _ = targets([['a hoop.']], class_embeds[3:4], class_embeds)  # CLIP says square
    assert y_disagree[0, 2] == pytest.approx(0.6, abs=1e-4) and y_disagree[0, 3] == 0
    # the tower alone names a class only when 1 - prior_weight >= name_threshold
    paraphrase = DescriptionTargets(WORDS, prior_weight=0.3, name_threshold=0.6)
    y_para, _ = paraphrase([['a round disk.']], class_embeds[1:2], class_embeds)
    assert y_para[0, 1] == pytest.approx(0.7, abs=1e-4)
    with pytest.raises(ValueError, match='2 description embeddings for 3 descriptions'):
        targets(desc, embeds[:2], class_embeds)


def test_text_encoder_encodes_descriptions_like_open_clip(tiny_clip):
    encoder = CLIPPromptTextEncoder(class_names=['background', 'disc'], **tiny_clip)
    model = load_open_clip(tiny_clip['model_name'], tiny_clip['pretrained']).eval()
    texts = ['two circles on the ground.', 'something round.', 'a busy picture.']
    tokens = open_clip.get_tokenizer(tiny_clip['model_name'])(texts)
    expected = F.normalize(model.encode_text(tokens), dim=-1)
    got = encoder.encode_texts(texts, batch_size=2)
    assert got.shape == (3, expected.shape[1]) and not got.requires_grad
    assert torch.allclose(got, expected, atol=1e-5)


def test_description_loss_is_clip_loss_and_regions_take_the_best_match():
    torch.manual_seed(0)
    images, texts = torch.randn(4, 8), torch.randn(4, 8)
    ours = DescriptionContrastiveLoss(temperature=0.1)(images, texts)
    reference = ClipLoss()(F.normalize(images, dim=-1), F.normalize(texts, dim=-1), 10.0)
    assert torch.allclose(ours, reference, atol=1e-6)
    regions = torch.randn(4, 3, 8)
    mask = torch.tensor([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 1, 0]]).bool()
    sim = region_text_similarity(regions, texts, mask)
    cos = F.normalize(regions, dim=-1) @ F.normalize(texts, dim=-1).t()  # (4, 3, 4)
    assert torch.allclose(sim[1], cos[1, 0]) and torch.allclose(sim[3], cos[3, 1])
    assert torch.allclose(sim[0], cos[0, :2].max(dim=0).values)
    with pytest.raises(ValueError, match='4 images and 3 descriptions'):
        DescriptionContrastiveLoss()(images, texts[:3])
    with pytest.raises(ValueError, match='needs a logit_scale'):
        DescriptionContrastiveLoss(temperature=None)(images, texts)


def _inputs():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(4, 3, 8, generator=gen), torch.randn(4, 8, generator=gen)


def _rank_loss(rank: int, world: int, port: int, out: str):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world)
    results = {}
    for kind in ('pooled', 'regions'):
        images, texts = _inputs()
        images = images if kind == 'regions' else images.mean(dim=1)
        mine_i = images[2 * rank:2 * rank + 2].clone().requires_grad_()
        mine_t = texts[2 * rank:2 * rank + 2].clone().requires_grad_()
        loss = DescriptionContrastiveLoss(temperature=0.1)(mine_i, mine_t)
        loss.backward()
        results[kind] = dict(loss=loss.detach(), gi=mine_i.grad, gt=mine_t.grad)
    torch.save(results, f'{out}/rank{rank}.pt')
    dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_description_loss_of_2_gloo_ranks_x_batch_2_is_1_rank_x_batch_4(tmp_path):
    """Value and gradient, for pooled and for region embeddings: each rank's loss is the whole
    batch's; the gathered gradients, averaged by DDP over the ranks, are those of one process holding
    the 4 pairs."""
    mp.spawn(_rank_loss, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f'rank{r}.pt') for r in range(2)]
    for kind in ('pooled', 'regions'):
        r0, r1 = (r[kind] for r in ranks)
        images, texts = _inputs()
        images = (images if kind == 'regions' else images.mean(dim=1)).requires_grad_()
        texts.requires_grad_()
        loss = DescriptionContrastiveLoss(temperature=0.1)(images, texts)
        loss.backward()
        for r in (r0, r1):
            assert torch.allclose(r['loss'], loss.detach(), atol=1e-6), kind
        assert torch.allclose(torch.cat([r0['gi'], r1['gi']]) / 2, images.grad, atol=1e-6), kind
        assert torch.allclose(torch.cat([r0['gt'], r1['gt']]) / 2, texts.grad, atol=1e-6), kind
        assert images.grad.abs().sum() > 0 and texts.grad.abs().sum() > 0


# ------------------------------------------------------- the segmentor learns from descriptions
def _mixed_batch():
    from mmseg.structures import SegDataSample
    from mmseg_clip_wsss.structures import set_image_labels
    meta = dict(img_shape=(64, 64), pad_shape=(64, 64), ori_shape=(64, 64))
    labelled = SegDataSample(metainfo=dict(meta, loss_weight=1.0))
    set_image_labels(labelled, [1., 1., 0., 1.])
    described = SegDataSample(metainfo=dict(meta, loss_weight=0.5,
                                            captions=['two dogs on the grass.', 'some animals.']))
    vague = SegDataSample(metainfo=dict(meta, captions=['a busy picture.']))
    return [labelled, described, vague]


def test_segmentor_trains_from_labels_and_descriptions_in_one_batch(tiny_clip, monkeypatch):
    from mmengine.registry import init_default_scope
    from test_segmentor import SWIN_CFG, build, model_cfg
    init_default_scope('mmseg')
    cfg = model_cfg(SWIN_CFG, tiny_clip, description_targets=dict(),
                    loss_description=dict(type='DescriptionContrastiveLoss', temperature=None),
                    description_regions=2)
    model = build(cfg).train()
    seen = {}
    head_loss = model.decode_head.loss_weak

    def spy(scores, pixel_embeds, text_embeds, labels, weight):
        seen.update(labels=labels.detach().clone(), weight=weight.detach().clone())
        return head_loss(scores, pixel_embeds, text_embeds, labels, weight)

    monkeypatch.setattr(model.decode_head, 'loss_weak', spy)
    losses = model.loss(torch.rand(3, 3, 64, 64), _mixed_batch())
    assert {'decode.loss_mlc', 'decode.loss_itc', 'decode.loss_desc_itc', 'neck.loss_region_nce'} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    labels, weight = seen['labels'], seen['weight']  # classes: background, cat, dog, car
    assert labels[0].tolist() == [1, 1, 0, 1] and weight[0].tolist() == [1, 1, 1, 1]
    assert labels[1, 2] >= 0.6 and labels[1, [1, 3]].tolist() == [0, 0]  # 'dogs' names the dog
    assert weight[1, 2] == pytest.approx(0.5)  # confidence 1 x the source's loss_weight 0.5
    assert labels[2, 1:].tolist() == [0, 0, 0]  # names no class: no positive target
    losses['decode.loss_desc_itc'].backward()
    assert model.decode_head.proj.weight.grad.abs().sum() > 0  # the description loss trains the head
    with pytest.raises(ValueError, match='text_encoder'):
        MODELS.build(dict(cfg, text_encoder=None))


def test_extra_words_of_a_vocabulary_reach_their_classes():
    from mmseg_clip_wsss.datasets import COCO_CLASSES
    from mmseg_clip_wsss.models.text import resolve_class_prompts
    prompts = resolve_class_prompts('coco', 'test')  # 'tv' is prompted 'television', 'mouse' ...
    targets = DescriptionTargets(prompts, extra_words='coco')
    y, _ = targets([['A man riding a bike next to a tv.'], ['a mouse by the laptop.']])
    named = [[COCO_CLASSES[k] for k in row.nonzero().flatten().tolist()] for row in y]
    assert named == [['background', 'person', 'bicycle', 'tv'], ['background', 'laptop', 'mouse']]
    with pytest.raises(ValueError, match="class 'unicorn', which is not in the class list"):
        DescriptionTargets(WORDS, extra_words=dict(unicorn=['horned horse']))


def test_multilabel_loss_takes_per_class_weights():
    from mmseg_clip_wsss.models.losses import MultiLabelScoreLoss
    torch.manual_seed(0)
    scores, labels = torch.randn(2, 4, 5, 5), torch.tensor([[1., 1, 0, 0.7], [1, 0, 1, 0]])
    loss = MultiLabelScoreLoss()
    weight = torch.tensor([[1., 1, 0, 1], [1, 1, 1, 1]])  # image 0: class 2 unknown (weight 0)
    logits = scores.mean(dim=(2, 3))[:, 1:]
    bce = F.binary_cross_entropy_with_logits(logits, labels[:, 1:], reduction='none')
    expected = (bce * weight[:, 1:]).mean(dim=1).mean()
    assert torch.allclose(loss(scores, labels, weight), expected)
    assert torch.allclose(loss(scores, labels, torch.ones(2, 4)), loss(scores, labels))
