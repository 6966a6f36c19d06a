"""The parsers of every command line (``mmseg_clip_wsss.cli.<tool>.parse_args``): the ``--cfg-options``
action they share, and the help of their options."""
import argparse
import importlib
import pkgutil

import pytest
from mmengine.config import DictAction

import mmseg_clip_wsss.cli
from mmseg_clip_wsss.apis.config_options import options_dict
from mmseg_clip_wsss.cli.runner_args import CFG_OPTIONS_HELP, CfgOptionsAction
from mmseg_clip_wsss.cli.segment import parse_args as segment_parse_args

TOOLS = sorted(m.name for m in pkgutil.iter_modules(mmseg_clip_wsss.cli.__path__) if m.name != 'runner_args')


class _Built(Exception):
    """Raised by the patched ``parse_args`` with the parser a tool built."""

    def __init__(self, parser):
        super().__init__()
        self.parser = parser


def _parser_of(tool, monkeypatch):
    """The ``argparse`` parser that ``mmseg_clip_wsss.cli.<tool>.parse_args`` builds (nothing parsed)."""
    def built(self, *args, **kwargs):
        raise _Built(self)

    monkeypatch.setattr(argparse.ArgumentParser, 'parse_args', built)
    module = importlib.import_module(f'mmseg_clip_wsss.cli.{tool}')
    with pytest.raises(_Built) as caught:
        module.parse_args([])
    return caught.value.parser


def _cfg_options_action(parser):
    found = [a for a in parser._actions if '--cfg-options' in a.option_strings]
    return found[0] if found else None


def test_every_tool_is_walked_and_every_cfg_options_is_the_one_action(monkeypatch):
    assert len(TOOLS) >= 25 and 'segment' in TOOLS and 'training_free' in TOOLS
    with_options = {tool for tool in TOOLS if _cfg_options_action(_parser_of(tool, monkeypatch))}
    assert with_options == {'make_pseudo_masks', 'robustness', 'segment', 'test', 'train', 'tune_prompts'}
    for tool in with_options:
        action = _cfg_options_action(_parser_of(tool, monkeypatch))
        assert type(action) is CfgOptionsAction, tool
        # the help says what the action does (it said "mmengine DictAction syntax", which drops spaces)
        assert action.help.startswith(CFG_OPTIONS_HELP) and 'DictAction' not in action.help, tool
    assert 'a comma splits a value into a list' in CFG_OPTIONS_HELP and 'brackets must pair' in CFG_OPTIONS_HELP
    assert 'unless it is inside quotes' in CFG_OPTIONS_HELP


@pytest.mark.parametrize('value,parsed', [
    ("'a photo of a {}, small.'", 'a photo of a {}, small.'),
    ('"(a, b]"', '(a, b]'),  # brackets inside quotes do not count
    ("['a, b', c]", ['a, b', 'c']),
    ("[('x, y', 2), 3]", [('x, y', 2), 3]),
    ("'1'", 1), ("'0.5'", 0.5), ("'None'", None),  # a quoted number is the number, as in mmengine
    ("'[1,2]'", '[1,2]'),  # kept whole (mmengine: the list)
    ("a dog's {}, cat", ["a dog's {}", 'cat']),  # a quote inside a word opens nothing
])
def test_a_quoted_value_is_a_string_kept_whole(value, parsed):
    """A text with a comma could not be given: mmengine splits at every comma."""
    ours = CfgOptionsAction._parse_iterable(value)
    assert ours == parsed and type(ours) is type(parsed)


@pytest.mark.parametrize('tool', ['make_pseudo_masks', 'robustness', 'segment', 'test', 'train',
                                  'tune_prompts'])
def test_cfg_options_keep_the_spaces_inside_a_value(tool, monkeypatch):
    parser = _parser_of(tool, monkeypatch)
    action, namespace = _cfg_options_action(parser), argparse.Namespace()
    action(parser, namespace, ['model.text_encoder.prompt.templates=a photo of a {}.', 'a.b=[1, 2]',
                               'c="two  words"', 'd= (1, x y) '], '--cfg-options')
    assert namespace.cfg_options == {'model.text_encoder.prompt.templates': 'a photo of a {}.',
                                     'a.b': [1, 2], 'c': 'two  words', 'd': (1, 'x y')}


def test_segment_command_line_keeps_a_template_with_spaces():
    args = segment_parse_args(['img.png', '--config', 'c.py', '--checkpoint', 'c.pth', '--out-dir', 'o',
                       '--cfg-options', 'model.text_encoder.prompt.templates=a photo of a {}.',
                       'cam_cfg.scales=1.0,0.5'])
    assert args.cfg_options == {'model.text_encoder.prompt.templates': 'a photo of a {}.',
                                'cam_cfg.scales': [1.0, 0.5]}


