"""Side-by-side benchmark of several models in one run (what ``tools/benchmark.py`` runs).

:func:`run_benchmark` builds every model, measures parameters and GFLOPs, times inference and a
training step of all models **round-robin** (each round calls every model once, so load changes of
the machine hit all of them alike; the median of the rounds is reported), profiles one inference of
each model, measures pseudo-mask generation throughput, measures peak memory in a fresh process per
model, and expresses every number as a ratio against the named baseline measured in the same run.
It writes ``benchmark.json``, ``benchmark.md`` and ``profile_<model>.txt`` into the output folder.
"""
import datetime
import json
import os
import os.path as osp
import platform
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import mmcv
import mmengine
import mmseg
import torch

from .measure import (ForwardCounter, build_optim_wrapper, complexity_gflops, count_parameters,
                      interleaved_times, make_infer_fn, make_inputs, make_pseudo_mask_fn,
                      make_train_batch, make_train_fn, median, num_classes_of, profile_inference,
                      pseudo_mask_settings, ratio, text_encoder_cost, text_tower_of)
from .memory import measure_peak_memory
from .report import format_markdown
from .specs import (DEFAULT_BASELINE, DEFAULT_CAM_MODEL, DEFAULT_SPECS, DEFAULT_TARGET_MODEL,
                    ModelSpec, build_benchmark_model, fill_memory_banks, load_benchmark_config,
                    specs_by_name)

__all__ = ['run_benchmark', 'machine_info', 'compute_targets', 'add_ratios', 'RATIO_KEYS',
           'write_results', 'timed_logger']

#: The per-model numbers that get a ``<key>_ratio`` against the baseline.
RATIO_KEYS = ('params_m', 'gflops', 'infer_img_per_s', 'train_step_s', 'peak_mem_mb')

#: Acceptance targets (CPU, same run): see :func:`compute_targets`.
TARGET_SPEEDUP = 1.2
TARGET_GFLOPS_RATIO = 0.8
TARGET_OVERHEAD_VS_CAM = 0.15


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.lower().startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str = 'cpu') -> Dict:
    """CPU model, core counts, threads, library versions (and the GPU on CUDA)."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    info = dict(cpu=_cpu_model(), cpu_count=os.cpu_count(), usable_cores=usable,
                torch_threads=torch.get_num_threads(),
                omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
                python=platform.python_version(), torch=torch.__version__, mmseg=mmseg.__version__,
                mmcv=mmcv.__version__, mmengine=mmengine.__version__, platform=platform.platform(),
                device=device, date_utc=datetime.datetime.now(datetime.timezone.utc).strftime(
                    '%Y-%m-%d %H:%M UTC'))
    if str(device).startswith('cuda') and torch.cuda.is_available():
        info['gpu'] = torch.cuda.get_device_name(torch.device(device))
        info['cuda'] = torch.version.cuda
    return info


def add_ratios(entries: List[Dict], baseline: str, keys: Sequence[str] = RATIO_KEYS) -> None:
    """Add ``<key>_ratio`` = value / baseline's value to every entry (in place)."""
    base = next((e for e in entries if e['name'] == baseline), None)
    if base is None:
        raise KeyError(f'benchmark: baseline {baseline!r} is not among the models '
                       f'{[e["name"] for e in entries]}.')
    for entry in entries:
        for key in keys:
            value = ratio(entry.get(key), base.get(key))
            entry[f'{key}_ratio'] = None if value is None else round(value, 4)


