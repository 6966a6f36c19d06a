"""Detection: the RSC-A FPN neck, the text-embedding bbox head, the two-stage detector with regional
contrast, the COCO detection configs, and the COCO json writers (VOC XML boxes, pseudo masks)."""
import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import DATASETS, MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.optim import OptimWrapper
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData
from PIL import Image
from pycocotools import mask as mask_utils

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.datasets import (COCO_CLASSES, DEMO_CLASSES, mask_to_instances,
                                      pseudo_masks_to_coco, voc_xml_to_coco, write_palette_png)
from mmseg_clip_wsss.demo import detection as demo
from mmseg_clip_wsss.models.detectors import (RSCATwoStageDetector, box_activation_maps,
                                              instance_image_labels)
from mmseg_clip_wsss.models.heads import TextEmbeddingBBoxHead
from mmseg_clip_wsss.models.necks import RSCAFPN

REPO = Path(__file__).resolve().parents[1]
FASTER_CFG = REPO / 'configs/det/faster-rcnn_swin-t-p4-w7_rsca-fpn_text-head_1x_coco.py'
MASK_CFG = REPO / 'configs/det/mask-rcnn_swin-t-p4-w7_rsca-fpn_text-head_1x_coco.py'
DEMO_GT_CFG = REPO / 'configs/det/demo/faster-rcnn_tiny-swin_rsca-fpn_text-head_demo-gt.py'
DEMO_PSEUDO_CFG = REPO / 'configs/det/demo/faster-rcnn_tiny-swin_rsca-fpn_text-head_demo-pseudo.py'
CLASSES = ('cat', 'dog', 'car')  # detection classes: no background
LABEL_CLASSES = ('background', ) + CLASSES  # label-map / COCO category order
K, S, C = len(CLASSES), 64, 32
TINY_SWIN = dict(embed_dims=16, depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8], window_size=4,
                 pretrain_img_size=S, drop_path_rate=0.0, convert_weights=False, init_cfg=None)
# (class index, y0, y1, x0, x1) of the rectangles of each generated image (label-map classes)
OBJECTS = [
    [(1, 4, 30, 6, 28), (3, 36, 60, 30, 62)],
    [(2, 10, 50, 8, 40)],
    [(1, 2, 20, 40, 62), (2, 30, 58, 2, 30), (3, 34, 62, 36, 60)],
    [(3, 8, 56, 12, 52)],
]


@pytest.fixture(autouse=True)
def _mmdet_scope():
    init_default_scope('mmdet')


# ----------------------------------------------------------------------------- tiny COCO data
@pytest.fixture(scope='module')
def tiny_coco(tmp_path_factory):
    """4 images of 64 px with coloured rectangles; their COCO json (boxes + RLE masks) is written
    from label maps by :func:`pseudo_masks_to_coco`."""
    root = tmp_path_factory.mktemp('tiny_coco')
    (root / 'images').mkdir()
    (root / 'masks').mkdir()
    rng = np.random.default_rng(0)
    colours = {1: (220, 60, 40), 2: (40, 200, 60), 3: (50, 80, 230)}
    for i, objects in enumerate(OBJECTS):
        img = rng.integers(60, 120, (S, S, 3)).astype(np.uint8)
        label = np.zeros((S, S), dtype=np.uint8)
        for k, y0, y1, x0, x1 in objects:
            img[y0:y1, x0:x1] = colours[k]
            label[y0:y1, x0:x1] = k
        Image.fromarray(img).save(root / 'images' / f'img_{i}.png')
        write_palette_png(str(root / 'masks' / f'img_{i}.png'), label)
    pseudo_masks_to_coco(str(root / 'masks'), str(root / 'images'), str(root / 'ann.json'),
                         LABEL_CLASSES, min_area=4, show_progress=False)
    return root


def load_batch(root: Path, with_mask: bool, indices=(0, 2)):
    dataset = DATASETS.build(
        dict(type='CocoDataset',
             data_root=str(root),
             ann_file='ann.json',
             metainfo=dict(classes=CLASSES),
             data_prefix=dict(img='images/'),
             pipeline=[
                 dict(type='LoadImageFromFile'),
                 dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask),
                 dict(type='Resize', scale=(S, S), keep_ratio=True),
                 dict(type='PackDetInputs')
             ]))
    return pseudo_collate([dataset[i] for i in indices])


