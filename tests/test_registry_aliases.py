"""Public names that were renamed still build, as deprecated aliases that name the new name, so configs
written for the old names keep working."""
import numpy as np
import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss import registry
from mmseg_clip_wsss.apis.inferencer import WSSSInferencer
from mmseg_clip_wsss.datasets import LoadWSSSImage
from mmseg_clip_wsss.models.text import (CLIPPromptTextEncoder, CoOpPromptLearner, EnsemblePromptLearner,
                                         TemplatePromptLearner)
from mmseg_clip_wsss.registry import DET_MODELS, MODELS, TRANSFORMS

#: Every public name renamed so far (git log -S on the registered names): old name -> (new class,
#: the registries it is built from). LoadImageWSSS became LoadWSSSImage (6732262); the prompt modes
#: of prompt=dict(type=...) became the registered learners (f28818b).
RENAMED = {
    'LoadImageWSSS': (LoadWSSSImage, (TRANSFORMS, )),
    'template': (TemplatePromptLearner, (MODELS, DET_MODELS)),
    'learnable': (CoOpPromptLearner, (MODELS, DET_MODELS)),
    'learnable_ensemble': (EnsemblePromptLearner, (MODELS, DET_MODELS)),
}


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def test_every_renamed_name_is_listed_and_registered():
    assert registry.DEPRECATED_NAMES == {old: new.__name__ for old, (new, _) in RENAMED.items()}
    for old, (new, registries) in RENAMED.items():
        for reg in registries:
            alias = reg.get(old)
            assert alias is not None and issubclass(alias, new), (old, reg.name)


def test_a_config_written_for_the_old_loader_name_still_loads_its_images(tmp_path):
    path = tmp_path / 'a.png'
    Image.fromarray(np.full((6, 9, 3), 7, np.uint8)).save(path)
    with pytest.warns(FutureWarning, match="'LoadImageWSSS' is deprecated: it was renamed 'LoadWSSSImage'"):
        loader = TRANSFORMS.build(dict(type='LoadImageWSSS'))
    assert isinstance(loader, LoadWSSSImage)
    assert loader(dict(img_path=str(path)))['img'].shape == (6, 9, 3)


@pytest.mark.parametrize('old', ['template', 'learnable', 'learnable_ensemble'])
def test_the_old_prompt_modes_build_their_learners(tiny_clip, old):
    new = RENAMED[old][0]
    options = dict(n_ctx=2, ctx_init=None) if new is CoOpPromptLearner else {}
    classes = ['background', 'cat', 'dog']
    with pytest.warns(FutureWarning, match=f"'{old}' is deprecated: it was renamed '{new.__name__}'"):
        torch.manual_seed(0)
        encoder = CLIPPromptTextEncoder(class_names=classes, prompt=dict(type=old, **options), **tiny_clip)
    assert isinstance(encoder.prompt_learner, new)
    torch.manual_seed(0)
    renamed = CLIPPromptTextEncoder(class_names=classes, prompt=dict(type=new.__name__, **options),
                                    **tiny_clip)
    torch.testing.assert_close(encoder.eval()(), renamed.eval()())


def test_the_inferencer_reads_arrays_instead_of_the_old_loader_too():
    cfg = ConfigDict(test_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadImageWSSS'), dict(type='LoadWSSSAnnotations'), dict(type='PackWSSSInputs')])))
    pipeline = WSSSInferencer._init_pipeline(None, cfg)
    assert [type(t).__name__ for t in pipeline.transforms] == ['InferencerLoader', 'PackWSSSInputs']
