"""The CAM -> pseudo-mask protocol: its options and their defaults, defined once.

A config's ``cam_cfg`` holds any of the fields of :class:`CAMProtocol`; ``tools/make_pseudo_masks.py``
reads it (its command line wins), records the protocol in ``OUT_DIR/protocol.json`` and
:func:`~mmseg_clip_wsss.cam.generate_pseudo_masks` runs it. The functions of the CAM package take
their defaults from :data:`DEFAULT_PROTOCOL`.
"""
import dataclasses
import difflib
from typing import Optional, Tuple, Union

__all__ = ['UnknownProtocolKeyError', 'IGNORE_INDEX', 'BG_MODES', 'AMP_MODES', 'CAMProtocol',
           'DEFAULT_PROTOCOL', 'check_ignore_band', 'check_scales']

#: Label of uncertain pixels in pseudo masks (and of ignored pixels in GT masks).
IGNORE_INDEX = 255
#: How the background score is made: a constant threshold, the model's own background channel, or
#: the complement of the strongest class, ``(1 - max CAM) ** bg_power`` (CLIP-ES).
BG_MODES = ('threshold', 'prompt', 'complement')
#: Mixed precision of the forward passes: none (fp32) or bfloat16 autocast.
AMP_MODES = (None, 'bf16')


class UnknownProtocolKeyError(ValueError, KeyError):
    """A ``cam_cfg`` key that is no protocol field. A :class:`ValueError` (the tools print its
    one-line message, no traceback) and a :class:`KeyError` (a wrong config key), printed without
    KeyError's quotes."""

    __str__ = ValueError.__str__


def _where(name: str) -> str:
    """Where a protocol field is set: its ``tools/make_pseudo_masks.py`` option and ``cam_cfg`` key."""
    option = {'flip': '--no-flip', 'amp': '--amp'}.get(name, '--' + name.replace('_', '-'))
    return f'{name} ({option} or --cfg-options cam_cfg.{name}=...)'


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_scales(scales) -> Tuple[float, ...]:
    """The CAM scales as floats: at least one, each a number above 0.

    Raises:
        ValueError: naming the bad value, the option and the fix.
    """
    values = list(scales) if isinstance(scales, (list, tuple)) else [scales]
    bad = [v for v in values if not _is_number(v) or not v > 0]
    if not values or bad:
        what = f'{bad[0]!r} is no number above 0' if bad else 'no scale is given'
        raise ValueError(f'CAM protocol: {_where("scales")} = {scales!r}: {what}; give resize '
                         'factors above 0, e.g. --scales 1.0 0.5 1.5 or cam_cfg.scales=[1.0,0.5,1.5].')
    return tuple(float(v) for v in values)


def _check_value(name: str, value, low: Optional[float] = None, high: Optional[float] = None,
                 optional: bool = False):
    """``value`` of the protocol field ``name``, checked: a bool for ``low`` None, else a number in
    ``[low, high]`` (no ``high``: ``low`` and up); None passes only for an ``optional`` field.

    Raises:
        ValueError: naming the field, its option and the valid values (None for a field that is
            not optional, e.g. ``cam_cfg.bg_threshold=None``, which would fail later in the run).
    """
    if value is None and optional:
        return None
    if value is None:
        valid = 'True or False' if low is None else (f'a number, {low} or more' if high is None
                                                      else f'a number from {low} to {high}')
        raise ValueError(f'CAM protocol: {_where(name)} = None, but it needs a value; give '
                         f'{valid}, or leave it out for its default {getattr(CAMProtocol, name)!r}.')
    if low is None:
        if not isinstance(value, bool):
            raise ValueError(f'CAM protocol: {_where(name)} = {value!r} is no bool; use True or False.')
        return value
    valid = f'{low} or more' if high is None else f'{low} to {high}'
    if not _is_number(value) or not (value >= low and (high is None or value <= high)):
        raise ValueError(f'CAM protocol: {_where(name)} = {value!r} is out of range; valid: {valid}.')
    return float(value)