def compute_targets(entries: List[Dict], baseline: str, target_model: Union[str, Sequence[str]],
                    cam_model: Optional[str]) -> List[Dict]:
    """The acceptance checks that apply to the models present, for every target model:

    - inference throughput >= 1.2x the baseline's;
    - GFLOPs <= 0.8x the baseline's;
    - inference time <= 1.15x the CAM baseline's (what the text head + RSC-A neck add);
    - the text tower does not run during the timed inferences.
    """
    if not isinstance(target_model, str):
        return [t for name in target_model
                for t in compute_targets(entries, baseline, name, cam_model)]
    by_name = {e['name']: e for e in entries}
    ours, base = by_name.get(target_model), by_name.get(baseline)
    cam = by_name.get(cam_model) if cam_model else None
    targets = []

    def add(name, value, op, threshold):
        passed = None if value is None else (value >= threshold if op == '>=' else
                                             value <= threshold if op == '<=' else value == threshold)
        targets.append(dict(target=name, value=None if value is None else round(float(value), 4),
                            op=op, threshold=threshold, passed=passed))

    if ours is not None and base is not None and ours is not base and base is not cam:
        add(f'{target_model} inference img/s vs {baseline}',
            ratio(ours.get('infer_img_per_s'), base.get('infer_img_per_s')), '>=', TARGET_SPEEDUP)
        add(f'{target_model} GFLOPs vs {baseline}', ratio(ours.get('gflops'), base.get('gflops')),
            '<=', TARGET_GFLOPS_RATIO)
    if ours is not None and cam is not None and ours is not cam:
        slow = ratio(cam.get('infer_img_per_s'), ours.get('infer_img_per_s'))
        add(f'{target_model} extra inference time over {cam_model}',
            None if slow is None else slow - 1, '<=', TARGET_OVERHEAD_VS_CAM)
    if ours is not None and ours.get('text_encoder_calls_during_inference') is not None:
        add(f'{target_model} text-tower calls during timed inference',
            ours['text_encoder_calls_during_inference'], '==', 0)
    return targets


def _round(value, digits=4):
    return None if value is None else round(float(value), digits)


