"""The generated world: object classes drawn over cluttered ground (:mod:`.world`), its datasets in
the PASCAL VOC layout (:mod:`.voc_writer`) and its captioned image corpus (:mod:`.captions`,
:mod:`.corpus`) for contrastive CLIP pretraining, and an unlabelled pool with people-like descriptions
(:mod:`.descriptions`, :mod:`.described_pool`).

Not imported by ``import mmseg_clip_wsss`` (it registers nothing); import it explicitly.
"""
from .described_pool import POOL_CAPTIONS, make_described_pool, write_split_descriptions
from .descriptions import DescriptionStyle, describe_scene
from .corpus import CaptionCorpus, CorpusConfig, build_corpus, load_corpus, save_corpus
from .voc_writer import make_demo_data
from .world import WORLD_PRESETS, WorldConfig, draw_scene, load_world, read_demo_info, world_preset

__all__ = ['make_demo_data', 'WorldConfig', 'WORLD_PRESETS', 'world_preset', 'load_world', 'read_demo_info', 'draw_scene',
           'CaptionCorpus', 'CorpusConfig', 'build_corpus', 'load_corpus', 'save_corpus',
           'DescriptionStyle', 'describe_scene', 'make_described_pool', 'write_split_descriptions',
           'POOL_CAPTIONS']
