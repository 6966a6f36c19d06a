"""Markdown tables of a benchmark result (``benchmark.md``)."""
from typing import Dict, List, Optional

__all__ = ['format_markdown', 'format_value']


def format_value(value: Optional[float], digits: int = 2, ratio: Optional[float] = None) -> str:
    """``'12.34 (0.50x)'``; ``'-'`` for a missing value."""
    if value is None:
        return '-'
    text = f'{value:.{digits}f}'
    if ratio is not None:
        text += f' ({ratio:.2f}x)'
    return text


def _table(header: List[str], rows: List[List[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    return '\n'.join(lines) + '\n'


def format_markdown(result: Dict) -> str:
    """The comparison table, the per-component times, pseudo-mask throughput, targets, machine."""
    h, w = result['input_size']
    base = result['baseline']
    machine = result.get('machine', {})
    out = [f'# Benchmark: {h}x{w} input, {result["device"]}, {result["threads"]} thread(s)\n',
           f'Ratios (in parentheses) are against `{base}`, measured in the same run. Inference: '
           f'batch {result["batch_size"]}; training step: batch {result["train_batch_size"]}; '
           f'median of {result["repeats"]} round-robin rounds after {result["warmup"]} warm-up.\n']
    rows = []
    for e in result['models']:
        rows.append([
            f'`{e["name"]}`', format_value(e.get('params_m'), 2, e.get('params_m_ratio')),
            format_value(e.get('gflops'), 2, e.get('gflops_ratio')),
            format_value(e.get('infer_img_per_s'), 2, e.get('infer_img_per_s_ratio')),
            format_value(e.get('train_step_s'), 3, e.get('train_step_s_ratio')),
            format_value(e.get('peak_mem_mb'), 0, e.get('peak_mem_mb_ratio')),
        ])
    out.append(_table(['model', 'params (M)', 'GFLOPs', 'inference (img/s)', 'train step (s)',
                       'peak memory (MB)'], rows))
    out.append('\n' + '\n'.join(
        f'- `{e["name"]}`: ' + (f'{e["description"]} ' if e.get('description') else '')
        + f'(`{e["config"]}`)' for e in result['models']) + '\n')

    extra = []
    for e in result['models']:
        tower = e.get('text_tower_params_m') or 0
        extra.append([
            f'`{e["name"]}`', format_value(e.get('params_total_m'), 2),
            format_value(tower, 2) if tower else '-',
            format_value(e.get('text_encoder_gflops_once'), 2),
            '-' if e.get('text_encoder_calls_during_inference') is None else
            str(e['text_encoder_calls_during_inference']),
            format_value(e.get('infer_peak_mem_mb'), 0),
        ])
    out.append('\n' + _table(['model', 'params incl. text tower (M)', 'frozen text tower (M)',
                              'text embeddings, once (GFLOPs)', 'text-tower calls in timed inference',
                              'inference peak memory (MB)'], extra))

    comps = ['backbone', 'neck', 'decode_head', 'text_encoder']
    if any(e.get('infer_breakdown_ms') for e in result['models']):
        rows = []
        for e in result['models']:
            parts = e.get('infer_breakdown_ms') or {}
            rows.append([f'`{e["name"]}`'] + [format_value(parts.get(c), 1) for c in comps])
        out.append('\nInference time per component (ms per batch, under torch.profiler; the head '
                   'includes the final resize):\n\n' + _table(['model'] + comps, rows))

    if result.get('pseudo_masks'):
        rows = [[f'`{r["model"]}`', r['setting'], ', '.join(f'{s:g}' for s in r['scales']),
                 'yes' if r['flip'] else 'no', 'PAR' if r['refine'] else 'none',
                 format_value(r['img_per_s'], 3), format_value(r['s_per_img'], 3)]
                for r in result['pseudo_masks']]
        out.append('\nPseudo-mask generation (CAMs -> refinement -> masks, one image, no file I/O):'
                   '\n\n' + _table(['model', 'setting', 'scales', 'flip', 'refine', 'img/s',
                                    's/img'], rows))

    if result.get('targets'):
        rows = [[t['target'], '-' if t['value'] is None else f'{t["value"]:.3g}',
                 f'{t["op"]} {t["threshold"]}',
                 {True: 'met', False: '**missed**', None: 'n/a'}[t['passed']]]
                for t in result['targets']]
        out.append('\nTargets:\n\n' + _table(['check', 'value', 'target', 'result'], rows))

    out.append(f'\nMachine: {machine.get("cpu")}, {machine.get("usable_cores")} usable core(s), '
               f'{result["threads"]} torch thread(s) (OMP_NUM_THREADS={machine.get("omp_num_threads")}), '
               f'torch {machine.get("torch")}, mmseg {machine.get("mmseg")}, Python '
               f'{machine.get("python")}' + (f', GPU {machine["gpu"]}' if machine.get('gpu') else '')
               + f'; {machine.get("date_utc")}; the run took {result.get("seconds")} s.\n')
    if result.get('command'):
        out.append(f'\nCommand: `{result["command"]}`\n')
    return ''.join(out)