def tiny_detector_cfg(path: Path, tiny_clip: dict, **text_overrides):
    """The COCO config's model, shrunk: tiny Swin, C-channel neck, 3 classes, tiny CLIP text tower."""
    model = copy.deepcopy(Config.fromfile(str(path)).model)
    model.backbone.update(TINY_SWIN)
    model.neck.update(in_channels=[16, 32, 64, 128], out_channels=C, num_classes=K)
    model.rpn_head.update(in_channels=C, feat_channels=C)
    model.rpn_head.anchor_generator.scales = [4]
    roi = model.roi_head
    roi.bbox_roi_extractor.out_channels = C
    roi.bbox_head.update(in_channels=C, fc_out_channels=64, num_classes=K)
    roi.bbox_head.text_encoder.update(class_names=list(CLASSES), **tiny_clip, **text_overrides)
    if 'mask_head' in roi:
        roi.mask_roi_extractor.out_channels = C
        roi.mask_head.update(in_channels=C, conv_out_channels=C, num_classes=K)
    model.train_cfg.rpn.sampler.num = 64
    model.train_cfg.rcnn.sampler.num = 64
    model.test_cfg.rpn.update(nms_pre=200, max_per_img=50)
    model.test_cfg.rcnn.update(score_thr=0.0, max_per_img=20)  # boxes even from a barely trained model
    return model


