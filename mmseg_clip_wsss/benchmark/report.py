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


def _models_table(result: Dict) -> str:
    """Size, FLOPs, speed and memory of every model, with ratios against the baseline."""
    rows = [[f'`{e["name"]}`', format_value(e.get('params_m'), 2, e.get('params_m_ratio')),
             format_value(e.get('gflops'), 2, e.get('gflops_ratio')),
             format_value(e.get('infer_img_per_s'), 2, e.get('infer_img_per_s_ratio')),
             format_value(e.get('train_step_s'), 3, e.get('train_step_s_ratio')),
             format_value(e.get('peak_mem_mb'), 0, e.get('peak_mem_mb_ratio'))]
            for e in result['models']]
    table = _table(['model', 'params (M)', 'GFLOPs', 'inference (img/s)', 'train step (s)',
                    'peak memory (MB)'], rows)
    notes = '\n'.join(f'- `{e["name"]}`: ' + (f'{e["description"]} ' if e.get('description') else '')
                      + f'(`{e["config"]}`)' for e in result['models'])
    return table + '\n' + notes + '\n'


def _text_tower_table(result: Dict) -> str:
    """What the (frozen) text tower adds to every model."""
    rows = []
    for e in result['models']:
        tower = e.get('text_tower_params_m') or 0
        calls = e.get('text_encoder_calls_during_inference')
        rows.append([f'`{e["name"]}`', format_value(e.get('params_total_m'), 2),
                     format_value(tower, 2) if tower else '-',
                     format_value(e.get('text_encoder_gflops_once'), 2),
                     '-' if calls is None else str(calls), format_value(e.get('infer_peak_mem_mb'), 0)])
    return '\n' + _table(['model', 'params incl. text tower (M)', 'frozen text tower (M)',
                          'text embeddings, once (GFLOPs)', 'text-tower calls in timed inference',
                          'inference peak memory (MB)'], rows)


def _breakdown_table(result: Dict) -> str:
    """Inference time per component (empty without profiles)."""
    comps = ['backbone', 'neck', 'decode_head', 'text_encoder']
    if not any(e.get('infer_breakdown_ms') for e in result['models']):
        return ''
    rows = [[f'`{e["name"]}`'] + [format_value((e.get('infer_breakdown_ms') or {}).get(c), 1)
                                  for c in comps] for e in result['models']]
    return ('\nInference time per component (ms per batch, under torch.profiler; the head includes '
            'the final resize):\n\n' + _table(['model'] + comps, rows))


def _pseudo_mask_table(result: Dict) -> str:
    """Pseudo-mask throughput per setting (empty when not measured)."""
    if not result.get('pseudo_masks'):
        return ''
    rows = [[f'`{r["model"]}`', r['setting'], ', '.join(f'{s:g}' for s in r['scales']),
             'yes' if r['flip'] else 'no', 'PAR' if r['refine'] else 'none',
             format_value(r['img_per_s'], 3), format_value(r['s_per_img'], 3)]
            for r in result['pseudo_masks']]
    return ('\nPseudo-mask generation (CAMs -> refinement -> masks, one image, no file I/O):\n\n'
            + _table(['model', 'setting', 'scales', 'flip', 'refine', 'img/s', 's/img'], rows))


def _targets_table(result: Dict) -> str:
    """The acceptance checks (empty without targets)."""
    if not result.get('targets'):
        return ''
    rows = [[t['target'], '-' if t['value'] is None else f'{t["value"]:.3g}',
             f'{t["op"]} {t["threshold"]}', {True: 'met', False: '**missed**', None: 'n/a'}[t['passed']]]
            for t in result['targets']]
    return '\nTargets:\n\n' + _table(['check', 'value', 'target', 'result'], rows)


def _machine_line(result: Dict) -> str:
    machine = result.get('machine', {})
    return (f'\nMachine: {machine.get("cpu")}, {machine.get("usable_cores")} usable core(s), '
            f'{result["threads"]} torch thread(s) (OMP_NUM_THREADS={machine.get("omp_num_threads")}), '
            f'torch {machine.get("torch")}, mmseg {machine.get("mmseg")}, Python '
            f'{machine.get("python")}' + (f', GPU {machine["gpu"]}' if machine.get('gpu') else '')
            + f'; {machine.get("date_utc")}; the run took {result.get("seconds")} s.\n')


def format_markdown(result: Dict) -> str:
    """The comparison table, the per-component times, pseudo-mask throughput, targets, machine."""
    h, w = result['input_size']
    out = [f'# Benchmark: {h}x{w} input, {result["device"]}, {result["threads"]} thread(s)\n',
           f'Ratios (in parentheses) are against `{result["baseline"]}`, measured in the same run. '
           f'Inference: batch {result["batch_size"]}; training step: batch '
           f'{result["train_batch_size"]}; median of {result["repeats"]} round-robin rounds after '
           f'{result["warmup"]} warm-up.\n',
           _models_table(result), _text_tower_table(result), _breakdown_table(result),
           _pseudo_mask_table(result), _targets_table(result), _machine_line(result)]
    if result.get('command'):
        out.append(f'\nCommand: `{result["command"]}`\n')
    return ''.join(out)
