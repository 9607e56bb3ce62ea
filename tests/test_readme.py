"""The README as the guide the project promises: its two set-up commands
first, at most 350 lines, CI calling its test command, and its tally of the
claims counted again from the claims table in docs/RESULTS.md."""

import collections
import os
import re

from targeted_attack.reproduce import studies as studies_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*path):
  with open(os.path.join(ROOT, *path)) as f:
    return f.read()


def test_readme_opens_with_its_two_commands_and_stays_a_guide():
  readme = _read('README.md')
  first_block = re.search(r'```bash\n(.*?)```', readme, re.S).group(1)
  commands = [line.split('#')[0].strip() for line in first_block.splitlines()]
  assert commands == ['./scripts/run_main.sh', './scripts/test.sh']
  # Nothing but the title before the commands.
  assert readme.index('```bash') < readme.index('\n\n') + 3
  assert len(readme.splitlines()) <= 350, len(readme.splitlines())


def test_ci_runs_the_readmes_test_command_last():
  steps = [line for line in _read('.ci', 'run').splitlines()
           if line.strip() and not line.startswith('#')]
  assert steps[-1].split()[-1] == './scripts/test.sh', steps[-1]


def _verdicts_in_results():
  """({study: [verdict word of each claim]}, {study: {seeds per cell}})
  from the claims table."""
  block = _read('docs', 'RESULTS.md').split('<!-- claims:begin')[1]
  table = block.split('#### Every cell')[0]
  header = next(line for line in table.splitlines()
                if line.startswith('| study |'))
  columns = [c.strip() for c in header.strip('|').split('|')]
  verdict_column = columns.index('verdict')
  seeds_column = columns.index('seeds per cell')
  verdicts = collections.defaultdict(list)
  seeds = collections.defaultdict(set)
  for line in table.splitlines():
    if not line.startswith('| ') or line == header:
      continue
    cells = [c.strip() for c in line.strip().strip('|').split('|')]
    verdict = cells[verdict_column]
    seeds[cells[0]].add(cells[seeds_column])
    for word in ('holds', 'does not hold', 'cannot tell'):
      if verdict.startswith(word):
        verdicts[cells[0]].append(word)
        break
    else:
      raise AssertionError(f'no verdict word in {verdict!r}')
  return verdicts, seeds


def test_the_readmes_tally_is_the_results_claims_table():
  verdicts, seeds = _verdicts_in_results()
  default = set(studies_lib.default_studies())
  assert default <= set(verdicts), default - set(verdicts)
  variants = {study for study in verdicts if study.endswith('_cifar10')}
  # The table holds the default studies and the CIFAR-10 variants only.
  assert set(verdicts) == default | variants, set(verdicts) - default
  assert all(seeds[study] == {'5 each'} for study in default), {
      study: seeds[study] for study in default}
  counted = {
      group: collections.Counter(
          word for study, words in verdicts.items()
          if study in (default if group == 'default' else variants)
          for word in words)
      for group in ('default', 'variants')}
  readme = ' '.join(_read('README.md').split())
  tally = re.search(
      r'Of the (\d+) default studies run at `small` \(5 seeds each\): '
      r'(\d+) claims hold, (\d+) do not, (\d+) cannot tell; of the (\d+) '
      r'CIFAR-10 variants run: (\d+) hold, (\d+) do not, (\d+) cannot tell',
      readme)
  assert tally, 'the README states no tally'
  numbers = [int(n) for n in tally.groups()]
  assert numbers[0] == len(default)
  assert numbers[1:4] == [counted['default'][w] for w in
                          ('holds', 'does not hold', 'cannot tell')]
  assert numbers[4] == len(variants)
  assert numbers[5:8] == [counted['variants'][w] for w in
                          ('holds', 'does not hold', 'cannot tell')]