# ----------------------------------------------------------------------------- configs
@pytest.mark.parametrize('path', [FASTER_CFG, MASK_CFG])
def test_coco_configs_parse_and_build(path, tiny_clip):
    cfg = Config.fromfile(str(path))
    assert cfg.custom_imports.imports == ['mmseg_clip_wsss']
    model = cfg.model
    assert model.type == 'RSCATwoStageDetector'
    assert model.backbone.type == 'SwinTransformer' and model.backbone.embed_dims == 96
    assert model.backbone.depths == [2, 2, 6, 2]
    assert model.neck.type == 'RSCAFPN' and 'out_channels' in model.neck and model.neck.num_outs == 5
    assert model.neck.num_classes == 80
    head = model.roi_head.bbox_head
    assert head.type == 'TextEmbeddingBBoxHead' and head.num_classes == 80
    # the detection vocabulary: mmdet's 80 COCO classes in dataset order, no background
    coco_classes = tuple(DATASETS.get('CocoDataset').METAINFO['classes'])
    assert tuple(head.text_encoder.class_names) == coco_classes == tuple(COCO_CLASSES[1:])
    # mmdet's data / schedule come with the base
    assert cfg.train_dataloader.dataset.type == 'CocoDataset'
    assert cfg.val_evaluator.type == 'CocoMetric'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
    if path == MASK_CFG:
        assert 'mask_head' in model.roi_head and 'segm' in cfg.val_evaluator.metric

    # the real Swin-T, built through mmdet's registry (no download: no init, tiny text tower)
    model = copy.deepcopy(model)
    model.backbone.init_cfg = None
    model.roi_head.bbox_head.text_encoder.update(**tiny_clip)
    detector = MODELS.build(model)
    assert isinstance(detector, RSCATwoStageDetector)
    assert isinstance(detector.neck, RSCAFPN)
    assert isinstance(detector.roi_head.bbox_head, TextEmbeddingBBoxHead)
    assert detector.roi_head.bbox_head.fc_cls.out_features == detector.roi_head.bbox_head.embed_dim
    with torch.no_grad():
        outs = detector.extract_feat(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 256, 64 // s, 64 // s) for s in (4, 8, 16, 32, 64)]


@pytest.mark.parametrize('path', [DEMO_GT_CFG, DEMO_PSEUDO_CFG])
def test_demo_configs_build(path, tiny_clip):
    cfg = Config.fromfile(str(path))
    assert tuple(cfg.classes) == tuple(DEMO_CLASSES[1:])
    assert cfg.train_dataloader.dataset.ann_file.endswith(
        'pseudo.json' if 'pseudo' in path.name else 'train_gt.json')
    assert cfg.val_evaluator.type == 'CocoMetric' and cfg.val_evaluator.metric == 'bbox'
    assert cfg.val_evaluator.ann_file == 'data/demo/det/instances_val_gt.json'
    model = copy.deepcopy(cfg.model)
    model.roi_head.bbox_head.text_encoder.pretrained = tiny_clip['pretrained']
    detector = MODELS.build(model)
    assert detector.neck.num_classes == detector.roi_head.bbox_head.num_classes == 8


# ----------------------------------------------------------------------------- neck
def test_rsca_fpn_levels_and_contrast():
    torch.manual_seed(0)
    neck = RSCAFPN(in_channels=[8, 16, 32], out_channels=C, num_outs=5, num_classes=K)
    neck.init_weights()
    feats = [torch.randn(2, 8, 16, 16), torch.randn(2, 16, 8, 8), torch.randn(2, 32, 4, 4)]
    outs, fused = neck(feats, return_fused=True)
    assert [tuple(o.shape[-2:]) for o in outs] == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    assert all(o.shape[:2] == (2, C) for o in outs)
    # empty memory bank: aggregation adds nothing, level 0 is the fused map itself
    assert torch.allclose(outs[0], fused)
    assert torch.equal(outs[3], outs[2][..., ::2, ::2])
    # no background row in detection: class 0 takes part in the contrast and the memory update
    labels = torch.tensor([[1., 0., 1.], [1., 1., 0.]])
    cams = torch.rand(2, K, 16, 16)
    losses = neck.region_contrast_loss(fused, cams, labels)
    assert set(losses) == {'loss_region_nce'} and float(losses['loss_region_nce'].detach()) == 0.0
    assert neck.memory_bank.initialized.tolist() == [True, True, True]
    losses = neck.region_contrast_loss(fused, cams, labels)
    assert float(losses['loss_region_nce'].detach()) > 0
    # with prototypes, aggregation changes the outputs
    outs2 = neck(feats)
    assert not torch.allclose(outs2[0], fused)
    with pytest.raises(ValueError, match='num_outs'):
        RSCAFPN(in_channels=[8, 16, 32], out_channels=C, num_outs=2, num_classes=K)


def test_rsca_fpn_start_level_and_background_row():
    neck = RSCAFPN(in_channels=[8, 16, 32], out_channels=C, num_outs=3, num_classes=K, start_level=1,
                   background_index=0)
    outs = neck([torch.randn(1, 8, 16, 16), torch.randn(1, 16, 8, 8), torch.randn(1, 32, 4, 4)])
    assert [tuple(o.shape[-2:]) for o in outs] == [(8, 8), (4, 4), (2, 2)]
    fused = torch.randn(1, C, 8, 8)
    neck.train()
    neck.region_contrast_loss(fused, torch.rand(1, K, 8, 8), torch.ones(1, K))
    assert neck.memory_bank.initialized.tolist() == [False, True, True]


# ----------------------------------------------------------------------------- detector pieces
def test_box_activation_maps_and_labels():
    sample = DetDataSample()
    sample.gt_instances = InstanceData(
        bboxes=torch.tensor([[0., 0., 8., 8.], [9., 17., 15., 31.], [30., 30., 30., 40.]]),
        labels=torch.tensor([2, 0, 1]))
    empty = DetDataSample()
    empty.gt_instances = InstanceData(bboxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.long))
    cams = box_activation_maps([sample, empty], K, (4, 4), (32, 32))  # cells of 8 px
    assert cams.shape == (2, K, 4, 4)
    expected_2 = torch.zeros(4, 4)
    expected_2[0, 0] = 1  # [0, 8) x [0, 8)
    expected_0 = torch.zeros(4, 4)
    expected_0[2:4, 1] = 1  # x in [9, 15) -> column 1; y in [17, 31) -> rows 2, 3
    assert torch.equal(cams[0, 2], expected_2)
    assert torch.equal(cams[0, 0], expected_0)
    assert cams[0, 1].sum() == 0  # zero-width box
    assert cams[1].sum() == 0
    labels = instance_image_labels([sample, empty], K)
    assert labels.tolist() == [[1., 1., 1.], [0., 0., 0.]]
    with pytest.raises(ValueError, match='outside'):
        instance_image_labels([sample], 2)


