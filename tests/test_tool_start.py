"""Ctrl-C while a command line is still starting (its imports): one line, exit status 130, no traceback."""
import multiprocessing
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mmseg_clip_wsss import startup
from mmseg_clip_wsss.cli import run_tool

REPO = Path(__file__).resolve().parents[1]


def _interrupt_while_importing(command, tmp_path):
    """Run ``python -X importtime COMMAND`` and send SIGINT once ``mmseg_clip_wsss.compat`` is imported:
    the package's start has begun and the slow imports (mmseg, mmdet, open_clip: seconds) are still
    ahead. A fixed delay would race the interpreter's own start on a busy machine.

    Returns:
        tuple: the exit status, stderr without the import-time lines, and whether the SIGINT was sent
        before the process ended.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
    env.pop('MMSEG_CLIP_WSSS_TRACEBACK', None)
    proc = subprocess.Popen([sys.executable, '-X', 'importtime', *command], cwd=str(tmp_path), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if line.split('|')[-1].strip() == 'mmseg_clip_wsss.compat':
            break
    sent = proc.poll() is None
    proc.send_signal(signal.SIGINT)
    _, rest = proc.communicate(timeout=120)
    err = ''.join(line for line in seen + rest.splitlines(True) if not line.startswith('import time:'))
    return proc.returncode, err, sent


@pytest.mark.parametrize('command', [
    ['{repo}/tools/make_pseudo_masks.py', 'config.py', '--out-dir', 'out'],
    ['{repo}/tools/dataset_converters/pseudo_masks_to_coco.py', 'masks', 'images', '--out', 'out/a.json'],
    ['-m', 'mmseg_clip_wsss.cli.segment', 'a.jpg', '--config', 'c.py', '--checkpoint', 'c.pth', '--out-dir', 'out'],
])
def test_ctrl_c_while_a_tool_imports_is_one_line_and_exit_130(command, tmp_path):
    status, err, sent = _interrupt_while_importing([c.format(repo=REPO) for c in command], tmp_path)
    assert sent  # the signal came during the imports
    assert status == 130, err
    assert 'Traceback' not in err and 'KeyboardInterrupt' not in err
    assert err.strip() == 'interrupted while starting; nothing was written'
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('orig_argv,script,expected', [
    (['python', '-m', 'mmseg_clip_wsss.cli.train', 'c.py'], '-m', True),
    (['python', '-X', 'importtime', '-m', 'mmseg_clip_wsss.cli.segment'], '-m', True),
    (['python', '{repo}/tools/train.py', 'c.py'], '{repo}/tools/train.py', True),
    (['python', '{repo}/tools/dataset_converters/coco_to_labels.py'],
     '{repo}/tools/dataset_converters/coco_to_labels.py', True),
    (['python', '-m', 'pytest', 'tests'], '-m', False),  # the package imported by another program
    (['python', 'my_script.py', '-m', 'mmseg_clip_wsss.cli.train'], 'my_script.py', False),
    (['python', '-c', 'import mmseg_clip_wsss'], '-c', False),
    (['python', '-c', 'from multiprocessing.spawn import spawn_main; spawn_main()', '--multiprocessing-fork'],
     '{repo}/tools/train.py', False),  # a spawned worker of a tool: the tool's sys.argv, not its command
    (['python'], '', False),
])
def test_only_a_command_line_of_the_project_is_guarded(orig_argv, script, expected):
    orig_argv = [a.format(repo=REPO) for a in orig_argv]
    assert startup.is_tool_command(orig_argv, script.format(repo=REPO), str(REPO)) is expected


def test_the_guard_hands_ctrl_c_back_to_run_tool(monkeypatch, capsys):
    monkeypatch.setattr(sys, 'orig_argv', ['python', '-m', 'mmseg_clip_wsss.cli.train'], raising=False)
    monkeypatch.setattr(sys, 'argv', ['-m'])
    monkeypatch.delenv('MMSEG_CLIP_WSSS_TRACEBACK', raising=False)
    before = signal.getsignal(signal.SIGINT)
    try:
        assert startup.guard_startup()
        assert signal.getsignal(signal.SIGINT) is startup._interrupted_while_starting

        def main():  # the tool's main runs with the handler it had before the start
            assert signal.getsignal(signal.SIGINT) is before
            raise KeyboardInterrupt

        with pytest.raises(SystemExit) as exc:
            run_tool(main, interrupted=lambda: 'nothing finished')
        assert exc.value.code == 130
        assert capsys.readouterr().err.strip() == 'interrupted (Ctrl-C): nothing finished'
    finally:
        startup.end_startup_guard()
        signal.signal(signal.SIGINT, before)
    monkeypatch.setenv('MMSEG_CLIP_WSSS_TRACEBACK', '1')  # debugging the start: no guard
    assert not startup.guard_startup() and signal.getsignal(signal.SIGINT) is before


def _guarded_in_a_spawned_child(queue):
    queue.put(signal.getsignal(signal.SIGINT) is startup._interrupted_while_starting)


def test_a_spawned_worker_of_a_tool_is_not_guarded(monkeypatch):
    """A spawned worker gets the tool's sys.argv; Ctrl-C there follows the worker's own rules."""
    ctx = multiprocessing.get_context('spawn')
    monkeypatch.setattr(sys, 'argv', [str(REPO / 'tools' / 'make_pseudo_masks.py')])
    queue = ctx.Queue()
    child = ctx.Process(target=_guarded_in_a_spawned_child, args=(queue, ))
    child.start()
    child.join(120)
    assert queue.get(timeout=5) is False