def test_the_demo_option_strings_parse_as_the_tools_parse_them():
    options = options_dict(['model.text_encoder.prompt.templates=a photo of a {}.', 'model.neck.in_index=[1, 2, 3]'])
    assert options == {'model.text_encoder.prompt.templates': 'a photo of a {}.', 'model.neck.in_index': [1, 2, 3]}


@pytest.mark.parametrize('value', ['1,2,3', '[a, b, c]', '[(1, 2, 3), [a, b], c]', '(1,2)', '(1,)', '[]', '()',
                                   'True', 'false', 'None', '0.5', '1e-3', '-4', "'x'", 'a,', '[[1,2]]',
                                   '[a,[b]]', ',a', '1,,2', 'x', '', 'path/to/file.pth', ' [ 1 , 2 ] '])
def test_cfg_options_without_spaces_in_a_string_parse_as_mmengine_parses_them(value):
    ours = CfgOptionsAction._parse_iterable(value)
    theirs = DictAction._parse_iterable(value)
    assert ours == theirs and type(ours) is type(theirs)


@pytest.mark.parametrize('item,words', [
    ('model.x', "'model.x' is no KEY=VALUE pair"),
    ('a=[1,(2', "'a=[1,(2': the '(' at position 3 of '[1,(2' is never closed"),
    ('a=1]', "'a=1]': the ']' at position 1 of '1]' closes no bracket"),
    ('model..pretrained=x', "'model..pretrained=x': the key 'model..pretrained' has an empty part (a dot "
     'too many, at its start or its end)'),
])
def test_a_bad_cfg_options_item_is_refused_by_argparse_naming_it(item, words, capsys):
    with pytest.raises(SystemExit) as exc:
        segment_parse_args(['i.png', '--config', 'c.py', '--checkpoint', 'c.pth', '--out-dir', 'o',
                            '--cfg-options', item])
    assert exc.value.code == 2
    assert f'argument --cfg-options: {words}' in capsys.readouterr().err


@pytest.mark.parametrize('tool', TOOLS)
def test_every_option_of_every_tool_has_a_help_text(tool, monkeypatch):
    """`training_free --help` showed --data-root, --out-dir and --threads without a word."""
    parser = _parser_of(tool, monkeypatch)
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert actions, tool
    silent = [a.option_strings[0] if a.option_strings else a.dest for a in actions
              if not (a.help or '').strip() or a.help == argparse.SUPPRESS]
    assert not silent, f'{tool}: options without a help text: {silent}'
    assert 'show this help message' in parser.format_help()  # the help renders (e.g. no bare % in a text)


def _helps(parser):
    """The help text of every option of ``parser`` as ``--help`` prints it (defaults added)."""
    formatter = parser._get_formatter()
    return {(a.option_strings or [a.dest])[0]: ' '.join(formatter._expand_help(a).split())
            for a in parser._actions if a.help and a.help != argparse.SUPPRESS
            and not isinstance(a, argparse._HelpAction)}


@pytest.mark.parametrize('tool', TOOLS)
def test_no_help_text_states_a_default_twice_or_a_default_of_none(tool, monkeypatch):
    """eval_clip printed "(default WSSS-Demo-CLIP-RN, the demo CLIP) (default: WSSS-Demo-CLIP-RN)" and
    pretrain_clip "(default DATA_ROOT/clip) (default: None)"."""
    helps = _helps(_parser_of(tool, monkeypatch))
    twice = {o: h for o, h in helps.items() if h.count('(default') > 1 or '(default: None)' in h}
    assert not twice, f'{tool}: {twice}'


@pytest.mark.parametrize('tool,option,default', [
    ('label_scarcity', '--ns', '(default 0 30 300)'), ('label_scarcity', '--jobs', '(default 2)'),
    ('label_scarcity', '--data-root', '(default data/demo;'), ('make_demo_data', '--out', '(default data/demo)'),
    ('make_demo_data', '--num-openvocab', 'default 100)'), ('dense_open_vocab', '--data-root', '(default data/demo)'),
    ('eval_clip', '--out', '(default: beside the checkpoint, eval.json)'),
])
def test_options_with_a_default_state_it(tool, option, default, monkeypatch):
    assert default in _helps(_parser_of(tool, monkeypatch))[option]


def test_tune_prompts_names_a_training_free_config_for_a_missing_one(tmp_path):
    """It named the stage-1 config configs/demo/clip_wsss_clip-rn_demo.py, which has no prompts to tune."""
    from mmseg_clip_wsss.apis.preflight import MissingAssetError
    from mmseg_clip_wsss.cli.tune_prompts import main as tune_main
    with pytest.raises(MissingAssetError, match=r'e\.g\. configs/clip_es/clip-es-learned-prompts_demo-clip_demo\.py'):
        tune_main([str(tmp_path / 'missing.py')])