def check_ignore_band(ignore_band: Optional[Tuple[float, float]], bg_threshold: float,
                      bg_mode: str) -> Optional[Tuple[float, float]]:
    """Validate how an ignore band combines with the background threshold.

    The band ``(low, high)`` is the uncertain zone *around* the threshold: the labels are those of
    the threshold rule, except that pixels whose strongest foreground score lies in ``[low, high)``
    become ignore. So it needs ``bg_mode='threshold'`` and ``low <= bg_threshold <= high``; a band
    that leaves the threshold outside would contradict it and is refused.

    Returns:
        tuple[float, float] | None: ``(low, high)`` as floats.

    Raises:
        ValueError: naming the band, the threshold and the fix.
    """
    if ignore_band is None:
        return None
    if bg_mode != 'threshold':
        raise ValueError(f"ignore_band applies to bg_mode='threshold'; with bg_mode={bg_mode!r} use "
                         'ignore_margin.')
    values = list(ignore_band) if isinstance(ignore_band, (list, tuple)) else [ignore_band]
    if len(values) != 2 or not all(_is_number(v) for v in values):
        raise ValueError(f'CAM protocol: {_where("ignore_band")} = {ignore_band!r}: give two numbers '
                         'LOW HIGH, e.g. --ignore-band 0.25 0.45.')
    low, high = (float(v) for v in values)
    if low > high:
        raise ValueError(f'CAM protocol: {_where("ignore_band")} = ({low}, {high}): LOW is above HIGH; '
                         f'give the band as LOW HIGH ({high}, {low}).')
    if not low <= float(bg_threshold) <= high:
        raise ValueError(f'ignore_band=({low}, {high}) must contain bg_threshold={bg_threshold} '
                         '(low <= bg_threshold <= high): the band is the uncertain zone around the '
                         'threshold. Move the threshold into the band or the band around it.')
    return low, high


