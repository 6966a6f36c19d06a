"""Side-by-side benchmarks against MM baselines (``tools/benchmark.py``) and the label-efficiency runs
on the demo data with their aggregation (``tools/label_efficiency.py``).

Not imported by ``import mmseg_clip_wsss``; import it explicitly.
"""
from .label_efficiency import (aggregate_label_efficiency, format_label_efficiency_markdown,
                               mean_std, run_label_efficiency)
from .pseudo_masks import (DEFAULT_PSEUDO_MASK_SPECS, PseudoMaskSpec, crf_worker_scaling,
                           measure_pseudo_masks, run_pseudo_mask_benchmark)
from .report import format_markdown, format_pseudo_mask_markdown
from .runner import RATIO_KEYS, add_ratios, compute_targets, machine_info, run_benchmark
from .specs import (DEFAULT_BASELINE, DEFAULT_CAM_MODEL, DEFAULT_SPECS, DEFAULT_TARGET_MODEL,
                    UPERNET_SWIN_T, ModelSpec, build_benchmark_model, fill_memory_banks,
                    load_benchmark_config, parse_model_arg, strip_pretrained)

__all__ = [
    'run_benchmark', 'machine_info', 'add_ratios', 'compute_targets', 'RATIO_KEYS', 'format_markdown',
    'ModelSpec', 'DEFAULT_SPECS', 'DEFAULT_BASELINE', 'DEFAULT_TARGET_MODEL', 'DEFAULT_CAM_MODEL',
    'UPERNET_SWIN_T', 'parse_model_arg', 'load_benchmark_config', 'build_benchmark_model',
    'fill_memory_banks', 'strip_pretrained', 'mean_std', 'aggregate_label_efficiency',
    'format_label_efficiency_markdown', 'run_label_efficiency', 'run_pseudo_mask_benchmark',
    'measure_pseudo_masks', 'crf_worker_scaling', 'PseudoMaskSpec', 'DEFAULT_PSEUDO_MASK_SPECS',
    'format_pseudo_mask_markdown'
]
