"""Tasks: the problems convforge trains (one Task each), the workflows built on
them, and the machinery that runs, tracks, evaluates and exports them.

Subpackages:
    core        the run machinery: Task base, trainer, distributed loop, recipes,
                MLflow tracking, checkpoints, model registry, user errors
    problems    one module per registered Task (classification, transfer,
                detection, two-stage detection, localisation, faces)
    workflows   jobs that are not a single Task: style transfer, fast style,
                ensembles, the demo, face alignment/landmarks, the face encoder export
    evaluation  mean average precision, multi-crop (10-crop)
    figures     training curves, confusion matrices, detection drawings
    cli         the ``convforge`` command line, one module per subcommand
"""