def test_text_embedding_bbox_head(tiny_clip):
    text_encoder = dict(type='CLIPPromptTextEncoder', class_names=list(CLASSES), **tiny_clip)
    head = MODELS.build(dict(type='TextEmbeddingBBoxHead', in_channels=C, fc_out_channels=64,
                             roi_feat_size=7, num_classes=K, reg_class_agnostic=True,
                             text_encoder=text_encoder))
    head.init_weights()
    head.eval()
    rois = torch.randn(5, C, 7, 7)
    with torch.no_grad():
        cls_score, bbox_pred = head(rois)
        assert cls_score.shape == (5, K + 1) and bbox_pred.shape == (5, 4)
        # cosine x scale against [text embeddings; background embedding]
        x = head.shared_fcs[1](F.relu(head.shared_fcs[0](rois.flatten(1)))).relu()
        proj = F.normalize(head.fc_cls(x), dim=1)
        weights = torch.cat([head.text_encoder(), F.normalize(head.background_embedding, dim=0)[None]])
        assert torch.allclose(cls_score, head.scale * proj @ weights.t(), atol=1e-5)
        assert float(head.scale) == pytest.approx(1 / 0.07, rel=1e-5)
        assert cls_score.abs().max() <= head.scale + 1e-4
    # learnable bias background
    head_bias = MODELS.build(dict(type='TextEmbeddingBBoxHead', in_channels=C, fc_out_channels=64,
                                  num_classes=K, text_encoder=text_encoder, background='bias'))
    with torch.no_grad():
        head_bias.background_bias.fill_(1.5)
        scores, _ = head_bias(rois)
    assert torch.allclose(scores[:, -1], torch.full((5, ), 1.5))
    # a class list with 'background', or of the wrong length, is refused
    with pytest.raises(ValueError, match="start with 'background'"):
        MODELS.build(dict(type='TextEmbeddingBBoxHead', in_channels=C, num_classes=K + 1,
                          text_encoder=dict(text_encoder, class_names=list(LABEL_CLASSES))))
    with pytest.raises(ValueError, match='class names'):
        MODELS.build(dict(type='TextEmbeddingBBoxHead', in_channels=C, num_classes=K + 1,
                          text_encoder=text_encoder))


