"""Executes the Colab notebook top to bottom on a tiny configuration."""

import json
import math
import os

import nbclient
import nbformat

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, 'notebooks', 'targeted_attack_colab.ipynb')


def test_notebook_runs_and_plots_finite_numbers(monkeypatch):
  for name, value in dict(TA_NOTEBOOK_ROUNDS='2', TA_NOTEBOOK_WRITERS='12',
                          TA_NOTEBOOK_CLIENTS='3',
                          TA_NOTEBOOK_MODEL='linear').items():
    monkeypatch.setenv(name, value)
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  client = nbclient.NotebookClient(notebook, timeout=600,
                                   kernel_name='python3',
                                   resources={'metadata': {'path': ROOT}})
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