@dataclasses.dataclass(frozen=True)
class CAMProtocol:
    """How CAMs become pseudo masks.

    Args:
        scales (tuple[float]): Resize factors of the multi-scale CAMs. Defaults to (1.0, 0.5, 1.5).
        flip (bool): Also use the horizontally flipped images. Defaults to True.
        refine (None | str | dict | refiner): ``'par'``, ``'crf'``, ``'none'``/None,
            ``dict(type='par', num_iters=..., dilations=..., colour_sigma=...)`` or a built refiner.
            Defaults to ``'par'``.
        bg_mode (str): One of :data:`BG_MODES`. Defaults to ``'threshold'``.
        bg_threshold (float): Background score in threshold mode. Defaults to 0.35.
        bg_power (float): Power of the background score ``(1 - max CAM) ** bg_power`` in complement
            mode (CLIP-ES's labels: 2, which puts the background where the strongest CAM is below
            (3 - sqrt 5) / 2 = 0.382). Defaults to 2.0.
        ignore_band (tuple[float, float], optional): Uncertain zone around ``bg_threshold`` (see
            :func:`check_ignore_band`). Defaults to None.
        ignore_margin (float, optional): Ignore pixels whose best class beats the second by less.
            Defaults to None.
        size_divisor (int, optional): Round scaled sizes to multiples of it. Defaults to None.
        normalise (bool): Scale every class map to max 1 after merging the scales and flips; False
            keeps their mean (a single scale as the model made it, as CLIP-ES does). Defaults to True.
        batch_size (int): Images per batch (same-size images only). Defaults to 1.
        amp (str, optional): ``'bf16'``: the model's forward passes under bfloat16 autocast (GPUs,
            and CPUs with AVX512-BF16 / AMX); the masks differ from fp32 ones in a few pixels
            (docs/benchmarks.md). Defaults to None (fp32).
    """
    scales: Tuple[float, ...] = (1.0, 0.5, 1.5)
    flip: bool = True
    refine: Union[None, str, dict, object] = 'par'
    bg_mode: str = 'threshold'
    bg_threshold: float = 0.35
    bg_power: float = 2.0
    ignore_band: Optional[Tuple[float, float]] = None
    ignore_margin: Optional[float] = None
    size_divisor: Optional[int] = None
    normalise: bool = True
    batch_size: int = 1
    amp: Optional[str] = None

    def __post_init__(self):
        if self.bg_mode not in BG_MODES:
            raise ValueError(f'CAM protocol: bg_mode={self.bg_mode!r} must be one of {BG_MODES}.')
        if self.amp not in AMP_MODES:
            raise ValueError(f'CAM protocol: amp={self.amp!r} must be one of {AMP_MODES} (None: fp32).')
        refine = self.refine.to_dict() if hasattr(self.refine, 'to_dict') else self.refine
        fields = dict(scales=check_scales(self.scales), flip=_check_value('flip', self.flip),
                      refine=dict(refine) if isinstance(refine, dict) else refine,
                      bg_threshold=_check_value('bg_threshold', self.bg_threshold, 0, 1),
                      bg_power=_check_value('bg_power', self.bg_power, 0),
                      ignore_margin=_check_value('ignore_margin', self.ignore_margin, 0, optional=True),
                      normalise=_check_value('normalise', self.normalise),
                      ignore_band=check_ignore_band(self.ignore_band, self.bg_threshold,
                                                    self.bg_mode))
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_cfg(cls, cfg: Union[None, dict, 'CAMProtocol'] = None, **overrides) -> 'CAMProtocol':
        """A protocol from a ``cam_cfg`` dict (or a protocol), with ``overrides`` that are not None.

        Raises:
            UnknownProtocolKeyError: for a key that is no protocol field, naming it, its closest
                field and the valid ones.
        """
        values = cfg.to_dict() if isinstance(cfg, CAMProtocol) else dict(cfg or {})
        values.update({k: v for k, v in overrides.items() if v is not None})
        known = sorted(f.name for f in dataclasses.fields(cls))
        unknown = sorted(set(values) - set(known))
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            hint = f' (did you mean cam_cfg.{close[0]}?)' if close else ''
            raise UnknownProtocolKeyError(
                f'CAM protocol: cam_cfg.{unknown[0]} is no protocol option{hint}; valid: '
                f'{", ".join(known)}. Correct the key in the config or --cfg-options.')
        return cls(**values)

    def to_dict(self) -> dict:
        """Every field, by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def background_rule(self, background_index: Optional[int]) -> str:
        """What the masks of this protocol hold where no object class wins, as a sentence.

        Args:
            background_index (int, optional): The background class; None for a class list without
                ``'background'``.

        Raises:
            ValueError: without a background class when the protocol reads a background channel
                (``bg_mode='prompt'``, ``refine='crf'``): every pixel would get an object class.
        """
        if background_index is not None:
            return (f'pixels where no present class beats the background get class '
                    f'{background_index} (background)')
        refine = self.refine.get('type') if isinstance(self.refine, dict) else self.refine
        crf = refine == 'crf' or type(refine).__name__ == 'DenseCRFRefiner'
        if self.bg_mode != 'threshold' or crf:
            setting = f"bg_mode={self.bg_mode!r}" if self.bg_mode != 'threshold' else "refine='crf'"
            raise ValueError(
                f"the classes have no 'background', but {setting} reads a background channel, so "
                "every pixel would get an object class: use bg_mode='threshold' without CRF "
                f"(uncertain pixels then get the ignore value {IGNORE_INDEX}), or put 'background' "
                'first in the classes.')
        return (f"no 'background' class: pixels where no present class reaches bg_threshold="
                f'{self.bg_threshold} get the ignore value {IGNORE_INDEX}')

    def record(self) -> dict:
        """What decides the masks (every field but ``batch_size``), as ``protocol.json`` records it."""
        values = self.to_dict()
        del values['batch_size']
        return values


#: The defaults of every CAM -> pseudo-mask function.
DEFAULT_PROTOCOL = CAMProtocol()