# ----------------------------------------------------------------------------- training / predict
@pytest.mark.parametrize('path', [FASTER_CFG, MASK_CFG], ids=['faster_rcnn', 'mask_rcnn'])
def test_detector_train_step_and_predict(path, tiny_clip, tiny_coco):
    torch.manual_seed(0)
    with_mask = path == MASK_CFG
    detector = MODELS.build(
        tiny_detector_cfg(path, tiny_clip,
                          prompt=dict(type='CoOpPromptLearner', n_ctx=3, ctx_init='a photo of')))
    detector.init_weights()
    data = load_batch(tiny_coco, with_mask)
    optim = OptimWrapper(torch.optim.SGD(detector.parameters(), lr=0.01, momentum=0.9))
    prompt_learner = detector.roi_head.bbox_head.text_encoder.prompt_learner
    ctx_before = torch.cat([p.detach().flatten() for p in prompt_learner.parameters()])
    detector.train()
    log1 = detector.train_step(data, optim)
    log2 = detector.train_step(data, optim)
    expected = {'loss_rpn_cls', 'loss_rpn_bbox', 'loss_cls', 'loss_bbox', 'neck.loss_region_nce'}
    if with_mask:
        expected.add('loss_mask')
    assert expected <= set(log1)
    for log in (log1, log2):
        assert all(np.isfinite(float(v.detach())) for v in log.values())
    # first step: the memory bank is empty (zero loss), then filled with the classes of the batch
    assert float(log1['neck.loss_region_nce'].detach()) == 0.0
    assert float(log2['neck.loss_region_nce'].detach()) > 0.0
    present = sorted({k - 1 for i in (0, 2) for k, *_ in OBJECTS[i]})
    assert torch.nonzero(detector.neck.memory_bank.initialized).flatten().tolist() == present
    # the learnable prompt context gets gradients through the text-embedding classifier
    ctx_after = torch.cat([p.detach().flatten() for p in prompt_learner.parameters()])
    assert not torch.equal(ctx_before, ctx_after)

    detector.eval()
    with torch.no_grad():
        results = detector.test_step(data)
    # checkpoint round trip: the memory bank travels, the frozen CLIP tower is left out and rebuilt
    state = detector.state_dict()
    assert not any('text_tower' in key for key in state)
    assert 'neck.memory_bank.prototypes' in state and 'roi_head.bbox_head.background_embedding' in state
    restored = MODELS.build(tiny_detector_cfg(path, tiny_clip,
                                              prompt=dict(type='CoOpPromptLearner', n_ctx=3,
                                                          ctx_init='a photo of')))
    restored.load_state_dict(state, strict=True)
    restored.eval()
    assert torch.equal(restored.neck.memory_bank.prototypes, detector.neck.memory_bank.prototypes)
    with torch.no_grad():
        again = restored.test_step(data)
    assert torch.allclose(again[0].pred_instances.bboxes, results[0].pred_instances.bboxes, atol=1e-4)
    assert len(results) == 2
    for result in results:
        pred = result.pred_instances
        assert pred.bboxes.ndim == 2 and pred.bboxes.shape[1] == 4
        assert len(pred.bboxes) == len(pred.labels) == len(pred.scores) > 0
        assert int(pred.labels.min()) >= 0 and int(pred.labels.max()) < K
        assert bool((pred.bboxes[:, 2] >= pred.bboxes[:, 0]).all())
        if with_mask:
            assert pred.masks.shape[0] == len(pred.bboxes)
            assert tuple(pred.masks.shape[-2:]) == (S, S)

    # the classes are scored against their text embeddings: handing class k the embedding of class
    # perm[k] moves every detection of class perm[k] to class k; boxes (class-agnostic) and scores stay
    perm = torch.tensor([2, 0, 1])
    new_label = torch.argsort(perm)  # old label j -> new label k with perm[k] == j
    head = detector.roi_head.bbox_head
    classify = head.classify
    head.classify = lambda roi_embeds, text_embeds=None: classify(roi_embeds, head.text_encoder()[perm])
    with torch.no_grad():
        permuted = detector.test_step(data)
    del head.classify

    def detections(pred, labels):
        return sorted((int(k), round(float(s), 4), *[round(float(v), 2) for v in box])
                      for k, s, box in zip(labels, pred.scores, pred.bboxes))

    for before, after in zip(results, permuted):
        old, new = before.pred_instances, after.pred_instances
        assert detections(new, new.labels) == detections(old, new_label[old.labels])


def test_detector_requires_rsca_neck(tiny_clip):
    cfg = tiny_detector_cfg(FASTER_CFG, tiny_clip)
    cfg.neck = dict(type='FPN', in_channels=[16, 32, 64, 128], out_channels=C, num_outs=5)
    with pytest.raises(ValueError, match='RSC-A neck'):
        MODELS.build(cfg)
    cfg.region_contrast = False
    assert isinstance(MODELS.build(cfg), RSCATwoStageDetector)
    cfg = tiny_detector_cfg(FASTER_CFG, tiny_clip)
    cfg.neck.num_classes = K + 1
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(cfg)