def write_results(result: Dict, out_dir: str) -> Dict[str, str]:
    """``benchmark.json`` and ``benchmark.md`` under ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = dict(json=osp.join(out_dir, 'benchmark.json'), md=osp.join(out_dir, 'benchmark.md'))
    with open(paths['json'], 'w') as f:
        json.dump(result, f, indent=2)
    with open(paths['md'], 'w') as f:
        f.write(format_markdown(result))
    return paths


def _measure_memory(specs: Sequence[ModelSpec], by_name: Dict[str, Dict], size, batch_size: int,
                    train_batch_size: int, device: str, seed: int, num_classes: Optional[int],
                    say: Callable[[str], None]) -> None:
    """Peak memory, one fresh process per model (before the models fill this process)."""
    for spec in specs:
        say(f'peak memory of {spec.name} (subprocess)')
        mem = measure_peak_memory(spec.to_dict(), size, batch_size, train_batch_size, device,
                                  torch.get_num_threads(), seed, num_classes)
        entry = by_name[spec.name]
        if 'error' in mem:
            say(f'  {spec.name}: {mem["error"]}')
            entry['memory_error'] = mem['error']
        entry['peak_mem_mb'] = _round(mem.get('peak_mem_mb'), 1)
        entry['infer_peak_mem_mb'] = _round(mem.get('infer_peak_mem_mb'), 1)
        entry['memory_readings'] = {k: _round(v, 1) if isinstance(v, float) else v
                                    for k, v in mem.items()
                                    if k not in ('peak_mem_mb', 'infer_peak_mem_mb')}


def _build_models(specs: Sequence[ModelSpec], by_name: Dict[str, Dict], size, device: str, seed: int,
                  num_classes: Optional[int], say: Callable[[str], None]) -> Tuple[Dict, Dict]:
    """Build every model; record its size and GFLOPs. Returns ``(models, configs)`` by name."""
    models, cfgs = {}, {}
    for spec in specs:
        say(f'building {spec.name} ({spec.config})')
        cfg = load_benchmark_config(spec, num_classes)
        model = build_benchmark_model(cfg, device)
        entry = by_name[spec.name]
        entry['weights_off'] = list(cfg.benchmark_weights_off)
        entry['memory_banks_filled'] = fill_memory_banks(model, seed)
        entry.update({k: round(v, 3) for k, v in count_parameters(model).items()})
        entry.update({k: _round(v) for k, v in text_encoder_cost(model, device).items()})
        inputs, _ = make_inputs(1, size, device, seed)
        with torch.no_grad():
            model(inputs)  # fills a text encoder's cache before the FLOPs are counted
        with ForwardCounter(text_tower_of(model)) as calls:
            entry['gflops'] = round(complexity_gflops(model, inputs), 3)
        entry['text_encoder_calls_during_flops'] = calls.count
        models[spec.name], cfgs[spec.name] = model, cfg
    return models, cfgs


def _time_inference(models: Dict, by_name: Dict[str, Dict], size, batch_size: int, repeats: int,
                    warmup: int, device: str, seed: int, say: Callable[[str], None]) -> Dict:
    """Inference round-robin; returns the inference functions by name (for the profiles)."""
    infer_fns, counters = {}, {}
    for name, model in models.items():
        inputs, metas = make_inputs(batch_size, size, device, seed)
        infer_fns[name] = make_infer_fn(model, inputs, metas)
    say(f'inference: {warmup} warm-up + {repeats} timed rounds over {len(models)} models')
    # warm-up rounds run the text encoder once (it fills its cache); count only the timed ones
    for name, fn in infer_fns.items():
        for _ in range(warmup):
            fn()
    for name, model in models.items():
        counters[name] = ForwardCounter(text_tower_of(model)).__enter__()
    try:
        times = interleaved_times(infer_fns, 0, repeats, device, log=say)
    finally:
        for counter in counters.values():
            counter.__exit__(None, None, None)
    for name, entry in by_name.items():
        seconds = median(times[name])
        entry['infer_s_median'] = round(seconds, 6)
        entry['infer_times_s'] = [round(t, 6) for t in times[name]]
        entry['infer_img_per_s'] = round(batch_size / seconds, 4)
        entry['text_encoder_calls_during_inference'] = counters[name].count
    return infer_fns


def _write_profiles(models: Dict, infer_fns: Dict, by_name: Dict[str, Dict], size, batch_size: int,
                    device: str, out_dir: str, say: Callable[[str], None]) -> None:
    """``profile_<model>.txt``: torch.profiler tables of two inferences of every model."""
    os.makedirs(out_dir, exist_ok=True)
    for name, model in models.items():
        say(f'profiling {name}')
        with ForwardCounter(text_tower_of(model)) as calls:
            text, breakdown = profile_inference(model, infer_fns[name], iters=2, device=device)
        path = osp.join(out_dir, f'profile_{name}.txt')
        with open(path, 'w') as f:
            f.write(f'# {name} ({by_name[name]["config"]}): inference (encode_decode) of a '
                    f'batch of {batch_size} at {size[0]}x{size[1]} on {device}, '
                    f'{torch.get_num_threads()} thread(s)\n')
            f.write(f'# text-tower calls during the profiled inferences: {calls.count}\n')
            f.write('# per-component ms per inference (under the profiler): '
                    + json.dumps(breakdown) + '\n\n' + text)
        by_name[name]['infer_breakdown_ms'] = breakdown
        by_name[name]['profile'] = path


def _time_pseudo_masks(models: Dict, cfgs: Dict, names: Sequence[str], size, repeats: int,
                       warmup: int, device: str, seed: int, say: Callable[[str], None]) -> List[Dict]:
    """Pseudo-mask throughput of every setting of :func:`pseudo_mask_settings`, round-robin."""
    fns, keys = {}, {}
    for name in names:
        cam_cfg = cfgs[name].get('cam_cfg', None)
        k = num_classes_of(models[name])
        inputs, _ = make_inputs(1, size, device, seed)
        labels = torch.zeros(1, k, device=device)
        labels[0, [0, min(1, k - 1), min(k // 2, k - 1)]] = 1
        for setting in pseudo_mask_settings(cam_cfg):
            key = f'{name} | {setting["setting"]}'
            fns[key] = make_pseudo_mask_fn(models[name], inputs, labels, setting, cam_cfg)
            keys[key] = (name, setting)
    say(f'pseudo masks: {len(fns)} settings, {warmup} warm-up + {repeats} timed rounds')
    counters = {n: ForwardCounter(text_tower_of(models[n])).__enter__() for n in names}
    try:
        times = interleaved_times(fns, warmup, repeats, device, log=say)
    finally:
        for counter in counters.values():
            counter.__exit__(None, None, None)
    rows = []
    for key, (name, setting) in keys.items():
        seconds = median(times[key])
        rows.append(dict(model=name, setting=setting['setting'], scales=list(setting['scales']),
                         flip=setting['flip'], refine=setting['refine'], s_per_img=round(seconds, 6),
                         img_per_s=round(1 / seconds, 4), times_s=[round(t, 6) for t in times[key]],
                         text_encoder_calls=counters[name].count))
    return rows


def _time_training(models: Dict, cfgs: Dict, by_name: Dict[str, Dict], size, train_batch_size: int,
                   repeats: int, warmup: int, device: str, seed: int,
                   say: Callable[[str], None]) -> None:
    """A training step (loss + backward + the config's optimiser step) of every model, round-robin."""
    train_fns = {}
    for name, model in models.items():
        model.train()
        wrapper = build_optim_wrapper(model, cfgs[name], device)
        inputs, samples = make_train_batch(train_batch_size, size, num_classes_of(model), device, seed)
        train_fns[name] = make_train_fn(model, wrapper, inputs, samples)
    say(f'training step: {warmup} warm-up + {repeats} timed rounds over {len(models)} models')
    times = interleaved_times(train_fns, warmup, repeats, device, log=say)
    for name, entry in by_name.items():
        entry['train_step_s'] = round(median(times[name]), 6)
        entry['train_step_times_s'] = [round(t, 6) for t in times[name]]
    for model in models.values():
        model.eval()


def _methods(batch_size: int, train_batch_size: int, repeats: int, warmup: int, device: str) -> Dict:
    """How every number of ``benchmark.json`` was measured."""
    return dict(
        params_m='all parameters except a frozen CLIP text tower (run once per class list, '
        'output cached, left out of checkpoints); params_total_m counts it',
        gflops='mmengine.analysis.get_model_complexity_info of model(inputs) (raw score maps), '
        'batch 1, no_grad; 1 multiply-add = 1 FLOP; the text encoder returns its cached '
        'embeddings (text_encoder_gflops_once: computing them once)',
        infer_img_per_s=f'batch {batch_size} / median seconds of model.encode_decode (eval, '
        f'no_grad) over {repeats} round-robin rounds after {warmup} warm-up round(s)',
        train_step_s=f'median seconds of loss + backward + optimiser step (the config\'s '
        f'optim_wrapper), batch {train_batch_size}, round-robin; weak models read image-level '
        'labels, mmseg models masks',
        peak_mem_mb=('torch.cuda.max_memory_allocated of the training steps, fresh process '
                     'per model' if str(device).startswith('cuda') else
                     'RSS high-water mark after 2 training steps minus RSS after imports, fresh '
                     'process per model (infer_peak_mem_mb: after 2 inferences)'),
        memory_banks='RSC-A memory banks filled with random unit-norm prototypes, as after '
        'training (an empty bank skips nothing but adds nothing)',
        weights='random init everywhere (no pretrained weights, no downloads); the text '
        'tower has its real architecture')


def _check_arguments(specs: Sequence[ModelSpec], baseline: str, repeats: int, warmup: int) -> None:
    """Raise for a baseline that is not among ``specs`` or a bad number of rounds."""
    if baseline not in specs_by_name(specs):
        raise KeyError(f'benchmark: --baseline {baseline!r} is not among the models '
                       f'{[s.name for s in specs]}.')
    if repeats < 1 or warmup < 0:
        raise ValueError('benchmark: repeats must be >= 1 and warmup >= 0.')


def timed_logger(log: Callable[[str], None], start: float) -> Callable[[str], None]:
    """``log`` with the seconds since ``start`` in front of every message."""
    def say(msg: str) -> None:
        log(f'[benchmark {time.time() - start:6.1f}s] {msg}')

    return say


def _measure(specs: Sequence[ModelSpec], by_name: Dict[str, Dict], size, batch_size: int,
             train_batch_size: int, repeats: int, warmup: int, device: str, seed: int,
             num_classes: Optional[int], out_dir: str, memory: bool, train: bool, profile: bool,
             pseudo_mask_models: Optional[Sequence[str]], pseudo_mask_repeats: Optional[int],
             say: Callable[[str], None]) -> List[Dict]:
    """Every measurement into ``by_name``, in order; returns the pseudo-mask rows."""
    if memory:
        _measure_memory(specs, by_name, size, batch_size, train_batch_size, device, seed, num_classes,
                        say)
    models, cfgs = _build_models(specs, by_name, size, device, seed, num_classes, say)
    infer_fns = _time_inference(models, by_name, size, batch_size, repeats, warmup, device, seed, say)
    if profile:
        _write_profiles(models, infer_fns, by_name, size, batch_size, device, out_dir, say)
    pm_models = [n for n in (pseudo_mask_models or []) if n in models
                 and hasattr(models[n], 'compute_cams')]
    pseudo_rows = _time_pseudo_masks(models, cfgs, pm_models, size, pseudo_mask_repeats or
                                     min(repeats, 3), warmup, device, seed, say) if pm_models else []
    if train:
        _time_training(models, cfgs, by_name, size, train_batch_size, repeats, warmup, device, seed,
                       say)
    return pseudo_rows


def _result(size, batch_size: int, train_batch_size: int, repeats: int, warmup: int, device: str,
            baseline: str, target_model: Union[str, Sequence[str]], cam_model: Optional[str],
            command: Optional[str], entries: List[Dict], pseudo_rows: List[Dict]) -> Dict:
    """What ``benchmark.json`` holds, less the run's ``seconds``."""
    return dict(
        input_size=list(size), batch_size=batch_size, train_batch_size=train_batch_size,
        repeats=repeats, warmup=warmup, device=device, threads=torch.get_num_threads(),
        baseline=baseline,
        target_model=target_model if isinstance(target_model, str) else list(target_model),
        cam_model=cam_model, machine=machine_info(device), command=command,
        methods=_methods(batch_size, train_batch_size, repeats, warmup, device),
        models=entries, pseudo_masks=pseudo_rows,
        targets=compute_targets(entries, baseline, target_model, cam_model))


def run_benchmark(specs: Sequence[ModelSpec] = DEFAULT_SPECS, baseline: str = DEFAULT_BASELINE,
                  input_size: Sequence[int] = (512, 512), repeats: int = 5, warmup: int = 1,
                  batch_size: int = 1, train_batch_size: int = 2, device: str = 'cpu',
                  out_dir: str = 'work_dirs/benchmark', memory: bool = True, train: bool = True,
                  profile: bool = True,
                  pseudo_mask_models: Optional[Sequence[str]] = (DEFAULT_TARGET_MODEL, ),
                  pseudo_mask_repeats: Optional[int] = None,
                  target_model: Union[str, Sequence[str]] = DEFAULT_TARGET_MODEL,
                  cam_model: Optional[str] = DEFAULT_CAM_MODEL, num_classes: Optional[int] = None,
                  seed: int = 0, command: Optional[str] = None,
                  log: Callable[[str], None] = print) -> Dict:
    """Measure ``specs`` side by side and write the results (see the module docstring).

    Args:
        specs (Sequence[ModelSpec]): The models. Defaults to :data:`DEFAULT_SPECS`.
        baseline (str): Name of the model the ratios refer to.
        input_size (Sequence[int]): (H, W) of the inputs (FLOPs, inference, training, memory).
        repeats (int): Timed rounds (median reported). Defaults to 5.
        warmup (int): Untimed rounds first. Defaults to 1.
        batch_size (int): Inference batch. Defaults to 1.
        train_batch_size (int): Training-step batch. Defaults to 2.
        device (str): ``'cpu'`` or ``'cuda[:i]'``.
        out_dir (str): Output folder.
        memory (bool): Measure peak memory (a subprocess per model). Defaults to True.
        train (bool): Time the training step. Defaults to True.
        profile (bool): Write ``profile_<model>.txt``. Defaults to True.
        pseudo_mask_models (Sequence[str], optional): Models whose pseudo-mask throughput is measured
            (those present and having ``compute_cams``).
        pseudo_mask_repeats (int, optional): Timed rounds of the pseudo-mask settings (default:
            ``min(repeats, 3)``; multi-scale + flip is slow).
        target_model (str | Sequence[str]): Our model(s), for the acceptance targets.
        cam_model (str, optional): The CAM baseline, for the overhead target.
        num_classes (int, optional): Heads' ``num_classes`` of models without a text encoder.
        seed (int): Seed of the random inputs and memory banks.
        command (str, optional): The command line, recorded in the results.
        log (callable): Progress messages.

    Returns:
        dict: What ``benchmark.json`` holds.
    """
    start = time.time()
    size = (int(input_size[0]), int(input_size[-1]))
    specs = list(specs)
    _check_arguments(specs, baseline, repeats, warmup)
    say = timed_logger(log, start)
    entries = [dict(name=spec.name, config=spec.config, description=spec.description,
                    cfg_options=spec.cfg_options) for spec in specs]
    by_name = {e['name']: e for e in entries}
    pseudo_rows = _measure(specs, by_name, size, batch_size, train_batch_size, repeats, warmup, device,
                           seed, num_classes, out_dir, memory, train, profile, pseudo_mask_models,
                           pseudo_mask_repeats, say)
    add_ratios(entries, baseline)
    result = _result(size, batch_size, train_batch_size, repeats, warmup, device, baseline,
                     target_model, cam_model, command, entries, pseudo_rows)
    result['seconds'] = round(time.time() - start, 1)
    paths = write_results(result, out_dir)
    say(f'wrote {paths["json"]} and {paths["md"]}')
    return result
