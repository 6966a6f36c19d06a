# Stage 1 from web-scale image-text pairs in webdataset tar shards (<key>.jpg + <key>.txt, the format
# of open_clip's training data and img2dataset), streamed: each rank reads its share of the shards,
# each dataloader worker its share of the rank's. The descriptions give the soft targets of the 21
# PASCAL VOC classes (DescriptionTargets: the classes' caption words and CLIP ViT-B/16's text tower);
# scored on the VOC 2012 val masks.
#   python tools/train.py configs/descriptions/clip_wsss_swin_voc_webdataset.py \
#       --cfg-options train_dataloader.dataset.shards='data/pairs/pairs-{000000..000999}.tar'
# Restarting a stopped run mid-stream: train_dataloader.dataset.resume_batches=<iterations done>
# (with the same batch size, workers and seed). README "Learning from image-text pairs".
_base_ = '../clip_wsss_swin_voc.py'
model = dict(
    description_targets=dict(extra_words='voc'),
    # The description contrastive loss (DescriptionContrastiveLoss) pulls the pooled pixel embeddings
    # towards the description, background pixels included: on the demo world (30 labels + the pool,
    # seed 0) the pseudo masks fell from 79.73 without it to 49.56 with it (59.46 with a 4 x 4 region
    # grid); it stays off until a pooling that keeps the background out is measured
    # (docs/benchmarks.md, "Learning from descriptions"). To try it:
    #   loss_description=dict(type='DescriptionContrastiveLoss', temperature=None, loss_weight=0.5)
    loss_description=None)
batch_size = 8
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=4,
    persistent_workers=True,
    sampler=None,  # an iterable dataset: the shards are split across ranks and workers by the dataset
    dataset=dict(
        _delete_=True,
        type='ImageTextShards',
        data_root='data/pairs',
        shards='pairs-{000000..000099}.tar',
        shuffle_shards=True,
        seed=0,
        batch_size=batch_size,
        resume_batches=0,
        num_samples=None,  # samples in all shards, if known: len() of the dataloader (schedules by epoch)
        pipeline={{_base_.train_pipeline}}))