# ----------------------------------------------------------------------------- json writers
def test_mask_to_instances_exact_boxes():
    label = np.zeros((20, 30), dtype=np.uint8)
    label[2:6, 3:9] = 1  # class 1: rows 2-5, cols 3-8
    label[10:12, 0:2] = 2  # class 2, component A (4 px)
    label[12:14, 2:4] = 2  # class 2, touches A only diagonally (4 px)
    label[15:20, 25:30] = 2  # class 2, component C, at the image corner (25 px)
    label[0, 29] = 1  # class 1, a single pixel
    label[6:8, 3:9] = 255  # ignore band under the class-1 box
    inst = mask_to_instances(label, num_classes=3)
    got = [(i['category_id'], i['bbox'], i['area']) for i in inst]
    assert got == [(1, [29, 0, 1, 1], 1), (1, [3, 2, 6, 4], 24), (2, [0, 10, 4, 4], 8),
                   (2, [25, 15, 5, 5], 25)]
    # 4-connectivity splits the diagonal pair; min_area drops the single pixel
    inst4 = mask_to_instances(label, num_classes=3, connectivity=4, min_area=2)
    got4 = [(i['category_id'], i['bbox'], i['area']) for i in inst4]
    assert got4 == [(1, [3, 2, 6, 4], 24), (2, [0, 10, 2, 2], 4), (2, [2, 12, 2, 2], 4),
                    (2, [25, 15, 5, 5], 25)]
    # the RLE decodes back to exactly the component
    rle = dict(inst[1]['segmentation'], counts=inst[1]['segmentation']['counts'].encode())
    decoded = mask_utils.decode(rle)
    assert decoded.shape == (20, 30) and decoded.sum() == 24 and decoded[2:6, 3:9].all()
    assert mask_utils.toBbox(rle).tolist() == [3, 2, 6, 4]
    with pytest.raises(ValueError, match='not class indices'):
        mask_to_instances(label, num_classes=2)


def test_pseudo_masks_to_coco(tmp_path):
    img_dir, mask_dir = tmp_path / 'JPEGImages', tmp_path / 'masks'
    img_dir.mkdir()
    mask_dir.mkdir()
    masks = {'a': np.zeros((16, 24), np.uint8), 'b': np.zeros((16, 24), np.uint8),
             'c': np.zeros((16, 24), np.uint8)}
    masks['a'][1:5, 2:10] = 3  # 'square' (DEMO_CLASSES[3]): 32 px
    masks['a'][8:16, 20:24] = 1  # 'disc': 32 px
    masks['a'][12, 0] = 2  # 'ring': 1 px, below min_area
    masks['b'][:, :] = 255  # all ignore: no instance
    for name, mask in masks.items():
        Image.new('RGB', (24, 16)).save(img_dir / f'{name}.jpg')
        write_palette_png(str(mask_dir / f'{name}.png'), mask)
    (tmp_path / 'split.txt').write_text('a\nb\n')
    out = tmp_path / 'det' / 'pseudo.json'
    summary = pseudo_masks_to_coco(str(mask_dir), str(img_dir), str(out), DEMO_CLASSES,
                                   split_file=str(tmp_path / 'split.txt'), min_area=2,
                                   show_progress=False)
    assert summary['num_images'] == 2 and summary['num_instances'] == 2
    assert summary['num_empty'] == 1 and summary['num_small'] == 1
    assert summary['instance_counts']['square'] == 1 and summary['instance_counts']['disc'] == 1
    coco = json.loads(out.read_text())
    assert [(im['id'], im['file_name'], im['width'], im['height']) for im in coco['images']] == [
        (1, 'a.jpg', 24, 16), (2, 'b.jpg', 24, 16)]
    assert [(a['image_id'], a['category_id'], a['bbox'], a['area'], a['iscrowd'])
            for a in coco['annotations']] == [(1, 1, [20, 8, 4, 8], 32, 0), (1, 3, [2, 1, 8, 4], 32, 0)]
    assert [a['id'] for a in coco['annotations']] == [1, 2]
    assert [(c['id'], c['name']) for c in coco['categories']] == list(enumerate(DEMO_CLASSES))[1:]
    # every image of the directory needs a mask
    (mask_dir / 'c.png').unlink()
    with pytest.raises(FileNotFoundError, match='no pseudo mask'):
        pseudo_masks_to_coco(str(mask_dir), str(img_dir), str(out), DEMO_CLASSES, show_progress=False)
    with pytest.raises(FileNotFoundError, match='make demo'):
        pseudo_masks_to_coco(str(tmp_path / 'nope'), str(img_dir), str(out), DEMO_CLASSES)
    with pytest.raises(ValueError, match="start with 'background'"):
        pseudo_masks_to_coco(str(mask_dir), str(img_dir), str(out), DEMO_CLASSES[1:])


