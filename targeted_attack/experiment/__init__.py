"""One run of the experiment: config → registry → set-up → round loop → outputs.

- `config`: `ExperimentConfig`, every setting with its help and check (a
  leaf: imports neither the registry nor TensorFlow).
- `registry`: the table of attacks, defenses, backdoors, attacker models and
  datasets.
- `build`: the run's parts from its config, through the registry.
- `run`: `run(config)`, the set-up, then the loop with one hook per
  optional feature.
- `evaluation`, `outputs`, `privacy`: what a round reports and writes.
"""
