"""Executes the Colab notebook top to bottom on a tiny configuration.

Under pytest: in this environment (the repo's .venv, where the install cell
installs nothing). Run as a script by scripts/colab_check.sh: in a fresh venv
that has only TensorFlow and a kernel, as Colab's, where the notebook's own
install cell installs the rest from this checkout.
"""

import json
import math
import os
import sys

import nbclient
import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, 'notebooks', 'targeted_attack_colab.ipynb')
TINY = dict(TA_NOTEBOOK_ROUNDS='2', TA_NOTEBOOK_WRITERS='12',
            TA_NOTEBOOK_CLIENTS='3', TA_NOTEBOOK_MODEL='linear')


def execute_and_check_notebook(working_dir):
  """Runs every cell in `working_dir`; checks the plotted numbers and figure.
  Returns the text the cells printed."""
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(notebook, timeout=900,
                                   kernel_name='python3',
                                   resources={'metadata': {'path': working_dir}})
  client.execute()
  texts = [
      output.get('text', '') for cell in notebook.cells
      if cell.cell_type == 'code' for output in cell.get('outputs', [])
  ]
  plotted = [line for text in texts for line in text.splitlines()
             if line.startswith('PLOTTED ')]
  assert len(plotted) == 1
  numbers = json.loads(plotted[0][len('PLOTTED '):])
  assert len(numbers['main']) == 2 and len(numbers['backdoor']) == 2
  for value in numbers['main'] + numbers['backdoor']:
    assert math.isfinite(value) and 0.0 <= value <= 1.0
  images = [o for cell in notebook.cells if cell.cell_type == 'code'
            for o in cell.get('outputs', []) if 'image/png' in o.get('data', {})]
  assert images, 'the plot cell should render a figure inline'
  return '\n'.join(texts)


def test_notebook_runs_and_plots_finite_numbers(monkeypatch):
  for name, value in TINY.items():
    monkeypatch.setenv(name, value)
  printed = execute_and_check_notebook(ROOT)
  assert '[colab_install]' not in printed  # installed here: nothing to do


if __name__ == '__main__':
  # As Colab: the install cell installs from this checkout, in a scratch dir.
  os.environ.update(TINY, TA_NOTEBOOK_REPO=ROOT)
  printed = execute_and_check_notebook(sys.argv[1])
  print('\n'.join(l for l in printed.splitlines() if 'colab_install' in l))
  print('[colab_check] the notebook ran as on Colab: install cell, then every '
        'cell; the plotted numbers are finite accuracies')
