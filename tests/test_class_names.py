"""Two names of one class ('dog' and 'Dog ', 'tvmonitor' and 'tv monitor') are refused everywhere class
names are taken, naming both; the config check compares the text encoder's class list with the
dataset's, not only their lengths."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from PIL import Image

import mmseg_clip_wsss  # noqa: F401  (registration)
from mmseg_clip_wsss.apis import ConfigMismatchError, check_config_classes
from mmseg_clip_wsss.apis.inferencer import resolve_classes
from mmseg_clip_wsss.cli import run_tool
from mmseg_clip_wsss.cli.segment import main as segment_main
from mmseg_clip_wsss.datasets import VOC_CLASSES, DatasetError, check_class_list, parse_class_list
from mmseg_clip_wsss.models.text import CLIPPromptTextEncoder

#: (class list, the two names the message must name) of lists that name one class twice.
DUPLICATES = [
    (('background', 'dog', 'dog'), ("'dog' (class 1)", "'dog' (class 2)")),
    (('background', 'dog', 'Dog '), ("'dog' (class 1)", "'Dog ' (class 2)")),
    (('background', 'tvmonitor', 'tv monitor'), ("'tvmonitor' (class 1)", "'tv monitor' (class 2)")),
    (('background', 'potted_plant', 'Potted-Plant'), ("'potted_plant' (class 1)", "'Potted-Plant' (class 2)")),
]


@pytest.fixture(autouse=True)
def _mmseg_scope():
    init_default_scope('mmseg')


def _names_both(error: Exception, pair) -> None:
    assert all(name in str(error) for name in pair), str(error)


@pytest.mark.parametrize('classes,pair', DUPLICATES)
def test_dataset_class_lists_refuse_two_names_of_one_class(classes, pair):
    with pytest.raises(DatasetError) as info:
        check_class_list(classes, 'VOCWSSSDataset metainfo')
    _names_both(info.value, pair)
    assert check_class_list(('background', 'dog', 'hot dog'), 'x') == ('background', 'dog', 'hot dog')


@pytest.mark.parametrize('prompt', [None, dict(type='CoOpPromptLearner', n_ctx=2, ctx_init=None)])
@pytest.mark.parametrize('classes,pair', DUPLICATES)
def test_the_text_encoder_refuses_them_with_written_and_learned_prompts(tiny_clip, prompt, classes, pair):
    with pytest.raises(ValueError) as info:
        CLIPPromptTextEncoder(class_names=list(classes), prompt=prompt, **tiny_clip)
    _names_both(info.value, pair)


def test_set_class_names_refuses_them_and_keeps_the_list_it_had(tiny_clip):
    encoder = CLIPPromptTextEncoder(class_names=['background', 'cat', 'dog'],
                                    prompt=dict(type='CoOpPromptLearner', n_ctx=2, ctx_init=None),
                                    **tiny_clip).eval()
    before = encoder().clone()
    for classes, pair in DUPLICATES:
        with pytest.raises(ValueError) as info:
            encoder.set_class_names(list(classes))
        _names_both(info.value, pair)
    # 'tv' is prompted as 'television': the two rows would be one
    with pytest.raises(ValueError, match="'tv' \\(class 1\\) and 'television' \\(class 2\\)"):
        encoder.set_class_names(['background', 'tv', 'television'])
    assert encoder.class_names == ['background', 'cat', 'dog']
    assert torch.equal(encoder(), before)


def _config(text_classes, dataset_classes) -> Config:
    return Config(dict(
        model=dict(type='WSSSEncoderDecoder', decode_head=dict(num_classes=len(dataset_classes)),
                   text_encoder=dict(type='CLIPPromptTextEncoder', class_names=text_classes)),
        train_dataloader=dict(dataset=dict(type='WSSSDataset',
                                           metainfo=dict(classes=tuple(dataset_classes))))))


def test_the_config_check_compares_the_class_lists_not_their_lengths():
    with pytest.raises(ConfigMismatchError) as info:  # the report's case
        check_config_classes(_config(['background', 'dog', 'dog'], ('background', 'cat', 'dog')))
    _names_both(info.value, ("'dog' (class 1)", "'dog' (class 2)"))
    with pytest.raises(ConfigMismatchError) as info:  # distinct names, another order
        check_config_classes(_config(['background', 'dog', 'cat'], ('background', 'cat', 'dog')))
    assert "class 1 is 'cat' but model.text_encoder.class_names[1] is 'dog'" in str(info.value)
    with pytest.raises(ConfigMismatchError, match="class 2 is 'dog' but .*class_names\\[2\\] is 'horse'"):
        check_config_classes(_config(['background', 'cat', 'horse'], ('background', 'cat', 'dog')))
    # the same classes as written or as prompted, synonyms and CLIP-ES's longer prompt names agree
    check_config_classes(_config('voc', VOC_CLASSES))
    check_config_classes(_config(['background', 'tv monitor', ['Dog', 'puppy']],
                                 ('background', 'tvmonitor', 'dog')))
    check_config_classes(_config(['background', 'bird avian', 'chair seat'],
                                 ('background', 'bird', 'chair')))


def test_segment_and_the_converters_refuse_them_before_any_model_is_built(tmp_path):
    with pytest.raises(ValueError) as info:
        resolve_classes(['dog', 'Dog '])
    _names_both(info.value, ("'dog' (class 1)", "'Dog' (class 2)"))
    with pytest.raises(ValueError, match="'background' \\(class 0\\) and 'Background' \\(class 1\\)"):
        resolve_classes(['Background', 'cat'])
    with pytest.raises(ValueError, match="'dog' \\(class 1\\) and 'Dog' \\(class 2\\)"):
        parse_class_list('dog,Dog')
    image = tmp_path / 'a.png'
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    with pytest.raises(SystemExit) as info:  # no config or checkpoint is read: the names fail first
        run_tool(lambda: segment_main([str(image), '--config', str(tmp_path / 'none.py'), '--checkpoint',
                                       str(tmp_path / 'none.pth'), '--classes', 'tvmonitor,tv monitor',
                                       '--out-dir', str(tmp_path / 'out')]))
    message = str(info.value.code)
    assert message.startswith('error: ') and "'tvmonitor' (class 1) and 'tv monitor' (class 2)" in message
