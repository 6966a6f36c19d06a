"""Markdown tables of a benchmark result (``benchmark.md``)."""
from typing import Dict, List, Optional

__all__ = ['format_markdown', 'format_value', 'format_pseudo_mask_markdown']


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


#: Columns of the per-stage table (a stage no model ran is left out).
_STAGE_COLUMNS = ('decode', 'preprocess', 'forward', 'grad-cam', 'affinity', 'cam', 'hand over',
                  'refine', 'crf', 'mask', 'write')


def _floor_table(result: Dict) -> str:
    """Every model's cost against its floor (the forward passes of its protocol)."""
    workers = result['workers']
    amp = any('fp32_mask_agreement' in m for m in result['models'])
    reference = any('reference_mask_agreement' in m for m in result['models'])
    rows = [[f'`{m["name"]}`', f'{m["size"][0]}x{m["size"][1]}', str(m['images']),
             ', '.join(f'{s:g}' for s in m['scales']), 'yes' if m['flip'] else 'no',
             str(m['refine']), f'{m["one_process_ratio"]:.3f}x', f'{m["workers_ratio"]:.3f}x',
             'yes' if m['same_pngs'] else '**no**']
            + ([f'{m["fp32_one_process_ratio"]:.3f}x', f'{100 * m["fp32_mask_agreement"]:.2f}%']
               if amp else [])
            + ([f'{100 * m["reference_mask_agreement"]:.2f}% of `{m["reference"]}`'
                if 'reference' in m else '-'] if reference else []) for m in result['models']]
    return _table(['model', 'input', 'images', 'scales', 'flip', 'refine', 'one process / floor',
                   f'{workers} worker(s) / floor', 'same PNGs']
                  + (['fp32, one process / floor', 'pixels as in fp32 masks'] if amp else [])
                  + (['pixels as in the reference masks'] if reference else []), rows)


def _stage_table(result: Dict) -> str:
    """Seconds per image of every stage of the one-process run, as a multiple of the floor."""
    used = [s for s in _STAGE_COLUMNS if any(s in m['stages_s_per_img'] for m in result['models'])]
    rows = []
    for m in result['models']:
        floor = m['floor_s_per_img']
        cells = [f'{m["stages_s_per_img"][s] / floor:.3f}' if s in m['stages_s_per_img'] else '-'
                 for s in used]
        rows.append([f'`{m["name"]}`'] + cells + [f'{m["other_s_per_img"] / floor:.3f}',
                                                  f'{m["staged_run_s_per_img"] / floor:.3f}'])
    return _table(['model'] + used + ['other', 'total'], rows)


def _model_process_table(result: Dict) -> str:
    """The run with workers: what the model's process and the workers spend per image, / floor."""
    rows = []
    for m in result['models']:
        stages, floor = m.get('workers_run_stages_s_per_img') or {}, m['floor_s_per_img']
        main = sum(v for k, v in stages.items() if not k.startswith('worker') and
                   not k.endswith('(once)') and k != 'wait for workers')
        worker = sum(v for k, v in stages.items() if k.startswith('worker '))
        rows.append([f'`{m["name"]}`', f'{main / floor:.3f}', f'{worker / floor:.3f}',
                     f'{stages.get("wait for workers", 0.0) / floor:.3f}',
                     f'{m["workers_ratio"]:.3f}', f'{stages.get("start workers (once)", 0.0):.2f} s',
                     f'{stages.get("finish queued jobs (once)", 0.0):.2f} s'])
    return ('\nThe run with workers (seconds per image / the floor): the model\'s process busy, the '
            'workers busy (summed over them), the model\'s process waiting for them (a full queue), '
            'the wall time (the final wait included); and, once per run, the start of the workers '
            '(not in the wall time) and the final wait for the jobs still queued after the last '
            'batch:\n\n'
            + _table(['model', 'model process', 'workers', 'waiting', 'wall', 'start', 'final wait'],
                     rows))


def _crf_table(crf: Optional[Dict]) -> str:
    """Dense-CRF post-processing throughput by worker count."""
    if not crf:
        return ''
    counts = list(crf['img_per_s'])
    base = crf['img_per_s'][counts[0]]
    rows = [[w, f'{crf["img_per_s"][w]:.3f}', f'{crf["img_per_s"][w] / base:.2f}x'] for w in counts]
    return (f'\nDense CRF + labels + PNGs alone ({crf["images"]} images of {crf["size"][0]}x'
            f'{crf["size"][1]}, 3 classes each, CRF settings {crf["refine"]}); same PNGs for every '
            f'count: {"yes" if crf["same_pngs"] else "**no**"}.\n\n'
            + _table(['workers', 'img/s', f'vs {counts[0]} worker(s)'], rows))


def format_pseudo_mask_markdown(result: Dict) -> str:
    """The cost-vs-floor table, the per-stage table and the dense-CRF scaling of a
    ``tools/benchmark.py --pseudo-masks`` result."""
    machine = result.get('machine', {})
    tables = [] if not result['models'] else [
        'Floor: the forward passes of the protocol (every scale, and the flipped image when it '
        'flips) on the same inputs. One process: image files to PNGs, `--workers 0`. Workers: '
        f'the same with `--workers {result["workers"]}`, less the one-time start of the '
        'workers.\n\n', _floor_table(result),
        '\nWhere the time goes (the one-process run of median length; seconds per image of each '
        'stage / the floor; "forward" is the passes inside the pipeline, "other" the rest):\n\n',
        _stage_table(result), _model_process_table(result)]
    out = [f'# Pseudo masks against their floor: {result["device"]}, {result["threads"]} torch '
           f'thread(s), median of {result["repeats"]} rounds'
           + (', bfloat16 autocast' if result.get('amp') else '') + '\n\n', *tables,
           _crf_table(result.get('crf_workers')),
           f'\nMachine: {machine.get("cpu")}, {machine.get("usable_cores")} usable core(s); load '
           f'average (1, 5, 15 min) {result.get("load_average_before")} before, '
           f'{result.get("load_average_after")} after; the run took {result.get("seconds")} s.\n']
    if result.get('command'):
        out.append(f'\nCommand: `{result["command"]}`\n')
    return ''.join(out)
