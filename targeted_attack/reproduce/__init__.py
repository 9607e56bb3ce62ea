r"""Reproduce the papers' results with one command, scheduled on Ray.

  python -m targeted_attack.reproduce --scale=small            # every study
  python -m targeted_attack.reproduce --studies=sun_fig1 --scale=paper \
      --ray_address=auto                                        # on a cluster
  python -m targeted_attack.reproduce --studies=matrix --scale=main \
      --set num_rounds=20                                       # a grid
  python -m targeted_attack.reproduce --study_file=my_study.json --scale=small
  python -m targeted_attack.reproduce --plot_only               # redraw

- `studies`: the studies (data: each a list of cells, the paper's setting
  and claim) and the scales (tables of overrides).
- `runner`: every cell-seed one run of `targeted_attack.emnist_experiment` in
  its own process (so TFF's worker lives and dies with it), scheduled as a
  Ray task; finished runs are skipped, interrupted ones resume.
- `claims`: a paper's claim as a check of the per-seed results, gated by its
  controls; verdicts from the paired seeds' 90% Student-t interval.
- `registration`: each run records its claims' hashes; a claim changed after
  its runs is exploratory.
- `report`: per study, `summary.csv`/`summary.md`/`seeds.csv` (final,
  cumulative-mean and peak backdoor accuracy, main task, durability,
  detection: mean and 90% interval over the seeds listed; a grid study also
  as a grid) and `figure.png`; `claims.md` for all of them.

Outputs, under `root_output_dir/<scale>/<study>/`: `<cell>/seed_<k>/` (the
run: config.json, definition.json, metrics.csv, log.txt, ...), `figure.png`,
`summary.csv`, `summary.md`, `seeds.csv`; `root_output_dir/<scale>/claims.md`;
a converged start's pretraining runs under `root_output_dir/<scale>/_pretrained/`.
"""