def test_voc_xml_to_coco_matches_mask_boxes(tmp_path):
    (tmp_path / 'JPEGImages').mkdir()
    (tmp_path / 'Annotations').mkdir()
    Image.new('RGB', (40, 30)).save(tmp_path / 'JPEGImages' / 'x.jpg')
    (tmp_path / 'Annotations' / 'x.xml').write_text(
        '<annotation><size><width>40</width><height>30</height><depth>3</depth></size>'
        '<object><name>star</name><difficult>0</difficult><bndbox><xmin>3</xmin><ymin>2</ymin>'
        '<xmax>10</xmax><ymax>7</ymax></bndbox></object>'
        '<object><name>ring</name><difficult>1</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>'
        '<xmax>40</xmax><ymax>30</ymax></bndbox></object></annotation>')
    summary = voc_xml_to_coco(str(tmp_path), 'det/gt.json', DEMO_CLASSES)
    coco = json.loads((tmp_path / 'det' / 'gt.json').read_text())
    assert summary['num_instances'] == 2
    anns = [(a['category_id'], a['bbox'], a['area']) for a in coco['annotations']]
    assert anns == [(5, [2.0, 1.0, 8.0, 6.0], 48.0), (2, [0.0, 0.0, 40.0, 30.0], 1200.0)]
    # the same object as a mask gives the same box
    label = np.zeros((30, 40), np.uint8)
    label[1:7, 2:10] = 5  # VOC (3, 2, 10, 7) 1-based inclusive
    assert mask_to_instances(label, len(DEMO_CLASSES))[0]['bbox'] == [2, 1, 8, 6]
    voc_xml_to_coco(str(tmp_path), 'det/gt_easy.json', DEMO_CLASSES, skip_difficult=True)
    assert len(json.loads((tmp_path / 'det' / 'gt_easy.json').read_text())['annotations']) == 1
    with pytest.raises(ValueError, match='not one of'):
        voc_xml_to_coco(str(tmp_path), 'det/bad.json', ('background', 'star'))


def test_det_demo_scoring_and_baseline(tmp_path):
    """The demo's CocoMetric scoring: perfect boxes score 100 mAP, the full-image baseline far less."""
    images = [dict(id=i + 1, file_name=f'{i}.jpg', width=64, height=64) for i in range(3)]
    anns = [dict(id=1, image_id=1, category_id=1, bbox=[4, 4, 20, 20], area=400, iscrowd=0),
            dict(id=2, image_id=2, category_id=2, bbox=[30, 10, 16, 24], area=384, iscrowd=0),
            dict(id=3, image_id=3, category_id=1, bbox=[0, 32, 30, 30], area=900, iscrowd=0)]
    ann_file = tmp_path / 'gt.json'
    ann_file.write_text(json.dumps(dict(images=images, annotations=anns, categories=[
        dict(id=1, name='disc'), dict(id=2, name='ring')])))
    perfect = demo.percent(demo.coco_eval(str(ann_file), ('disc', 'ring'),
                                          demo.box_predictions(str(ann_file), False), 'p'), 'p/')
    baseline = demo.percent(demo.coco_eval(str(ann_file), ('disc', 'ring'),
                                           demo.box_predictions(str(ann_file), True), 'b'), 'b/')
    assert perfect['bbox_map'] == pytest.approx(100.0) and perfect['bbox_map50'] == pytest.approx(100.0)
    assert baseline['bbox_map'] < 5.0 and baseline['bbox_map50'] == pytest.approx(0.0)
    # every box shifted right by a fifth of its width: IoU 0.8 / 1.2 = 2/3 with its GT box, a match
    # at the IoU thresholds 0.50, 0.55, 0.60, 0.65 and at none of the six above -> mAP 40
    shifted = demo.box_predictions(str(ann_file), False)
    for pred in shifted:
        boxes = pred['pred_instances']['bboxes']
        boxes[:, [0, 2]] += (boxes[:, 2:3] - boxes[:, 0:1]) / 5
    partial = demo.percent(demo.coco_eval(str(ann_file), ('disc', 'ring'), shifted, 's'), 's/')
    assert partial['bbox_map50'] == pytest.approx(100.0)
    assert partial['bbox_map'] == pytest.approx(40.0) and partial['bbox_map75'] == pytest.approx(0.0)
    with pytest.raises(SystemExit, match='make_demo_data'):
        demo.check_inputs(str(tmp_path / 'missing'), None)
