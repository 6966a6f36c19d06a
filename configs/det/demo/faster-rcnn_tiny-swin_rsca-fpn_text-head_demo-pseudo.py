# The demo detector trained from image-level labels only: the train boxes are the connected components
# of the stage-1 pseudo masks (work_dirs/demo/stage1/pseudo_masks, from `make demo`), converted by
# tools/dataset_converters/pseudo_masks_to_coco.py (tools/run_det_demo.py does it). Scored on the
# same val GT boxes.
_base_ = ['./faster-rcnn_tiny-swin_rsca-fpn_text-head_demo-gt.py']
train_ann_file = 'det/instances_train_pseudo.json'
train_dataloader = dict(dataset=dict(ann_file=train_ann_file))
