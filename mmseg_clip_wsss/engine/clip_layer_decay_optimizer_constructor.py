"""Layer-wise learning-rate decay for a trainable :class:`CLIPVisionBackbone` (mmengine constructor)."""
from typing import List

from mmengine.logging import print_log
from mmengine.optim import DefaultOptimWrapperConstructor
from mmseg.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

__all__ = ['CLIPLayerDecayOptimizerConstructor']


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class CLIPLayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """Learning rates that shrink geometrically towards the input of a CLIP image tower.

    The fine-tuning rule of BEiT and of CLIP fine-tuning recipes (e.g. Dong et al., "CLIP Itself is a
    Strong Fine-tuner", 2022): with ``L`` layers in the tower, a parameter of layer ``l``
    (:meth:`CLIPVisionBackbone.layer_id`: 0 = patch/stem embedding, 1..L = blocks or stages, L + 1 =
    the output projection) trains at ``lr * decay_rate ** (L + 1 - l)``; everything outside the
    backbone (neck, head, prompts) at ``lr``. Biases, norms and 1-D parameters (class and position
    embeddings included) get no weight decay. Frozen parameters are left out.

    Config::

        optim_wrapper = dict(type='OptimWrapper', optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
                             constructor='CLIPLayerDecayOptimizerConstructor',
                             paramwise_cfg=dict(decay_rate=0.65))

    Args:
        optim_wrapper_cfg (dict): The optim wrapper config.
        paramwise_cfg (dict): ``decay_rate`` (float in (0, 1], required).

    Raises:
        ValueError: without a valid ``decay_rate``, or when the model has no ``backbone`` with
            ``layer_id`` (a :class:`CLIPVisionBackbone`).
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: dict = None):
        decay_rate = (paramwise_cfg or {}).get('decay_rate')
        if decay_rate is None or not 0 < float(decay_rate) <= 1:
            raise ValueError('CLIPLayerDecayOptimizerConstructor: set paramwise_cfg.decay_rate to a '
                             f'number in (0, 1], got {decay_rate!r}.')
        super().__init__(optim_wrapper_cfg, paramwise_cfg)  # non-empty: the base calls add_params
        self.decay_rate = float(decay_rate)

    def add_params(self, params: List[dict], module: nn.Module, **kwargs) -> None:
        backbone = getattr(module, 'backbone', None)
        if not hasattr(backbone, 'layer_id'):
            raise ValueError('CLIPLayerDecayOptimizerConstructor: the model needs a `backbone` that is a '
                             f'CLIPVisionBackbone, got {type(backbone).__name__}; use the default '
                             'constructor for other backbones.')
        top = backbone.num_levels + 1
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            layer = backbone.layer_id(name[len('backbone.'):]) if name.startswith('backbone.') else top + 1
            no_decay = param.ndim <= 1 or name.endswith(('.bias', 'positional_embedding'))
            key = (layer, no_decay)
            if key not in groups:
                scale = self.decay_rate ** max(top - layer, 0)
                groups[key] = dict(params=[], lr=self.base_lr * scale, lr_scale=scale,
                                   weight_decay=0. if no_decay else self.base_wd or 0.)
            groups[key]['params'].append(param)
        print_log('CLIPLayerDecayOptimizerConstructor: learning-rate scales by layer '
                  f'{ {layer: g["lr_scale"] for (layer, _), g in sorted(groups.items())} }',
                  logger='current')
        params.extend(groups[key] for key in sorted(groups))
