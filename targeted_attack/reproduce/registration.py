"""Claims fixed before the runs: each run records the definition it was run
under, and a claim judged on runs of another definition is exploratory.

A claim's hash is the digest (`claims.digest`) of its text, its check's and
controls' specs, and the settings of every cell of its study as the runs
receive them (the scale's, the study's, the cell's and the command line's,
less the seed and the paths), with the model's architecture revision where
it has one (`process.models.MODEL_REVISIONS`). Before a run starts, the
sweep writes `definition.json` beside its metrics (once: a resumed run keeps
its first record): the hash of each of its study's claims, the study's hash and the
code version. At report time a claim is exploratory when a run it reads has
no record, or recorded another hash for it (the claim, a control or a
setting changed after the run was written), or when its study is a bigger
run (run after a claim failed at `small`).
"""

import functools
import json
import os
import subprocess
import time
from typing import Dict, Sequence

from targeted_attack.experiment import config as config_lib
from targeted_attack.experiment import outputs
from targeted_attack.process import models
from targeted_attack.reproduce import claims as claims_lib
from targeted_attack.runtime import devices

DEFINITION_FILE = 'definition.json'
# Settings that differ between a study's runs without changing what it
# measures.
PER_RUN_KEYS = frozenset(('random_seed', 'root_output_dir', 'experiment_name',
                          'resume', 'emnist_cache_dir'))


def definition_settings(settings: dict) -> dict:
  """A run's `settings` less `PER_RUN_KEYS`, with its model's architecture
  revision (`_model_revision`) where the model has one."""
  kept = {k: v for k, v in settings.items() if k not in PER_RUN_KEYS}
  revision = models.MODEL_REVISIONS.get(
      settings.get('model', config_lib.ExperimentConfig().model))
  if revision:
    kept['_model_revision'] = revision
  return kept


def cell_settings(runs: Sequence) -> Dict[str, dict]:
  """{cell: its settings less `PER_RUN_KEYS`, the digest of the
  pretraining run it starts from (`_pretrained`, a path-free stand-in for
  `init_checkpoint`), and its model's revision (`_model_revision`) where the
  model has one} from a study's planned runs."""
  settings = {}
  for run in runs:
    if run.cell not in settings:
      settings[run.cell] = definition_settings(run.settings)
      if getattr(run, 'pretrained', None):
        # The pretraining run's digest in place of its checkpoint's path.
        settings[run.cell].pop('init_checkpoint', None)
        settings[run.cell]['_pretrained'] = run.pretrained
  return settings


def claim_hash(claim: claims_lib.Claim, settings: Dict[str, dict]) -> str:
  """The digest of the claim's spec and its study's cell settings."""
  return claims_lib.digest(dict(claim=claim.spec(), cells=settings))


def study_hash(study, settings: Dict[str, dict]) -> str:
  """The digest of the study's cells' settings and all its claims."""
  return claims_lib.digest(dict(cells=settings,
                                claims=[c.spec() for c in study.claims]))


@functools.lru_cache(maxsize=None)
def code_version() -> str:
  """The package version, and the git commit of its checkout when it is one
  ('+modified' with uncommitted changes)."""
  import targeted_attack  # pylint: disable=g-import-not-at-top
  version = targeted_attack.__version__
  root = os.path.dirname(os.path.dirname(os.path.abspath(
      targeted_attack.__file__)))
  try:
    commit = subprocess.run(['git', 'rev-parse', '--short=12', 'HEAD'],
                            cwd=root, capture_output=True, text=True,
                            timeout=10, check=True).stdout.strip()
    dirty = subprocess.run(['git', 'status', '--porcelain', '--untracked-'
                            'files=no', '--', 'targeted_attack'], cwd=root,
                           capture_output=True, text=True, timeout=10,
                           check=True).stdout.strip()
  except (OSError, subprocess.SubprocessError):
    return version
  return f'{version} ({commit}{"+modified" if dirty else ""})'


def _seed_count(runs: Sequence) -> int:
  return len({r.seed for r in runs})


def record(study, runs: Sequence, todo: Sequence) -> None:
  """Writes the definition of `study` (its planned `runs`: settings, claims,
  seed count) beside each run of `todo` that has not started (rewritten
  until it does); a run that started with no record gets one saying so."""
  settings = cell_settings(runs)
  content = dict(study=study.name, study_hash=study_hash(study, settings),
                 claims={c.text: claim_hash(c, settings)
                         for c in study.claims},
                 seeds=_seed_count(runs), code_version=code_version(),
                 written=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
  for run in todo:
    path = os.path.join(run.output_dir, DEFINITION_FILE)
    started = os.path.exists(os.path.join(run.output_dir, 'metrics.csv'))
    if started and os.path.exists(path):
      continue
    os.makedirs(run.output_dir, exist_ok=True)
    with open(path, 'w') as f:
      json.dump(dict(content, claims={}, started_before_record=True)
                if started else content, f, indent=1)


def read_record(run):
  """The run's recorded definition, or None."""
  try:
    with open(os.path.join(run.output_dir, DEFINITION_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def exploratory_reason(study, claim: claims_lib.Claim, runs: Sequence,
                       finished: Sequence) -> str:
  """Why `claim`'s verdict is exploratory ('' when it was fixed before every
  finished run of its study): `runs` the study's planned runs, `finished`
  those read."""
  if study.bigger_run_of:
    return f'bigger run of {study.bigger_run_of}'
  expected = claim_hash(claim, cell_settings(runs))
  records = [read_record(r) for r in finished]
  if any(r is None for r in records):
    return 'runs without a recorded definition'
  if any(r.get('started_before_record') for r in records):
    return 'runs started before their definition was recorded'
  if any(r.get('claims', {}).get(claim.text) != expected for r in records):
    return 'defined after its runs (claim, controls or settings changed)'
  if any(r.get('seeds') != _seed_count(runs) for r in records):
    return (f'{_seed_count(runs)} seeds read, not the '
            f'{sorted({r.get("seeds") for r in records}, key=str)} planned '
            'when the runs were made')
  return ''


def numerics(finished: Sequence) -> list:
  """The kernels `finished` runs ran on, in a few words each
  (`runtime.devices.numerics_text`; 'kernels unrecorded' for a run without
  them)."""
  texts = set()
  for run in finished:
    records = outputs.read_numerics(
        os.path.join(run.output_dir, outputs.NUMERICS_FILE))
    texts.update(devices.numerics_text(r) for r in records)
    if not records:
      texts.add('kernels unrecorded')
  return sorted(texts)


def versions(finished: Sequence) -> list:
  """The code versions that wrote `finished` runs' definitions."""
  return sorted({(read_record(r) or {}).get('code_version', 'unrecorded')
                 for r in finished})
