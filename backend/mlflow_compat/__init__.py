"""MLflow's tracking model mapped onto ParityScope's: experiments are projects, MLflow runs are
runs, params are top-level config keys, tags are kept under the ``mlflow_tags`` config key (user
tags also appear in the run's tag list), metrics are metric points. The HTTP side is
``backend.api.routes.mlflow``; the queries are in ``backend.storage.mlflow``."""
