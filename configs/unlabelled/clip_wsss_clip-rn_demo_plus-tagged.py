# Stage 1 of the demo trained on labelled + CLIP-tagged unlabelled images: the labelled demo train
# split concatenated (mmengine ConcatDataset) with images that nobody labelled, whose image-level
# labels are zero-shot tags of the demo CLIP (tools/tag_images.py). Each source can weigh its images
# in the image-level losses (WSSSDataset(loss_weight=...), packed per sample).
#   python tools/tag_images.py data/demo/clip/clip.pt --data-root data/demo_unlabelled --split train \
#       --labelled-root data/demo --out data/demo_unlabelled/ImageLabels/train_clip.txt
#   python tools/train.py configs/unlabelled/clip_wsss_clip-rn_demo_plus-tagged.py
# Pseudo masks (cam_dataloader) and validation stay on the labelled data root.
_base_ = '../demo/clip_wsss_clip-rn_demo.py'
tagged_root = 'data/demo_unlabelled'
tagged_label_file = 'ImageLabels/train_clip.txt'
tagged_loss_weight = 1.0
labelled = {{_base_.train_dataloader.dataset}}
tagged = dict(
    type='DemoWSSSDataset',
    data_root=tagged_root,
    data_prefix=dict(img_path='JPEGImages'),
    ann_file='ImageSets/Segmentation/train.txt',
    label_file=tagged_label_file,
    with_gt_masks=False,
    loss_weight=tagged_loss_weight,
    pipeline={{_base_.train_pipeline}})
train_dataloader = dict(dataset=dict(_delete_=True, type='ConcatDataset', datasets=[labelled, tagged]))
